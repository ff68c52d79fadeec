//! Publishing with publisher confirms and `mandatory` on every message: a
//! nack or a return is an error the caller must act on, never a silent loss.

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::ShortString;
use lapin::{BasicProperties, Channel, Confirmation, Connection};

use super::{Exchange, Topology};

/// One message to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub exchange: Exchange,
    pub routing_key: String,
    pub body: Vec<u8>,
    pub content_type: &'static str,
    /// Stable id consumers dedupe on.
    pub message_id: Option<String>,
    pub correlation_id: Option<String>,
}

impl Outgoing {
    pub fn json(exchange: Exchange, routing_key: impl Into<String>, body: Vec<u8>, message_id: impl Into<String>) -> Self {
        Outgoing {
            exchange,
            routing_key: routing_key.into(),
            body,
            content_type: "application/json",
            message_id: Some(message_id.into()),
            correlation_id: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("broker nacked the message to {exchange} `{routing_key}`")]
    Nacked { exchange: String, routing_key: String },
    #[error("broker returned the message to {exchange} `{routing_key}`: {reply_code} {reply_text}")]
    Returned { exchange: String, routing_key: String, reply_code: u16, reply_text: String },
    #[error("the channel is not in confirm mode")]
    ConfirmsOff,
    #[error("no confirm from the broker within {0:?}")]
    ConfirmTimeout(std::time::Duration),
    #[error("publishing failed: {0}")]
    Amqp(#[from] lapin::Error),
}

/// A confirm-mode channel. Cheap to clone; lapin channels are thread-safe.
#[derive(Clone)]
pub struct Publisher {
    channel: Channel,
    topology: Topology,
    /// A confirm that never comes (a blocked or partitioned broker) fails the
    /// publish after this long, instead of stalling the delivery forever.
    confirm_timeout: std::time::Duration,
    /// The publishing role's counters.
    metrics: &'static crate::ops::RoleMetrics,
}

impl Publisher {
    pub async fn open(conn: &Connection, topology: Topology) -> Result<Self, PublishError> {
        let channel = conn.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        Ok(Publisher { channel, topology, confirm_timeout: DEFAULT_CONFIRM_TIMEOUT, metrics: crate::ops::metrics().role("client") })
    }

    pub fn with_confirm_timeout(self, confirm_timeout: std::time::Duration) -> Self {
        Publisher { confirm_timeout, ..self }
    }

    /// Whether the channel still works: a channel the broker closed (an
    /// error, a lost connection) cannot publish again, so its role reconnects.
    pub fn is_open(&self) -> bool {
        self.channel.status().connected()
    }

    /// Resolves once the channel is no longer usable.
    pub async fn closed(&self) {
        while self.is_open() {
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    }

    async fn confirmation(&self, confirm: lapin::PublisherConfirm) -> Result<Confirmation, PublishError> {
        match tokio::time::timeout(self.confirm_timeout, confirm).await {
            Ok(confirmation) => Ok(confirmation?),
            Err(_) => Err(PublishError::ConfirmTimeout(self.confirm_timeout)),
        }
    }

    pub fn for_role(self, role: &'static str) -> Self {
        Publisher { metrics: crate::ops::metrics().role(role), ..self }
    }

    pub async fn publish(&self, msg: &Outgoing) -> Result<(), PublishError> {
        self.publish_all(std::slice::from_ref(msg)).await
    }

    /// Sends every message before awaiting any confirm, so a batch costs
    /// one round trip rather than one per message.
    pub async fn publish_all(&self, msgs: &[Outgoing]) -> Result<(), PublishError> {
        let mut pending = Vec::with_capacity(msgs.len());
        for msg in msgs {
            let exchange = self.topology.exchange(msg.exchange);
            let confirm = self
                .channel
                .basic_publish(
                    ShortString::from(exchange.as_str()),
                    ShortString::from(msg.routing_key.as_str()),
                    BasicPublishOptions { mandatory: msg.exchange.mandatory(), ..Default::default() },
                    &msg.body,
                    properties(msg),
                )
                .await?;
            pending.push((exchange, &msg.routing_key, confirm));
        }
        for (exchange, routing_key, confirm) in pending {
            confirmed(self.confirmation(confirm).await?, &exchange, routing_key)?;
        }
        self.metrics.published.fetch_add(msgs.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

const DEFAULT_CONFIRM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A confirm is a success only as a plain ack: a nack or a return is a failure.
fn confirmed(confirmation: Confirmation, exchange: &str, routing_key: &str) -> Result<(), PublishError> {
    match confirmation {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => Err(PublishError::Returned {
            exchange: exchange.to_owned(),
            routing_key: routing_key.to_owned(),
            reply_code: returned.reply_code,
            reply_text: returned.reply_text.to_string(),
        }),
        Confirmation::Nack(None) => Err(PublishError::Nacked { exchange: exchange.to_owned(), routing_key: routing_key.to_owned() }),
        Confirmation::NotRequested => Err(PublishError::ConfirmsOff),
    }
}

impl Publisher {
    /// Sends a delivery that will never succeed to `{ns}.dead`, with its
    /// routing key, properties and headers, plus why it failed and where.
    pub async fn dead_letter(&self, delivery: &lapin::message::Delivery, queue: &str, error: &str) -> Result<(), PublishError> {
        use lapin::types::{AMQPValue, LongString};
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        let text: String = error.chars().take(2000).collect();
        headers.insert("x-nuannan-error".into(), AMQPValue::LongString(LongString::from(text)));
        headers.insert("x-nuannan-queue".into(), AMQPValue::LongString(LongString::from(queue)));
        headers.insert("x-nuannan-exchange".into(), AMQPValue::LongString(LongString::from(delivery.exchange.as_str())));
        let props = delivery.properties.clone().with_headers(headers).with_delivery_mode(2);
        let exchange = self.topology.exchange(Exchange::Dead);
        let confirm = self
            .channel
            .basic_publish(
                ShortString::from(exchange.as_str()),
                delivery.routing_key.clone(),
                BasicPublishOptions { mandatory: true, ..Default::default() },
                &delivery.data,
                props,
            )
            .await?;
        confirmed(self.confirmation(confirm).await?, &exchange, delivery.routing_key.as_str())
    }

    /// Answers a request on its `reply_to` queue (default exchange), with
    /// confirms and `mandatory` like every publish: a vanished requester is
    /// reported as `Returned`.
    pub async fn reply(&self, reply_to: &str, correlation_id: Option<&str>, body: &[u8]) -> Result<(), PublishError> {
        let mut props = BasicProperties::default().with_content_type("application/json".into());
        if let Some(id) = correlation_id {
            props = props.with_correlation_id(id.into());
        }
        let confirm = self
            .channel
            .basic_publish(
                ShortString::from(""),
                ShortString::from(reply_to),
                BasicPublishOptions { mandatory: true, ..Default::default() },
                body,
                props,
            )
            .await?;
        confirmed(self.confirmation(confirm).await?, "", reply_to)
    }
}

fn properties(msg: &Outgoing) -> BasicProperties {
    let mut props = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type(msg.content_type.into())
        .with_timestamp(chrono::Utc::now().timestamp() as u64);
    if let Some(id) = &msg.message_id {
        props = props.with_message_id(id.as_str().into());
    }
    if let Some(id) = &msg.correlation_id {
        props = props.with_correlation_id(id.as_str().into());
    }
    props
}
