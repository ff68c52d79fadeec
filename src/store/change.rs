//! The one way a petition changes after intake: a typed [`PetitionChange`]
//! applied at the version it was decided on, with the outbox entries that
//! announce it in the same atomic write (transactional outbox). Workers
//! decide; this module spells the update.

use chrono::{DateTime, Utc};
use mongodb::bson::{self, Bson, Document, doc};

use super::fields as f;
use super::{Area, ClockRecord, CommandEntry, OutboxMessage, PETITIONS, PetitionRecord, RatingRecord, Result, ResultRecord, Store};
use crate::clock::ClockKind;
use crate::domain::{Category, Closure, Deadlines, Person, PetitionId, Status, UnitPath};

/// Everything a routing decision, a command, a deadline or a notification
/// may change. `None` and zero leave a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PetitionChange {
    pub status: Option<Status>,
    /// The unit that holds the petition from now on (a handover).
    pub unit: Option<UnitPath>,
    /// Set once, by routing.
    pub placement: Option<Placement>,
    pub clocks: Option<ClockRecord>,
    pub deadlines: Option<Deadlines>,
    /// With `deadlines`: the resolution deadline is provisional (see `DeadlinesRecord`).
    pub provisional: bool,
    /// Punctuality facts: each is kept the first time it is known.
    pub responded_on_time: Option<bool>,
    pub resolved_on_time: Option<bool>,
    pub breach: Option<BreachRecord>,
    pub counts: Counts,
    pub result: Option<ResultRecord>,
    pub rating: Option<RatingRecord>,
    pub closure: Option<Closure>,
    pub feedback: Option<Feedback>,
    /// The command this change applies, remembered so a repeat changes nothing.
    pub command: Option<CommandEntry>,
    pub outbox: Vec<OutboxMessage>,
}

/// Where routing placed the petition.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    pub grid: Option<UnitPath>,
    pub category: Option<Category>,
    /// How it was placed and classified, for the audit and triage operators.
    pub routing: serde_json::Value,
    pub area: Area,
}

/// Counters to increment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub escalations: u32,
    pub refusals: u32,
    pub escalation_level: u32,
    pub dispatch_attempts: u32,
    pub unsatisfied: u32,
}

/// The citizen's feedback round: sent now, or due again after a reopening.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Feedback {
    Sent(DateTime<Utc>),
    Pending,
}

/// A missed deadline, held against the unit that missed it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BreachRecord {
    pub clock: ClockKind,
    pub unit: UnitPath,
    pub responsible: Option<Person>,
    pub due_at: bson::DateTime,
    pub breached_at: bson::DateTime,
}

/// How a change to a petition ended.
#[derive(Debug)]
pub enum Changed<T> {
    /// Written: `outbox` is what this change still has to publish.
    Applied {
        petition: PetitionRecord,
        outbox: Vec<OutboxMessage>,
        value: T,
    },
    /// Nothing to write; the petition as read (a redelivery may have its
    /// outbox to finish).
    Unchanged {
        petition: PetitionRecord,
        value: T,
    },
    NotFound,
}

/// What a decision on the current petition wants.
pub enum Decision<T> {
    Write(Box<PetitionChange>, T),
    Keep(T),
}

impl<T> Decision<T> {
    pub fn write(change: PetitionChange, value: T) -> Self {
        Decision::Write(Box::new(change), value)
    }
}

/// Concurrent changes to one petition are rare (a deadline firing while a
/// command arrives); a few fresh reads settle them.
const ATTEMPTS: usize = 5;

