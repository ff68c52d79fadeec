//! The integration suite, one binary: every test against the real broker
//! and store (see `common`), each in its own namespace and database.
//!
//! `faults` restarts the broker and the store, so it is ignored here and run
//! on its own: `cargo test --test it -- --ignored --exact faults::nothing_is_lost_or_duplicated_under_faults`.

mod common;

mod classifier_eval;
mod cli;
mod correctness;
mod crash;
mod deadline;
mod faults;
mod gateway;
mod identity;
mod intake;
mod lifecycle;
mod ops;
mod report;
mod routing;
mod topology;
