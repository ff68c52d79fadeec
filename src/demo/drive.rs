//! The demo's people: 八大峡街道's handler app accepts and resolves a petition and
//! the district reviewer approves it, each logged in to the broker as its
//! own user (`docker/principals.toml`, passwords from `NUANNAN_PASSWORD_<USER>`
//! as `./scripts/demo` sets them), so the result goes back to the citizen.

use anyhow::Context;
use serde_json::Value;

use crate::bus::CommandSender;
use crate::config::Settings;
use crate::identity::password_var;

/// A program that sends commands as one broker user.
pub struct Sender {
    commands: CommandSender,
    user: String,
}

impl Sender {
    pub async fn login(settings: &Settings, user: &str) -> anyhow::Result<Sender> {
        let password = std::env::var(password_var(user)).with_context(|| format!("{}: {user}'s broker password", password_var(user)))?;
        let url = with_login(&settings.amqp.url, user, &password).context("amqp.url")?;
        let commands = CommandSender::open(&url, &format!("nuannan-demo-{user}"), &settings.namespace)
            .await
            .with_context(|| format!("logging in as {user}"))?;
        Ok(Sender { commands, user: user.to_owned() })
    }

    /// Sends `petition.<command>` and waits for the lifecycle's reply.
    pub async fn send(&mut self, command: &str, petition_id: &str, actor: Value, data: Value) -> anyhow::Result<Value> {
        let command_id = format!("demo-{}", uuid::Uuid::new_v4());
        self.commands.send(&self.user, &command_id, command, petition_id, actor, data).await
    }

    pub async fn close(self) {
        self.commands.close().await;
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
