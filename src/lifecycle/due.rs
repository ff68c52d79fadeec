//! What happens when a petition's clock falls due, as transitions of the
//! same machine the commands use: a warning, a breach (a handover one level
//! up, through the one handover path), or an unrated result closing. The
//! deadline role only reads what is due and writes what this returns. Rules:
//! `docs/deadlines.md`.

use serde_json::json;

use super::machine::{Breach, Env, Handover, State, Tally, Transition};
use crate::clock::{ClockKind, Clocks, Due, escalate};
use crate::domain::{Closure, Deadlines, EscalationReason, EventType, Status};

/// The deadline role's decision for one petition.
#[derive(Debug, Clone, PartialEq)]
pub enum DueAction {
    Transition(Transition),
    /// Nothing to announce: the indexed `clock.next_at` was stale, or the
    /// clock does not run in this status. Store these clocks so it is not
    /// read again.
    Reindex(Clocks),
}

/// Decides what `due` (from [`Clocks::due`]) does to a petition in state `s`.
pub fn on_due(s: &State, due: Option<Due>, env: &Env) -> DueAction {
    match due {
        None => DueAction::Reindex(s.clocks),
        Some(Due::RatingExpired) if s.status == Status::Approved => DueAction::Transition(expire_rating(s)),
        Some(Due::RatingExpired) => DueAction::Reindex(Clocks { rating_by: None, ..s.clocks }),
        // Response and resolution clocks run only while a unit holds the
        // petition: once it is resolved, the district's review is not the unit's delay.
        Some(Due::Warning(_) | Due::Breach(_)) if !clocks_run(s.status) => {
            DueAction::Reindex(Clocks { respond: None, resolve: None, ..s.clocks })
        }
        Some(Due::Warning(kind)) => DueAction::Transition(warn(s, kind, env)),
        Some(Due::Breach(kind)) => DueAction::Transition(breach(s, kind, env)),
    }
}

fn clocks_run(status: Status) -> bool {
    matches!(status, Status::Triage | Status::Assigned | Status::Accepted | Status::Reopened)
}

fn warn(s: &State, kind: ClockKind, env: &Env) -> Transition {
    let due_at = s.clocks.window(kind).map_or(env.now, |w| w.due);
    let mut t = Transition::new(s, s.status, EventType::Warned, json!({ "clock": kind, "unit": s.unit, "due_at": due_at }));
    t.clocks = s.clocks.warned(kind);
    t.warning = Some(kind);
    t
}

/// A missed deadline hands the petition one level up with fresh windows.
/// The new unit must accept it, so it is handed over `assigned` (a triaged
/// petition stays in triage for the dispatcher), and the missed clock is
/// recorded as not on time. The district, the top, keeps it: its first
/// breach there is recorded like any other, and re-announced to it with
/// fresh windows; a later breach of those windows is a re-announcement, not
/// a new breach (no `breaches` entry, no escalation counted).
fn breach(s: &State, kind: ClockKind, env: &Env) -> Transition {
    let esc = escalate(&s.clocks, kind, s.unit, env.now, env.policy, s.working_days);
    let status = if s.status == Status::Triage { Status::Triage } else { Status::Assigned };
    let data = json!({ "clock": kind, "from_unit": s.unit, "to_unit": esc.to_unit, "at_top": esc.at_top, "due_at": esc.due_at });
    let mut t = Transition::new(s, status, EventType::Escalated, data);
    t.clocks = esc.clocks;
    t.deadlines = Deadlines {
        respond_by: esc.clocks.respond.map_or(env.now, |w| w.due),
        resolve_by: esc.clocks.resolve.map_or(s.deadlines.resolve_by, |w| w.due),
    };
    match kind {
        ClockKind::Respond => t.responded_on_time = Some(false),
        ClockKind::Resolve => t.resolved_on_time = Some(false),
    }
    let reason = match kind {
        ClockKind::Respond => EscalationReason::ResponseOverdue,
        ClockKind::Resolve => EscalationReason::ResolutionOverdue,
    };
    let reannounced = esc.at_top && s.breached_here;
    let breach = (!reannounced).then(|| Breach { clock: kind, unit: s.unit.clone(), due_at: esc.due_at });
    t.handover = Some(Handover {
        to: esc.to_unit,
        reason: Some(reason),
        tally: if reannounced { Tally::None } else { Tally::Escalation },
        due_at: esc.due_at,
        level_up: !esc.at_top,
        dispatch: true,
        breach,
    });
    t
}

