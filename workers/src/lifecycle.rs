//! The `lifecycle` role: commands from `{ns}.commands`, authorized by
//! their broker-authenticated sender, through the pure state machine, written at the petition's version with the command id in
//! the same write (so a repeat applies once), announced from the outbox,
//! answered on `reply_to`.

use std::sync::Arc;

use chrono::Utc;
use lapin::message::Delivery;

use super::identity::Directory;
use super::outbox;
use super::rules::{Rules, Shared};
use nuannan::bus::{self, Failure, Handler, Outcome, PublishError, Publisher};
use nuannan::config::Settings;
use nuannan::domain::{Command, CommandReply};
use nuannan::identity::Principal;
use nuannan::lifecycle::{self, Refusal};
use nuannan::store::{Changed, Decision, RefusedCommand, Store};

pub struct LifecycleWorker {
    namespace: String,
    store: Store,
    principals: Arc<Directory>,
    publisher: Publisher,
    rules: Rules,
}

impl Handler for LifecycleWorker {
    async fn handle(&self, delivery: &Delivery) -> Outcome {
        // RabbitMQ refuses a `user_id` other than the connection's login
        // (unless the login is an impersonator): this is who sent it.
        let user_id = delivery.properties.user_id().as_ref().map(|u| u.as_str());
        let reply = match Command::parse(delivery.routing_key.as_str(), &delivery.data) {
            Ok(cmd) => {
                bus::record_petition(&cmd.petition_id);
                self.authorized(&cmd, user_id).await
            }
            Err(bad) => self.refuse_unreadable(bad, user_id).await,
        };
        let reply = match reply {
            Ok(r) => r,
            Err(e) => return Outcome::Retry(e),
        };
        let Some(reply_to) = delivery.properties.reply_to() else { return Outcome::Ack };
        if !lifecycle::reply_allowed(reply_to.as_str(), user_id, &self.namespace) {
            tracing::warn!(reply_to = reply_to.as_str(), user_id, reason = "reply_to_not_allowed", "reply not sent");
            return Outcome::Ack;
        }
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

/// What the machine made of a command against the petition as read.
enum Verdict {
    /// Applied now, or before (a redelivery answers the same).
    Done(nuannan::domain::Status),
    Refused(Refusal),
}

impl LifecycleWorker {
    pub fn new(settings: &Settings, store: Store, publisher: Publisher, shared: &Shared) -> Self {
        LifecycleWorker {
            namespace: settings.namespace.clone(),
            rules: Rules::new(settings, shared),
            principals: shared.principals.clone(),
            store,
            publisher,
        }
    }

    /// Authorizes the sender (before anything about the petition), then executes.
    async fn authorized(&self, cmd: &Command, user_id: Option<&str>) -> Result<CommandReply, Failure> {
        let found = match user_id {
            Some(user) => self.principals.get(user).await?,
            None => None,
        };
        match lifecycle::sender(user_id, found.as_ref(), &cmd.action) {
            Ok(sender) => self.execute(cmd, sender).await,
            Err(refusal) => self.refuse(cmd, user_id, refusal).await,
        }
    }

    async fn execute(&self, cmd: &Command, sender: &Principal) -> Result<CommandReply, Failure> {
        if let Some(reply) = self.store.remembered_reply(Some(cmd.petition_id.as_str()), &cmd.id).await? {
            return Ok(reply);
        }
        let actor = Some(lifecycle::audit_actor(sender, cmd));
        let changed = self
            .store
            .change_petition(&cmd.petition_id, |p| {
                let Some(unit) = &p.unit else { return Decision::Keep(Verdict::Refused(Refusal::IllegalTransition)) };
                let state = lifecycle::state(p, unit);
                // The sender's scope first: a command id is no way into a petition.
                if let Err(refusal) = lifecycle::in_scope(sender, cmd, &state) {
                    return Decision::Keep(Verdict::Refused(refusal));
                }
                if let Some(done) = p.commands.iter().find(|c| c.id == cmd.id) {
                    return Decision::Keep(Verdict::Done(done.status));
                }
                let now = Utc::now();
                match self.rules.at(now, |env| lifecycle::apply(&state, cmd, sender, env)) {
                    Ok(t) => {
                        let change = self.rules.change(p, unit, now, &t, actor.clone(), Some(&cmd.id));
                        Decision::write(change, Verdict::Done(t.status))
                    }
                    Err(refusal) => Decision::Keep(Verdict::Refused(refusal)),
                }
            })
            .await?;
        let user_id = Some(sender.user.as_str());
        match changed {
            Changed::NotFound => self.refuse(cmd, user_id, Refusal::NotFound).await,
            Changed::Applied { value: Verdict::Refused(refusal), .. } | Changed::Unchanged { value: Verdict::Refused(refusal), .. } => {
                self.refuse(cmd, user_id, refusal).await
            }
            Changed::Applied { petition, outbox: announcements, value: Verdict::Done(status) } => {
                outbox::flush(&self.store, &self.publisher, &petition.id, &announcements).await?;
                tracing::info!(command = cmd.action.name(), ?status, "command applied");
                Ok(CommandReply::applied(status))
            }
            Changed::Unchanged { petition, value: Verdict::Done(status) } => {
                // Applied before: finish its announcements in case the first delivery could not.
                outbox::flush(&self.store, &self.publisher, &petition.id, &petition.outbox).await?;
                Ok(CommandReply::applied(status))
            }
        }
    }

    /// Records the refusal with its reason and answers it. Refusals of
    /// the sender itself are kept per sender (see [`RefusedCommand::sender_key`]).
    async fn refuse(&self, cmd: &Command, user_id: Option<&str>, refusal: Refusal) -> Result<CommandReply, Failure> {
        tracing::info!(command = cmd.action.name(), user_id, error = refusal.code(), "command refused");
        let petition = Some(cmd.petition_id.as_str());
        let key = match refusal {
            Refusal::Unauthenticated | Refusal::Forbidden | Refusal::WrongUnit | Refusal::NotCitizen => {
                RefusedCommand::sender_key(petition, &cmd.id, user_id)
            }
            _ => RefusedCommand::key(petition, &cmd.id),
        };
        Ok(self
            .store
            .remember_refusal(&RefusedCommand {
                key,
                command_id: cmd.id.clone(),
                petition_id: Some(cmd.petition_id.to_string()),
                command: cmd.action.name().to_owned(),
                actor: serde_json::to_value(&cmd.actor).ok(),
                user_id: user_id.map(str::to_owned),
                at: Utc::now().into(),
                reply: CommandReply::refused(refusal.code()),
                detail: Some(refusal.to_string()),
            })
            .await?)
    }

    async fn refuse_unreadable(&self, bad: nuannan::domain::BadCommand, user_id: Option<&str>) -> Result<CommandReply, Failure> {
        tracing::info!(error = bad.code, detail = %nuannan::telemetry::mask_text(&bad.detail), "unreadable command refused");
        let reply = CommandReply::refused(bad.code);
        let Some(command_id) = bad.command_id else { return Ok(reply) };
        Ok(self
            .store
            .remember_refusal(&RefusedCommand {
                key: RefusedCommand::sender_key(None, &command_id, user_id),
                command_id,
                petition_id: None,
                command: String::new(),
                actor: None,
                user_id: user_id.map(str::to_owned),
                at: Utc::now().into(),
                reply,
                detail: Some(bad.detail),
            })
            .await?)
    }
}
