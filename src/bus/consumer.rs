//! The one consume loop every role uses: prefetch-bounded concurrency, ack
//! only after the handler says the effect is durable, and one policy for
//! failure:
//!
//! - the store is unreachable → hold the delivery and retry it in place with
//!   backoff. A held delivery costs no delivery attempt, and once `prefetch`
//!   are held the broker sends no more: the role pauses by itself and
//!   resumes when the store answers;
//!   A store that stays away longer than `hold_max` (`amqp.hold_max_secs`)
//!   ends the consumer ([`ConsumeError::StoreUnavailable`]): held deliveries
//!   return to the queue before the broker's `consumer_timeout` (30 min by
//!   default) would close the channel, and the role resumes when the store
//!   answers;
//! - any other failure → `basic.reject` with requeue, which the quorum queue
//!   counts toward `x-delivery-limit` on every RabbitMQ version (from 4.3 a
//!   requeueing `basic.nack` no longer does); on the last
//!   attempt (`x-delivery-count` = `delivery_limit`) the message goes to
//!   `{ns}.dead` with the error in `x-nuannan-error`, so a poison message
//!   shows why it failed and the rest of the traffic keeps flowing;
//! - shutdown → stop taking deliveries, finish what is in flight (at most
//!   `SHUTDOWN_GRACE`), close;
//! - the broker cancels the consumer (queue deleted, node lost) or the
//!   channel fails → an error, so the role reconnects; never a quiet stop.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use lapin::Connection;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::Publisher;
use crate::ops::{RoleMetrics, metrics};
use crate::telemetry::mask_text;

/// What to do with a delivery once the handler is done with it.
#[derive(Debug)]
pub enum Outcome {
    /// The effect is durable (or the input was recorded as rejected).
    Ack,
    /// A failure that may pass: hold or deliver again (see the module doc).
    Retry(Failure),
    /// Will never succeed: dead-letter it to `{ns}.dead` now.
    DeadLetter(anyhow::Error),
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Ack => f.write_str("done"),
            Outcome::Retry(failure) => write!(f, "{failure}"),
            Outcome::DeadLetter(error) => write!(f, "{error:#}"),
        }
    }
}

impl<T> From<Result<T, Failure>> for Outcome {
    fn from(result: Result<T, Failure>) -> Self {
        match result {
            Ok(_) => Outcome::Ack,
            Err(failure) => Outcome::Retry(failure),
        }
    }
}

/// Why a handler could not finish a delivery now. Cheap to clone, so one
/// failure can answer every delivery of a batch.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Failure {
    /// A dependency (the store) cannot be reached: hold the delivery in
    /// place, spending no delivery attempt.
    #[error("{0:#}")]
    Unavailable(Arc<anyhow::Error>),
    /// Anything else: requeue, which counts an attempt; the last one is
    /// dead-lettered.
    #[error("{0:#}")]
    Error(Arc<anyhow::Error>),
}

impl Failure {
    pub fn unavailable(e: impl Into<anyhow::Error>) -> Self {
        Failure::Unavailable(Arc::new(e.into()))
    }

    pub fn error(e: impl Into<anyhow::Error>) -> Self {
        Failure::Error(Arc::new(e.into()))
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Error(Arc::new(e))
    }
}

impl From<super::PublishError> for Failure {
    fn from(e: super::PublishError) -> Self {
        Failure::error(e)
    }
}

pub trait Handler: Sync {
    fn handle(&self, delivery: &Delivery) -> impl Future<Output = Outcome> + Send;
}

/// Where and how to consume.
pub struct Consume<'a> {
    pub queue: &'a str,
    /// The role's name, for logs and metrics.
    pub role: &'static str,
    pub prefetch: u16,
    pub delivery_limit: u32,
    /// Publishes exhausted deliveries to `{ns}.dead` with their error.
    pub dead: &'a Publisher,
    /// The longest a delivery is held while the store is unreachable.
    pub hold_max: Duration,
}

/// Why consuming stopped, other than shutdown.
#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    /// Deliveries were held longer than `hold_max`: the consumer let them go
    /// back to the queue; consume again once the store answers.
    #[error("the store stayed unreachable for {0:?}; consumer cancelled until it answers")]
    StoreUnavailable(Duration),
    /// The broker cancelled the consumer (its queue was deleted, or its node went away).
    #[error("the broker cancelled the consumer of {0}")]
    Cancelled(String),
    #[error(transparent)]
    Broker(#[from] anyhow::Error),
}

