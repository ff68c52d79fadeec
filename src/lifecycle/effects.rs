//! A transition's effects on the stored petition, as one typed change: the
//! new state, the counters, the breach record, and what must be announced
//! (the escalation or warning notice, the assignment, the events) in the
//! petition's outbox. Pure; every role that moves a petition goes through
//! [`change`], so a handover reads the same whoever caused it.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::machine::{State, Tally, Transition};
use crate::clock::{ClockKind, DeadlinePolicy};
use crate::domain::{Assignment, Deadlines, EscalationNotice, EscalationReason, Event, Person, Status, UnitPath};
use crate::store::{
    BreachRecord, ClockRecord, CommandEntry, Counts, Feedback, OutboxMessage, PetitionChange, PetitionRecord, RatingRecord, ResultRecord,
};

/// What [`change`] needs besides the transition.
pub struct Context<'a> {
    pub petition: &'a PetitionRecord,
    /// The unit holding the petition before the transition.
    pub unit: &'a UnitPath,
    pub now: DateTime<Utc>,
    pub warn_ratio: f64,
    /// Tells which deadlines the official calendar does not cover yet.
    pub policy: &'a DeadlinePolicy,
    /// The unit's directly responsible person, from the registry.
    pub handler_of: &'a (dyn Fn(&UnitPath) -> Option<Person> + Sync),
    /// Who acted, for the audit trail (none for a deadline).
    pub actor: Option<serde_json::Value>,
    pub command_id: Option<&'a str>,
}

/// The machine's view of a stored petition held by `unit`.
pub fn state<'a>(p: &'a PetitionRecord, unit: &'a UnitPath) -> State<'a> {
    let clocks = p.clock.map(|c| c.clocks()).unwrap_or_default();
    let deadlines =
        p.deadlines.as_ref().map_or(Deadlines { respond_by: p.received_at.to_chrono(), resolve_by: p.received_at.to_chrono() }, |d| {
            Deadlines { respond_by: d.respond_by.to_chrono(), resolve_by: d.resolve_by.to_chrono() }
        });
    State {
        status: p.status,
        unit,
        citizen_id: &p.citizen.id,
        channel: p.source.channel,
        clocks,
        deadlines,
        working_days: p.working_days(),
        unsatisfied: p.unsatisfied,
        breached_here: p.breaches.iter().any(|b| &b.unit == unit),
    }
}

/// The assignment of `petition` to `unit`: its next dispatch attempt.
pub fn assignment(petition: &PetitionRecord, unit: &UnitPath, deadlines: Deadlines, handler: Option<Person>) -> Assignment {
    Assignment {
        petition_id: petition.id.clone(),
        unit: unit.clone(),
        level: unit.level(),
        category: petition.category,
        content: petition.content.clone(),
        location: petition.location.clone(),
        deadlines,
        handler,
        attempt: petition.dispatch_attempts + 1,
    }
}

pub fn change(c: &Context, t: &Transition) -> PetitionChange {
    let (p, now) = (c.petition, c.now);
    let version = p.version + 1;
    let mut data = t.data.clone();
    let mut change = PetitionChange {
        status: Some(t.status),
        clocks: Some(ClockRecord::new(&t.clocks, c.warn_ratio)),
        deadlines: Some(t.deadlines),
        provisional: c.policy.provisional(t.deadlines.resolve_by),
        responded_on_time: t.responded_on_time,
        resolved_on_time: t.resolved_on_time,
        closure: t.closure,
        command: c.command_id.map(|id| CommandEntry { id: id.to_owned(), status: t.status, version }),
        ..Default::default()
    };

    if let Some(kind) = t.warning {
        let due_at = t.clocks.window(kind).map_or(now, |w| w.due);
        let notice = notice(c, overdue(kind), c.unit, due_at, None);
        change.outbox.push(OutboxMessage::Escalation { id: format!("{}/warning/{version}", p.id), notice });
    }
    if let Some(h) = &t.handover {
        change.unit = Some(h.to.clone());
        let mut counts = Counts::default();
        if let Some(reason) = h.reason {
            let notice = notice(c, reason, &h.to, h.due_at, Some(now));
            data["responsible"] = json!(notice.responsible);
            change.outbox.push(OutboxMessage::Escalation { id: format!("{}/escalation/{version}", p.id), notice });
        }
        match h.tally {
            Tally::Escalation => counts.escalations = 1,
            Tally::Refusal => counts.refusals = 1,
            Tally::None => {}
        }
        if h.level_up {
            counts.escalation_level = 1;
        }
        if h.dispatch {
            change.outbox.push(OutboxMessage::dispatch(assignment(p, &h.to, t.deadlines, (c.handler_of)(&h.to))));
            counts.dispatch_attempts = 1;
        }
        change.breach = h.breach.as_ref().map(|b| BreachRecord {
            clock: b.clock,
            unit: b.unit.clone(),
            responsible: (c.handler_of)(&b.unit),
            due_at: b.due_at.into(),
            breached_at: now.into(),
        });
        change.counts = counts;
    }
    if let Some(rating) = t.rating {
        let comment = t.data.get("comment").and_then(|c| c.as_str()).map(str::to_owned);
        change.rating = Some(RatingRecord { value: rating, comment, at: now.into() });
        if rating == crate::domain::Rating::Unsatisfied {
            change.counts.unsatisfied = 1;
        }
    }
    if t.status == Status::Reopened {
        // The next approval sends the citizen a new result.
        change.feedback = Some(Feedback::Pending);
    }
    if t.status == Status::Resolved {
        let text = t.data.get("result").and_then(|r| r.as_str()).unwrap_or_default().to_owned();
        change.result = Some(ResultRecord { text, unit: c.unit.clone(), at: now.into() });
    }

    let mut event = Event::new(&p.id, version, t.event, now, data);
    event.actor = c.actor.clone();
    if let Some(then) = t.then {
        let mut second = event.clone();
        second.event_id = format!("{}/{}", event.event_id, then.as_str());
        second.kind = then;
        change.outbox.push(OutboxMessage::event(event));
        change.outbox.push(OutboxMessage::event(second));
    } else {
        change.outbox.push(OutboxMessage::event(event));
    }
    change
}

fn overdue(kind: ClockKind) -> EscalationReason {
    match kind {
        ClockKind::Respond => EscalationReason::ResponseOverdue,
        ClockKind::Resolve => EscalationReason::ResolutionOverdue,
    }
}

/// A notice from the unit holding the petition to `to`; the holder's
/// responsible person is named.
fn notice(
    c: &Context,
    reason: EscalationReason,
    to: &UnitPath,
    due_at: DateTime<Utc>,
    breached_at: Option<DateTime<Utc>>,
) -> EscalationNotice {
    EscalationNotice {
        petition_id: c.petition.id.clone(),
        reason,
        from_unit: c.unit.clone(),
        to_unit: to.clone(),
        to_level: to.level(),
        due_at,
        breached_at,
        responsible: (c.handler_of)(c.unit),
    }
}
