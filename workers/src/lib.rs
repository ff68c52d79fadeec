//! The worker roles and the `nuannan` command line. Each role is a thin handler — decode, call pure logic, write,
//! publish — driven by the shared consume loop in [`nuannan::bus`]; this module
//! supervises them: connect, declare, consume, reconnect with backoff.

pub mod calendar;
pub mod cli;
pub mod principals;

mod batch;
pub mod console;
mod deadline;
pub mod deliver;
pub mod gateway;
mod identity;
mod lifecycle;
mod normalize;
mod notify;
mod outbox;
mod route;
mod rules;
pub mod standin;

pub use identity::Directory;
pub use rules::Shared;

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use nuannan::bus::{self, Publisher, WorkQueue};
use nuannan::config::Settings;
use nuannan::store::Store;

pub use deadline::DeadlineWorker;
pub use lifecycle::LifecycleWorker;
pub use normalize::Normalizer;
pub use notify::NotifyWorker;
pub use nuannan::bus::{declare_topology, topology};
pub use route::RouteWorker;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    Normalize,
    Route,
    Lifecycle,
    Deadline,
    Notify,
    /// The HTTP edge (`gateway.http_addr`; not run when it is empty).
    Gateway,
    /// Messages to citizens, on their channel.
    Deliver,
    /// The supervisors' console (`console.http_addr`; not run when it is empty).
    Console,
}

impl Role {
    pub const ALL: [Role; 8] =
        [Role::Normalize, Role::Route, Role::Lifecycle, Role::Deadline, Role::Notify, Role::Gateway, Role::Deliver, Role::Console];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Normalize => "normalize",
            Role::Route => "route",
            Role::Lifecycle => "lifecycle",
            Role::Deadline => "deadline",
            Role::Notify => "notify",
            Role::Gateway => "gateway",
            Role::Deliver => "deliver",
            Role::Console => "console",
        }
    }
}

impl FromStr for Role {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).with_context(|| format!("unknown role `{s}`"))
    }
}

/// Runs `roles` until `shutdown` fires.
pub async fn run(settings: &Settings, roles: &[Role], shutdown: CancellationToken) -> anyhow::Result<()> {
    let serves = |r: Role| match r {
        Role::Gateway => !settings.gateway.http_addr.is_empty(),
        Role::Console => !settings.console.http_addr.is_empty(),
        _ => true,
    };
    let roles: Vec<Role> = roles.iter().copied().filter(|&r| serves(r)).collect();
    let roles = roles.as_slice();
    let store = Store::open(&settings.mongodb).await?;
    let health = nuannan::ops::health();
    health.expect_roles(roles.len());
    tokio::spawn(health.probe_store(store.clone(), shutdown.clone()));
    if !settings.ops.http_addr.is_empty() {
        tokio::spawn(nuannan::ops::serve(settings.ops.http_addr.clone(), shutdown.clone()));
    }
    retry_until_ok("preparing MongoDB indexes", settings, &shutdown, || store.ensure_indexes()).await;
    tokio::spawn(watch_operator_queues(settings.clone(), shutdown.clone()));
    // A bad calendar.dir is a configuration error: fail at start.
    let files = nuannan::clock::Calendar::from_dir(&settings.calendar.dir)?;
    let Some(calendar) = retry_until_ok("loading the calendar", settings, &shutdown, || store.with_imported_years(files.clone())).await
    else {
        return Ok(());
    };
    let calendar = calendar::watch(settings, calendar);
    tokio::spawn(calendar::refresh(settings.clone(), store.clone(), calendar.clone(), shutdown.clone()));
    // Loaded (and on first start seeded) once, before any role starts.
    let Some(registry) = retry_until_ok("loading the registry", settings, &shutdown, || store.registry()).await else {
        return Ok(());
    };
    let Some(principals) = retry_until_ok("loading the principals", settings, &shutdown, || identity::Directory::load(store.clone())).await
    else {
        return Ok(());
    };
    tokio::spawn(principals.clone().refresh(shutdown.clone()));
    let shared = Shared {
        registry: Arc::new(registry),
        policy: settings.deadline_policy(calendar),
        principals,
        gateway: gateway::Slot::default(),
        console: console::Wake::default(),
    };
    // The HTTP roles serve for the life of the process; their broker sessions are supervised below.
    let mut servers = Vec::new();
    if roles.contains(&Role::Gateway) {
        let listener = bind("gateway.http_addr", &settings.gateway.http_addr).await?;
        let server = gateway::serve(listener, settings.clone(), store.clone(), shared.clone(), shutdown.clone());
        servers.push(("gateway", tokio::spawn(server)));
    }
    if roles.contains(&Role::Console) {
        let listener = bind("console.http_addr", &settings.console.http_addr).await?;
        let server = console::serve(listener, settings.clone(), store.clone(), shared.clone(), shutdown.clone());
        servers.push(("console", tokio::spawn(server)));
    }
    let tasks = roles.iter().map(|&role| {
        let (settings, store, shared, shutdown) = (settings.clone(), store.clone(), shared.clone(), shutdown.clone());
        tokio::spawn(async move { supervise(role, &settings, &store, &shared, &shutdown).await })
    });
    for task in futures::future::join_all(tasks).await {
        task.context("worker task panicked")?;
    }
    for (name, server) in servers {
        server.await.with_context(|| format!("{name} task panicked"))?.with_context(|| format!("the {name}'s HTTP server"))?;
    }
    outbox::drain().await;
    Ok(())
}

