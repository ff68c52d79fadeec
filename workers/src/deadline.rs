//! The `deadline` role: every `deadline.scan_interval_ms` it reads the
//! petitions whose next warning or breach is due (an indexed range on
//! `clock.next_at`), decides with the lifecycle's pure rules, and claims each
//! with a conditional update on `version`, so any number of deadline workers
//! never fire the same warning or escalation twice. On its own cadence it
//! also looks for hot spots (`hotspots`).

mod hotspots;

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::outbox;
use super::rules::{Rules, Shared};
use nuannan::bus::{Failure, Publisher};
use nuannan::config::Settings;
use nuannan::domain::PetitionId;
use nuannan::lifecycle::{self, DueAction};
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
    rules: Rules,
    interval: Duration,
    /// `None` when hot spot detection is off.
    hotspots: Option<hotspots::HotspotScan>,
}

impl DeadlineWorker {
    pub fn new(settings: &Settings, store: Store, publisher: Publisher, shared: &Shared) -> Self {
        DeadlineWorker {
            rules: Rules::new(settings, shared),
            hotspots: hotspots::HotspotScan::new(settings, store.clone(), publisher.clone()),
            store,
            publisher,
            interval: Duration::from_millis(settings.deadline.scan_interval_ms),
        }
    }

    /// The deadline scans and, beside them, the hot spot scans. These stop
    /// with the deadline scans, on shutdown or on an error that ends the
    /// session.
    pub async fn run(&self, shutdown: &CancellationToken) -> anyhow::Result<()> {
        let stop = shutdown.child_token();
        let deadlines = async {
            let result = self.deadlines(shutdown).await;
            stop.cancel();
            result
        };
        let hotspots = async {
            if let Some(hotspots) = &self.hotspots {
                hotspots.run(&stop).await;
            }
        };
        tokio::join!(deadlines, hotspots).0
    }

    /// Scans at a fixed rate; a full batch means a backlog, so the next scan
    /// starts at once. A scan with nothing due is one indexed query: the
    /// outbox sweep runs on its own, slower cadence.
    async fn deadlines(&self, shutdown: &CancellationToken) -> anyhow::Result<()> {
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
        let due = record.clocks().due(now, self.rules.warn_ratio);
        let change = match self.rules.at(now, |env| lifecycle::on_due(&lifecycle::state(p, unit), due, env)) {
            DueAction::Reindex(clocks) => {
                PetitionChange { clocks: Some(ClockRecord::new(&clocks, self.rules.warn_ratio)), ..Default::default() }
            }
            DueAction::Transition(t) => self.rules.change(p, unit, now, &t, None, None),
        };
        let claimed = self.store.apply_change(p, &change).await?;
        Ok(if claimed { change.outbox } else { Vec::new() })
    }
}
