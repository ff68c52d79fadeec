//! RabbitMQ: the topology every role declares, the confirming publisher, and
//! the one consume loop all roles share.

mod consumer;
mod publisher;
mod topology;

pub use consumer::{Consume, ConsumeError, Failure, Handler, Outcome, Settle, consume, settlement};
pub use publisher::{Outgoing, PublishError, Publisher};
pub use topology::{Exchange, OperatorQueueLimits, Topology, WorkQueue};

use anyhow::Context;
use lapin::{Connection, ConnectionProperties};

use crate::config::Settings;

/// Opens a connection; every role names itself so operators can tell
/// connections apart in the management UI.
pub async fn connect(url: &str, name: &str) -> anyhow::Result<Connection> {
    let props = ConnectionProperties::default().with_connection_name(name.into());
    Connection::connect(url, props).await.with_context(|| format!("connecting to RabbitMQ as {name}"))
}

/// Names the petition a delivery is about in the current delivery span, so
/// every later log line of the delivery carries it.
pub fn record_petition(id: &impl std::fmt::Display) {
    tracing::Span::current().record("petition_id", tracing::field::display(id));
}

/// The topology of the configured namespace.
pub fn topology(settings: &Settings) -> Topology {
    Topology::new(&settings.namespace, settings.amqp.delivery_limit).with_limits(OperatorQueueLimits {
        dead_max_length: settings.amqp.dead_max_length,
        unrouted_max_length: settings.amqp.unrouted_max_length,
        ttl: std::time::Duration::from_secs(u64::from(settings.retention.days) * 86_400),
    })
}

/// Declares the broker topology once (`nuannan topology`); every role also
/// declares it at start and after each reconnect.
pub async fn declare_topology(settings: &Settings) -> anyhow::Result<()> {
    let conn = connect(&settings.amqp.url, "nuannan-topology").await?;
    let channel = conn.create_channel().await?;
    topology(settings).declare(&channel).await?;
    conn.close(200, "done".into()).await?;
    Ok(())
}
