//! The `console` role (`docs/contract.md` §15): the supervisors' web
//! console. Pages rendered on the server (Chinese, one column on a phone),
//! each with a JSON twin under `/api/`. Supervisors, reviewers and
//! dispatchers log in with their principal's password; each sees only its
//! unit's subtree, and commands go to the lifecycle as that principal.
//!
//! The role's broker session consumes the console's own queue on
//! `{ns}.escalations`; each message wakes the live feeds, which read what is
//! new from `events` (so a browser that reconnects misses nothing).

mod api;
mod auth;
mod feed;
mod pages;
mod views;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use nuannan::bus::{CommandSender, Exchange, Topology};
use nuannan::config::Settings;
use nuannan::console::Keys;
use nuannan::store::Store;

use crate::Shared;

/// Every route answers within this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Forms and JSON bodies are small.
const MAX_BODY_BYTES: usize = 16 * 1024;

/// Wakes the live feeds when an escalation arrives.
#[derive(Clone)]
pub struct Wake(broadcast::Sender<()>);

impl Default for Wake {
    fn default() -> Self {
        Wake(broadcast::channel(16).0)
    }
}

impl Wake {
    fn notify(&self) {
        let _ = self.0.send(());
    }

    fn subscribe(&self) -> broadcast::Receiver<()> {
        self.0.subscribe()
    }
}

pub(crate) struct Console {
    settings: Settings,
    store: Store,
    shared: Shared,
    keys: Keys,
    commands: tokio::sync::Mutex<Option<CommandSender>>,
}

/// Serves until `shutdown`, then finishes the requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    settings: Settings,
    store: Store,
    shared: Shared,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let keys = Keys::new(&settings.console.session_secret);
    if settings.console.session_secret.is_empty() {
        tracing::warn!("console.session_secret is empty: sessions end when this process restarts and are not shared by replicas");
    }
    let console = Arc::new(Console { settings, store, shared, keys, commands: tokio::sync::Mutex::new(None) });
    tracing::info!(addr = %listener.local_addr()?, "console listening");
    axum::serve(listener, router(console)).with_graceful_shutdown(async move { shutdown.cancelled().await }).await?;
    Ok(())
}

fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/", get(pages::overview))
        .route("/units/{path}", get(pages::units))
        .route("/petitions", get(pages::petitions))
        .route("/petitions/{id}", get(pages::petition))
        .route("/petitions/{id}/commands/{command}", post(pages::command))
        .route("/review", get(pages::review))
        .route("/triage", get(pages::triage))
        .route("/rates", get(pages::rates))
        .route("/map", get(pages::map))
        .route("/events/stream", get(feed::stream))
        .route("/console.css", get(pages::css))
        .route("/console.js", get(pages::js))
        .route("/api/login", post(api::login))
        .route("/api/escalations", get(api::escalations))
        .route("/api/escalations/stream", get(feed::stream))
        .route("/api/units/{path}", get(api::units))
        .route("/api/rates", get(api::rates))
        .route("/api/map", get(api::map))
        .route("/api/petitions", get(api::petitions))
        .route("/api/petitions/{id}", get(api::petition))
        .route("/api/petitions/{id}/commands/{command}", post(api::command))
        .route("/api/queues/review", get(api::review))
        .route("/api/queues/triage", get(api::triage))
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(timeout))
        .with_state(console)
}

async fn timeout(request: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    use axum::response::IntoResponse;
    // The live stream stays open on purpose.
    if request.uri().path().ends_with("/stream") {
        return next.run(request).await;
    }
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(r) => r,
        Err(_) => (axum::http::StatusCode::SERVICE_UNAVAILABLE, "not answered in time; retry").into_response(),
    }
}

impl Console {
    /// Sends a command as `user` (the console's broker login is an
    /// impersonator), reopening the connection when it was lost.
    async fn send(
        &self,
        user: &str,
        command: &str,
        petition_id: &str,
        actor: serde_json::Value,
        data: serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        let mut sender = self.commands.lock().await;
        if sender.as_ref().is_none_or(|s| !s.is_open()) {
            let name = format!("nuannan-{}-console-{}-commands", self.settings.namespace, std::process::id());
            *sender = Some(CommandSender::open(&self.settings.amqp.url, &name, &self.settings.namespace).await?);
        }
        let command_id = format!("console-{}", uuid::Uuid::new_v4());
        let result = sender.as_mut().expect("opened above").send(user, &command_id, command, petition_id, actor, data).await;
        if result.is_err() {
            *sender = None;
        }
        result
    }
}

/// The role's broker session: the console's own queue on `{ns}.escalations`
/// (exclusive, gone with the connection), each message waking the feeds.
pub async fn listen(conn: &lapin::Connection, topology: &Topology, wake: &Wake, shutdown: &CancellationToken) -> anyhow::Result<()> {
    let ch = conn.create_channel().await?;
    let queue = format!("{}.console.{}", topology.exchange(Exchange::Escalations), std::process::id());
    let exclusive = QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() };
    ch.queue_declare(queue.as_str().into(), exclusive, Default::default()).await.context("declaring the console's queue")?;
    ch.queue_bind(
        queue.as_str().into(),
        topology.exchange(Exchange::Escalations).as_str().into(),
        "#".into(),
        QueueBindOptions::default(),
        Default::default(),
    )
    .await?;
    let no_ack = BasicConsumeOptions { no_ack: true, exclusive: true, ..Default::default() };
    let mut deliveries = ch.basic_consume(queue.as_str().into(), "console".into(), no_ack, Default::default()).await?;
    // A (re)connected session may have missed arrivals: look once.
    wake.notify();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            next = deliveries.next() => match next {
                Some(Ok(_)) => wake.notify(),
                Some(Err(e)) => return Err(e.into()),
                None => anyhow::bail!("the console's consumer was cancelled"),
            },
        }
    }
}
