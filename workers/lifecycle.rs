//! The `lifecycle` role: commands from `{ns}.commands` through the pure
//! state machine, written at the petition's version with the command id in
//! the same write (so a repeat applies once), announced from the outbox,
//! answered on `reply_to`.

use std::sync::Arc;

use chrono::Utc;
use lapin::message::Delivery;

use super::{outbox, transition};
use crate::bus::{Handler, Outcome, PublishError, Publisher};
use crate::clock::DeadlinePolicy;
use crate::config::Settings;
use crate::domain::{Command, CommandReply, UnitPath};
use crate::lifecycle::{self, Env, Refusal, State};
use crate::routing::Registry;
use crate::store::{PetitionRecord, RefusedCommand, Store};

/// Concurrent changes to one petition (a deadline firing meanwhile) are
/// rare; a few fresh attempts settle them.
const ATTEMPTS: usize = 5;

pub struct LifecycleWorker {
    store: Store,
    publisher: Publisher,
    registry: Arc<Registry>,
    policy: DeadlinePolicy,
    warn_ratio: f64,
    rating_period: chrono::Duration,
}

impl Handler for LifecycleWorker {
    async fn handle(&self, delivery: &Delivery) -> Outcome {
        let reply = match Command::parse(delivery.routing_key.as_str(), &delivery.data) {
            Ok(cmd) => self.execute(&cmd).await,
            Err(bad) => self.refuse_unreadable(bad).await,
        };
        let reply = match reply {
            Ok(r) => r,
            Err(e) => return Outcome::Retry(e),
        };
        let Some(reply_to) = delivery.properties.reply_to() else { return Outcome::Ack };
        let correlation_id = delivery.properties.correlation_id().as_ref().map(|c| c.as_str());
        let body = serde_json::to_vec(&reply).expect("replies serialize");
        match self.publisher.reply(reply_to.as_str(), correlation_id, &body).await {
            Ok(()) => Outcome::Ack,
            // The requester is gone; the effect is stored and a repeat gets the same reply.
            Err(PublishError::Returned { .. }) => {
                tracing::warn!(reply_to = reply_to.as_str(), "reply queue gone; reply dropped");
                Outcome::Ack
            }
            Err(e) => Outcome::Retry(e.into()),
        }
    }
}

impl LifecycleWorker {
    pub async fn new(settings: &Settings, store: Store, publisher: Publisher) -> anyhow::Result<Self> {
        Ok(LifecycleWorker {
            store: store.clone(),
            publisher,
            registry: Arc::new(super::registry(&store).await?),
            policy: settings.deadline_policy(),
            warn_ratio: settings.deadline.warn_ratio,
            rating_period: settings.rating_period(),
        })
    }

    async fn execute(&self, cmd: &Command) -> anyhow::Result<CommandReply> {
        if let Some(reply) = self.store.remembered_reply(&cmd.id).await? {
            return Ok(reply);
        }
        for _ in 0..ATTEMPTS {
            let Some(p) = self.store.petition(&cmd.petition_id).await? else {
                return self.refuse(cmd, Refusal::NotFound).await;
            };
            if let Some(done) = p.commands.iter().find(|c| c.id == cmd.id) {
                // Applied before (a redelivery): finish its announcements, answer the same.
                outbox::flush(&self.store, &self.publisher, &p.id, &p.outbox).await?;
                return Ok(CommandReply::applied(done.status));
            }
            let Some(unit) = p.unit.as_ref().and_then(|u| u.parse::<UnitPath>().ok()) else {
                return self.refuse(cmd, Refusal::IllegalTransition).await;
            };
            let now = Utc::now();
            let exists = |u: &UnitPath| self.registry.unit(u).is_some();
            let env = Env { now, policy: &self.policy, rating_period: self.rating_period, unit_exists: &exists };
            let t = match lifecycle::apply(&state(&p, &unit), cmd, &env) {
                Ok(t) => t,
                Err(refusal) => return self.refuse(cmd, refusal).await,
            };
            let change = transition::Change {
                petition: &p,
                unit: &unit,
                transition: &t,
                actor: serde_json::to_value(&cmd.actor).ok(),
                command_id: Some(&cmd.id),
                now,
            };
            let (update, announcements) = transition::write(&change, &self.registry, self.warn_ratio)?;
            if self.store.update_if_version(p.id.as_str(), p.version, update).await? {
                outbox::flush(&self.store, &self.publisher, &p.id, &announcements).await?;
                tracing::info!(petition_id = %p.id, command = cmd.action.name(), status = ?t.status, "command applied");
                return Ok(CommandReply::applied(t.status));
            }
        }
        anyhow::bail!("petition {} kept changing while applying {}", cmd.petition_id, cmd.id)
    }

    async fn refuse(&self, cmd: &Command, refusal: Refusal) -> anyhow::Result<CommandReply> {
        tracing::info!(petition_id = %cmd.petition_id, command = cmd.action.name(), error = refusal.code(), "command refused");
        self.store
            .remember_refusal(&RefusedCommand {
                command_id: cmd.id.clone(),
                petition_id: Some(cmd.petition_id.to_string()),
                command: cmd.action.name().to_owned(),
                actor: serde_json::to_value(&cmd.actor).ok(),
                at: Utc::now().into(),
                reply: CommandReply::refused(refusal.code()),
                detail: Some(refusal.to_string()),
            })
            .await
    }

    async fn refuse_unreadable(&self, bad: crate::domain::BadCommand) -> anyhow::Result<CommandReply> {
        tracing::info!(error = bad.code, detail = %bad.detail, "unreadable command refused");
        let reply = CommandReply::refused(bad.code);
        let Some(command_id) = bad.command_id else { return Ok(reply) };
        self.store
            .remember_refusal(&RefusedCommand {
                command_id,
                petition_id: None,
                command: String::new(),
                actor: None,
                at: Utc::now().into(),
                reply,
                detail: Some(bad.detail),
            })
            .await
    }
}

/// The machine's view of a stored petition.
pub(super) fn state<'a>(p: &'a PetitionRecord, unit: &'a UnitPath) -> State<'a> {
    let clocks = p.clock.map(|c| c.clocks()).unwrap_or_default();
    let now = Utc::now();
    let deadlines = p.deadlines.as_ref().map_or(
        crate::domain::Deadlines { respond_by: now, resolve_by: now },
        |d| crate::domain::Deadlines { respond_by: d.respond_by.to_chrono(), resolve_by: d.resolve_by.to_chrono() },
    );
    State {
        status: p.status,
        unit,
        citizen_id: &p.citizen.id,
        clocks,
        deadlines,
        working_days: p.working_days(),
        unsatisfied: p.unsatisfied,
    }
}
