//! The petition lifecycle (DESIGN §7): commands through a pure state machine.

mod machine;

pub use machine::{Closure, Env, Handover, Refusal, State, Transition, apply, expire_rating};
