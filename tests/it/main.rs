//! The integration suite, one binary: every test against the real broker
//! and store (see `common`), each in its own namespace and database.
//!
//! `faults` restarts the broker and the store and raises a memory alarm, so
//! its tests are ignored here and run on their own, one at a time:
//! `cargo test --test it -- --ignored --test-threads 1 faults::`.
//! `cluster` needs a three-node cluster: `./scripts/cluster-test` runs it.

mod common;

mod classifier_eval;
mod cli;
mod cluster;
mod console;
mod correctness;
mod crash;
mod deadline;
mod deliver;
mod faults;
mod gateway;
mod hotspot;
mod identity;
mod intake;
mod lifecycle;
mod open311;
mod ops;
mod report;
mod routing;
mod topology;
