//! The one consume loop every role uses: prefetch-bounded concurrency,
//! ack only after the handler says the effect is durable, explicit retry vs.
//! dead-letter, and a graceful stop that finishes in-flight deliveries.

use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::Connection;
use tokio_util::sync::CancellationToken;

/// What to do with a delivery once the handler is done with it.
#[derive(Debug)]
pub enum Outcome {
    /// The effect is durable (or the input was recorded as rejected).
    Ack,
    /// A transient failure (store or broker unreachable): deliver again.
    /// The quorum queue counts it against the delivery limit.
    Retry(anyhow::Error),
    /// Will never succeed: dead-letter it to `{ns}.dead` now.
    DeadLetter(anyhow::Error),
}

pub trait Handler: Sync {
    fn handle(&self, delivery: &Delivery) -> impl Future<Output = Outcome> + Send;
}

/// How long a retried delivery is held before it is requeued, so a failing
/// dependency is not hammered in a tight loop.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// Consumes `queue` until `shutdown` fires (returns `Ok`) or the channel
/// fails (returns `Err`, and the caller reconnects).
pub async fn consume<H: Handler>(
    conn: &Connection,
    queue: &str,
    prefetch: u16,
    handler: &H,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let channel = conn.create_channel().await.context("opening consumer channel")?;
    channel.basic_qos(prefetch, BasicQosOptions::default()).await?;
    let tag = format!("{queue}.{}", uuid::Uuid::new_v4().simple());
    let consumer = channel
        .basic_consume(
            ShortString::from(queue),
            ShortString::from(tag.as_str()),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .with_context(|| format!("consuming {queue}"))?;
    tracing::info!(queue, prefetch, "consuming");

    let mut failure = None;
    consumer
        .take_until(shutdown.cancelled())
        .for_each_concurrent(prefetch as usize, |delivery| {
            let failed = match &delivery {
                Err(e) => Some(anyhow::anyhow!("delivery stream failed: {e}")),
                Ok(_) => None,
            };
            if let Some(e) = failed
                && failure.is_none()
            {
                failure = Some(e);
            }
            async move {
                if let Ok(delivery) = delivery {
                    settle(handler, queue, delivery).await;
                }
            }
        })
        .await;

    if let Some(e) = failure {
        return Err(e);
    }
    // Shutdown: stop new deliveries; in-flight ones were settled above and
    // anything prefetched but unstarted returns to the queue on close.
    let _ = channel.basic_cancel(ShortString::from(tag.as_str()), BasicCancelOptions::default()).await;
    let _ = channel.close(200, "shutdown".into()).await;
    tracing::info!(queue, "stopped consuming");
    Ok(())
}

async fn settle<H: Handler>(handler: &H, queue: &str, delivery: Delivery) {
    let outcome = handler.handle(&delivery).await;
    let result = match outcome {
        Outcome::Ack => delivery.ack(BasicAckOptions::default()).await,
        Outcome::Retry(error) => {
            tracing::warn!(queue, error = format!("{error:#}"), redelivered = delivery.redelivered, "retrying delivery");
            tokio::time::sleep(RETRY_PAUSE).await;
            delivery.nack(BasicNackOptions { requeue: true, ..Default::default() }).await
        }
        Outcome::DeadLetter(error) => {
            tracing::error!(queue, error = format!("{error:#}"), "dead-lettering delivery");
            delivery.nack(BasicNackOptions { requeue: false, ..Default::default() }).await
        }
    };
    if let Err(e) = result {
        // The channel is gone; the broker redelivers the message elsewhere.
        tracing::warn!(queue, error = %e, "could not settle delivery");
    }
}
