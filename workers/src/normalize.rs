//! The `normalize` role: native intake payloads → petitions, attachments,
//! channel events or rejections; then the `received` event and the receipt.

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Asia::Shanghai;
use lapin::message::Delivery;
use serde_json::json;

use std::collections::HashSet;
use std::sync::Arc;

use super::batch::{Batcher, bulk_or_single};
use super::outbox;
use nuannan::bus::{Failure, Handler, Outcome, Publisher};
use nuannan::config::Settings;
use nuannan::domain::{Channel, Event, EventType, NewPetition, Outbound, OutboundKind, PetitionId, Recipient, receipt_text};
use nuannan::intake::{self, HeldAttachment, Intake, IntakePolicy};
use nuannan::store::{OutboxMessage, PetitionRecord, RawRetention, RejectionRecord, Store};
use nuannan::telemetry::{mask_id, mask_text};

/// New petitions are registered in batches across in-flight deliveries.
const BATCH: usize = 100;

pub struct Normalizer {
    inner: Arc<Inner>,
    batch: Batcher<(NewPetition, DateTime<Utc>), Result<(), Failure>>,
}

struct Inner {
    store: Store,
    publisher: Publisher,
    policy: IntakePolicy,
    attach_window: Duration,
    respond_hours: i64,
    retention: RawRetention,
}

impl Handler for Normalizer {
    async fn handle(&self, delivery: &Delivery) -> Outcome {
        self.process(delivery).await.into()
    }
}

impl Normalizer {
    pub fn new(settings: &Settings, store: Store, publisher: Publisher) -> Self {
        let inner = Arc::new(Inner::new(settings, store, publisher));
        let worker = inner.clone();
        let batch = Batcher::spawn(BATCH, move |items| {
            let worker = worker.clone();
            async move { worker.register_batch(items).await }
        });
        Normalizer { inner, batch }
    }

    async fn process(&self, delivery: &Delivery) -> Result<(), Failure> {
        let key = delivery.routing_key.as_str();
        let now = now_millis();
        match intake::parse(key, &delivery.data, now, &self.inner.policy) {
            Ok(Intake::Petition(p)) => self.batch.submit((*p, now)).await.unwrap_or_else(|| Err(anyhow::anyhow!("shutting down").into())),
            Ok(Intake::Attachment(a)) => self.inner.attachment(&a).await,
            Ok(Intake::ChannelEvent(e)) => {
                self.inner.store.record_channel_event(&e).await?;
                tracing::info!(channel = %e.channel, event = e.event, "channel event recorded");
                Ok(())
            }
            Err(rejection) => self.inner.reject(delivery, &rejection, now).await,
        }
    }
}

impl Inner {
    fn new(settings: &Settings, store: Store, publisher: Publisher) -> Self {
        Inner {
            store,
            publisher,
            policy: settings.intake_policy(),
            attach_window: Duration::seconds(settings.intake.attach_window_secs),
            respond_hours: settings.deadline.respond_hours,
            retention: RawRetention { days: settings.retention.days, too_large_bytes: settings.retention.raw_max_bytes },
        }
    }

    /// Records what cannot become a petition; never retried.
    async fn reject(&self, delivery: &Delivery, rejection: &intake::Rejection, now: DateTime<Utc>) -> Result<(), Failure> {
        let key = delivery.routing_key.as_str();
        let message_id = delivery.properties.message_id().as_ref().map(|s| s.as_str());
        self.store
            .record_rejection(&RejectionRecord {
                channel: key,
                message_id,
                received_at: now,
                rejection,
                raw: &delivery.data,
                retention: self.retention,
            })
            .await?;
        // A parser's detail may quote the payload: a phone number, an openid.
        tracing::warn!(channel = key, reason = rejection.reason.as_str(), detail = %mask_text(&rejection.detail), "intake rejected");
        Ok(())
    }

    async fn register_batch(&self, items: Vec<(NewPetition, DateTime<Utc>)>) -> Vec<Result<(), Failure>> {
        bulk_or_single(&items, |items| self.try_register_batch(items), |(p, now)| self.petition(p.clone(), *now)).await
    }

    /// Registers the batch's new petitions with bulk operations; returns,
    /// per item, whether it still needs the one-by-one path.
    async fn try_register_batch(&self, items: &[(NewPetition, DateTime<Utc>)]) -> Result<Vec<bool>, Failure> {
        // Redeliveries are not looked up first: their insert fails on the
        // dedup index and they take the one-by-one path (their number is skipped).
        let mut seen = HashSet::new();
        let mut slow: Vec<bool> = items.iter().map(|(p, _)| !seen.insert((p.source.channel, p.source.message_id.as_str()))).collect();
        let day_of = |i: usize| items[i].1.with_timezone(&Shanghai).date_naive();
        let Some(first) = (0..items.len()).find(|&i| !slow[i]) else { return Ok(slow) };
        let day = day_of(first);
        // A batch straddling midnight: the next day's petitions go one by one.
        for (i, s) in slow.iter_mut().enumerate() {
            *s = *s || day_of(i) != day;
        }
        let fresh: Vec<usize> = (0..items.len()).filter(|&i| !slow[i]).collect();
        let ids = self.store.next_petition_ids(day, fresh.len() as u32).await?;
        let records: Vec<PetitionRecord> = fresh
            .iter()
            .zip(ids)
            .map(|(&i, id)| {
                let (p, now) = &items[i];
                let mut record = PetitionRecord::new(id, p.clone(), *now);
                record.outbox = self.announcements(&record, *now);
                record
            })
            .collect();
        let inserted = self.store.insert_petitions(&records).await?;
        for (&i, ok) in fresh.iter().zip(&inserted) {
            slow[i] = !ok;
        }
        let stored: Vec<&PetitionRecord> = records.iter().zip(&inserted).filter(|(_, ok)| **ok).map(|(r, _)| r).collect();
        // After the insert, so an attachment held concurrently is seen by one side or the other.
        let wechat: Vec<&str> = stored.iter().filter(|r| r.source.channel == Channel::Wechat).map(|r| r.citizen.id.as_str()).collect();
        let waiting = self.store.citizens_with_held(Channel::Wechat, &wechat).await?;
        for r in stored.iter().filter(|r| r.source.channel == Channel::Wechat && waiting.contains(&r.citizen.id)) {
            self.attach_held(r).await?;
        }
        let pending: Vec<(&PetitionId, &[OutboxMessage])> = stored.iter().map(|r| (&r.id, r.outbox.as_slice())).collect();
        outbox::flush_many(&self.store, &self.publisher, &pending).await?;
        for r in &stored {
            tracing::info!(petition_id = %r.id, channel = %r.source.channel, citizen = mask_id(&r.citizen.id), "petition registered");
        }
        Ok(slow)
    }

