//! Broker topology (`docs/contract.md` §3). Declaration is idempotent, so
//! every role declares all of it at start and after each reconnect.

use anyhow::Context;
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, Connection, ExchangeKind};

use crate::domain::Channel as PetitionChannel;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exchange {
    Intake,
    Events,
    Dispatch,
    Commands,
    Escalations,
    Outbound,
    Dead,
    /// Alternate exchange of the exchanges whose messages must reach a
    /// person: a message no consumer has bound for yet (a unit's handler app
    /// offline, no supervisor queue) is kept in `{ns}.unrouted` instead of
    /// being returned or dropped.
    Unrouted,
}

impl Exchange {
    fn suffix(self) -> &'static str {
        match self {
            Exchange::Intake => "intake",
            Exchange::Events => "events",
            Exchange::Dispatch => "dispatch",
            Exchange::Commands => "commands",
            Exchange::Escalations => "escalations",
            Exchange::Outbound => "outbound",
            Exchange::Dead => "dead",
            Exchange::Unrouted => "unrouted",
        }
    }

    const TOPIC: [Exchange; 7] = [
        Exchange::Intake,
        Exchange::Events,
        Exchange::Dispatch,
        Exchange::Commands,
        Exchange::Escalations,
        Exchange::Outbound,
        Exchange::Dead,
    ];

    /// Dispatch, escalations, outbound and commands carry what a person must
    /// see, so unbound ones are kept. Events are already stored in `events`:
    /// one nobody subscribes to is simply not delivered (see
    /// [`Exchange::mandatory`]). Intake binds `#`; dead is the end of the line.
    fn has_alternate(self) -> bool {
        matches!(self, Exchange::Dispatch | Exchange::Escalations | Exchange::Outbound | Exchange::Commands)
    }

    /// Whether a publish here must reach a queue (`mandatory`, a return is a
    /// failure). Everything but events: an event is appended to `events`
    /// before it is published, and one nobody subscribes to (`petition.assigned`
    /// before any supervisor listens) is neither kept nor returned.
    pub fn mandatory(self) -> bool {
        self != Exchange::Events
    }
}

/// Queues the pipeline's own roles consume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkQueue {
    Normalize,
    Route,
    Lifecycle,
    Notify,
}

impl WorkQueue {
    fn suffix(self) -> &'static str {
        match self {
            WorkQueue::Normalize => "normalize",
            WorkQueue::Route => "route",
            WorkQueue::Lifecycle => "lifecycle",
            WorkQueue::Notify => "notify",
        }
    }

    fn bindings(self) -> &'static [(Exchange, &'static str)] {
        match self {
            WorkQueue::Normalize => &[(Exchange::Intake, "#")],
            WorkQueue::Route => &[(Exchange::Events, "petition.received"), (Exchange::Events, "petition.located")],
            WorkQueue::Lifecycle => &[(Exchange::Commands, "petition.*")],
            // The receipt went out at intake; these are the other messages a citizen gets.
            WorkQueue::Notify => &[(Exchange::Events, "petition.accepted"), (Exchange::Events, "petition.approved")],
        }
    }

    const ALL: [WorkQueue; 4] = [WorkQueue::Normalize, WorkQueue::Route, WorkQueue::Lifecycle, WorkQueue::Notify];
}

/// Bounds of the queues only people drain, so nothing piles up forever.
/// Past the length the oldest message is dropped; past the TTL it expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperatorQueueLimits {
    pub dead_max_length: u32,
    pub unrouted_max_length: u32,
    /// How long a dead letter or an unrouted message is kept.
    pub ttl: std::time::Duration,
}

impl Default for OperatorQueueLimits {
    fn default() -> Self {
        OperatorQueueLimits { dead_max_length: 100_000, unrouted_max_length: 100_000, ttl: std::time::Duration::from_secs(30 * 86_400) }
    }
}

#[derive(Debug, Clone)]
pub struct Topology {
    namespace: String,
    delivery_limit: u32,
    limits: OperatorQueueLimits,
    /// `x-quorum-initial-group-size`; `None` leaves it to the broker.
    replicas: Option<u32>,
}

impl Topology {
    pub fn new(namespace: &str, delivery_limit: u32) -> Self {
        Topology { namespace: namespace.to_owned(), delivery_limit, limits: OperatorQueueLimits::default(), replicas: None }
    }

    /// Each quorum queue starts with this many replicas (fewer while the
    /// cluster has fewer nodes: the broker caps it). Only read when a queue
    /// is created; changing it later leaves existing queues as they are.
    pub fn with_replicas(self, replicas: Option<u32>) -> Self {
        Topology { replicas, ..self }
    }

