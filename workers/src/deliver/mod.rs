//! The `deliver` role (`docs/contract.md` §12, Delivery): takes each
//! channel's `{ns}.outbound.<channel>` queue to the citizen — WeChat's
//! customer-service API, the 12345 callback, the App feed and webhook — and
//! records every attempt in `deliveries`.
//!
//! - **Once per message id.** The record is opened first; a message whose
//!   record is final (a redelivery after a crash) is not sent again, only
//!   announced again (same event id). What is not recorded yet may be sent
//!   again after a crash: webhooks carry the message id to dedupe on; WeChat
//!   has no such key, so a message in flight at a crash can reach the
//!   citizen twice (at-least-once), never zero times.
//! - **In order per petition.** One consumer per channel is active
//!   (single-active-consumer queues) and, inside it, a petition's messages
//!   wait for each other ([`lanes`]); other petitions go ahead.
//! - **Bounded.** `deliver.concurrency` messages per channel in flight,
//!   `deliver.rate_limit_per_s` requests per channel, and the
//!   `deliver.retry_ms` schedule; then `failed`, with a metric to alert on.
//!   Each channel has its own consumer, so a broken remote holds up only
//!   its own channel.

mod lanes;
mod pace;
mod remote;
mod token;

pub use remote::MESSAGE_ID_HEADER;

use std::time::Duration;

use chrono::{DateTime, Utc};
use lapin::message::Delivery;
use serde_json::json;

use nuannan::bus::{self, Failure, Handler, Outcome, Publisher};
use nuannan::config::Settings;
use nuannan::deliver::{AppNotification, RetrySchedule, Status};
use nuannan::domain::{Channel, Event, EventType, Outbound};
use nuannan::store::{AttemptRecord, DeliveryRecord, OutboxMessage, Store};

use lanes::Lanes;
use pace::Pace;
use remote::Remote;

