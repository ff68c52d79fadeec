//! The two running clocks of a petition and the escalation ladder
//! (`docs/contract.md` §8), pure: the deadline role asks what is due at `now` and
//! applies the answer in one conditional update.
//!
//! Rules:
//! - A warning is due once per window, when `warn_ratio` of it has elapsed.
//! - `accept` stops the response clock and `resolve` stops the resolution
//!   clock (the lifecycle sets the window to `None`). A review `return`
//!   restores the resolution window with its original deadline.
//! - On a breach the petition climbs one level (grid → community → street
//!   → district). The new unit gets a fresh response window of
//!   `respond_within` from the escalation. A *response* breach keeps the
//!   citizen's resolution deadline. A *resolution* breach opens a new
//!   resolution window of the petition's N working days from the escalation.
//! - The district is the top: a breach there is recorded and re-announced to
//!   the district with fresh windows, so it is never dropped.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::DeadlinePolicy;
use crate::domain::{Level, UnitPath};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockKind {
    Respond,
    Resolve,
}

/// One running window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub started: DateTime<Utc>,
    pub due: DateTime<Utc>,
    pub warned: bool,
}

impl Window {
    pub fn new(started: DateTime<Utc>, due: DateTime<Utc>) -> Self {
        Window { started, due, warned: false }
    }

    pub fn warn_at(&self, ratio: f64) -> DateTime<Utc> {
        let span = (self.due - self.started).num_milliseconds() as f64;
        self.started + chrono::Duration::milliseconds((span * ratio).round() as i64)
    }

    fn next(&self, ratio: f64) -> (DateTime<Utc>, bool) {
        if self.warned { (self.due, true) } else { (self.warn_at(ratio), false) }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    Warning(ClockKind),
    Breach(ClockKind),
    /// The citizen did not rate the approved result in time: close unrated.
    RatingExpired,
}

/// A petition's clocks; `None` is a stopped clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Clocks {
    pub respond: Option<Window>,
    pub resolve: Option<Window>,
    /// Runs from the district's approval until the citizen rates.
    pub rating_by: Option<DateTime<Utc>>,
}

impl Clocks {
    /// The earliest pending action and when it falls due: what the deadline
    /// role indexes (`clock.next_at`), so a scan costs what is due.
    pub fn next(&self, ratio: f64) -> Option<(DateTime<Utc>, Due)> {
        let candidates = [(ClockKind::Respond, self.respond), (ClockKind::Resolve, self.resolve)];
        candidates
            .into_iter()
            .filter_map(|(kind, w)| w.map(|w| (kind, w.next(ratio))))
            .map(|(kind, (at, breach))| (at, if breach { Due::Breach(kind) } else { Due::Warning(kind) }))
            .chain(self.rating_by.map(|at| (at, Due::RatingExpired)))
            .min_by_key(|(at, _)| *at)
    }

    /// What is due at `now`. A window whose deadline has already passed
    /// unwarned goes straight to the breach: a late warning helps no one.
    pub fn due(&self, now: DateTime<Utc>, ratio: f64) -> Option<Due> {
        let (at, due) = self.next(ratio)?;
        if at > now {
            return None;
        }
        Some(match due {
            Due::Warning(kind) if self.window(kind).is_some_and(|w| w.due <= now) => Due::Breach(kind),
            other => other,
        })
    }

    pub fn window(&self, kind: ClockKind) -> Option<Window> {
        match kind {
            ClockKind::Respond => self.respond,
            ClockKind::Resolve => self.resolve,
        }
    }

    pub fn warned(mut self, kind: ClockKind) -> Self {
        let w = match kind {
            ClockKind::Respond => &mut self.respond,
            ClockKind::Resolve => &mut self.resolve,
        };
        if let Some(w) = w {
            w.warned = true;
        }
        self
    }
}

/// The result of a breach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escalation {
    pub kind: ClockKind,
    pub from_unit: UnitPath,
    pub to_unit: UnitPath,
    pub to_level: Level,
    pub due_at: DateTime<Utc>,
    pub breached_at: DateTime<Utc>,
    /// The district breached: recorded and re-announced, nowhere higher to go.
    pub at_top: bool,
    pub clocks: Clocks,
}

