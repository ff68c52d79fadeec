//! The official PRC working-day schedule, as data read at run time: one CSV
//! per year (`date,is_workday,day_type,holiday_name_zh`), from the files in
//! `calendar.dir` and the years imported into MongoDB (`calendars`).
//! `is_workday` is authoritative: it marks 调休 make-up Saturdays and Sundays
//! as working. A day outside the data falls back to "weekends off", and a
//! deadline computed that way is *provisional* (see [`Calendar::covers`]):
//! it is recomputed when its year is imported.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, RwLock};

use chrono::{Datelike, NaiveDate, Weekday};

pub const HEADER: &str = "date,is_workday,day_type,holiday_name_zh";

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("calendar line {line}: {problem}")]
pub struct CalendarError {
    /// 0 when the problem is the file as a whole.
    pub line: usize,
    pub problem: String,
}

/// One year's schedule, complete and consistent (see [`YearFile::parse`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YearFile {
    pub year: i32,
    workdays: Vec<bool>,
}

impl YearFile {
    /// Parses a year file: the header, then every date of one year exactly
    /// once, `day_type` one of `workday`, `weekend`, `holiday`,
    /// `adjusted_workday` and agreeing with `is_workday`.
    pub fn parse(text: &str) -> Result<YearFile, CalendarError> {
        let whole = |problem: String| CalendarError { line: 0, problem };
        let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
        match lines.next() {
            Some((_, header)) if header.trim().trim_start_matches('\u{feff}') == HEADER => {}
            _ => return Err(CalendarError { line: 1, problem: format!("the header must be `{HEADER}`") }),
        }
        let mut days: BTreeMap<NaiveDate, bool> = BTreeMap::new();
        for (i, line) in lines {
            let err = |problem: String| CalendarError { line: i + 1, problem };
            let fields: Vec<&str> = line.trim_end_matches('\r').split(',').collect();
            let [date, workday, day_type, _name] = fields[..] else {
                return Err(err(format!("expected 4 fields, found {}", fields.len())));
            };
            let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|_| err(format!("bad date `{date}`")))?;
            let workday = match workday {
                "true" => true,
                "false" => false,
                other => return Err(err(format!("is_workday must be true or false, not `{other}`"))),
            };
            let working_type = match day_type {
                "workday" | "adjusted_workday" => true,
                "weekend" | "holiday" => false,
                other => return Err(err(format!("unknown day_type `{other}`"))),
            };
            if working_type != workday {
                return Err(err(format!("day_type `{day_type}` contradicts is_workday {workday}")));
            }
            if days.insert(date, workday).is_some() {
                return Err(err(format!("{date} appears twice")));
            }
        }
        let (Some(first), Some(last)) = (days.keys().next(), days.keys().next_back()) else {
            return Err(whole("the file lists no dates".into()));
        };
        let year = first.year();
        if last.year() != year {
            return Err(whole(format!("dates of {year} and {} in one file", last.year())));
        }
        let length = NaiveDate::from_ymd_opt(year, 12, 31).expect("a valid year").ordinal() as usize;
        if days.len() != length {
            return Err(whole(format!("{year} lists {} dates, a full year has {length}", days.len())));
        }
        Ok(YearFile { year, workdays: days.into_values().collect() })
    }
}

#[derive(Debug, Default, Clone)]
pub struct Calendar {
    days: HashMap<NaiveDate, bool>,
}

impl Calendar {
    /// The files shipped in the repository's `data/calendar/`, for tests and tools.
    pub fn bundled() -> Calendar {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/calendar");
        Calendar::from_dir(&dir).expect("bundled calendar data is valid")
    }