/// How a delivery is settled once the handler is done with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    Ack,
    /// Keep it and try again in place: no delivery attempt spent.
    Hold,
    /// `basic.reject` with requeue: an attempt the quorum queue counts.
    Requeue,
    /// Publish it to `{ns}.dead` with its error, then ack.
    DeadLetter,
}

/// The settlement rule, pure: `attempts` is the delivery's
/// `x-delivery-count` (earlier failed deliveries).
pub fn settlement(outcome: &Outcome, attempts: u32, delivery_limit: u32) -> Settle {
    match outcome {
        Outcome::Ack => Settle::Ack,
        Outcome::Retry(Failure::Unavailable(_)) => Settle::Hold,
        Outcome::Retry(Failure::Error(_)) if attempts >= delivery_limit => Settle::DeadLetter,
        Outcome::Retry(Failure::Error(_)) => Settle::Requeue,
        Outcome::DeadLetter(_) => Settle::DeadLetter,
    }
}

/// How long a requeued delivery is held first, so a failing dependency is
/// not hammered in a tight loop.
const RETRY_PAUSE: Duration = Duration::from_millis(500);
const HOLD_INITIAL: Duration = Duration::from_millis(200);
const HOLD_MAX: Duration = Duration::from_secs(5);
/// In-flight work gets this long after SIGTERM; the rest returns to the queue.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(7);

/// Consumes until `shutdown` fires (returns `Ok`), or fails (returns `Err`,
/// and the caller reconnects).
pub async fn consume<H: Handler>(conn: &Connection, c: Consume<'_>, handler: &H, shutdown: &CancellationToken) -> Result<(), ConsumeError> {
    let queue = c.queue;
    let channel = conn.create_channel().await.context("opening consumer channel")?;
    channel.basic_qos(c.prefetch, BasicQosOptions::default()).await.context("setting prefetch")?;
    let tag = format!("{queue}.{}", uuid::Uuid::new_v4().simple());
    let consumer = channel
        .basic_consume(ShortString::from(queue), ShortString::from(tag.as_str()), BasicConsumeOptions::default(), FieldTable::default())
        .await
        .with_context(|| format!("consuming {queue}"))?;
    tracing::info!(queue, prefetch = c.prefetch, "consuming");

    let m = metrics().role(c.role);
    let mut failure = None;
    // Fires when a delivery has been held past `hold_max`: stop consuming.
    let give_up = shutdown.child_token();
    let stop = async {
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = give_up.cancelled() => {}
        }
    };
    let held_too_long = &give_up;
    let work = consumer.take_until(stop).for_each_concurrent(c.prefetch as usize, |delivery| {
        let failed = match &delivery {
            Err(e) => Some(anyhow::anyhow!("delivery stream failed: {e}")),
            Ok(_) => None,
        };
        if let Some(e) = failed
            && failure.is_none()
        {
            failure = Some(e);
        }
        let c = &c;
        async move {
            if let Ok(delivery) = delivery {
                // Every line logged while handling carries these; handlers
                // record `petition_id` once they know it.
                let message_id = delivery.properties.message_id().as_ref().map(|id| id.to_string()).unwrap_or_default();
                let span = tracing::info_span!("delivery", role = c.role, queue = c.queue, message_id, petition_id = tracing::field::Empty);
                settle(handler, c, m, delivery, held_too_long).instrument(span).await;
            }
        }
    });
    let grace = async {
        shutdown.cancelled().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        _ = work => {}
        _ = grace => tracing::warn!(queue, "shutdown grace over; unfinished deliveries return to the queue"),
    }

    // Stop new deliveries; anything prefetched but unsettled returns to the
    // queue when the channel closes.
    let _ = channel.basic_cancel(ShortString::from(tag.as_str()), BasicCancelOptions::default()).await;
    let _ = channel.close(200, "stopped".into()).await;
    if let Some(e) = failure {
        return Err(ConsumeError::Broker(e));
    }
    if shutdown.is_cancelled() {
        tracing::info!(queue, "stopped consuming");
        return Ok(());
    }
    if give_up.is_cancelled() {
        return Err(ConsumeError::StoreUnavailable(c.hold_max));
    }
    Err(ConsumeError::Cancelled(queue.to_owned()))
}