/// Applies a breach of `kind` at `now` to a petition held by `unit`.
pub fn escalate(
    clocks: &Clocks,
    kind: ClockKind,
    unit: &UnitPath,
    now: DateTime<Utc>,
    policy: &DeadlinePolicy,
    working_days: u8,
) -> Escalation {
    let due_at = clocks.window(kind).map_or(now, |w| w.due);
    let to_unit = unit.parent().unwrap_or_else(|| unit.clone());
    let respond = Some(Window::new(now, policy.respond_by(now)));
    let resolve = match kind {
        ClockKind::Respond => clocks.resolve,
        ClockKind::Resolve => Some(Window::new(now, policy.resolve_by(now, working_days))),
    };
    Escalation {
        kind,
        from_unit: unit.clone(),
        to_level: to_unit.level(),
        at_top: unit.parent().is_none(),
        to_unit,
        due_at,
        breached_at: now,
        clocks: Clocks { respond, resolve, rating_by: None },
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::clock::deadlines::default_policy as policy;

    const RATIO: f64 = 0.75;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// A petition received Monday 2026-11-23 09:00 Shanghai, 2 working days.
    fn fresh() -> Clocks {
        let received = at("2026-11-23T09:00:00+08:00");
        Clocks {
            respond: Some(Window::new(received, policy().respond_by(received))),
            resolve: Some(Window::new(received, policy().resolve_by(received, 2))),
            rating_by: None,
        }
    }

    #[test]
    fn warning_then_breach_of_the_response_clock() {
        let c = fresh();
        assert_eq!(c.next(RATIO), Some((at("2026-11-23T12:00:00+08:00"), Due::Warning(ClockKind::Respond))));
        assert_eq!(c.due(at("2026-11-23T11:59:59+08:00"), RATIO), None);
        assert_eq!(c.due(at("2026-11-23T12:00:00+08:00"), RATIO), Some(Due::Warning(ClockKind::Respond)));
        let c = c.warned(ClockKind::Respond);
        assert_eq!(c.due(at("2026-11-23T12:30:00+08:00"), RATIO), None, "a warning fires once");
        assert_eq!(c.due(at("2026-11-23T13:00:00+08:00"), RATIO), Some(Due::Breach(ClockKind::Respond)));
    }

    #[test]
    fn an_accepted_petition_runs_only_the_resolution_clock() {
        let c = Clocks { respond: None, ..fresh() };
        assert_eq!(c.due(at("2026-11-23T20:00:00+08:00"), RATIO), None);
        // 2 working days: due Wednesday 17:30; 75 % of the 56.5-hour window (natural time) is Wednesday 03:22:30.
        let (when, due) = c.next(RATIO).unwrap();
        assert_eq!(due, Due::Warning(ClockKind::Resolve));
        assert_eq!(when, at("2026-11-25T03:22:30+08:00"));
    }

    #[test]
    fn an_unrated_result_expires() {
        let deadline = at("2026-11-30T10:00:00+08:00");
        let c = Clocks { rating_by: Some(deadline), ..Clocks::default() };
        assert_eq!(c.due(deadline - Duration::seconds(1), RATIO), None);
        assert_eq!(c.due(deadline, RATIO), Some(Due::RatingExpired));
    }

    #[test]
    fn a_scan_after_the_deadline_goes_straight_to_the_breach() {
        assert_eq!(fresh().due(at("2026-11-23T14:00:00+08:00"), RATIO), Some(Due::Breach(ClockKind::Respond)));
    }

    #[test]
    fn the_ladder_climbs_to_the_district_and_stays_there() {
        let p = policy();
        let grid: UnitPath = "shinan.badaxia.tuandao.s01".parse().unwrap();
        let t1 = at("2026-11-23T13:00:01+08:00");
        let first = escalate(&fresh(), ClockKind::Respond, &grid, t1, &p, 2);
        assert_eq!((first.to_unit.as_str(), first.to_level, first.at_top), ("shinan.badaxia.tuandao", Level::Community, false));
        assert_eq!(first.due_at, at("2026-11-23T13:00:00+08:00"));
        assert_eq!(first.clocks.respond, Some(Window::new(t1, t1 + Duration::hours(4))));
        assert_eq!(first.clocks.resolve, fresh().resolve, "a response breach keeps the citizen's resolution deadline");

        let t2 = t1 + Duration::hours(4) + Duration::seconds(1);
        let second = escalate(&first.clocks, ClockKind::Respond, &first.to_unit, t2, &p, 2);
        assert_eq!((second.to_unit.as_str(), second.to_level), ("shinan.badaxia", Level::Street));

        // Accepted at the street, then the resolution deadline passes.
        let accepted = Clocks { respond: None, ..second.clocks };
        let t3 = at("2026-11-25T17:30:01+08:00");
        assert_eq!(accepted.due(t3, RATIO), Some(Due::Breach(ClockKind::Resolve)));
        let third = escalate(&accepted, ClockKind::Resolve, &second.to_unit, t3, &p, 2);
        assert_eq!((third.to_unit.as_str(), third.to_level, third.at_top), ("shinan", Level::District, false));
        assert_eq!(third.clocks.resolve.unwrap().due, at("2026-11-27T17:30:00+08:00"), "new window: 2 working days from the escalation");
        assert!(third.clocks.respond.is_some(), "the new unit must respond again");

        let t4 = t3 + Duration::hours(5);
        let top = escalate(&third.clocks, ClockKind::Respond, &third.to_unit, t4, &p, 2);
        assert!(top.at_top);
        assert_eq!((top.to_unit.as_str(), top.to_level), ("shinan", Level::District));
        assert_eq!(top.clocks.respond.unwrap().due, t4 + Duration::hours(4), "re-announced with a fresh window");
    }
}