/// Binds an HTTP role's address at start, so a port in use fails the process.
async fn bind(key: &str, addr: &str) -> anyhow::Result<tokio::net::TcpListener> {
    let addr: std::net::SocketAddr = addr.parse().with_context(|| format!("{key} is not IP:PORT"))?;
    tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {key} {addr}"))
}

/// Publishes the depth of `{ns}.dead` and `{ns}.unrouted` as metrics every
/// 15 s: they only grow when something needs a person. One connection,
/// kept open (and opened again after a failure).
async fn watch_operator_queues(settings: Settings, shutdown: CancellationToken) {
    let topology = topology(&settings);
    let queues = [topology.dead_queue(), topology.unrouted_queue()];
    let name = format!("nuannan-{}-queue-watch-{}", settings.namespace, std::process::id());
    let mut channel: Option<(lapin::Connection, lapin::Channel)> = None;
    loop {
        if channel.as_ref().is_none_or(|(_, ch)| !ch.status().connected()) {
            channel = async {
                let conn = bus::connect(&settings.amqp.url, &name).await.ok()?;
                let ch = conn.create_channel().await.ok()?;
                Some((conn, ch))
            }
            .await;
        }
        if let Some((_, ch)) = &channel {
            for q in &queues {
                let passive = lapin::options::QueueDeclareOptions { passive: true, ..Default::default() };
                match ch.queue_declare(q.as_str().into(), passive, Default::default()).await {
                    Ok(info) => nuannan::ops::metrics().set_queue_depth(q, u64::from(info.message_count())),
                    // A missing queue closes the channel: opened again next time.
                    Err(e) => tracing::debug!(queue = q.as_str(), error = %e, "could not read an operator queue's depth"),
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_secs(15)) => {}
        }
    }
    if let Some((conn, _)) = channel {
        let _ = conn.close(200, "bye".into()).await;
    }
}

/// Reconnects with capped exponential backoff until shutdown. The backoff
/// starts over after a session that ran for a while.
async fn supervise(role: Role, settings: &Settings, store: &Store, shared: &Shared, shutdown: &CancellationToken) {
    let mut backoff = Backoff::new(settings);
    loop {
        let started = Instant::now();
        match session(role, settings, store, shared, shutdown).await {
            Ok(()) => return,
            Err(e) => tracing::error!(role = role.as_str(), error = format!("{e:#}"), "worker session ended"),
        }
        if started.elapsed() > Duration::from_secs(30) {
            backoff.reset();
        }
        if !backoff.wait(shutdown).await {
            return;
        }
    }
}

/// Capped exponential backoff (`amqp.reconnect_initial_ms` doubling up to
/// `amqp.reconnect_max_ms`), cut short by shutdown.
struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    fn new(settings: &Settings) -> Self {
        let initial = Duration::from_millis(settings.amqp.reconnect_initial_ms);
        Backoff { initial, max: Duration::from_millis(settings.amqp.reconnect_max_ms), next: initial }
    }

    fn reset(&mut self) {
        self.next = self.initial;
    }

    /// Waits the next delay; `false` if shutdown came first.
    async fn wait(&mut self, shutdown: &CancellationToken) -> bool {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        tokio::select! {
            _ = shutdown.cancelled() => false,
            _ = tokio::time::sleep(delay) => true,
        }
    }
}