    pub fn with_limits(self, limits: OperatorQueueLimits) -> Self {
        Topology { limits, ..self }
    }

    pub fn exchange(&self, x: Exchange) -> String {
        format!("{}.{}", self.namespace, x.suffix())
    }

    pub fn queue(&self, q: WorkQueue) -> String {
        format!("{}.{}", self.namespace, q.suffix())
    }

    /// Where channel adapters read what the pipeline says to citizens.
    pub fn outbound_queue(&self, channel: PetitionChannel) -> String {
        format!("{}.outbound.{channel}", self.namespace)
    }

    pub fn dead_queue(&self) -> String {
        self.exchange(Exchange::Dead)
    }

    pub fn unrouted_queue(&self) -> String {
        self.exchange(Exchange::Unrouted)
    }

    pub async fn declare(&self, conn: &Connection) -> anyhow::Result<()> {
        let mut channel = conn.create_channel().await.context("opening a channel to declare the topology")?;
        let ch = &mut channel;
        self.declare_exchange(ch, Exchange::Unrouted, ExchangeKind::Fanout, FieldTable::default()).await?;
        for x in Exchange::TOPIC {
            let mut args = FieldTable::default();
            if x.has_alternate() {
                args.insert("alternate-exchange".into(), long_string(&self.exchange(Exchange::Unrouted)));
            }
            self.declare_exchange(ch, x, ExchangeKind::Topic, args).await?;
        }
        // The operators' queues hold what needs a human: no delivery limit,
        // but bounded in length and age.
        self.declare_queue(conn, ch, &self.dead_queue(), self.operator_args(self.limits.dead_max_length)).await?;
        self.bind(ch, &self.dead_queue(), Exchange::Dead, "#").await?;
        self.declare_queue(conn, ch, &self.unrouted_queue(), self.operator_args(self.limits.unrouted_max_length)).await?;
        self.bind(ch, &self.unrouted_queue(), Exchange::Unrouted, "").await?;

        for q in WorkQueue::ALL {
            let name = self.queue(q);
            self.declare_queue(conn, ch, &name, self.quorum_args(true)).await?;
            for (x, key) in q.bindings() {
                self.bind(ch, &name, *x, key).await?;
            }
        }
        for c in PetitionChannel::PUSHED {
            let name = self.outbound_queue(c);
            // One consumer at a time per channel, so a citizen's messages
            // reach them in the order they were written; more deliver
            // processes stand by (`docs/contract.md` §3).
            let mut args = self.quorum_args(true);
            args.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
            self.declare_queue(conn, ch, &name, args).await?;
            self.bind(ch, &name, Exchange::Outbound, c.as_str()).await?;
        }
        let _ = channel.close(200, "declared".into()).await;
        Ok(())
    }

    /// Every queue the topology declares.
    pub fn queue_names(&self) -> Vec<String> {
        let mut names: Vec<String> = WorkQueue::ALL.iter().map(|q| self.queue(*q)).collect();
        names.extend(PetitionChannel::PUSHED.iter().map(|c| self.outbound_queue(*c)));
        names.extend([self.dead_queue(), self.unrouted_queue()]);
        names
    }

    /// Removes the namespace from the broker: every queue (with its
    /// messages) and exchange. For decommissioning and test teardown.
    pub async fn delete(&self, ch: &Channel) -> anyhow::Result<()> {
        for q in self.queue_names() {
            ch.queue_delete(ShortString::from(q.as_str()), Default::default()).await?;
        }
        for x in Exchange::TOPIC.into_iter().chain([Exchange::Unrouted]) {
            ch.exchange_delete(ShortString::from(self.exchange(x).as_str()), Default::default()).await?;
        }
        Ok(())
    }

    /// Quorum queue; work queues also get the delivery limit and
    /// at-least-once dead-lettering to `{ns}.dead` (which needs
    /// `reject-publish` overflow).
    fn quorum_args(&self, work: bool) -> FieldTable {
        let mut args = FieldTable::default();
        args.insert("x-queue-type".into(), long_string("quorum"));
        if let Some(n) = self.replicas {
            args.insert(REPLICAS.into(), AMQPValue::LongInt(i32::try_from(n).unwrap_or(i32::MAX)));
        }
        if work {
            args.insert("x-delivery-limit".into(), AMQPValue::LongInt(self.delivery_limit as i32));
            args.insert("x-dead-letter-exchange".into(), long_string(&self.exchange(Exchange::Dead)));
            args.insert("x-dead-letter-strategy".into(), long_string("at-least-once"));
            args.insert("x-overflow".into(), long_string("reject-publish"));
        }
        args
    }

