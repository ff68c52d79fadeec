//! The `deadline` role: every `deadline.scan_interval_ms` it reads the
//! petitions whose next warning or breach is due (an indexed range on
//! `clock.next_at`), decides with the pure clock rules, and claims each with
//! a conditional update on `version`, so any number of deadline workers
//! never fire the same warning or escalation twice.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use mongodb::bson::{self, doc};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{outbox, transition};
use crate::bus::Publisher;
use crate::clock::{ClockKind, DeadlinePolicy, Due, escalate};
use crate::lifecycle;
use crate::config::Settings;
use crate::domain::{EscalationNotice, EscalationReason, Event, PetitionId, EventType, UnitPath};
use crate::routing::Registry;
use crate::store::{ClockRecord, OutboxMessage, PetitionRecord, Store};

/// Petitions handled per scan; the rest are due next scan.
const BATCH: i64 = 500;

/// An outbox entry this old lost its publisher.
const STALE_OUTBOX_SECS: i64 = 30;

/// How often to look for such entries.
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
    interval: Duration,
}

impl DeadlineWorker {
    pub async fn new(settings: &Settings, store: Store, publisher: Publisher) -> anyhow::Result<Self> {
        Ok(DeadlineWorker {
            registry: Arc::new(super::registry(&store).await?),
            store,
            publisher,
            policy: settings.deadline_policy(),
            warn_ratio: settings.deadline.warn_ratio,
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
                self.sweep_outboxes(now).await?;
                last_sweep = Some(tokio::time::Instant::now());
            }
        }
    }

    async fn claim_logged(&self, petition: PetitionRecord, now: chrono::DateTime<Utc>) -> Option<(PetitionId, Vec<OutboxMessage>)> {
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
    async fn claim(&self, p: &PetitionRecord, now: chrono::DateTime<Utc>) -> anyhow::Result<Vec<OutboxMessage>> {
        let Some(record) = p.clock else { return Ok(Vec::new()) };
        let clocks = record.clocks();
        let Some(unit) = p.unit.as_ref().and_then(|u| u.parse::<UnitPath>().ok()) else { return Ok(Vec::new()) };
        let version = p.version + 1;
        let mut announcements = Vec::new();
        let update = match clocks.due(now, self.warn_ratio) {
            // next_at was stale (a clock stopped meanwhile): re-index only.
            None => doc! { "$set": { "clock": bson::to_bson(&ClockRecord::new(&clocks, self.warn_ratio))? } },
            Some(Due::Warning(kind)) => {
                let window = clocks.window(kind).expect("due window exists");
                let notice = self.notice(p, kind, &unit, &unit, window.due, None);
                let event = Event::new(&p.id, version, EventType::Warned, now, json!({ "clock": kind, "unit": unit, "due_at": window.due }));
                announcements = vec![
                    OutboxMessage::Escalation { id: format!("{}/warning/{version}", p.id), notice },
                    OutboxMessage::event(event),
                ];
                doc! {
                    "$set": { "clock": bson::to_bson(&ClockRecord::new(&clocks.warned(kind), self.warn_ratio))?, "updated_at": bson::DateTime::now() },
                    "$push": { "outbox": { "$each": bson::to_bson(&announcements)? } },
                }
            }
            Some(Due::RatingExpired) => {
                let t = lifecycle::expire_rating(&super::lifecycle::state(p, &unit));
                let change = transition::Change { petition: p, unit: &unit, transition: &t, actor: None, command_id: None, now };
                let (update, written) = transition::write(&change, &self.registry, self.warn_ratio)?;
                announcements = written;
                update
            }
            Some(Due::Breach(kind)) => {
                let days = p.working_days();
                let esc = escalate(&clocks, kind, &unit, now, &self.policy, days);
                let notice = self.notice(p, kind, &unit, &esc.to_unit, esc.due_at, Some(now));
                let responsible = notice.responsible.clone();
                let deadlines = crate::domain::Deadlines {
                    respond_by: esc.clocks.respond.map_or(now, |w| w.due),
                    resolve_by: esc.clocks.resolve.map_or(now, |w| w.due),
                };
                let handler = self.registry.unit(&esc.to_unit).and_then(|u| u.handler().cloned());
                let assignment = super::assignment(p, &esc.to_unit, deadlines, handler);
                let details = json!({ "clock": kind, "from_unit": unit, "to_unit": esc.to_unit, "at_top": esc.at_top, "due_at": esc.due_at, "responsible": responsible });
                let event = Event::new(&p.id, version, EventType::Escalated, now, details);
                announcements = vec![
                    OutboxMessage::Escalation { id: format!("{}/escalation/{version}", p.id), notice },
                    OutboxMessage::dispatch(assignment),
                    OutboxMessage::event(event),
                ];
                let breach = doc! {
                    "clock": bson::to_bson(&kind)?, "unit": unit.as_str(), "responsible": bson::to_bson(&responsible)?,
                    "due_at": bson::DateTime::from(esc.due_at), "breached_at": bson::DateTime::from(now),
                };
                let mut set = doc! {
                        "unit": esc.to_unit.as_str(),
                        "deadlines": { "respond_by": bson::DateTime::from(deadlines.respond_by), "resolve_by": bson::DateTime::from(deadlines.resolve_by) },
                        "clock": bson::to_bson(&ClockRecord::new(&esc.clocks, self.warn_ratio))?,
                        "updated_at": bson::DateTime::now(),
                };
                // Punctuality for the KPI report, unless already known.
                match kind {
                    ClockKind::Respond if p.kpi.responded_on_time.is_none() => set.insert("kpi.responded_on_time", false),
                    ClockKind::Resolve if p.kpi.resolved_on_time.is_none() => set.insert("kpi.resolved_on_time", false),
                    _ => None,
                };
                doc! {
                    "$set": set,
                    "$inc": { "escalation_level": if esc.at_top { 0 } else { 1 }, "dispatch_attempts": 1, "escalations": 1 },
                    "$push": { "outbox": { "$each": bson::to_bson(&announcements)? }, "breaches": breach },
                }
            }
        };
        let claimed = self.store.update_if_version(p.id.as_str(), p.version, update).await?;
        Ok(if claimed { announcements } else { Vec::new() })
    }

    /// Publishes what a worker wrote to an outbox but did not get to
    /// publish (it crashed in between): entries untouched for a while.
    async fn sweep_outboxes(&self, now: chrono::DateTime<Utc>) -> anyhow::Result<()> {
        for p in self.store.stale_outboxes(now - chrono::Duration::seconds(STALE_OUTBOX_SECS), BATCH).await? {
            tracing::warn!(petition_id = %p.id, pending = p.outbox.len(), "publishing a stale outbox");
            outbox::flush(&self.store, &self.publisher, &p.id, &p.outbox).await?;
        }
        Ok(())
    }

    fn notice(
        &self,
        p: &PetitionRecord,
        kind: ClockKind,
        from: &UnitPath,
        to: &UnitPath,
        due_at: chrono::DateTime<Utc>,
        breached_at: Option<chrono::DateTime<Utc>>,
    ) -> EscalationNotice {
        EscalationNotice {
            petition_id: p.id.clone(),
            reason: match kind {
                ClockKind::Respond => EscalationReason::ResponseOverdue,
                ClockKind::Resolve => EscalationReason::ResolutionOverdue,
            },
            from_unit: from.clone(),
            to_unit: to.clone(),
            to_level: to.level(),
            due_at,
            breached_at,
            responsible: self.registry.unit(from).and_then(|u| u.handler().cloned()),
        }
    }
}