impl PetitionChange {
    /// The conditional update for `current`: `(filter, update)`.
    pub fn write(&self, current: &PetitionRecord, now: DateTime<Utc>) -> Result<(Document, Document)> {
        let mut set = doc! { f::UPDATED_AT: bson::DateTime::from(now) };
        if let Some(status) = self.status {
            set.insert(f::STATUS, bson::to_bson(&status)?);
        }
        if let Some(unit) = &self.unit {
            set.insert(f::UNIT, unit.as_str());
        }
        if let Some(p) = &self.placement {
            set.insert(f::GRID, p.grid.as_ref().map(UnitPath::as_str));
            set.insert(f::CATEGORY, bson::to_bson(&p.category)?);
            set.insert(f::ROUTING, bson::to_bson(&p.routing)?);
            set.insert(f::AREA, bson::to_bson(&p.area)?);
        }
        if let Some(clocks) = &self.clocks {
            set.insert(f::CLOCK, bson::to_bson(clocks)?);
        }
        if let Some(d) = &self.deadlines {
            let record =
                super::DeadlinesRecord { respond_by: d.respond_by.into(), resolve_by: d.resolve_by.into(), provisional: self.provisional };
            set.insert(f::DEADLINES, bson::to_bson(&record)?);
        }
        if let (Some(on_time), None) = (self.responded_on_time, current.kpi.responded_on_time) {
            set.insert(f::KPI_RESPONDED_ON_TIME, on_time);
        }
        if let (Some(on_time), None) = (self.resolved_on_time, current.kpi.resolved_on_time) {
            set.insert(f::KPI_RESOLVED_ON_TIME, on_time);
        }
        if let Some(result) = &self.result {
            set.insert(f::RESULT, bson::to_bson(result)?);
        }
        if let Some(rating) = &self.rating {
            set.insert(f::RATING, bson::to_bson(rating)?);
        }
        if let Some(closure) = self.closure {
            set.insert(f::CLOSURE, bson::to_bson(&closure)?);
            set.insert(f::CLOSED_AT, bson::DateTime::from(now));
        }
        match self.feedback {
            Some(Feedback::Sent(at)) => set.insert(f::FEEDBACK_SENT_AT, bson::DateTime::from(at)),
            Some(Feedback::Pending) => set.insert(f::FEEDBACK_SENT_AT, Bson::Null),
            None => None,
        };

        let c = self.counts;
        let mut inc = doc! { f::VERSION: 1 };
        for (field, n) in [
            (f::ESCALATIONS, c.escalations),
            (f::REFUSALS, c.refusals),
            (f::ESCALATION_LEVEL, c.escalation_level),
            (f::DISPATCH_ATTEMPTS, c.dispatch_attempts),
            (f::UNSATISFIED, c.unsatisfied),
        ] {
            // Counters are stored as 32-bit integers; an `$inc` by a 64-bit
            // one would silently widen the stored type.
            if let Ok(n @ 1..) = i32::try_from(n) {
                inc.insert(field, n);
            }
        }

        let mut push = Document::new();
        if !self.outbox.is_empty() {
            push.insert(f::OUTBOX, doc! { "$each": bson::to_bson(&self.outbox)? });
        }
        if let Some(command) = &self.command {
            push.insert(f::COMMANDS, bson::to_bson(command)?);
        }
        if let Some(breach) = &self.breach {
            push.insert(f::BREACHES, bson::to_bson(breach)?);
        }

        let mut update = doc! { "$set": set, "$inc": inc };
        if !push.is_empty() {
            update.insert("$push", push);
        }
        Ok((doc! { f::ID: current.id.as_str(), f::VERSION: current.version }, update))
    }
}

impl Store {
    /// Applies `change` only if the petition is still at the version it was
    /// decided on; `false` means someone changed it first (re-read, decide again).
    pub async fn apply_change(&self, current: &PetitionRecord, change: &PetitionChange) -> Result<bool> {
        let (filter, update) = change.write(current, Utc::now())?;
        let result = self.collection::<Document>(PETITIONS).update_one(filter, update).await?;
        Ok(result.modified_count == 1)
    }

