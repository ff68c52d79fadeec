//! The `route` role: `petition.received` → grid, unit, category, deadlines,
//! status `assigned` or `triage`; the assignment on `{ns}.dispatch` and
//! `petition.assigned` / `petition.triaged`, all in one idempotent update.

use std::sync::Arc;

use chrono::Utc;
use lapin::message::Delivery;
use mongodb::bson::doc;
use serde_json::json;

use std::collections::{HashMap, HashSet};

use super::batch::Batcher;
use super::outbox;
use crate::bus::{Handler, Outcome, Publisher};
use crate::config::Settings;
use crate::domain::{Event, EventType, PetitionId, Status};
use crate::routing::{Classifier, Registry, RouteDecision, RouteInput, Router};
use crate::clock::{Clocks, Window};
use crate::store::{ClockRecord, OutboxMessage, PetitionRecord, Routed, Store, route_write, share_error};

/// Concurrent changes (a WeChat location attached meanwhile) are rare; a
/// few fresh attempts settle them.
const ATTEMPTS: usize = 5;

/// Routing decisions are written in batches across in-flight deliveries.
const BATCH: usize = 100;

pub struct RouteWorker {
    batch: Batcher<Event, anyhow::Result<()>>,
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
        match self.batch.submit(event).await.unwrap_or_else(|| Err(anyhow::anyhow!("shutting down"))) {
            Ok(()) => Outcome::Ack,
            Err(e) => Outcome::Retry(e),
        }
    }
}

impl RouteWorker {
    /// Loads the registry from MongoDB, seeding it with the bundled one on
    /// first start.
    pub async fn new(settings: &Settings, store: Store, publisher: Publisher) -> anyhow::Result<Self> {
        let source = match store.registry_source().await? {
            Some(source) => source,
            None => {
                let bundled = crate::routing::BUNDLED_REGISTRY;
                store.load_registry(bundled, &Registry::bundled()).await?;
                bundled.to_owned()
            }
        };
        let router = Router {
            registry: Arc::new(Registry::from_json(&source)?),
            classifier: Classifier::bundled(),
            deadlines: settings.deadline_policy(),
        };
        let inner = Arc::new(Inner { store, publisher, router, warn_ratio: settings.deadline.warn_ratio });
        let batch = Batcher::spawn(BATCH, move |events| {
            let worker = inner.clone();
            async move { worker.route_batch(events).await }
        });
        Ok(RouteWorker { batch })
    }
}

impl Inner {
    async fn route_batch(&self, events: Vec<Event>) -> Vec<anyhow::Result<()>> {
        if events.len() == 1 {
            return vec![self.route(&events[0]).await];
        }
        match self.try_route_batch(&events).await {
            Ok(slow) => {
                let mut results = Vec::with_capacity(events.len());
                for (event, slow) in events.iter().zip(slow) {
                    results.push(if slow { self.route(event).await } else { Ok(()) });
                }
                results
            }
            Err(e) => events.iter().map(|_| Err(share_error(&e))).collect(),
        }
    }

    /// Routes the batch's `received` petitions with one read, one bulk
    /// write and one flush; returns, per event, whether it still needs the
    /// one-by-one path (redeliveries, races, repeats within the batch).
    async fn try_route_batch(&self, events: &[Event]) -> anyhow::Result<Vec<bool>> {
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
        let routed: Vec<Routed> = batch.iter().map(|(_, p, d)| routed(p, d, self.warn_ratio)).collect();
        let writes = batch.iter().zip(&routed).map(|((_, p, _), r)| route_write(p.id.as_str(), p.version, r)).collect::<anyhow::Result<Vec<_>>>()?;
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

    async fn route(&self, event: &Event) -> anyhow::Result<()> {
        for _ in 0..ATTEMPTS {
            let Some(petition) = self.store.petition(&event.petition_id).await? else {
                anyhow::bail!("petition {} not found", event.petition_id);
            };
            if petition.status != Status::Received {
                // Routed already (a redelivery): only finish its announcements.
                return outbox::flush(&self.store, &self.publisher, &petition.id, &petition.outbox).await;
            }
            let decision = self.router.decide(&input(&petition));
            let routed = routed(&petition, &decision, self.warn_ratio);
            let announcements = routed.outbox.clone();
            if self.store.route_petition(petition.id.as_str(), petition.version, routed).await? {
                // Only what this update wrote: another worker's entries are its own to publish.
                outbox::flush(&self.store, &self.publisher, &petition.id, &announcements).await?;
                tracing::info!(
                    petition_id = %petition.id,
                    unit = %decision.unit,
                    status = ?decision.status,
                    category = ?decision.category,
                    "petition routed"
                );
                return Ok(());
            }
        }
        anyhow::bail!("petition {} kept changing while routing", event.petition_id)
    }
}

fn input(p: &PetitionRecord) -> RouteInput<'_> {
    RouteInput {
        received_at: Some(p.received_at.to_chrono()),
        content: &p.content,
        point: p.location.point.as_ref().and_then(|g| crate::domain::GeoPoint::new(g.coordinates[0], g.coordinates[1]).ok()),
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

fn routed<'a>(p: &PetitionRecord, d: &'a RouteDecision, warn_ratio: f64) -> Routed<'a> {
    let version = p.version + 1;
    let assignment = super::assignment(p, &d.unit, d.deadlines, d.handler.clone());
    let attempt = assignment.attempt;
    let kind = if d.status == Status::Triage { EventType::Triaged } else { EventType::Assigned };
    let details = json!({
        "unit": d.unit,
        "level": d.level,
        "grid": d.grid,
        "category": d.category,
        "deadlines": d.deadlines,
        "working_days": d.working_days,
        "attempt": attempt,
        "located_by": d.location.as_ref().map(|l| l.by),
        "classified_by": d.classified.map(|c| c.by),
        "confidence": d.classified.map(|c| c.confidence),
        "triage_reason": d.triage,
    });
    let event = Event::new(&p.id, version, kind, Utc::now(), details.clone());
    Routed {
        grid: d.grid.as_ref(),
        unit: &d.unit,
        category: d.category,
        status: d.status,
        deadlines: d.deadlines,
        routing: mongodb::bson::to_document(&details).unwrap_or_else(|_| doc! {}),
        clock: ClockRecord::new(
            &Clocks {
                respond: Some(Window::new(p.received_at.to_chrono(), d.deadlines.respond_by)),
                resolve: Some(Window::new(p.received_at.to_chrono(), d.deadlines.resolve_by)),
                rating_by: None,
            },
            warn_ratio,
        ),
        outbox: vec![OutboxMessage::dispatch(assignment), OutboxMessage::event(event)],
    }
}