/// Handles one delivery until it is settled. `give_up` is cancelled on
/// shutdown, and by this delivery when it has been held past `hold_max`.
async fn settle<H: Handler>(handler: &H, c: &Consume<'_>, m: &RoleMetrics, delivery: Delivery, give_up: &CancellationToken) {
    let started = Instant::now();
    if delivery.redelivered {
        RoleMetrics::inc(&m.redelivered);
    }
    let mut hold = HOLD_INITIAL;
    let result = loop {
        let outcome = handler.handle(&delivery).await;
        match (settlement(&outcome, delivery_count(&delivery), c.delivery_limit), outcome) {
            (Settle::Ack, _) => break delivery.ack(BasicAckOptions::default()).await,
            (Settle::Hold, outcome) => {
                if hold == HOLD_INITIAL {
                    RoleMetrics::inc(&m.paused);
                    tracing::warn!(error = %mask_text(&outcome.to_string()), "store unreachable; holding the delivery");
                }
                if started.elapsed() >= c.hold_max {
                    tracing::warn!(held = ?started.elapsed(), "store unreachable too long; cancelling the consumer");
                    give_up.cancel();
                }
                tokio::select! {
                    // Left unsettled: closing the channel returns it to the queue.
                    _ = give_up.cancelled() => return,
                    _ = tokio::time::sleep(hold) => {}
                }
                hold = (hold * 2).min(HOLD_MAX);
            }
            (Settle::DeadLetter, outcome) => break dead_letter(c, &delivery, &outcome, m).await,
            (Settle::Requeue, outcome) => {
                RoleMetrics::inc(&m.retried);
                tracing::warn!(error = %mask_text(&outcome.to_string()), redelivered = delivery.redelivered, "retrying delivery");
                tokio::time::sleep(RETRY_PAUSE).await;
                break delivery.reject(BasicRejectOptions { requeue: true }).await;
            }
        }
    };
    RoleMetrics::inc(&m.consumed);
    m.observe(started.elapsed());
    if let Err(e) = result {
        // The channel is gone; the broker redelivers the message elsewhere.
        tracing::warn!(error = %e, "could not settle delivery");
    }
}

/// Publishes the message to `{ns}.dead` with the error attached, then acks.
/// If that fails, the broker's own dead-lettering takes it (without the error).
async fn dead_letter(c: &Consume<'_>, delivery: &Delivery, error: &(dyn std::fmt::Display + Sync), m: &RoleMetrics) -> lapin::Result<bool> {
    RoleMetrics::inc(&m.dead_lettered);
    let text = format!("{error:#}");
    tracing::error!(error = %mask_text(&text), "dead-lettering delivery");
    match c.dead.dead_letter(delivery, c.queue, &text).await {
        Ok(()) => delivery.ack(BasicAckOptions::default()).await,
        Err(e) => {
            tracing::warn!(error = %e, "could not publish to the dead-letter exchange; rejecting");
            delivery.reject(BasicRejectOptions { requeue: false }).await
        }
    }
}

/// Earlier failed deliveries of this message, as the quorum queue counts them.
fn delivery_count(delivery: &Delivery) -> u32 {
    let count = delivery.properties.headers().as_ref().and_then(|h| h.inner().get("x-delivery-count").cloned());
    match count {
        Some(AMQPValue::LongLongInt(n)) => n.max(0) as u32,
        Some(AMQPValue::LongInt(n)) => n.max(0) as u32,
        Some(AMQPValue::ShortInt(n)) => n.max(0) as u32,
        Some(AMQPValue::LongUInt(n)) => n,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry() -> Outcome {
        Outcome::Retry(Failure::error(anyhow::anyhow!("boom")))
    }

    #[test]
    fn a_failure_is_rejected_with_requeue_until_the_last_attempt() {
        // `basic.reject`, not a requeueing `basic.nack`: RabbitMQ 4.3 counts only
        // rejects toward the quorum queue's delivery limit.
        assert_eq!(settlement(&retry(), 0, 5), Settle::Requeue);
        assert_eq!(settlement(&retry(), 4, 5), Settle::Requeue);
        assert_eq!(settlement(&retry(), 5, 5), Settle::DeadLetter);
    }

    #[test]
    fn an_unreachable_store_holds_without_spending_attempts() {
        let held = Outcome::Retry(Failure::unavailable(anyhow::anyhow!("no server")));
        assert_eq!(settlement(&held, 5, 5), Settle::Hold);
        assert_eq!(settlement(&Outcome::Ack, 9, 5), Settle::Ack);
        assert_eq!(settlement(&Outcome::DeadLetter(anyhow::anyhow!("bad")), 0, 5), Settle::DeadLetter);
    }
}
