//! The petition state machine as one pure function: a command against the
//! petition's current state gives either a transition to write or a refusal
//! that changes nothing. Diagram and rules: `docs/lifecycle.md`.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use crate::clock::{ClockKind, Clocks, DeadlinePolicy, Window};
use crate::domain::{Action, Channel, Closure, Command, Deadlines, EscalationReason, EventType, Rating, Status, UnitPath};
use crate::identity::Principal;

/// What the machine needs to know about a petition.
#[derive(Debug, Clone)]
pub struct State<'a> {
    pub status: Status,
    pub unit: &'a UnitPath,
    pub citizen_id: &'a str,
    /// The door it came in by: ratings come back through it.
    pub channel: Channel,
    pub clocks: Clocks,
    pub deadlines: Deadlines,
    /// The petition's resolution class (1, 2 or 5 working days).
    pub working_days: u8,
    /// Unsatisfied ratings so far: the second one closes the petition.
    pub unsatisfied: u32,
    /// A breach by the unit holding it is already on record.
    pub breached_here: bool,
}

/// The world outside the petition.
pub struct Env<'a> {
    pub now: DateTime<Utc>,
    pub policy: &'a DeadlinePolicy,
    /// How long the citizen has to rate before the petition closes unrated.
    pub rating_period: Duration,
    pub unit_exists: &'a (dyn Fn(&UnitPath) -> bool + Sync),
}

/// A refused command: stable codes for handler apps to match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the command carries no broker-authenticated user_id")]
    Unauthenticated,
    #[error("the sender's principal may not issue this command")]
    Forbidden,
    #[error("the petition (or the unit named) is outside the sender's unit subtree")]
    WrongUnit,
    #[error("only the citizen who filed the petition may rate it")]
    NotCitizen,
    #[error("the command is not allowed in the petition's current status")]
    IllegalTransition,
    #[error("the petition is already at the district, the top of the tree")]
    AtTop,
    #[error("no such unit in the registry")]
    UnknownUnit,
    #[error("no such petition")]
    NotFound,
}

impl Refusal {
    pub fn code(self) -> &'static str {
        match self {
            Refusal::Unauthenticated => "unauthenticated",
            Refusal::Forbidden => "forbidden",
            Refusal::WrongUnit => "wrong_unit",
            Refusal::NotCitizen => "not_citizen",
            Refusal::IllegalTransition => "illegal_transition",
            Refusal::AtTop => "at_top",
            Refusal::UnknownUnit => "unknown_unit",
            Refusal::NotFound => "not_found",
        }
    }
}

/// The petition changes hands: a breach, an `escalate`, a `transfer`, a
/// refusal or an unsatisfied rating. One shape for all of them, so the
/// counters, the notice and the assignment follow one rule (see
/// [`super::effects`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handover {
    pub to: UnitPath,
    /// Announced on `{ns}.escalations` when set.
    pub reason: Option<EscalationReason>,
    /// Which counter the handover adds to.
    pub tally: Tally,
    /// The deadline the notice reports (the breached window's, or the
    /// citizen's resolution deadline).
    pub due_at: DateTime<Utc>,
    /// `escalation_level` + 1.
    pub level_up: bool,
    /// An assignment to `to` on `{ns}.dispatch`.
    pub dispatch: bool,
    /// A missed deadline, recorded in `breaches` against the unit that held it.
    pub breach: Option<Breach>,
}

/// What a handover counts as, for the KPI report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tally {
    /// `escalations` + 1: a breach, 上报, an unsatisfied reopening.
    Escalation,
    /// `refusals` + 1: 退单.
    Refusal,
    /// Neither: a platform transfer, or a breach re-announced at the district.
    None,
}

