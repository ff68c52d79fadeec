//! Sending a command and waiting for its reply (`docs/contract.md` §7), as
//! a handler app, the demo or the console does: direct reply-to, publisher
//! confirms, `mandatory`, and the AMQP `user_id` of the principal acting.

use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use lapin::BasicProperties;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions};
use serde_json::{Value, json};

const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";
/// How long a reply may take before the caller is told.
const REPLY_TIMEOUT: Duration = Duration::from_secs(15);

/// One connection sending commands. A login with the `impersonator` tag
/// (the console, as the pipeline's user) may send as any principal;
/// any other login only as itself (RabbitMQ refuses another `user_id`).
pub struct CommandSender {
    conn: lapin::Connection,
    channel: lapin::Channel,
    replies: lapin::Consumer,
    exchange: String,
}

impl CommandSender {
    pub async fn open(urls: &str, name: &str, namespace: &str) -> anyhow::Result<CommandSender> {
        let conn = super::connect(urls, name).await?;
        let channel = conn.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        // Direct reply-to: consume (no-ack) before publishing, on the same channel.
        let no_ack = BasicConsumeOptions { no_ack: true, ..Default::default() };
        let replies = channel.basic_consume(DIRECT_REPLY_TO.into(), "replies".into(), no_ack, Default::default()).await?;
        Ok(CommandSender { conn, channel, replies, exchange: format!("{namespace}.commands") })
    }

    pub fn is_open(&self) -> bool {
        self.channel.status().connected()
    }

    /// Sends `petition.<command>` as `user` and waits for the lifecycle's reply.
    pub async fn send(
        &mut self,
        user: &str,
        command_id: &str,
        command: &str,
        petition_id: &str,
        actor: Value,
        data: Value,
    ) -> anyhow::Result<Value> {
        let correlation = uuid::Uuid::new_v4().to_string();
        let body = json!({
            "command_id": command_id, "petition_id": petition_id, "actor": actor,
            "at": chrono::Utc::now().to_rfc3339(), "data": data,
        });
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_user_id(user.into())
            .with_reply_to(DIRECT_REPLY_TO.into())
            .with_correlation_id(correlation.as_str().into());
        let mandatory = BasicPublishOptions { mandatory: true, ..Default::default() };
        let key = format!("petition.{command}");
        self.channel
            .basic_publish(self.exchange.as_str().into(), key.as_str().into(), mandatory, &serde_json::to_vec(&body)?, props)
            .await?
            .await?;
        let reply = tokio::time::timeout(REPLY_TIMEOUT, async {
            while let Some(delivery) = self.replies.next().await {
                let delivery = delivery?;
                if delivery.properties.correlation_id().as_ref().is_some_and(|c| c.as_str() == correlation) {
                    return Ok(serde_json::from_slice(&delivery.data)?);
                }
            }
            anyhow::bail!("the reply consumer ended")
        });
        reply.await.with_context(|| format!("no reply to {key} within {REPLY_TIMEOUT:?}"))?
    }

    pub async fn close(self) {
        let _ = self.conn.close(200, "done".into()).await;
    }
}