    /// Every `*.csv` year file in `dir`.
    pub fn from_dir(dir: &Path) -> anyhow::Result<Calendar> {
        use anyhow::Context;
        let mut calendar = Calendar::default();
        let entries = std::fs::read_dir(dir).with_context(|| format!("reading calendar.dir {}", dir.display()))?;
        let mut paths: Vec<_> =
            entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "csv")).collect();
        paths.sort();
        for path in paths {
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            calendar.add(&YearFile::parse(&text).with_context(|| format!("in {}", path.display()))?);
        }
        Ok(calendar)
    }

    /// Adds (or replaces) one year.
    pub fn add(&mut self, year: &YearFile) {
        let first = NaiveDate::from_ymd_opt(year.year, 1, 1).expect("a valid year");
        for (date, &workday) in first.iter_days().zip(&year.workdays) {
            self.days.insert(date, workday);
        }
    }

    /// Whether the official schedule of `date`'s day is known.
    pub fn covers(&self, date: NaiveDate) -> bool {
        self.days.contains_key(&date)
    }

    /// The last day of the last year with data; `None` without data.
    pub fn last_day(&self) -> Option<NaiveDate> {
        self.days.keys().max().copied()
    }

    /// Outside the data, weekends only: the State Council publishes each
    /// year's schedule late in the year before. Callers mark what they
    /// compute from such days as provisional.
    pub fn is_workday(&self, date: NaiveDate) -> bool {
        match self.days.get(&date) {
            Some(&workday) => workday,
            None => !matches!(date.weekday(), Weekday::Sat | Weekday::Sun),
        }
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

/// The calendar a process works with, replaced whole when a year is
/// imported: readers take a snapshot, never a half-updated one.
#[derive(Debug, Default)]
pub struct SharedCalendar(RwLock<Arc<Calendar>>);

impl SharedCalendar {
    pub fn new(calendar: Calendar) -> Arc<SharedCalendar> {
        Arc::new(SharedCalendar(RwLock::new(Arc::new(calendar))))
    }

    pub fn get(&self) -> Arc<Calendar> {
        self.0.read().expect("calendar lock").clone()
    }

    pub fn replace(&self, calendar: Calendar) {
        *self.0.write().expect("calendar lock") = Arc::new(calendar);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    /// A synthetic year: weekends off, the listed dates holidays.
    pub fn synthetic_year(year: i32, holidays: &[&str]) -> String {
        let mut text = format!("{HEADER}\n");
        let first = NaiveDate::from_ymd_opt(year, 1, 1).unwrap();
        for day in first.iter_days().take_while(|d| d.year() == year) {
            let weekend = matches!(day.weekday(), Weekday::Sat | Weekday::Sun);
            let holiday = holidays.contains(&day.to_string().as_str());
            let (workday, kind) = match (holiday, weekend) {
                (true, _) => (false, "holiday"),
                (false, true) => (false, "weekend"),
                (false, false) => (true, "workday"),
            };
            text.push_str(&format!("{day},{workday},{kind},{}\n", if holiday { "假日" } else { "" }));
        }
        text
    }

    #[test]
    fn bundled_years_are_covered_and_follow_the_data() {
        let cal = Calendar::bundled();
        assert!(cal.covers(d("2024-01-01")) && cal.covers(d("2026-12-31")));
        assert!(!cal.covers(d("2027-01-01")));
        assert_eq!(cal.last_day(), Some(d("2026-12-31")));
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
    fn a_year_without_data_falls_back_to_weekends_until_it_is_added() {
        let mut cal = Calendar::bundled();
        // 2027-01-01 is a Friday: a holiday in reality, a working day in the fallback.
        assert!(cal.is_workday(d("2027-01-01")));
        assert_eq!(cal.nth_workday_after(d("2026-12-31"), 2), d("2027-01-04"));
        cal.add(&YearFile::parse(&synthetic_year(2027, &["2027-01-01"])).unwrap());
        assert!(!cal.is_workday(d("2027-01-01")) && cal.covers(d("2027-01-01")));
        assert_eq!(cal.nth_workday_after(d("2026-12-31"), 2), d("2027-01-05"));
    }

    #[test]
    fn a_year_file_must_be_complete_and_consistent() {
        let good = synthetic_year(2030, &[]);
        assert_eq!(YearFile::parse(&good).unwrap().year, 2030);
        let err = |text: &str| YearFile::parse(text).unwrap_err().problem;
        assert!(err("date,is_workday\n2030-01-01,false\n").contains("header"));
        let missing: String = good.lines().filter(|l| !l.starts_with("2030-03-03")).map(|l| format!("{l}\n")).collect();
        assert!(err(&missing).contains("364 dates"), "{}", err(&missing));
        let twice = format!("{good}2030-03-03,true,workday,\n");
        assert!(err(&twice).contains("appears twice"));
        let contradicts = good.replace("2030-01-01,true,workday,", "2030-01-01,true,holiday,");
        assert!(err(&contradicts).contains("contradicts"));
        let unknown = good.replace("2030-01-01,true,workday,", "2030-01-01,true,festival,");
        assert!(err(&unknown).contains("unknown day_type"));
        let straddles = format!("{good}2031-01-01,false,holiday,元旦\n");
        assert!(err(&straddles).contains("2030 and 2031"));
    }
}