    /// A bounded quorum queue: `drop-head` overflow keeps the newest
    /// messages, `x-message-ttl` expires old ones (quorum queues support both).
    fn operator_args(&self, max_length: u32) -> FieldTable {
        let mut args = self.quorum_args(false);
        args.insert("x-max-length".into(), AMQPValue::LongLongInt(i64::from(max_length)));
        args.insert("x-overflow".into(), long_string("drop-head"));
        let ttl_ms = i64::try_from(self.limits.ttl.as_millis()).unwrap_or(i64::MAX);
        args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ttl_ms));
        args
    }

    async fn declare_exchange(&self, ch: &Channel, x: Exchange, kind: ExchangeKind, args: FieldTable) -> anyhow::Result<()> {
        let name = self.exchange(x);
        let opts = ExchangeDeclareOptions { durable: true, ..Default::default() };
        ch.exchange_declare(ShortString::from(name.as_str()), kind, opts, args).await.with_context(|| format!("declaring exchange {name}"))
    }

    async fn declare_queue(&self, conn: &Connection, ch: &mut Channel, name: &str, args: FieldTable) -> anyhow::Result<()> {
        let opts = QueueDeclareOptions { durable: true, ..Default::default() };
        let Err(e) = ch.queue_declare(ShortString::from(name), opts, args.clone()).await else { return Ok(()) };
        // The replica count only applies when a queue is created: an existing
        // queue keeps its own (made before the setting, or with another value),
        // and every other argument is still checked against it.
        let Some(current) = existing_replicas(&e.to_string()) else {
            return Err(e).with_context(|| format!("declaring queue {name}"));
        };
        *ch = conn.create_channel().await.context("reopening the channel after a refused declaration")?;
        let mut kept: std::collections::BTreeMap<ShortString, AMQPValue> =
            args.inner().iter().filter(|(k, _)| k.as_str() != REPLICAS).map(|(k, v)| (k.clone(), v.clone())).collect();
        if let Some(n) = current {
            kept.insert(REPLICAS.into(), AMQPValue::LongInt(n));
        }
        ch.queue_declare(ShortString::from(name), opts, kept.into()).await.with_context(|| format!("declaring queue {name}"))?;
        Ok(())
    }

    async fn bind(&self, ch: &Channel, queue: &str, x: Exchange, key: &str) -> anyhow::Result<()> {
        ch.queue_bind(
            ShortString::from(queue),
            ShortString::from(self.exchange(x).as_str()),
            ShortString::from(key),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .with_context(|| format!("binding {queue} to {} with {key}", self.exchange(x)))
    }
}

const REPLICAS: &str = "x-quorum-initial-group-size";

/// The replica count of an existing queue, read from the broker's refusal
/// of a declaration with another one: `Some(None)` if it has none, `None`
/// if the refusal is about something else.
fn existing_replicas(refusal: &str) -> Option<Option<i32>> {
    let (_, rest) = refusal.split_once(&format!("inequivalent arg '{REPLICAS}'"))?;
    let (_, current) = rest.split_once("but current is ")?;
    if current.starts_with("none") {
        return Some(None);
    }
    // "the value '5' of type 'signedint'" when the types differ, "'5'" when they agree.
    let value = current.strip_prefix("the value ").unwrap_or(current).strip_prefix('\'')?.split('\'').next()?;
    Some(Some(value.parse().ok()?))
}

fn long_string(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

#[cfg(test)]
mod tests {
    use super::existing_replicas;

    #[test]
    fn the_existing_replica_count_is_read_from_the_refusal() {
        let none = "PRECONDITION_FAILED - inequivalent arg 'x-quorum-initial-group-size' for queue 'ns.dead' in vhost '/': \
                    received the value '3' of type 'signedint' but current is none";
        assert_eq!(existing_replicas(none), Some(None));
        let five = "PRECONDITION_FAILED - inequivalent arg 'x-quorum-initial-group-size' for queue 'ns.route' in vhost '/': \
                    received the value '3' of type 'signedint' but current is the value '5' of type 'signedint'";
        assert_eq!(existing_replicas(five), Some(Some(5)));
        let same_type = "PRECONDITION_FAILED - inequivalent arg 'x-quorum-initial-group-size' for queue 'ns.dead' in vhost '/': \
                         received '3' but current is '5'";
        assert_eq!(existing_replicas(same_type), Some(Some(5)));
        let other = "PRECONDITION_FAILED - inequivalent arg 'x-delivery-limit' for queue 'ns.route' in vhost '/': \
                     received the value '5' of type 'signedint' but current is the value '20' of type 'signedint'";
        assert_eq!(existing_replicas(other), None, "any other difference is still an error");
    }
}