/// The rating period ran out: close without a rating.
pub fn expire_rating(s: &State) -> Transition {
    let mut t = Transition::new(s, Status::Closed, EventType::Closed, json!({ "closure": "no_rating" }));
    t.clocks = Clocks::default();
    t.closure = Some(Closure::NoRating);
    t
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Duration, Utc};

    use super::*;
    use crate::clock::Window;
    use crate::clock::deadlines::default_policy;
    use crate::domain::UnitPath;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn state(status: Status, unit: &UnitPath, clocks: Clocks) -> State<'_> {
        let deadlines = Deadlines {
            respond_by: clocks.respond.map_or(at("2026-11-23T13:00:00+08:00"), |w| w.due),
            resolve_by: clocks.resolve.map_or(at("2026-11-25T17:30:00+08:00"), |w| w.due),
        };
        State {
            status,
            unit,
            citizen_id: "o-1",
            channel: crate::domain::Channel::Wechat,
            clocks,
            deadlines,
            working_days: 2,
            unsatisfied: 0,
            breached_here: false,
        }
    }

    fn decide(s: &State, now: &str) -> DueAction {
        let policy = default_policy();
        let exists = |_: &UnitPath| true;
        let env = Env { now: at(now), policy: &policy, rating_period: Duration::days(3), unit_exists: &exists };
        on_due(s, s.clocks.due(env.now, 0.75), &env)
    }

    fn community() -> UnitPath {
        "shinan.badaxia.tuandao".parse().unwrap()
    }

    #[test]
    fn a_resolution_breach_of_an_accepted_petition_hands_it_over_assigned() {
        let received = at("2026-11-23T09:00:00+08:00");
        let unit = community();
        let resolve = Window::new(received, at("2026-11-25T17:30:00+08:00"));
        let s = state(Status::Accepted, &unit, Clocks { respond: None, resolve: Some(resolve), rating_by: None });
        let DueAction::Transition(t) = decide(&s, "2026-11-25T18:00:00+08:00") else { panic!("a breach") };
        assert_eq!(t.status, Status::Assigned, "the street must be able to accept it");
        assert_eq!(t.resolved_on_time, Some(false));
        let h = t.handover.unwrap();
        assert_eq!((h.to.as_str(), h.level_up, h.dispatch), ("shinan.badaxia", true, true));
        assert_eq!(h.breach.unwrap().unit, unit);
        assert!(t.clocks.respond.is_some(), "the street must respond afresh");
    }

    #[test]
    fn the_district_s_first_breach_is_recorded_a_later_one_only_re_announced() {
        let received = at("2026-11-23T09:00:00+08:00");
        let district: UnitPath = "shinan".parse().unwrap();
        let respond = Window::new(received, at("2026-11-23T13:00:00+08:00"));
        let mut s = state(Status::Triage, &district, Clocks { respond: Some(respond), resolve: None, rating_by: None });
        let DueAction::Transition(t) = decide(&s, "2026-11-23T14:00:00+08:00") else { panic!("a breach") };
        let h = t.handover.unwrap();
        assert_eq!(
            (h.to.clone(), h.level_up, h.dispatch, h.reason),
            (district.clone(), false, true, Some(EscalationReason::ResponseOverdue))
        );
        assert_eq!((h.tally, h.breach.is_some()), (Tally::Escalation, true), "the district missed its own deadline");
        s.breached_here = true;
        let DueAction::Transition(t) = decide(&s, "2026-11-23T14:00:00+08:00") else { panic!("re-announced") };
        let h = t.handover.unwrap();
        assert_eq!((h.to, h.reason), (district, Some(EscalationReason::ResponseOverdue)), "still announced");
        assert_eq!((h.tally, h.breach), (Tally::None, None), "not a new breach");
    }

    #[test]
    fn a_resolved_or_approved_petition_is_never_escalated_for_response() {
        let received = at("2026-11-23T09:00:00+08:00");
        let unit = community();
        let respond = Window::new(received, at("2026-11-23T13:00:00+08:00"));
        for status in [Status::Resolved, Status::Approved, Status::Closed] {
            let s = state(status, &unit, Clocks { respond: Some(respond), resolve: None, rating_by: None });
            assert_eq!(decide(&s, "2026-11-23T14:00:00+08:00"), DueAction::Reindex(Clocks::default()), "{status:?}");
        }
    }

    #[test]
    fn a_warning_changes_nothing_but_the_window() {
        let received = at("2026-11-23T09:00:00+08:00");
        let unit = community();
        let respond = Window::new(received, at("2026-11-23T13:00:00+08:00"));
        let s = state(Status::Assigned, &unit, Clocks { respond: Some(respond), resolve: None, rating_by: None });
        let DueAction::Transition(t) = decide(&s, "2026-11-23T12:30:00+08:00") else { panic!("a warning") };
        assert_eq!((t.status, t.warning, t.handover), (Status::Assigned, Some(ClockKind::Respond), None));
        assert!(t.clocks.respond.unwrap().warned);
    }

    #[test]
    fn an_unrated_result_closes_only_while_approved() {
        let unit = community();
        let clocks = Clocks { respond: None, resolve: None, rating_by: Some(at("2026-11-26T09:00:00+08:00")) };
        let DueAction::Transition(t) = decide(&state(Status::Approved, &unit, clocks), "2026-11-26T10:00:00+08:00") else {
            panic!("closes")
        };
        assert_eq!((t.status, t.closure), (Status::Closed, Some(Closure::NoRating)));
        let rated = decide(&state(Status::Closed, &unit, clocks), "2026-11-26T10:00:00+08:00");
        assert_eq!(rated, DueAction::Reindex(Clocks::default()));
    }
}
