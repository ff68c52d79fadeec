//! Working-day calendar and deadline arithmetic (DESIGN §8), pure.

mod calendar;
mod deadlines;

pub use calendar::{Calendar, CalendarError};
pub use crate::domain::Deadlines;
pub use deadlines::{DeadlinePolicy, working_days};
