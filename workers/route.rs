//! The `route` role: `petition.received` → grid, unit, category, deadlines,
//! status `assigned` or `triage`; the assignment on `{ns}.dispatch` and
//! `petition.assigned` / `petition.triaged`, all in one idempotent update.

use std::sync::Arc;

use chrono::Utc;
use lapin::message::Delivery;
use mongodb::bson::doc;
use serde_json::json;

use super::outbox;
use crate::bus::{Handler, Outcome, Publisher};
use crate::config::Settings;
use crate::domain::{Event, EventType, Status};
use crate::routing::{Classifier, Registry, RouteDecision, RouteInput, Router};
use crate::clock::{Clocks, Window};
use crate::store::{ClockRecord, OutboxMessage, PetitionRecord, Routed, Store};

/// Concurrent changes (a WeChat location attached meanwhile) are rare; a
/// few fresh attempts settle them.
const ATTEMPTS: usize = 5;

pub struct RouteWorker {
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
        match self.route(&event).await {
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
        Ok(RouteWorker { store, publisher, router, warn_ratio: settings.deadline.warn_ratio })
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
