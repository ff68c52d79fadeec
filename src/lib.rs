pub mod config;
pub mod domain;
pub mod intake;
pub mod telemetry;
