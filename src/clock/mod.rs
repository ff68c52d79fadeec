//! Working-day calendar and deadline arithmetic (`docs/contract.md` §8), pure.

mod calendar;
pub(crate) mod deadlines;
mod escalation;

pub use crate::domain::Deadlines;
pub use calendar::{Calendar, CalendarError, HEADER as CALENDAR_HEADER, SharedCalendar, YearFile};
pub use deadlines::{DeadlinePolicy, working_days};
pub use escalation::{ClockKind, Clocks, Due, Escalation, Window, escalate};
