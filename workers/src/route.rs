//! The `route` role: `petition.received` → grid, unit, category, deadlines,
//! status `assigned` or `triage`; the assignment on `{ns}.dispatch` and
//! `petition.assigned` / `petition.triaged`, all in one idempotent update.

use std::sync::Arc;

use chrono::Utc;
use lapin::message::Delivery;
use serde_json::json;

use std::collections::{HashMap, HashSet};

use super::batch::{Batcher, bulk_or_single};
use super::outbox;
use super::rules::Shared;
use nuannan::bus::{self, Failure, Handler, Outcome, Publisher};
use nuannan::clock::{Clocks, Window};
use nuannan::config::Settings;
use nuannan::domain::{Event, EventType, PetitionId, Status};
use nuannan::lifecycle::assignment;
use nuannan::routing::{Classifier, RouteDecision, RouteInput, Router};
use nuannan::store::{self, Changed, ClockRecord, Decision, OutboxMessage, PetitionChange, PetitionRecord, Placement, Store};

/// Routing decisions are written in batches across in-flight deliveries.
const BATCH: usize = 100;

pub struct RouteWorker {
    inner: Arc<Inner>,
    batch: Batcher<Event, Result<(), Failure>>,
}

struct Inner {
    store: Store,
    publisher: Publisher,
    router: Router,
    warn_ratio: f64,
}

impl Handler for RouteWorker {
    async fn handle(&self, delivery: &Delivery) -> Outcome {
        let event: Event = match serde_json::from_slice(&delivery.data) {
            Ok(e) => e,
            // Our own message, unreadable: a bug for operators, not a retry.
            Err(e) => return Outcome::DeadLetter(anyhow::anyhow!("unreadable event: {e}")),
        };
        bus::record_petition(&event.petition_id);
        if event.kind == EventType::Located {
            return self.inner.reroute(&event).await.into();
        }
        self.batch.submit(event).await.unwrap_or_else(|| Err(anyhow::anyhow!("shutting down").into())).into()
    }
}

impl RouteWorker {
    pub fn new(settings: &Settings, store: Store, publisher: Publisher, shared: &Shared) -> Self {
        let router = Router { registry: shared.registry.clone(), classifier: Classifier::bundled(), deadlines: shared.policy.clone() };
        let inner = Arc::new(Inner { store, publisher, router, warn_ratio: settings.deadline.warn_ratio });
        let worker = inner.clone();
        let batch = Batcher::spawn(BATCH, move |events| {
            let worker = worker.clone();
            async move { worker.route_batch(events).await }
        });
        RouteWorker { inner, batch }
    }
}

impl Inner {
    async fn route_batch(&self, events: Vec<Event>) -> Vec<Result<(), Failure>> {
        bulk_or_single(&events, |events| self.try_route_batch(events), |event| self.route(event)).await
    }

    /// Routes the batch's `received` petitions with one read, one bulk
    /// write and one flush; returns, per event, whether it still needs the
    /// one-by-one path (redeliveries, races, repeats within the batch).
    async fn try_route_batch(&self, events: &[Event]) -> Result<Vec<bool>, Failure> {
        let ids: Vec<&str> = events.iter().map(|e| e.petition_id.as_str()).collect();
        let found: HashMap<String, PetitionRecord> =
            self.store.petitions_by_ids(&ids).await?.into_iter().map(|p| (p.id.to_string(), p)).collect();
        let mut seen = HashSet::new();
        let mut slow = vec![true; events.len()];
        let mut batch: Vec<(usize, &PetitionRecord, RouteDecision)> = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            if let Some(p) = found.get(*id)
                && p.status == Status::Received
                && seen.insert(*id)
            {
                batch.push((i, p, self.router.decide(&input(p))));
                slow[i] = false;
            }
        }
        if batch.is_empty() {
            return Ok(slow);
        }
        let now = Utc::now();
        let routed: Vec<PetitionChange> = batch.iter().map(|(_, p, d)| self.routed(p, d)).collect();
        let writes = batch.iter().zip(&routed).map(|((_, p, _), r)| r.write(p, now)).collect::<store::Result<Vec<_>>>()?;
        let applied = self.store.update_petitions(writes).await?;
        let mut pending: Vec<(&PetitionId, &[OutboxMessage])> = Vec::new();
        for (((i, p, d), r), ok) in batch.iter().zip(&routed).zip(applied) {
            if ok {
                pending.push((&p.id, r.outbox.as_slice()));
                tracing::info!(petition_id = %p.id, unit = %d.unit, status = ?d.status, category = ?d.category, "petition routed");
            } else {
                slow[*i] = true;
            }
        }
        outbox::flush_many(&self.store, &self.publisher, &pending).await?;
        Ok(slow)
    }

    async fn route(&self, event: &Event) -> Result<(), Failure> {
        let changed = self
            .store
            .change_petition(&event.petition_id, |p| {
                if p.status != Status::Received {
                    // Routed already (a redelivery).
                    return Decision::Keep(None);
                }
                let decision = self.router.decide(&input(p));
                Decision::write(self.routed(p, &decision), Some(decision))
            })
            .await?;
        match changed {
            Changed::NotFound => Err(anyhow::anyhow!("petition {} not found", event.petition_id).into()),
            // Only finish its announcements.
            Changed::Unchanged { petition, .. } => outbox::flush(&self.store, &self.publisher, &petition.id, &petition.outbox).await,
            Changed::Applied { petition, outbox: announcements, value: decision } => {
                // Only what this update wrote: another worker's entries are its own to publish.
                outbox::flush(&self.store, &self.publisher, &petition.id, &announcements).await?;
                if let Some(d) = decision {
                    tracing::info!(unit = %d.unit, status = ?d.status, category = ?d.category, "petition routed");
                }
                Ok(())
            }
        }
    }
}

