//! One lifecycle transition as one conditional write: the new state, the
//! audit event, and what must be announced (assignment, escalation) in the
//! petition's outbox. Used by the lifecycle role (commands) and the deadline
//! role (unrated results closing).

use chrono::{DateTime, Utc};
use mongodb::bson::{self, Document, doc};

use crate::domain::{EscalationNotice, EscalationReason, Event, EventType, UnitPath};
use crate::lifecycle::{Closure, Transition};
use crate::routing::Registry;
use crate::store::{ClockRecord, OutboxMessage, PetitionRecord};

pub struct Change<'a> {
    pub petition: &'a PetitionRecord,
    pub unit: &'a UnitPath,
    pub transition: &'a Transition,
    pub actor: Option<serde_json::Value>,
    pub command_id: Option<&'a str>,
    pub now: DateTime<Utc>,
}

/// The update to apply at the petition's current version, and the outbox
/// entries it writes (to publish once it is durable).
pub fn write(c: &Change, registry: &Registry, warn_ratio: f64) -> anyhow::Result<(Document, Vec<OutboxMessage>)> {
    let (p, t, now) = (c.petition, c.transition, c.now);
    let version = p.version + 1;
    let mut set = doc! {
        "status": bson::to_bson(&t.status)?,
        "clock": bson::to_bson(&ClockRecord::new(&t.clocks, warn_ratio))?,
        "deadlines": {
            "respond_by": bson::DateTime::from(t.deadlines.respond_by),
            "resolve_by": bson::DateTime::from(t.deadlines.resolve_by),
        },
        "updated_at": bson::DateTime::from(now),
    };
    let mut inc = Document::new();
    let mut outbox = Vec::new();

    if let Some(h) = &t.handover {
        set.insert("unit", h.to.as_str());
        let handler = |u: &UnitPath| registry.unit(u).and_then(|u| u.handler().cloned());
        if let Some(reason) = h.reason {
            let notice = EscalationNotice {
                petition_id: p.id.clone(),
                reason,
                from_unit: c.unit.clone(),
                to_unit: h.to.clone(),
                to_level: h.to.level(),
                due_at: p.deadlines.as_ref().map_or(now, |d| d.resolve_by.to_chrono()),
                breached_at: Some(now),
                responsible: handler(c.unit),
            };
            outbox.push(OutboxMessage::Escalation { id: format!("{}/escalation/{version}", p.id), notice });
            match reason {
                EscalationReason::Refused => inc.insert("refusals", 1),
                _ => inc.insert("escalations", 1),
            };
        }
        if h.level_up {
            inc.insert("escalation_level", 1);
        }
        if h.dispatch {
            outbox.push(OutboxMessage::dispatch(super::assignment(p, &h.to, t.deadlines, handler(&h.to))));
            inc.insert("dispatch_attempts", 1);
        }
    }
    if let Some(rating) = t.rating {
        let comment = t.data.get("comment").and_then(|c| c.as_str());
        set.insert("rating", doc! { "value": bson::to_bson(&rating)?, "comment": comment, "at": bson::DateTime::from(now) });
        if rating == crate::domain::Rating::Unsatisfied {
            inc.insert("unsatisfied", 1);
        }
    }
    if let Some(closure) = t.closure {
        let how = match closure {
            Closure::Rated(_) => "rated",
            Closure::NoRating => "no_rating",
        };
        set.insert("closure", how);
        set.insert("closed_at", bson::DateTime::from(now));
    }
    if t.status == crate::domain::Status::Reopened {
        // The next approval sends the citizen a new result.
        set.insert("feedback_sent_at", bson::Bson::Null);
    }
    if t.event == EventType::Resolved {
        let text = t.data.get("result").and_then(|r| r.as_str()).unwrap_or_default();
        set.insert("result", doc! { "text": text, "unit": c.unit.as_str(), "at": bson::DateTime::from(now) });
    }
    if let (Some(on_time), None) = (t.responded_on_time, p.kpi.responded_on_time) {
        set.insert("kpi.responded_on_time", on_time);
    }
    if let (Some(on_time), None) = (t.resolved_on_time, p.kpi.resolved_on_time) {
        set.insert("kpi.resolved_on_time", on_time);
    }

    let mut event = Event::new(&p.id, version, t.event, now, t.data.clone());
    event.actor = c.actor.clone();
    if let Some(then) = t.then {
        let mut second = event.clone();
        second.event_id = format!("{}/{}", event.event_id, then.as_str());
        second.kind = then;
        outbox.push(OutboxMessage::event(event));
        outbox.push(OutboxMessage::event(second));
    } else {
        outbox.push(OutboxMessage::event(event));
    }

    let mut push = doc! { "outbox": { "$each": bson::to_bson(&outbox)? } };
    if let Some(id) = c.command_id {
        push.insert("commands", doc! { "id": id, "status": bson::to_bson(&t.status)?, "version": version });
    }
    let mut update = doc! { "$set": set, "$push": push };
    if !inc.is_empty() {
        update.insert("$inc", inc);
    }
    Ok((update, outbox))
}
