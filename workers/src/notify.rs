//! The `notify` role: tells the citizen, on the channel the petition came
//! from, that it was accepted and — once the district approved it — the
//! result with a request to rate it. The receipt went out at intake.

use std::sync::Arc;

use chrono::Utc;
use lapin::message::Delivery;
use serde_json::json;

use super::outbox;
use super::rules::Shared;
use nuannan::bus::{self, Failure, Handler, Outcome, Publisher};
use nuannan::config::Settings;
use nuannan::domain::{Event, EventType, Outbound, OutboundKind, Recipient, Status, UnitPath};
use nuannan::routing::Registry;
use nuannan::store::{Changed, Decision, Feedback, OutboxMessage, PetitionChange, PetitionRecord, Store};
use nuannan::templates::{Templates, Vars, render};

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
        bus::record_petition(&event.petition_id);
        match event.kind {
            EventType::Accepted => self.accepted(&event).await.into(),
            EventType::Approved => self.approved(&event).await.into(),
            _ => Outcome::Ack,
        }
    }
}

impl NotifyWorker {
    pub fn new(settings: &Settings, store: Store, publisher: Publisher, shared: &Shared) -> Self {
        NotifyWorker {
            store,
            publisher,
            registry: shared.registry.clone(),
            templates: settings.notify.clone(),
            rating_days: settings.lifecycle.rating_days,
        }
    }

    /// "Accepted by …" (the unit holding the petition): no state to change, so the message id is derived
    /// from the event's and a redelivery re-sends the same id, which
    /// adapters dedupe.
    async fn accepted(&self, event: &Event) -> Result<(), Failure> {
        let p = self.petition(event).await?;
        if !p.source.channel.pushes() {
            return Ok(());
        }
        // From the petition, never from the event: a forged event must not
        // put its own text in front of a citizen.
        let unit = p.unit.as_ref().map(|u| u.as_str()).unwrap_or_default();
        let text = render(&self.templates.accepted, &self.vars(&p, unit));
        let message = self.outbound(&p, OutboundKind::Progress, text);
        let id = format!("{}/accepted", event.event_id);
        self.publisher.publish(&OutboxMessage::Outbound { id, message }.to_outgoing()).await?;
        Ok(())
    }

    /// The result and the rating request, sent once: claimed by setting
    /// `feedback_sent_at` at the petition's version, with a `feedback_sent`
    /// event for the audit trail.
    async fn approved(&self, event: &Event) -> Result<(), Failure> {
        let changed = self
            .store
            .change_petition(&event.petition_id, |p| {
                if p.feedback_sent_at.is_some() || p.status != Status::Approved {
                    // Sent already (a redelivery), or rated meanwhile.
                    return Decision::Keep(());
                }
                Decision::write(self.feedback(p), ())
            })
            .await?;
        match changed {
            Changed::NotFound => Err(anyhow::anyhow!("petition {} not found", event.petition_id).into()),
            // Finish what is pending, whoever wrote it.
            Changed::Unchanged { petition, .. } => outbox::flush(&self.store, &self.publisher, &petition.id, &petition.outbox).await,
            Changed::Applied { petition, outbox: announcements, .. } => {
                outbox::flush(&self.store, &self.publisher, &petition.id, &announcements).await?;
                tracing::info!(channel = %petition.source.channel, "result sent to the citizen");
                Ok(())
            }
        }
    }

    /// The result and the rating request for an approved petition.
    fn feedback(&self, p: &PetitionRecord) -> PetitionChange {
        let result = p.result.as_ref().map(|r| r.text.as_str()).unwrap_or_default();
        let unit = p.result.as_ref().map(|r| r.unit.as_str()).unwrap_or_default();
        let vars = Vars { result, ..self.vars(p, unit) };
        let now = Utc::now();
        // An Open311 client reads the result through the API (`docs/contract.md` §14).
        let sent = if p.source.channel.pushes() {
            vec![
                self.outbound(p, OutboundKind::Result, render(&self.templates.result, &vars)),
                self.outbound(p, OutboundKind::RatingRequest, render(&self.templates.rating_request, &vars)),
            ]
        } else {
            Vec::new()
        };
        let kinds: Vec<_> = sent.iter().map(|m| m.kind).collect();
        // A second round after an unsatisfied reopening gets its own message ids.
        let round = p.unsatisfied + 1;
        let mut outbox: Vec<OutboxMessage> = sent.into_iter().map(|m| OutboxMessage::outbound(m, round)).collect();
        let data = json!({ "channel": p.source.channel, "kinds": kinds });
        outbox.push(OutboxMessage::event(Event::new(&p.id, p.version + 1, EventType::FeedbackSent, now, data)));
        PetitionChange { feedback: Some(Feedback::Sent(now)), outbox, ..Default::default() }
    }

    async fn petition(&self, event: &Event) -> anyhow::Result<PetitionRecord> {
        self.store.petition(&event.petition_id).await?.ok_or_else(|| anyhow::anyhow!("petition {} not found", event.petition_id))
    }

    fn vars<'a>(&'a self, p: &'a PetitionRecord, unit: &'a str) -> Vars<'a> {
        let unit_name = unit.parse::<UnitPath>().ok().and_then(|u| self.registry.unit(&u).map(|u| u.name.as_str())).unwrap_or(unit);
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