    /// Reads the petition, lets `decide` choose a change, and applies it at
    /// the version read, deciding again on a fresh read if the petition
    /// changed meanwhile. `decide` is pure: it may run more than once.
    pub async fn change_petition<T>(&self, id: &PetitionId, mut decide: impl FnMut(&PetitionRecord) -> Decision<T>) -> Result<Changed<T>> {
        for _ in 0..ATTEMPTS {
            let Some(petition) = self.petition(id).await? else { return Ok(Changed::NotFound) };
            match decide(&petition) {
                Decision::Keep(value) => return Ok(Changed::Unchanged { petition, value }),
                Decision::Write(change, value) => {
                    if self.apply_change(&petition, &change).await? {
                        return Ok(Changed::Applied { petition, outbox: change.outbox, value });
                    }
                }
            }
        }
        Err(super::StoreError::Contended(id.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Channel, Citizen, NewPetition, ReceiptTime, RoutingHints, Source};

    fn petition() -> PetitionRecord {
        let now = Utc::now();
        let new = NewPetition {
            source: Source { channel: Channel::App, message_id: "r-1".into() },
            citizen: Citizen { id: "u-1".into(), phone: None, name: None },
            content: "路灯不亮".into(),
            category: None,
            subcategory: None,
            classification: None,
            urgent: false,
            time_limit_days: None,
            point: None,
            address: None,
            hints: RoutingHints::default(),
            images: Vec::new(),
            received: ReceiptTime { at: now, note: None },
        };
        PetitionRecord::new("20261128-000001".parse().unwrap(), new, now)
    }

    #[test]
    fn the_version_guards_every_change_and_is_bumped() {
        let p = petition();
        let (filter, update) = PetitionChange::default().write(&p, Utc::now()).unwrap();
        assert_eq!(filter, doc! { "_id": "20261128-000001", "version": 1_i64 });
        assert_eq!(update.get_document("$inc").unwrap(), &doc! { "version": 1 });
        assert!(update.get("$push").is_none());
    }

    #[test]
    fn punctuality_is_kept_the_first_time_it_is_known() {
        let mut p = petition();
        let change = PetitionChange { responded_on_time: Some(false), resolved_on_time: Some(true), ..Default::default() };
        let (_, update) = change.write(&p, Utc::now()).unwrap();
        let set = update.get_document("$set").unwrap();
        assert_eq!((set.get_bool(f::KPI_RESPONDED_ON_TIME), set.get_bool(f::KPI_RESOLVED_ON_TIME)), (Ok(false), Ok(true)));
        p.kpi.responded_on_time = Some(true);
        let (_, update) = change.write(&p, Utc::now()).unwrap();
        assert!(update.get_document("$set").unwrap().get(f::KPI_RESPONDED_ON_TIME).is_none(), "a known fact is not overwritten");
    }

    #[test]
    fn counters_and_the_breach_record_go_with_the_handover() {
        let p = petition();
        let unit: UnitPath = "shinan.badaxia".parse().unwrap();
        let breach = BreachRecord {
            clock: ClockKind::Resolve,
            unit: "shinan.badaxia.tuandao".parse().unwrap(),
            responsible: None,
            due_at: bson::DateTime::now(),
            breached_at: bson::DateTime::now(),
        };
        let change = PetitionChange {
            status: Some(Status::Assigned),
            unit: Some(unit),
            breach: Some(breach),
            counts: Counts { escalations: 1, escalation_level: 1, dispatch_attempts: 1, ..Default::default() },
            ..Default::default()
        };
        let (_, update) = change.write(&p, Utc::now()).unwrap();
        assert_eq!(
            update.get_document("$inc").unwrap(),
            &doc! { "version": 1, "escalations": 1, "escalation_level": 1, "dispatch_attempts": 1 }
        );
        assert_eq!(update.get_document("$set").unwrap().get_str("unit"), Ok("shinan.badaxia"));
        assert_eq!(update.get_document("$push").unwrap().get_document("breaches").unwrap().get_str("clock"), Ok("resolve"));
    }
}