fn input(p: &PetitionRecord) -> RouteInput<'_> {
    RouteInput {
        received_at: Some(p.received_at.to_chrono()),
        content: &p.content,
        point: p.location.point.as_ref().and_then(|g| nuannan::domain::GeoPoint::new(g.coordinates[0], g.coordinates[1]).ok()),
        address: p.location.address.as_deref(),
        building_id: p.hints.building_id.as_deref(),
        street: p.hints.street.as_deref(),
        community: p.hints.community.as_deref(),
        category: p.category,
        hotline_class: p.classification.as_ref().map(|c| c.name.as_str()),
        urgent: p.urgent,
        time_limit_days: p.time_limit_days,
    }
}

impl Inner {
    /// A place arrived after routing (a WeChat location): a petition placed
    /// without a point, and not yet accepted, is routed again from it, and
    /// dispatched to the new unit if that changed.
    async fn reroute(&self, event: &Event) -> Result<(), Failure> {
        let changed = self
            .store
            .change_petition(&event.petition_id, |p| {
                let placed_by_point = p.routing.as_ref().and_then(|r| r.located_by.as_deref()) == Some("point");
                let open = matches!(p.status, Status::Triage | Status::Assigned);
                if !open || placed_by_point || p.location.point.is_none() {
                    return Decision::Keep(None);
                }
                let decision = self.router.decide(&input(p));
                if p.unit.as_ref() == Some(&decision.unit) {
                    return Decision::Keep(None);
                }
                let mut change = self.routed(p, &decision);
                if let Some(OutboxMessage::Event { event, .. }) = change.outbox.last_mut() {
                    event.data["rerouted_from"] = json!(p.unit);
                }
                Decision::write(change, Some(decision))
            })
            .await?;
        match changed {
            Changed::NotFound => Err(anyhow::anyhow!("petition {} not found", event.petition_id).into()),
            Changed::Unchanged { petition, .. } => outbox::flush(&self.store, &self.publisher, &petition.id, &petition.outbox).await,
            Changed::Applied { petition, outbox: announcements, value } => {
                outbox::flush(&self.store, &self.publisher, &petition.id, &announcements).await?;
                if let Some(d) = value {
                    tracing::info!(from = ?petition.unit, unit = %d.unit, status = ?d.status, "petition routed again from its location");
                }
                Ok(())
            }
        }
    }

    /// The routing decision as the petition's change.
    fn routed(&self, p: &PetitionRecord, d: &RouteDecision) -> PetitionChange {
        let provisional = self.router.deadlines.provisional(d.deadlines.resolve_by);
        PetitionChange { provisional, ..routed(p, d, self.warn_ratio) }
    }
}

/// The routing decision as the petition's change: placed, clocks started,
/// the assignment and the `assigned` / `triaged` event in the outbox.
fn routed(p: &PetitionRecord, d: &RouteDecision, warn_ratio: f64) -> PetitionChange {
    let version = p.version + 1;
    let assignment = assignment(p, &d.unit, d.deadlines, d.handler.clone());
    let kind = if d.status == Status::Triage { EventType::Triaged } else { EventType::Assigned };
    let details = json!({
        "unit": d.unit,
        "level": d.level,
        "grid": d.grid,
        "category": d.category,
        "deadlines": d.deadlines,
        "working_days": d.working_days,
        "attempt": assignment.attempt,
        "located_by": d.location.as_ref().map(|l| l.by),
        "classified_by": d.classified.map(|c| c.by),
        "confidence": d.classified.map(|c| c.confidence),
        "triage_reason": d.triage,
    });
    let event = Event::new(&p.id, version, kind, Utc::now(), details.clone());
    let received = p.received_at.to_chrono();
    let clocks = Clocks {
        respond: Some(Window::new(received, d.deadlines.respond_by)),
        resolve: Some(Window::new(received, d.deadlines.resolve_by)),
        rating_by: None,
    };
    PetitionChange {
        status: Some(d.status),
        unit: Some(d.unit.clone()),
        placement: Some(Placement {
            grid: d.grid.clone(),
            category: d.category,
            routing: details,
            area: store::area(d.grid.as_ref().unwrap_or(&d.unit)),
        }),
        clocks: Some(ClockRecord::new(&clocks, warn_ratio)),
        deadlines: Some(d.deadlines),
        counts: store::Counts { dispatch_attempts: 1, ..Default::default() },
        outbox: vec![OutboxMessage::dispatch(assignment), OutboxMessage::event(event)],
        ..Default::default()
    }
}
