//! The nuannan library: the domain and every rule of the pipeline, and the
//! typed access to the broker and the store. The roles that run it, and the
//! `nuannan` binary, are the `nuannan-workers` crate in `workers/`.

pub mod bench;
pub mod bus;
pub mod clock;
pub mod config;
pub mod console;
pub mod deliver;
pub mod demo;
pub mod domain;
pub mod gateway;
pub mod hotspot;
pub mod identity;
pub mod intake;
pub mod lifecycle;
pub mod open311;
pub mod ops;
pub mod report;
pub mod routing;
pub mod store;
pub mod telemetry;
pub mod templates;
