//! The `deadline` role: every `deadline.scan_interval_ms` it reads the
//! petitions whose next warning or breach is due (an indexed range on
//! `clock.next_at`), decides with the lifecycle's pure rules, and claims each
//! with a conditional update on `version`, so any number of deadline workers
//! never fire the same warning or escalation twice.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::outbox;
use nuannan::bus::{Failure, Publisher};
use nuannan::clock::DeadlinePolicy;
use nuannan::config::Settings;
use nuannan::domain::{PetitionId, UnitPath};
use nuannan::lifecycle::{self, DueAction, Env};
use nuannan::routing::Registry;
use nuannan::store::{ClockRecord, OutboxMessage, PetitionChange, PetitionRecord, Store};

/// Petitions handled per scan; the rest are due next scan.
const BATCH: i64 = 500;

/// How often to look for outboxes whose publisher died.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// Due petitions handled at once: each is a few round trips to the store
/// and the broker, so a burst of breaches is not handled one by one.
const FIRE_CONCURRENCY: usize = 16;

pub struct DeadlineWorker {
    store: Store,
    publisher: Publisher,
    registry: Arc<Registry>,
    policy: DeadlinePolicy,
    warn_ratio: f64,
    rating_period: chrono::Duration,
    interval: Duration,
}

impl DeadlineWorker {
    pub async fn new(settings: &Settings, store: Store, publisher: Publisher, policy: DeadlinePolicy) -> anyhow::Result<Self> {
        Ok(DeadlineWorker {
            registry: Arc::new(store.registry().await?),
            store,
            publisher,
            policy,
            warn_ratio: settings.deadline.warn_ratio,
            rating_period: settings.rating_period(),
            interval: Duration::from_millis(settings.deadline.scan_interval_ms),
        })
    }

    /// Scans at a fixed rate; a full batch means a backlog, so the next scan
    /// starts at once. A scan with nothing due is one indexed query: the
    /// outbox sweep runs on its own, slower cadence.
    pub async fn run(&self, shutdown: &CancellationToken) -> anyhow::Result<()> {
        let mut ticks = tokio::time::interval(self.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_sweep: Option<tokio::time::Instant> = None;
        let mut backlog = false;
        loop {
            if !backlog {
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = ticks.tick() => {}
                }
            } else if shutdown.is_cancelled() {
                return Ok(());
            }
            let now = Utc::now();
            let mut due = self.store.due_petitions(now, BATCH).await?;
            backlog = due.len() as i64 == BATCH;
            // Workers side by side read the same due list: start at different
            // places so their claims rarely collide.
            if !due.is_empty() {
                let start = uuid::Uuid::new_v4().as_u128() as usize % due.len();
                due.rotate_left(start);
            }
            let claims = due.into_iter().map(|petition| self.claim_logged(petition, now));
            let claimed: Vec<(PetitionId, Vec<OutboxMessage>)> =
                futures::stream::iter(claims).buffer_unordered(FIRE_CONCURRENCY).filter_map(std::future::ready).collect().await;
            let pending: Vec<(&PetitionId, &[OutboxMessage])> = claimed.iter().map(|(id, o)| (id, o.as_slice())).collect();
            // Claimed but not yet published: left in the outboxes for the sweep.
            if let Err(e) = outbox::flush_many(&self.store, &self.publisher, &pending).await {
                tracing::warn!(error = format!("{e:#}"), "publishing deadline actions failed; the sweep retries");
            }
            if last_sweep.is_none_or(|t| t.elapsed() >= SWEEP_EVERY) {
                outbox::sweep(&self.store, &self.publisher, now).await?;
                last_sweep = Some(tokio::time::Instant::now());
            }
        }
    }

    async fn claim_logged(&self, petition: PetitionRecord, now: DateTime<Utc>) -> Option<(PetitionId, Vec<OutboxMessage>)> {
        match self.claim(&petition, now).await {
            Ok(announcements) => Some((petition.id, announcements)),
            Err(e) => {
                tracing::warn!(petition_id = %petition.id, error = format!("{e:#}"), "deadline action failed; retried next scan");
                None
            }
        }
    }

    /// Decides what is due and claims it at the petition's version; returns
    /// what the claim wrote to the outbox (empty if another worker won).
    async fn claim(&self, p: &PetitionRecord, now: DateTime<Utc>) -> Result<Vec<OutboxMessage>, Failure> {
        let (Some(record), Some(unit)) = (p.clock, &p.unit) else { return Ok(Vec::new()) };
        let handler_of = |u: &UnitPath| self.registry.unit(u).and_then(|u| u.handler().cloned());
        let exists = |u: &UnitPath| self.registry.unit(u).is_some();
        let env = Env { now, policy: &self.policy, rating_period: self.rating_period, unit_exists: &exists };
        let state = lifecycle::state(p, unit);
        let change = match lifecycle::on_due(&state, record.clocks().due(now, self.warn_ratio), &env) {
            DueAction::Reindex(clocks) => PetitionChange { clocks: Some(ClockRecord::new(&clocks, self.warn_ratio)), ..Default::default() },
            DueAction::Transition(t) => {
                let context = lifecycle::Context {
                    petition: p,
                    unit,
                    now,
                    warn_ratio: self.warn_ratio,
                    policy: &self.policy,
                    handler_of: &handler_of,
                    actor: None,
                    command_id: None,
                };
                lifecycle::change(&context, &t)
            }
        };
        let claimed = self.store.apply_change(p, &change).await?;
        Ok(if claimed { change.outbox } else { Vec::new() })
    }
}
