//! The petition lifecycle (`docs/contract.md` §7, `docs/lifecycle.md`):
//! commands and due clocks through one pure state machine, and the one
//! typed change every transition becomes.

mod authorize;
mod due;
mod effects;
mod machine;
mod reply;

pub use authorize::{audit_actor, in_scope, kind_for, sender};
pub use due::{DueAction, expire_rating, on_due};
pub use effects::{Context, assignment, change, state};
pub use machine::{Breach, Env, Handover, Refusal, State, Tally, Transition, apply};
pub use reply::reply_allowed;
