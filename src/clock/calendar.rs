//! The official PRC working-day schedule, as data: one CSV per year under
//! `data/calendar/` (`date,is_workday,…`), compiled in. `is_workday` is
//! authoritative: it marks 调休 make-up Saturdays and Sundays as working.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use chrono::{Datelike, NaiveDate, Weekday};

const BUNDLED: [&str; 3] = [
    include_str!("../../data/calendar/cn_workdays_2024.csv"),
    include_str!("../../data/calendar/cn_workdays_2025.csv"),
    include_str!("../../data/calendar/cn_workdays_2026.csv"),
];

#[derive(Debug, thiserror::Error)]
#[error("calendar line {line}: {problem}")]
pub struct CalendarError {
    pub line: usize,
    pub problem: String,
}

#[derive(Debug, Default)]
pub struct Calendar {
    days: HashMap<NaiveDate, bool>,
    years: BTreeSet<i32>,
    warned: Mutex<BTreeSet<i32>>,
}

impl Calendar {
    pub fn bundled() -> Calendar {
        let mut calendar = Calendar::default();
        for text in BUNDLED {
            calendar.add_year_csv(text).expect("bundled calendar data is valid");
        }
        calendar
    }

    /// Adds one year's file; a year must be complete to count as covered.
    pub fn add_year_csv(&mut self, text: &str) -> Result<(), CalendarError> {
        let mut per_year: HashMap<i32, usize> = HashMap::new();
        for (i, line) in text.lines().enumerate().skip(1).filter(|(_, l)| !l.trim().is_empty()) {
            let err = |problem: &str| CalendarError { line: i + 1, problem: problem.to_owned() };
            let mut fields = line.split(',');
            let date = NaiveDate::parse_from_str(fields.next().unwrap_or_default(), "%Y-%m-%d").map_err(|_| err("bad date"))?;
            let workday = match fields.next() {
                Some("true") => true,
                Some("false") => false,
                _ => return Err(err("is_workday must be true or false")),
            };
            self.days.insert(date, workday);
            *per_year.entry(date.year()).or_default() += 1;
        }
        for (year, count) in per_year {
            let full = NaiveDate::from_ymd_opt(year, 12, 31).unwrap().ordinal() as usize;
            if count != full {
                return Err(CalendarError { line: 0, problem: format!("{year} has {count} days, expected {full}") });
            }
            self.years.insert(year);
        }
        Ok(())
    }

    pub fn covers(&self, year: i32) -> bool {
        self.years.contains(&year)
    }

    /// Outside the data, weekends only, with a loud warning once per year:
    /// the State Council publishes each year's schedule late in the year before.
    pub fn is_workday(&self, date: NaiveDate) -> bool {
        if let Some(&workday) = self.days.get(&date) {
            return workday;
        }
        if self.warned.lock().expect("calendar lock").insert(date.year()) {
            tracing::warn!(
                year = date.year(),
                "no official working-day calendar for this year: falling back to weekends only; add data/calendar/cn_workdays_{}.csv",
                date.year()
            );
        }
        !matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
    }

    /// The `n`-th working day strictly after `date` (`n` ≥ 1).
    pub fn nth_workday_after(&self, date: NaiveDate, n: u32) -> NaiveDate {
        let mut day = date;
        let mut left = n.max(1);
        while left > 0 {
            day = day.succ_opt().expect("date in range");
            if self.is_workday(day) {
                left -= 1;
            }
        }
        day
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn bundled_years_are_covered_and_follow_the_data() {
        let cal = Calendar::bundled();
        assert!(cal.covers(2024) && cal.covers(2025) && cal.covers(2026));
        assert!(!cal.covers(2027));
        assert!(cal.is_workday(d("2026-02-14")), "Saturday 2026-02-14 is a 调休 make-up day");
        assert!(!cal.is_workday(d("2026-02-16")), "Spring Festival");
        assert!(!cal.is_workday(d("2026-10-01")), "National Day");
        assert!(cal.is_workday(d("2026-10-10")), "Saturday make-up day after National Day");
    }

    #[test]
    fn nth_workday_skips_holidays_and_counts_make_up_days() {
        let cal = Calendar::bundled();
        // Spring Festival 2026: off 2026-02-15..2026-02-23, make-up Sat 02-14 and Sat 02-28.
        assert_eq!(cal.nth_workday_after(d("2026-02-13"), 1), d("2026-02-14"));
        assert_eq!(cal.nth_workday_after(d("2026-02-14"), 1), d("2026-02-24"));
        // National Day 2026: off 10-01..10-07, make-up Sat 10-10.
        assert_eq!(cal.nth_workday_after(d("2026-09-30"), 1), d("2026-10-08"));
        assert_eq!(cal.nth_workday_after(d("2026-10-08"), 2), d("2026-10-10"));
        assert_eq!(cal.nth_workday_after(d("2026-11-27"), 5), d("2026-12-04"));
    }

    #[test]
    fn a_year_without_data_falls_back_to_weekends() {
        let cal = Calendar::bundled();
        // 2027-01-01 is a Friday: a holiday in reality, a working day in the fallback.
        assert!(cal.is_workday(d("2027-01-01")));
        assert!(!cal.is_workday(d("2027-01-02")));
        assert_eq!(cal.nth_workday_after(d("2026-12-31"), 2), d("2027-01-04"));
    }

    #[test]
    fn incomplete_year_is_refused() {
        let mut cal = Calendar::default();
        assert!(cal.add_year_csv("date,is_workday\n2030-01-01,false\n").is_err());
        assert!(cal.add_year_csv("date,is_workday\n2030-01-01,maybe\n").is_err());
    }
}