impl Tally {
    fn of(reason: Option<EscalationReason>) -> Tally {
        match reason {
            Some(EscalationReason::Refused) => Tally::Refusal,
            Some(_) => Tally::Escalation,
            None => Tally::None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breach {
    pub clock: ClockKind,
    pub unit: UnitPath,
    pub due_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub status: Status,
    pub event: EventType,
    pub data: serde_json::Value,
    /// A second event of the same change: a rating `closed` or `reopened` the petition.
    pub then: Option<EventType>,
    pub clocks: Clocks,
    pub deadlines: Deadlines,
    pub handover: Option<Handover>,
    /// A warning notice for this clock: its deadline is near.
    pub warning: Option<ClockKind>,
    pub rating: Option<Rating>,
    pub closure: Option<Closure>,
    /// KPI facts, kept the first time they are known.
    pub responded_on_time: Option<bool>,
    pub resolved_on_time: Option<bool>,
}

impl Transition {
    pub(super) fn new(s: &State, status: Status, event: EventType, data: serde_json::Value) -> Self {
        Transition {
            status,
            event,
            data,
            then: None,
            clocks: s.clocks,
            deadlines: s.deadlines,
            handover: None,
            warning: None,
            rating: None,
            closure: None,
            responded_on_time: None,
            resolved_on_time: None,
        }
    }

    /// Fresh response and resolution windows from `now` at a new unit.
    fn restart_clocks(mut self, s: &State, env: &Env) -> Self {
        let respond = Window::new(env.now, env.policy.respond_by(env.now));
        let resolve = Window::new(env.now, env.policy.resolve_by(env.now, s.working_days));
        self.clocks = Clocks { respond: Some(respond), resolve: Some(resolve), rating_by: None };
        self.deadlines = Deadlines { respond_by: respond.due, resolve_by: resolve.due };
        self
    }

    /// Hands over for a command: the notice reports the citizen's
    /// resolution deadline, and no deadline was missed.
    fn hand_to(mut self, s: &State, to: UnitPath, reason: Option<EscalationReason>, level_up: bool, dispatch: bool) -> Self {
        let tally = Tally::of(reason);
        self.handover = Some(Handover { to, reason, tally, due_at: s.deadlines.resolve_by, level_up, dispatch, breach: None });
        self
    }
}

/// Applies `cmd`, sent by `sender` (already known to be of the right kind,
/// see [`super::authorize::sender`]), to a petition in state `s`.
pub fn apply(s: &State, cmd: &Command, sender: &Principal, env: &Env) -> Result<Transition, Refusal> {
    super::authorize::in_scope(sender, cmd, s)?;
    use Status::*;
    let allowed: &[Status] = match &cmd.action {
        Action::Accept => &[Assigned, Reopened],
        Action::Progress { .. } | Action::Resolve { .. } => &[Accepted],
        Action::Refuse { .. } | Action::Escalate { .. } => &[Assigned, Accepted, Reopened],
        Action::Transfer { .. } => &[Triage, Assigned, Accepted, Reopened],
        Action::Approve | Action::Return { .. } => &[Resolved],
        Action::Rate { .. } => &[Approved],
    };
    if !allowed.contains(&s.status) {
        return Err(Refusal::IllegalTransition);
    }
    let now = env.now;
    let t = match &cmd.action {
        Action::Accept => {
            let mut t = Transition::new(s, Accepted, EventType::Accepted, json!({ "unit": s.unit }));
            t.clocks.respond = None;
            t.responded_on_time = Some(now <= s.deadlines.respond_by);
            t
        }
        Action::Progress { note } => Transition::new(s, Accepted, EventType::Progressed, json!({ "note": note })),
        Action::Resolve { result } => {
            let mut t = Transition::new(s, Resolved, EventType::Resolved, json!({ "result": result, "unit": s.unit }));
            // Both clocks stop: nothing is escalated while the district reviews.
            t.clocks.respond = None;
            t.clocks.resolve = None;
            t.resolved_on_time = Some(now <= s.deadlines.resolve_by);
            t
        }
        Action::Refuse { reason, note } => {
            let district = top(s.unit);
            if &district == s.unit {
                return Err(Refusal::AtTop);
            }
            let data = json!({ "reason": reason, "note": note, "from_unit": s.unit, "to_unit": district });
            Transition::new(s, Triage, EventType::Refused, data).restart_clocks(s, env).hand_to(
                s,
                district,
                Some(EscalationReason::Refused),
                false,
                false,
            )
        }
        Action::Escalate { note } => {
            let parent = s.unit.parent().ok_or(Refusal::AtTop)?;
            let data = json!({ "reason": EscalationReason::HandlerRequest, "note": note, "from_unit": s.unit, "to_unit": parent });
            let mut t = Transition::new(s, Assigned, EventType::Escalated, data);
            // The new unit must respond afresh; the citizen's resolution deadline stands.
            let respond = Window::new(now, env.policy.respond_by(now));
            t.clocks.respond = Some(respond);
            t.deadlines.respond_by = respond.due;
            t.hand_to(s, parent, Some(EscalationReason::HandlerRequest), true, true)
        }
        Action::Transfer { unit } => {
            if !(env.unit_exists)(unit) {
                return Err(Refusal::UnknownUnit);
            }
            let data = json!({ "from_unit": s.unit, "to_unit": unit });
            Transition::new(s, Assigned, EventType::Transferred, data).restart_clocks(s, env).hand_to(s, unit.clone(), None, false, true)
        }
        Action::Approve => {
            let mut t = Transition::new(s, Approved, EventType::Approved, json!({}));
            t.clocks.rating_by = Some(now + env.rating_period);
            t
        }
        Action::Return { reason } => {
            let mut t = Transition::new(s, Accepted, EventType::Returned, json!({ "reason": reason, "unit": s.unit }));
            // The handler resumes against the original deadline, however close it is.
            t.clocks.resolve = Some(Window::new(now, s.deadlines.resolve_by));
            t
        }
        Action::Rate { rating, comment } => rate(s, env, *rating, comment.as_deref()),
    };
    Ok(t)
}

fn rate(s: &State, env: &Env, rating: Rating, comment: Option<&str>) -> Transition {
    let data = json!({ "rating": rating, "comment": comment });
    let mut t = if rating == Rating::Unsatisfied && s.unsatisfied == 0 {
        let (to, level_up) = match s.unit.parent() {
            Some(parent) => (parent, true),
            None => (s.unit.clone(), false),
        };
        let mut data = data;
        data["to_unit"] = json!(to);
        let mut t = Transition::new(s, Status::Reopened, EventType::Rated, data).restart_clocks(s, env).hand_to(
            s,
            to,
            Some(EscalationReason::Unsatisfied),
            level_up,
            true,
        );
        t.then = Some(EventType::Reopened);
        t
    } else {
        let mut t = Transition::new(s, Status::Closed, EventType::Rated, data);
        t.then = Some(EventType::Closed);
        t.clocks = Clocks::default();
        t.closure = Some(Closure::Rated);
        t
    };
    t.rating = Some(rating);
    t
}

pub(super) fn top(unit: &UnitPath) -> UnitPath {
    let mut u = unit.clone();
    while let Some(p) = u.parent() {
        u = p;
    }
    u
}

#[cfg(test)]
mod tests;