async fn session(role: Role, settings: &Settings, store: &Store, shared: &Shared, shutdown: &CancellationToken) -> anyhow::Result<()> {
    // Connection names carry the namespace, role and process, so operators
    // (and tests) can tell them apart and close one on purpose.
    let name = format!("nuannan-{}-{}-{}", settings.namespace, role.as_str(), std::process::id());
    // Publishing and consuming on separate connections: a publisher the
    // broker blocks (a memory or disk alarm) cannot stall the consumer's acks.
    let publishing = bus::connect(&settings.amqp.url, &format!("{name}-publish")).await?;
    let consuming = bus::connect(&settings.amqp.url, &format!("{name}-consume")).await?;
    let topology = topology(settings);
    topology.declare(&publishing).await?;
    let publisher = Publisher::open(&publishing, topology.clone())
        .await?
        .for_role(role.as_str())
        .with_confirm_timeout(Duration::from_millis(settings.amqp.confirm_timeout_ms));
    let watch = publisher.clone();
    let dead = publisher.clone();
    let consume = |queue: WorkQueue| Consumer {
        conn: &consuming,
        role,
        queue: topology.queue(queue),
        prefetch: settings.amqp.prefetch,
        settings,
        store,
        dead: &dead,
        shutdown,
    };
    let work = async {
        match role {
            Role::Normalize => consume(WorkQueue::Normalize).run(&Normalizer::new(settings, store.clone(), publisher)).await,
            Role::Route => consume(WorkQueue::Route).run(&RouteWorker::new(settings, store.clone(), publisher, shared)).await,
            Role::Lifecycle => consume(WorkQueue::Lifecycle).run(&LifecycleWorker::new(settings, store.clone(), publisher, shared)).await,
            Role::Notify => consume(WorkQueue::Notify).run(&NotifyWorker::new(settings, store.clone(), publisher, shared)).await,
            Role::Deadline => DeadlineWorker::new(settings, store.clone(), publisher, shared).run(shutdown).await,
            Role::Deliver => {
                let http = deliver::http_client(settings)?;
                let workers: Vec<deliver::DeliverWorker> = nuannan::domain::Channel::PUSHED
                    .into_iter()
                    .map(|c| deliver::DeliverWorker::new(c, settings, store.clone(), publisher.clone(), http.clone()))
                    .collect();
                // One consumer per channel: a channel whose remote is down holds up only itself.
                let channels = workers.iter().map(|w| {
                    let queue = topology.outbound_queue(w.channel());
                    Consumer {
                        conn: &consuming,
                        role,
                        queue,
                        prefetch: settings.deliver.concurrency,
                        settings,
                        store,
                        dead: &dead,
                        shutdown,
                    }
                    .run(w)
                });
                futures::future::try_join_all(channels).await.map(|_| ())
            }
            Role::Console => console::listen(&consuming, &topology, &shared.console, shutdown).await,
            Role::Gateway => {
                // Publishing only: the HTTP server takes this session's publisher.
                shared.gateway.set(Some(publisher.with_confirm_timeout(Duration::from_millis(settings.gateway.publish_timeout_ms))));
                shutdown.cancelled().await;
                Ok(())
            }
        }
    };
    nuannan::ops::health().session_up();
    // A publishing channel the broker closed cannot be used again: end the
    // session and reconnect rather than fail every delivery from now on.
    let result = tokio::select! {
        result = work => result,
        _ = watch.closed() => Err(anyhow::anyhow!("the publishing channel was closed by the broker")),
    };
    if role == Role::Gateway {
        shared.gateway.set(None);
    }
    nuannan::ops::health().session_down();
    let _ = consuming.close(200, "bye".into()).await;
    let _ = publishing.close(200, "bye".into()).await;
    result
}

/// A role's consumer on its work queue, with the configured prefetch and delivery limit.
struct Consumer<'a> {
    conn: &'a lapin::Connection,
    role: Role,
    queue: String,
    prefetch: u16,
    settings: &'a Settings,
    store: &'a Store,
    dead: &'a Publisher,
    shutdown: &'a CancellationToken,
}

impl Consumer<'_> {
    async fn run<H: bus::Handler>(self, handler: &H) -> anyhow::Result<()> {
        let options = bus::Consume {
            queue: &self.queue,
            role: self.role.as_str(),
            prefetch: self.prefetch,
            delivery_limit: self.settings.amqp.delivery_limit,
            dead: self.dead,
            hold_max: Duration::from_secs(self.settings.amqp.hold_max_secs),
        };
        match bus::consume(self.conn, options, handler, self.shutdown).await {
            Ok(()) => Ok(()),
            Err(e @ bus::ConsumeError::StoreUnavailable(_)) => {
                tracing::warn!(role = self.role.as_str(), error = %e, "waiting for the store before consuming again");
                retry_until_ok("reaching the store", self.settings, self.shutdown, || self.store.ping()).await;
                Err(e.into())
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Runs `op` until it succeeds, with the reconnect backoff between tries;
/// `None` if shutdown came first.
async fn retry_until_ok<T, E, F, Fut>(what: &str, settings: &Settings, shutdown: &CancellationToken, mut op: F) -> Option<T>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut backoff = Backoff::new(settings);
    while !shutdown.is_cancelled() {
        match op().await {
            Ok(value) => return Some(value),
            Err(e) => tracing::warn!(error = format!("{e:#}"), "{what} failed; retrying"),
        }
        if !backoff.wait(shutdown).await {
            break;
        }
    }
    None
}
