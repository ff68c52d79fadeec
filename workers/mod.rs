//! The worker roles. Each is a thin handler — decode, call pure logic, write,
//! publish — driven by the shared consume loop in [`crate::bus`]; this module
//! supervises them: connect, declare, consume, reconnect with backoff.

mod batch;
mod deadline;
mod lifecycle;
mod normalize;
mod notify;
mod outbox;
mod route;
mod transition;

use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::bus::{self, Publisher, Topology, WorkQueue};
use crate::config::Settings;
use crate::store::Store;

pub use deadline::DeadlineWorker;
pub use lifecycle::LifecycleWorker;
pub use normalize::Normalizer;
pub use notify::NotifyWorker;
pub use route::RouteWorker;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    Normalize,
    Route,
    Lifecycle,
    Deadline,
    Notify,
}

impl Role {
    pub const ALL: [Role; 5] = [Role::Normalize, Role::Route, Role::Lifecycle, Role::Deadline, Role::Notify];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Normalize => "normalize",
            Role::Route => "route",
            Role::Lifecycle => "lifecycle",
            Role::Deadline => "deadline",
            Role::Notify => "notify",
        }
    }
}

impl FromStr for Role {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .with_context(|| format!("unknown role `{s}`"))
    }
}

/// The assignment of `petition` to `unit`: its next dispatch attempt.
fn assignment(
    petition: &crate::store::PetitionRecord,
    unit: &crate::domain::UnitPath,
    deadlines: crate::domain::Deadlines,
    handler: Option<crate::domain::Person>,
) -> crate::domain::Assignment {
    crate::domain::Assignment {
        petition_id: petition.id.clone(),
        unit: unit.clone(),
        level: unit.level(),
        category: petition.category,
        content: petition.content.clone(),
        location: petition.location.clone(),
        deadlines,
        handler,
        attempt: petition.dispatch_attempts + 1,
    }
}

/// The registry as last loaded into MongoDB (the route role seeds it with
/// the bundled one on first start).
async fn registry(store: &Store) -> anyhow::Result<crate::routing::Registry> {
    Ok(match store.registry_source().await? {
        Some(source) => crate::routing::Registry::from_json(&source)?,
        None => crate::routing::Registry::bundled(),
    })
}

/// Runs `roles` until `shutdown` fires.
pub async fn run(settings: &Settings, roles: &[Role], shutdown: CancellationToken) -> anyhow::Result<()> {
    let store = Store::connect(&settings.mongodb.uri, &settings.mongodb.database).await?;
    let health = crate::ops::health();
    health.expect_roles(roles.len());
    tokio::spawn(health.probe_store(store.clone(), shutdown.clone()));
    if !settings.ops.http_addr.is_empty() {
        tokio::spawn(crate::ops::serve(settings.ops.http_addr.clone(), shutdown.clone()));
    }
    retry_until_ok("preparing MongoDB indexes", settings, &shutdown, || store.ensure_indexes()).await;
    let tasks = roles.iter().map(|&role| {
        let (settings, store, shutdown) = (settings.clone(), store.clone(), shutdown.clone());
        tokio::spawn(async move { supervise(role, &settings, &store, &shutdown).await })
    });
    for task in futures::future::join_all(tasks).await {
        task.context("worker task panicked")?;
    }
    outbox::drain().await;
    Ok(())
}

/// Declares the broker topology once (`nuannan topology`).
pub async fn declare_topology(settings: &Settings) -> anyhow::Result<()> {
    let conn = bus::connect(&settings.amqp.url, "nuannan-topology").await?;
    let channel = conn.create_channel().await?;
    topology(settings).declare(&channel).await?;
    conn.close(200, "done".into()).await?;
    Ok(())
}

pub fn topology(settings: &Settings) -> Topology {
    Topology::new(&settings.namespace, settings.amqp.delivery_limit)
}

/// Reconnects with capped exponential backoff until shutdown. The backoff
/// starts over after a session that ran for a while.
async fn supervise(role: Role, settings: &Settings, store: &Store, shutdown: &CancellationToken) {
    let initial = Duration::from_millis(settings.amqp.reconnect_initial_ms);
    let max = Duration::from_millis(settings.amqp.reconnect_max_ms);
    let mut delay = initial;
    loop {
        let started = Instant::now();
        match session(role, settings, store, shutdown).await {
            Ok(()) => return,
            Err(e) => tracing::error!(role = role.as_str(), error = format!("{e:#}"), "worker session ended"),
        }
        if started.elapsed() > Duration::from_secs(30) {
            delay = initial;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(max);
    }
}

async fn session(role: Role, settings: &Settings, store: &Store, shutdown: &CancellationToken) -> anyhow::Result<()> {
    let name = format!("nuannan-{}-{}", role.as_str(), std::process::id());
    let conn = bus::connect(&settings.amqp.url, &name).await?;
    let topology = topology(settings);
    let setup = conn.create_channel().await?;
    topology.declare(&setup).await?;
    let _ = setup.close(200, "declared".into()).await;
    let publisher = Publisher::open(&conn, topology.clone()).await?.for_role(role.as_str());
    let dead = publisher.clone();
    let consume = |queue: WorkQueue| Consumer { conn: &conn, role, queue: topology.queue(queue), settings, dead: &dead, shutdown };
    crate::ops::health().session_up();
    let result = async {
        match role {
            Role::Normalize => consume(WorkQueue::Normalize).run(&Normalizer::new(settings, store.clone(), publisher)).await,
            Role::Route => consume(WorkQueue::Route).run(&RouteWorker::new(settings, store.clone(), publisher).await?).await,
            Role::Lifecycle => consume(WorkQueue::Lifecycle).run(&LifecycleWorker::new(settings, store.clone(), publisher).await?).await,
            Role::Notify => consume(WorkQueue::Notify).run(&NotifyWorker::new(settings, store.clone(), publisher).await?).await,
            Role::Deadline => DeadlineWorker::new(settings, store.clone(), publisher).await?.run(shutdown).await,
        }
    }
    .await;
    crate::ops::health().session_down();
    let _ = conn.close(200, "bye".into()).await;
    result
}

/// A role's consumer on its work queue, with the configured prefetch and delivery limit.
struct Consumer<'a> {
    conn: &'a lapin::Connection,
    role: Role,
    queue: String,
    settings: &'a Settings,
    dead: &'a Publisher,
    shutdown: &'a CancellationToken,
}

impl Consumer<'_> {
    async fn run<H: bus::Handler>(self, handler: &H) -> anyhow::Result<()> {
        let options = bus::Consume {
            queue: &self.queue,
            role: self.role.as_str(),
            prefetch: self.settings.amqp.prefetch,
            delivery_limit: self.settings.amqp.delivery_limit,
            dead: self.dead,
        };
        bus::consume(self.conn, options, handler, self.shutdown).await
    }
}

async fn retry_until_ok<F, Fut>(what: &str, settings: &Settings, shutdown: &CancellationToken, mut op: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut delay = Duration::from_millis(settings.amqp.reconnect_initial_ms);
    let max = Duration::from_millis(settings.amqp.reconnect_max_ms);
    while !shutdown.is_cancelled() {
        match op().await {
            Ok(()) => return,
            Err(e) => tracing::warn!(error = format!("{e:#}"), "{what} failed; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(max);
    }
}
