//! Petition field paths used in queries and updates, named once. The
//! document shape itself is `records::PetitionRecord`; these are the paths
//! that filters, updates and the report's aggregation spell out.

pub const ID: &str = "_id";
pub const VERSION: &str = "version";
pub const STATUS: &str = "status";
pub const UNIT: &str = "unit";
pub const GRID: &str = "grid";
pub const CATEGORY: &str = "category";
pub const ROUTING: &str = "routing";
pub const AREA: &str = "area";
pub const CLOCK: &str = "clock";
pub const CLOCK_NEXT_AT: &str = "clock.next_at";
pub const DEADLINES: &str = "deadlines";
pub const DEADLINES_PROVISIONAL: &str = "deadlines.provisional";
pub const UPDATED_AT: &str = "updated_at";
pub const OUTBOX: &str = "outbox";
pub const COMMANDS: &str = "commands";
pub const BREACHES: &str = "breaches";
pub const RESULT: &str = "result";
pub const RATING: &str = "rating";
pub const RATING_VALUE: &str = "rating.value";
pub const CLOSURE: &str = "closure";
pub const CLOSED_AT: &str = "closed_at";
pub const FEEDBACK_SENT_AT: &str = "feedback_sent_at";
pub const KPI_RESPONDED_ON_TIME: &str = "kpi.responded_on_time";
pub const KPI_RESOLVED_ON_TIME: &str = "kpi.resolved_on_time";
pub const ESCALATIONS: &str = "escalations";
pub const REFUSALS: &str = "refusals";
pub const ESCALATION_LEVEL: &str = "escalation_level";
pub const DISPATCH_ATTEMPTS: &str = "dispatch_attempts";
pub const UNSATISFIED: &str = "unsatisfied";
