//! RabbitMQ: the topology every role declares, the confirming publisher, and
//! the one consume loop all roles share.

mod consumer;
mod publisher;
mod request;
mod topology;

pub use consumer::{Consume, ConsumeError, Failure, Handler, Outcome, Settle, consume, settlement};
pub use publisher::{Outgoing, PublishError, Publisher};
pub use request::CommandSender;
pub use topology::{Exchange, OperatorQueueLimits, Topology, WorkQueue};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use lapin::{Connection, ConnectionProperties};

use crate::config::Settings;

/// How long one node may take to accept a connection before the next is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest AMQP frame asked for unless the URL says otherwise
/// (`?frame_max=`). lapin keeps send and receive buffers of a few dozen
/// frames per connection, so RabbitMQ's 128 KiB default costs about 8 MiB
/// per connection; our messages are a few KiB (a larger body just takes
/// more frames).
const FRAME_MAX: u32 = 32 * 1024;

/// The URL with `frame_max` set, unless it sets it itself.
fn with_frame_max(url: &str) -> std::borrow::Cow<'_, str> {
    if url.contains("frame_max=") {
        return url.into();
    }
    let joiner = if url.contains('?') { '&' } else { '?' };
    format!("{url}{joiner}frame_max={FRAME_MAX}").into()
}

/// The node this process reaches first; starts at the process id, so a
/// cluster's clients spread over its nodes, and sticks to the one that
/// answered last.
static PREFERRED: AtomicUsize = AtomicUsize::new(usize::MAX);

/// The broker endpoints of `amqp.url`: one URL, or a cluster's nodes
/// separated by commas (`docs/contract.md` §10).
pub fn endpoints(urls: &str) -> Vec<&str> {
    urls.split(',').map(str::trim).filter(|u| !u.is_empty()).collect()
}

/// Opens a connection to the first node of `urls` that accepts one,
/// starting from the one that answered last; every role names itself so
/// operators can tell connections apart in the management UI. On a node's
/// loss the caller's next attempt moves on to the next node.
pub async fn connect(urls: &str, name: &str) -> anyhow::Result<Connection> {
    let nodes = endpoints(urls);
    anyhow::ensure!(!nodes.is_empty(), "amqp.url names no broker");
    let _ = PREFERRED.compare_exchange(usize::MAX, std::process::id() as usize, Ordering::Relaxed, Ordering::Relaxed);
    let first = PREFERRED.load(Ordering::Relaxed) % nodes.len();
    let mut failures = Vec::new();
    for i in (0..nodes.len()).map(|k| (first + k) % nodes.len()) {
        let props = ConnectionProperties::default().with_connection_name(name.into());
        match tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(&with_frame_max(nodes[i]), props)).await {
            Ok(Ok(conn)) => {
                PREFERRED.store(i, Ordering::Relaxed);
                return Ok(conn);
            }
            // The host only: the URL carries the password.
            Ok(Err(e)) => failures.push(format!("{}: {e}", host(nodes[i]))),
            Err(_) => failures.push(format!("{}: no answer within {CONNECT_TIMEOUT:?}", host(nodes[i]))),
        }
    }
    Err(anyhow::anyhow!(failures.join("; "))).with_context(|| format!("connecting to RabbitMQ as {name}"))
}

/// `amqp://user:pass@host:5672/vhost` → `host:5672`.
fn host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    rest.split('/').next().unwrap_or(rest)
}

/// Names the petition a delivery is about in the current delivery span, so
/// every later log line of the delivery carries it.
pub fn record_petition(id: &impl std::fmt::Display) {
    tracing::Span::current().record("petition_id", tracing::field::display(id));
}

/// The topology of the configured namespace.
pub fn topology(settings: &Settings) -> Topology {
    Topology::new(&settings.namespace, settings.amqp.delivery_limit)
        .with_limits(OperatorQueueLimits {
            dead_max_length: settings.amqp.dead_max_length,
            unrouted_max_length: settings.amqp.unrouted_max_length,
            ttl: std::time::Duration::from_secs(u64::from(settings.retention.days) * 86_400),
        })
        .with_replicas(Some(settings.amqp.quorum_group_size).filter(|n| *n > 0))
}

/// Declares the broker topology once (`nuannan topology`); every role also
/// declares it at start and after each reconnect.
pub async fn declare_topology(settings: &Settings) -> anyhow::Result<()> {
    let conn = connect(&settings.amqp.url, "nuannan-topology").await?;
    topology(settings).declare(&conn).await?;
    conn.close(200, "done".into()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{endpoints, host, with_frame_max};

    #[test]
    fn a_smaller_frame_unless_the_url_asks_for_one() {
        assert_eq!(with_frame_max("amqp://h:5672/%2f"), "amqp://h:5672/%2f?frame_max=32768");
        assert_eq!(with_frame_max("amqp://h/v?heartbeat=10"), "amqp://h/v?heartbeat=10&frame_max=32768");
        assert_eq!(with_frame_max("amqp://h/v?frame_max=131072"), "amqp://h/v?frame_max=131072");
    }

    #[test]
    fn a_cluster_is_a_comma_separated_list_and_errors_name_hosts_only() {
        assert_eq!(endpoints("amqp://a:1/%2f, amqp://b:2/%2f,"), ["amqp://a:1/%2f", "amqp://b:2/%2f"]);
        assert_eq!(endpoints("amqp://guest:guest@127.0.0.1:5672/%2f").len(), 1);
        assert_eq!(host("amqp://nuannan:s3cret@mq-2.internal:5672/prod"), "mq-2.internal:5672");
        assert_eq!(host("amqps://mq:5671"), "mq:5671");
    }
}