/// The HTTP client every channel's requests share.
pub fn http_client(settings: &Settings) -> anyhow::Result<reqwest::Client> {
    let timeout = Duration::from_millis(settings.deliver.timeout_ms);
    Ok(reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(3)))
        .user_agent(concat!("nuannan-deliver/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// One channel's deliverer.
pub struct DeliverWorker {
    channel: Channel,
    store: Store,
    publisher: Publisher,
    http: reqwest::Client,
    remote: Remote,
    schedule: RetrySchedule,
    pace: Pace,
    lanes: Lanes,
    /// App feed cursors are handed out one at a time (see `Store::feed_cursor`).
    feed: tokio::sync::Mutex<()>,
}

impl Handler for DeliverWorker {
    async fn handle(&self, delivery: &Delivery) -> Outcome {
        let Some(id) = delivery.properties.message_id().as_ref().map(|id| id.to_string()) else {
            return Outcome::DeadLetter(anyhow::anyhow!("an outbound message without a message id cannot be delivered once"));
        };
        let message: Outbound = match serde_json::from_slice(&delivery.data) {
            Ok(m) => m,
            Err(e) => return Outcome::DeadLetter(anyhow::anyhow!("unreadable outbound message: {e}")),
        };
        if message.channel != self.channel {
            return Outcome::DeadLetter(anyhow::anyhow!("a {} message on the {} queue", message.channel, self.channel));
        }
        bus::record_petition(&message.petition_id);
        let petition = message.petition_id.as_str();
        // Before the first await: places in the lane follow arrival order.
        self.lanes.join(petition, delivery.delivery_tag).await;
        let outcome: Outcome = self.deliver(&id, &message).await.into();
        // A delivery held for the store keeps its place; any other outcome gives it up.
        if !matches!(outcome, Outcome::Retry(Failure::Unavailable(_))) {
            self.lanes.leave(petition, delivery.delivery_tag);
        }
        outcome
    }
}

impl DeliverWorker {
    pub fn new(channel: Channel, settings: &Settings, store: Store, publisher: Publisher, http: reqwest::Client) -> Self {
        DeliverWorker {
            channel,
            remote: Remote::of(channel, settings, &store, &http),
            store,
            publisher,
            http,
            schedule: RetrySchedule::from_millis(&settings.deliver.retry_ms),
            pace: Pace::new(settings.deliver.rate_limit_per_s),
            lanes: Lanes::default(),
            feed: tokio::sync::Mutex::new(()),
        }
    }

    pub fn channel(&self) -> Channel {
        self.channel
    }

    async fn deliver(&self, id: &str, m: &Outbound) -> Result<(), Failure> {
        let mut record = self.store.open_delivery(id, m).await?;
        if record.status.is_final() {
            let at = record.attempts.last().map_or_else(Utc::now, |a| a.at.to_chrono());
            return self.announce(&record, at).await;
        }
        let feed = match self.channel {
            Channel::App => Some(self.notification(id, &record).await?),
            _ => None,
        };
        // Earlier attempts (before a crash or a restart) count: they all failed, or the record would be final.
        let mut failed = record.attempts.len();
        loop {
            if self.remote.calls_out() {
                self.pace.wait().await;
            }
            let answer = self.remote.send(&self.http, id, m, feed.as_ref()).await;
            let pause = self.schedule.after(failed + 1);
            let (status, reason) = answer.settles(pause.is_some());
            let at = Utc::now();
            let attempt = AttemptRecord { at: at.into(), code: answer.code.clone(), error: answer.error() };
            self.store.record_attempt(id, &attempt, status, reason.as_deref()).await?;
            record.attempts.push(attempt);
            match (status, pause) {
                (Status::Retrying, Some(pause)) => {
                    let error = answer.error().unwrap_or_default();
                    tracing::warn!(channel = %self.channel, attempt = failed + 1, error, retry_in = ?pause, "delivery attempt failed");
                    failed += 1;
                    tokio::time::sleep(pause).await;
                }
                _ => {
                    let record = DeliveryRecord { status, reason, ..record };
                    nuannan::ops::metrics().count_delivery(self.channel.as_str(), status.as_str());
                    return self.announce(&record, at).await;
                }
            }
        }
    }

    /// The message as the App feed holds it, with its cursor.
    async fn notification(&self, id: &str, record: &DeliveryRecord) -> Result<AppNotification, Failure> {
        let cursor = match record.cursor {
            Some(c) => c,
            None => {
                let _one_at_a_time = self.feed.lock().await;
                self.store.feed_cursor(id).await?
            }
        };
        let record = DeliveryRecord { cursor: Some(cursor), ..record.clone() };
        Ok(record.notification().expect("the record has a cursor"))
    }

    /// A `delivered` or `delivery_failed` event: in `events` and on
    /// `{ns}.events`, with an id derived from the message's, so announcing
    /// again after a crash is harmless.
    async fn announce(&self, record: &DeliveryRecord, at: DateTime<Utc>) -> Result<(), Failure> {
        let kind = if record.status == Status::Delivered { EventType::Delivered } else { EventType::DeliveryFailed };
        if record.status == Status::Delivered {
            tracing::info!(channel = %self.channel, kind = record.kind, "delivered");
        } else {
            tracing::warn!(channel = %self.channel, kind = record.kind, status = record.status.as_str(), reason = record.reason.as_deref().unwrap_or_default(), "not delivered");
        }
        let petition_id =
            record.petition_id.parse().map_err(|e| Failure::error(anyhow::anyhow!("petition id {}: {e}", record.petition_id)))?;
        let event = Event {
            event_id: format!("{}/{}", record.message_id, kind.as_str()),
            petition_id,
            kind,
            at,
            actor: None,
            data: json!({
                "message_id": record.message_id,
                "channel": self.channel,
                "kind": record.kind,
                "status": record.status,
                "reason": record.reason,
                "attempts": record.attempts.len(),
            }),
        };
        self.store.append_events(&[&event]).await?;
        self.publisher.publish(&OutboxMessage::event(event).to_outgoing()).await?;
        Ok(())
    }
}