    async fn petition(&self, p: NewPetition, now: DateTime<Utc>) -> Result<(), Failure> {
        if let Some(existing) = self.store.petition_by_source(p.source.channel, &p.source.message_id).await? {
            return self.finish(&existing).await;
        }
        let day = now.with_timezone(&Shanghai).date_naive();
        let id = self.store.next_petition_id(day).await?;
        let mut record = PetitionRecord::new(id, p, now);
        record.outbox = self.announcements(&record, now);
        if let nuannan::store::Inserted::Duplicate = self.store.insert_petition(&record).await? {
            let source = &record.source;
            record = self
                .store
                .petition_by_source(source.channel, &source.message_id)
                .await?
                .ok_or_else(|| Failure::error(anyhow::anyhow!("duplicate petition vanished")))?;
        }
        self.finish(&record).await
    }

    /// The `received` event and the receipt, written with the petition.
    fn announcements(&self, record: &PetitionRecord, now: DateTime<Utc>) -> Vec<OutboxMessage> {
        let received = Event::new(
            &record.id,
            record.version,
            EventType::Received,
            now,
            json!({
                "channel": record.source.channel,
                "received_at": record.received_at.to_chrono(),
                "receipt_time_note": record.receipt_time_note,
            }),
        );
        let mut announcements = vec![OutboxMessage::event(received)];
        // An Open311 client reads its answers through the API (`docs/contract.md` §14).
        if record.source.channel.pushes() {
            let receipt = Outbound {
                petition_id: record.id.clone(),
                channel: record.source.channel,
                recipient: Recipient::of(&record.source, &record.citizen),
                kind: OutboundKind::Receipt,
                text: receipt_text(&record.id, self.respond_hours),
                at: now,
            };
            announcements.push(OutboxMessage::outbound(receipt, 1));
        }
        announcements
    }

    /// Everything after the insert, safe to repeat on every redelivery.
    async fn finish(&self, record: &PetitionRecord) -> Result<(), Failure> {
        if record.source.channel == Channel::Wechat {
            self.attach_held(record).await?;
        }
        let pending = !record.outbox.is_empty();
        outbox::flush(&self.store, &self.publisher, &record.id, &record.outbox).await?;
        if pending {
            tracing::info!(
                petition_id = %record.id,
                channel = %record.source.channel,
                citizen = mask_id(&record.citizen.id),
                "petition registered"
            );
        }
        Ok(())
    }

    /// Claims the citizen's held WeChat attachments and attaches them.
    async fn attach_held(&self, record: &PetitionRecord) -> Result<(), Failure> {
        let at = record.received_at.to_chrono();
        self.store.claim_held_near(Channel::Wechat, &record.citizen.id, at, self.attach_window, &record.id).await?;
        for held in self.store.held_for(&record.id).await? {
            self.store.attach(&record.id, &held.attachment).await?;
        }
        Ok(())
    }

    async fn attachment(&self, a: &HeldAttachment) -> Result<(), Failure> {
        let held = self.store.hold_attachment(a).await?;
        let target = match held.petition_id.clone() {
            Some(id) => Some(id),
            None => match self.store.latest_petition_near(a.channel, &a.citizen_id, a.at, self.attach_window).await? {
                Some(id) if self.store.claim_held(&held.id, &id).await? => Some(id),
                // Claimed concurrently by a petition that just arrived: attach there.
                Some(_) => self.store.hold_attachment(a).await?.petition_id,
                None => None,
            },
        };
        match target {
            Some(id) => {
                self.store.attach(&id, &held.attachment).await?;
                tracing::info!(petition_id = %id, kind = ?held.attachment.kind, "attachment added");
                if let Some(point) = &held.attachment.point {
                    // Routing may place the petition better now (it may have been
                    // placed only by street, or triaged). Repeating this is harmless:
                    // the event id is the attachment's, and routing decides once.
                    let mut event = Event::new(&id, 0, EventType::Located, now_millis(), json!({ "point": point.coordinates }));
                    event.event_id = format!("{id}/located/{}", held.attachment.message_id);
                    outbox::flush(&self.store, &self.publisher, &id, &[OutboxMessage::event(event)]).await?;
                }
            }
            None => tracing::info!(kind = ?held.attachment.kind, citizen = mask_id(&a.citizen_id), "attachment held for the next petition"),
        }
        Ok(())
    }
}

/// BSON keeps milliseconds; trimming here keeps stored and published times equal.
fn now_millis() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).expect("now is representable")
}
