//! The demo's people: 八大峡街道's handler app accepts and resolves a petition and
//! the district reviewer approves it, each logged in to the broker as its
//! own user (`docker/principals.toml`, passwords from `NUANNAN_PASSWORD_<USER>`
//! as `./scripts/demo` sets them), so the result goes back to the citizen.

use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use lapin::BasicProperties;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions};
use serde_json::{Value, json};

use crate::config::Settings;
use crate::identity::password_var;

const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// A program that sends commands as one broker user.
pub struct Sender {
    conn: lapin::Connection,
    channel: lapin::Channel,
    replies: lapin::Consumer,
    exchange: String,
    user: String,
}

impl Sender {
    pub async fn login(settings: &Settings, user: &str) -> anyhow::Result<Sender> {
        let password = std::env::var(password_var(user)).with_context(|| format!("{}: {user}'s broker password", password_var(user)))?;
        let url = with_login(&settings.amqp.url, user, &password).context("amqp.url")?;
        let conn = crate::bus::connect(&url, &format!("nuannan-demo-{user}")).await.with_context(|| format!("logging in as {user}"))?;
        let channel = conn.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        // Direct reply-to: consume (no-ack) before publishing, on the same channel.
        let no_ack = BasicConsumeOptions { no_ack: true, ..Default::default() };
        let replies = channel.basic_consume(DIRECT_REPLY_TO.into(), "replies".into(), no_ack, Default::default()).await?;
        Ok(Sender { conn, channel, replies, exchange: format!("{}.commands", settings.namespace), user: user.to_owned() })
    }

    /// Sends `petition.<command>` and waits for the lifecycle's reply.
    pub async fn send(&mut self, command: &str, petition_id: &str, actor: Value, data: Value) -> anyhow::Result<Value> {
        let correlation = uuid::Uuid::new_v4().to_string();
        let body = json!({
            "command_id": format!("demo-{correlation}"), "petition_id": petition_id, "actor": actor,
            "at": chrono::Utc::now().to_rfc3339(), "data": data,
        });
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_user_id(self.user.as_str().into())
            .with_reply_to(DIRECT_REPLY_TO.into())
            .with_correlation_id(correlation.as_str().into());
        let mandatory = BasicPublishOptions { mandatory: true, ..Default::default() };
        let key = format!("petition.{command}");
        self.channel
            .basic_publish(self.exchange.as_str().into(), key.as_str().into(), mandatory, &serde_json::to_vec(&body)?, props)
            .await?
            .await?;
        let reply = tokio::time::timeout(Duration::from_secs(15), async {
            while let Some(delivery) = self.replies.next().await {
                let delivery = delivery?;
                if delivery.properties.correlation_id().as_ref().is_some_and(|c| c.as_str() == correlation) {
                    return Ok(serde_json::from_slice(&delivery.data)?);
                }
            }
            anyhow::bail!("the reply consumer ended")
        });
        reply.await.with_context(|| format!("no reply to {key} within 15 s"))?
    }

    pub async fn close(self) {
        let _ = self.conn.close(200, "demo done".into()).await;
    }
}

/// `amqp://user:pass@host…` with another login.
fn with_login(urls: &str, user: &str, password: &str) -> Option<String> {
    let with = |url: &str| {
        let (scheme, rest) = url.split_once("://")?;
        let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
        Some(format!("{scheme}://{user}:{password}@{host}"))
    };
    let nodes: Option<Vec<String>> = crate::bus::endpoints(urls).into_iter().map(with).collect();
    Some(nodes?.join(","))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_login_replaces_the_urls_own() {
        assert_eq!(
            super::with_login("amqp://guest:guest@127.0.0.1:5672/%2f", "tuandao-app", "pw").unwrap(),
            "amqp://tuandao-app:pw@127.0.0.1:5672/%2f"
        );
        assert_eq!(super::with_login("amqps://mq.example:5671/v", "u", "p").unwrap(), "amqps://u:p@mq.example:5671/v");
        assert_eq!(super::with_login("amqp://a:1/v,amqp://g:g@b:2/v", "u", "p").unwrap(), "amqp://u:p@a:1/v,amqp://u:p@b:2/v");
    }
}
