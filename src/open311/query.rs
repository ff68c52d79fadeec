//! The filters of `GET requests` and GeoReport's dates (W3C, here always
//! with the district's +08:00 offset).

use chrono::{DateTime, Duration, FixedOffset, SecondsFormat, Utc};

use super::Open311Error;
use crate::domain::{Category, Status};
use crate::store::PetitionFilter;

/// GeoReport's default and largest date window.
pub const WINDOW_DAYS: i64 = 90;
/// The most requests one answer holds (GeoReport's default cap).
pub const MAX_PAGE_SIZE: u64 = 1000;
/// The last page one may ask for.
const MAX_PAGE: u64 = 1_000_000;

/// A date as GeoReport writes it: `2026-11-28T09:30:00+08:00`.
pub fn w3c(t: DateTime<Utc>) -> String {
    let beijing = FixedOffset::east_opt(8 * 3600).expect("a valid offset");
    t.with_timezone(&beijing).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A W3C date-time with its offset (`Z` or `±hh:mm`). A `+` that arrived
/// unescaped in a query string reads as a space; it is taken back.
pub fn parse_w3c(s: &str) -> Result<DateTime<Utc>, Open311Error> {
    let s = s.trim();
    DateTime::parse_from_rfc3339(s)
        .or_else(|e| if s.contains(' ') { DateTime::parse_from_rfc3339(&s.replace(' ', "+")) } else { Err(e) })
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| Open311Error::new(400, format!("`{s}` is not a W3C date-time with a time zone (e.g. 2026-11-28T09:30:00+08:00)")))
}

/// `GET requests`: by ids (which override every other filter), or by
/// service codes, a receipt-time window of at most [`WINDOW_DAYS`] and
/// status, newest first, paged.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestQuery {
    pub ids: Option<Vec<String>>,
    pub categories: Vec<Category>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// `Some(true)`: only closed; `Some(false)`: only open.
    pub closed: Option<bool>,
    /// From 1.
    pub page: u64,
    pub page_size: u64,
}

impl RequestQuery {
    pub fn parse<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>, now: DateTime<Utc>) -> Result<Self, Open311Error> {
        let mut q = RequestQuery { ids: None, categories: Vec::new(), from: now, to: now, closed: None, page: 1, page_size: MAX_PAGE_SIZE };
        let (mut start, mut end) = (None, None);
        // "Optional" means an empty parameter counts as absent.
        for (key, value) in params.into_iter().filter(|(_, v)| !v.trim().is_empty()) {
            match key {
                "service_request_id" => {
                    let ids: Vec<String> = list(value).map(str::to_owned).collect();
                    if ids.len() as u64 > MAX_PAGE_SIZE {
                        return Err(Open311Error::new(400, format!("at most {MAX_PAGE_SIZE} service_request_id values")));
                    }
                    q.ids = Some(ids);
                }
                "service_code" => {
                    for code in list(value) {
                        q.categories
                            .push(Category::from_code(code).ok_or_else(|| Open311Error::not_found(format!("service_code `{code}`")))?);
                    }
                }
                "status" => q.closed = status(value)?,
                "start_date" => start = Some(parse_w3c(value)?),
                "end_date" => end = Some(parse_w3c(value)?),
                "page" => q.page = number(key, value, MAX_PAGE)?,
                "page_size" => q.page_size = number(key, value, MAX_PAGE_SIZE)?,
                _ => {}
            }
        }
        // The window is at most the 90 days ending at `end_date` (or now);
        // a later `start_date` narrows it, and one after `end_date` leaves it empty.
        q.to = end.unwrap_or(now);
        q.from = start.map_or(q.to - Duration::days(WINDOW_DAYS), |s| s.max(q.to - Duration::days(WINDOW_DAYS)));
        Ok(q)
    }

    /// What the store looks for.
    pub fn filter(&self) -> PetitionFilter {
        let skip = (self.page - 1).saturating_mul(self.page_size);
        match &self.ids {
            Some(ids) => PetitionFilter { ids: Some(ids.clone()), skip, limit: self.page_size, ..PetitionFilter::default() },
            None => PetitionFilter {
                ids: None,
                categories: self.categories.clone(),
                received: Some((self.from, self.to)),
                statuses: self.closed.map(statuses),
                skip,
                limit: self.page_size,
            },
        }
    }
}

