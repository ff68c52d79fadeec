//! RabbitMQ: the topology every role declares, the confirming publisher, and
//! the one consume loop all roles share.

mod consumer;
mod publisher;
mod topology;

pub use consumer::{Consume, Handler, Outcome, consume};
pub use publisher::{Outgoing, PublishError, Publisher};
pub use topology::{Exchange, Topology, WorkQueue};

use anyhow::Context;
use lapin::{Connection, ConnectionProperties};

/// Opens a connection; every role names itself so operators can tell
/// connections apart in the management UI.
pub async fn connect(url: &str, name: &str) -> anyhow::Result<Connection> {
    let props = ConnectionProperties::default().with_connection_name(name.into());
    Connection::connect(url, props)
        .await
        .with_context(|| format!("connecting to RabbitMQ as {name}"))
}
