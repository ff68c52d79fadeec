//! The two clocks of a petition (`docs/contract.md` §8).

use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use chrono_tz::Asia::Shanghai;

use super::SharedCalendar;
use crate::domain::{Category, Deadlines};

#[derive(Debug, Clone)]
pub struct DeadlinePolicy {
    pub respond_within: Duration,
    pub office_close: NaiveTime,
    pub calendar: Arc<SharedCalendar>,
}

impl DeadlinePolicy {
    /// Natural hours from receipt.
    pub fn respond_by(&self, received: DateTime<Utc>) -> DateTime<Utc> {
        received + self.respond_within
    }

    /// Office close on the `working_days`-th working day after the
    /// Asia/Shanghai day of receipt; the day of receipt never counts.
    pub fn resolve_by(&self, received: DateTime<Utc>, working_days: u8) -> DateTime<Utc> {
        let day = received.with_timezone(&Shanghai).date_naive();
        let due = self.calendar.get().nth_workday_after(day, u32::from(working_days));
        Shanghai
            .from_local_datetime(&due.and_time(self.office_close))
            .earliest()
            .expect("Asia/Shanghai has no DST gaps")
            .with_timezone(&Utc)
    }

    /// Whether a resolution deadline was computed without the official
    /// schedule of its day (the weekend rule stood in): it is recomputed when
    /// that year is imported.
    pub fn provisional(&self, resolve_by: DateTime<Utc>) -> bool {
        !self.calendar.get().covers(resolve_by.with_timezone(&Shanghai).date_naive())
    }

    pub fn deadlines(&self, received: DateTime<Utc>, working_days: u8) -> Deadlines {
        Deadlines { respond_by: self.respond_by(received), resolve_by: self.resolve_by(received, working_days) }
    }
}

/// N ∈ {1, 2, 5} (`docs/contract.md` §8): a hotline's own time limit first, then 1 if
/// urgent, then the subcategory's class, then the category default.
pub fn working_days(time_limit: Option<u8>, urgent: bool, subcategory_class: Option<u8>, category: Option<Category>) -> u8 {
    if let Some(days) = time_limit {
        return days;
    }
    if urgent {
        return 1;
    }
    subcategory_class.unwrap_or(match category {
        Some(Category::Enforcement | Category::Development) => 5,
        // Unclassified petitions (triage) get the livelihood clock: the shortest default.
        Some(Category::Livelihood) | None => 2,
    })
}

/// `docs/contract.md` §8's defaults on the bundled calendar, for tests.
#[cfg(test)]
pub(crate) fn default_policy() -> DeadlinePolicy {
    DeadlinePolicy {
        respond_within: Duration::hours(4),
        office_close: NaiveTime::from_hms_opt(17, 30, 0).unwrap(),
        calendar: SharedCalendar::new(super::Calendar::bundled()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> DeadlinePolicy {
        default_policy()
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn resolve(received: &str, n: u8) -> String {
        policy().resolve_by(at(received), n).with_timezone(&Shanghai).to_rfc3339()
    }

    #[test]
    fn respond_is_four_natural_hours() {
        assert_eq!(policy().respond_by(at("2026-10-01T10:00:00+08:00")), at("2026-10-01T14:00:00+08:00"));
    }

    #[test]
    fn resolve_counts_working_days_after_the_day_of_receipt() {
        // Friday morning, 1 day → Monday close.
        assert_eq!(resolve("2026-11-27T09:00:00+08:00", 1), "2026-11-30T17:30:00+08:00");
        // After office close the receipt day still does not count, nor more than once.
        assert_eq!(resolve("2026-11-26T22:00:00+08:00", 1), "2026-11-27T17:30:00+08:00");
        // Received on a Sunday.
        assert_eq!(resolve("2026-11-29T10:00:00+08:00", 2), "2026-12-01T17:30:00+08:00");
    }

    #[test]
    fn holidays_and_make_up_days() {
        // Spring Festival 2026: received Friday 02-13, make-up Saturday 02-14 counts.
        assert_eq!(resolve("2026-02-13T10:00:00+08:00", 1), "2026-02-14T17:30:00+08:00");
        assert_eq!(resolve("2026-02-13T10:00:00+08:00", 2), "2026-02-24T17:30:00+08:00");
        // Received during the holiday.
        assert_eq!(resolve("2026-02-17T10:00:00+08:00", 5), "2026-02-28T17:30:00+08:00");
        // National Day 2026.
        assert_eq!(resolve("2026-09-30T16:00:00+08:00", 1), "2026-10-08T17:30:00+08:00");
        assert_eq!(resolve("2026-10-03T16:00:00+08:00", 2), "2026-10-09T17:30:00+08:00");
    }

    #[test]
    fn the_shanghai_day_decides_not_the_utc_day() {
        // 2026-11-27T20:00Z is already Saturday 04:00 in Shanghai.
        assert_eq!(resolve("2026-11-27T20:00:00Z", 1), "2026-11-30T17:30:00+08:00");
        // 2026-11-26T17:00Z is Friday 01:00 in Shanghai: Friday is the receipt day.
        assert_eq!(resolve("2026-11-26T17:00:00Z", 1), "2026-11-30T17:30:00+08:00");
    }

    #[test]
    fn working_days_precedence() {
        use Category::*;
        assert_eq!(working_days(Some(5), true, Some(1), Some(Livelihood)), 5);
        assert_eq!(working_days(None, true, Some(5), Some(Development)), 1);
        assert_eq!(working_days(None, false, Some(1), Some(Development)), 1);
        assert_eq!(working_days(None, false, None, Some(Livelihood)), 2);
        assert_eq!(working_days(None, false, None, Some(Enforcement)), 5);
        assert_eq!(working_days(None, false, None, Some(Development)), 5);
        assert_eq!(working_days(None, false, None, None), 2);
    }
}
