//! The `notify` role: tells the citizen, on the channel the petition came
//! from, that it was accepted and — once the district approved it — the
//! result with a request to rate it. The receipt went out at intake.

use std::sync::Arc;

use chrono::Utc;
use lapin::message::Delivery;
use mongodb::bson::{self, doc};
use serde_json::json;

use super::outbox;
use crate::bus::{Handler, Outcome, Publisher};
use crate::config::Settings;
use crate::domain::{Event, EventType, Outbound, OutboundKind, Recipient, Status, UnitPath};
use crate::routing::Registry;
use crate::store::{OutboxMessage, PetitionRecord, Store};
use crate::templates::{Templates, Vars, render};

const ATTEMPTS: usize = 5;

pub struct NotifyWorker {
    store: Store,
    publisher: Publisher,
    registry: Arc<Registry>,
    templates: Templates,
    rating_days: u32,
}

impl Handler for NotifyWorker {
    async fn handle(&self, delivery: &Delivery) -> Outcome {
        let event: Event = match serde_json::from_slice(&delivery.data) {
            Ok(e) => e,
            Err(e) => return Outcome::DeadLetter(anyhow::anyhow!("unreadable event: {e}")),
        };
        let result = match event.kind {
            EventType::Accepted => self.accepted(&event).await,
            EventType::Approved => self.approved(&event).await,
            _ => Ok(()),
        };
        match result {
            Ok(()) => Outcome::Ack,
            Err(e) => Outcome::Retry(e),
        }
    }
}

impl NotifyWorker {
    pub async fn new(settings: &Settings, store: Store, publisher: Publisher) -> anyhow::Result<Self> {
        Ok(NotifyWorker {
            store: store.clone(),
            publisher,
            registry: Arc::new(super::registry(&store).await?),
            templates: settings.notify.clone(),
            rating_days: settings.lifecycle.rating_days,
        })
    }

    /// "Accepted by …": no state to change, so the message id is derived
    /// from the event's and a redelivery re-sends the same id, which
    /// adapters dedupe.
    async fn accepted(&self, event: &Event) -> anyhow::Result<()> {
        let p = self.petition(event).await?;
        let unit = event.data.get("unit").and_then(|u| u.as_str()).unwrap_or_default();
        let text = render(&self.templates.accepted, &self.vars(&p, unit));
        let message = self.outbound(&p, OutboundKind::Progress, text);
        let id = format!("{}/accepted", event.event_id);
        self.publisher.publish(&OutboxMessage::Outbound { id, message }.to_outgoing()).await?;
        Ok(())
    }

    /// The result and the rating request, sent once: claimed by setting
    /// `feedback_sent_at` at the petition's version, with a `feedback_sent`
    /// event for the audit trail.
    async fn approved(&self, event: &Event) -> anyhow::Result<()> {
        for _ in 0..ATTEMPTS {
            let p = self.petition(event).await?;
            if p.feedback_sent_at.is_some() || p.status != Status::Approved {
                // Sent already (a redelivery), or rated meanwhile: finish what is pending.
                return outbox::flush(&self.store, &self.publisher, &p.id, &p.outbox).await;
            }
            let result = p.result.as_ref().map(|r| r.text.as_str()).unwrap_or_default();
            let unit = p.result.as_ref().map(|r| r.unit.as_str()).unwrap_or_default();
            let vars = Vars { result, ..self.vars(&p, unit) };
            let version = p.version + 1;
            let now = Utc::now();
            let sent = [
                self.outbound(&p, OutboundKind::Result, render(&self.templates.result, &vars)),
                self.outbound(&p, OutboundKind::RatingRequest, render(&self.templates.rating_request, &vars)),
            ];
            // A second round after an unsatisfied reopening gets its own message ids.
            let round = p.unsatisfied + 1;
            let mut announcements: Vec<OutboxMessage> = sent.into_iter().map(|m| OutboxMessage::outbound(m, round)).collect();
            let data = json!({ "channel": p.source.channel, "kinds": ["result", "rating_request"] });
            announcements.push(OutboxMessage::event(Event::new(&p.id, version, EventType::FeedbackSent, now, data)));
            let update = doc! {
                "$set": { "feedback_sent_at": bson::DateTime::from(now), "updated_at": bson::DateTime::from(now) },
                "$push": { "outbox": { "$each": bson::to_bson(&announcements)? } },
            };
            if self.store.update_if_version(p.id.as_str(), p.version, update).await? {
                outbox::flush(&self.store, &self.publisher, &p.id, &announcements).await?;
                tracing::info!(petition_id = %p.id, channel = %p.source.channel, "result sent to the citizen");
                return Ok(());
            }
        }
        anyhow::bail!("petition {} kept changing while sending its result", event.petition_id)
    }

    async fn petition(&self, event: &Event) -> anyhow::Result<PetitionRecord> {
        self.store
            .petition(&event.petition_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("petition {} not found", event.petition_id))
    }

    fn vars<'a>(&'a self, p: &'a PetitionRecord, unit: &'a str) -> Vars<'a> {
        let unit_name = unit
            .parse::<UnitPath>()
            .ok()
            .and_then(|u| self.registry.unit(&u).map(|u| u.name.as_str()))
            .unwrap_or(unit);
        Vars { petition_id: p.id.as_str(), unit: unit_name, result: "", rating_days: self.rating_days }
    }

    fn outbound(&self, p: &PetitionRecord, kind: OutboundKind, text: String) -> Outbound {
        Outbound {
            petition_id: p.id.clone(),
            channel: p.source.channel,
            recipient: Recipient::of(&p.source, &p.citizen),
            kind,
            text,
            at: Utc::now(),
        }
    }
}