/// The petition states GeoReport calls closed, or open.
fn statuses(closed: bool) -> Vec<Status> {
    use Status::*;
    [Received, Triage, Assigned, Accepted, Resolved, Approved, Closed, Reopened]
        .into_iter()
        .filter(|s| super::is_closed(*s) == closed)
        .collect()
}

fn list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|v| !v.is_empty())
}

fn status(value: &str) -> Result<Option<bool>, Open311Error> {
    let (mut open, mut closed) = (false, false);
    for s in list(value) {
        match s {
            "open" => open = true,
            "closed" => closed = true,
            other => return Err(Open311Error::new(400, format!("status `{other}` is neither open nor closed"))),
        }
    }
    Ok(if open == closed { None } else { Some(closed) })
}

fn number(key: &str, value: &str, max: u64) -> Result<u64, Open311Error> {
    Some(value)
        .filter(|v| v.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|v| v.parse().ok())
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| Open311Error::new(400, format!("`{key}` is a whole number from 1 to {max}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        parse_w3c("2026-11-28T12:00:00+08:00").unwrap()
    }

    fn parse(params: &[(&str, &str)]) -> Result<RequestQuery, Open311Error> {
        RequestQuery::parse(params.iter().copied(), now())
    }

    #[test]
    fn dates_are_w3c_in_beijing_time() {
        let t = parse_w3c("2026-11-28T01:00:00Z").unwrap();
        assert_eq!(w3c(t), "2026-11-28T09:00:00+08:00");
        // An unescaped `+` in a query string arrives as a space.
        assert_eq!(parse_w3c("2026-11-28T09:00:00 08:00").unwrap(), t);
        assert_eq!(parse_w3c("yesterday").unwrap_err().status, 400);
        assert_eq!(parse_w3c("2026-11-28T09:00:00").unwrap_err().status, 400, "a date without its time zone is ambiguous");
    }

    #[test]
    fn the_default_window_is_the_last_ninety_days() {
        let q = parse(&[]).unwrap();
        assert_eq!((q.from, q.to), (now() - Duration::days(90), now()));
        assert_eq!((q.page, q.page_size, q.closed), (1, 1000, None));
        let q = parse(&[("end_date", "2026-10-01T00:00:00+08:00"), ("start_date", "")]).unwrap();
        assert_eq!(q.to - q.from, Duration::days(90));
        let q = parse(&[("start_date", "2026-01-01T00:00:00Z")]).unwrap();
        assert_eq!((q.from, q.to), (now() - Duration::days(90), now()), "never more than 90 days");
        let q = parse(&[("start_date", "2026-11-28T00:00:00Z"), ("end_date", "2026-11-27T00:00:00Z")]).unwrap();
        assert!(q.from > q.to, "an empty window, not an error");
        assert_eq!(parse(&[("end_date", "2026-11-27")]).unwrap_err().status, 400, "a date needs its time and zone");
    }

    #[test]
    fn filters_read_as_geo_report_writes_them() {
        let q = parse(&[("service_code", "livelihood, enforcement"), ("status", "closed"), ("page_size", "100"), ("page", "3")]).unwrap();
        assert_eq!(q.categories, [Category::Livelihood, Category::Enforcement]);
        assert_eq!(q.closed, Some(true));
        assert_eq!((q.page_size, q.filter().skip), (100, 200));
        assert_eq!(parse(&[("page_size", "1001")]).unwrap_err().status, 400, "at most 1000 per answer");
        assert_eq!(parse(&[("page", "0")]).unwrap_err().status, 400);
        assert_eq!(q.filter().statuses.unwrap(), [Status::Approved, Status::Closed]);
        assert_eq!(parse(&[("status", "open,closed")]).unwrap().closed, None);
        assert_eq!(parse(&[("status", "pending")]).unwrap_err().status, 400);
        assert_eq!(parse(&[("service_code", "001")]).unwrap_err().status, 404);
        assert_eq!(parse(&[("page", "x")]).unwrap_err().status, 400);
    }

    #[test]
    fn ids_override_every_other_filter() {
        let f = parse(&[("service_request_id", "20261128-000001,20261128-000002"), ("status", "closed")]).unwrap().filter();
        assert_eq!(f.ids.unwrap(), ["20261128-000001", "20261128-000002"]);
        assert!(f.statuses.is_none() && f.received.is_none() && f.categories.is_empty());
    }
}
