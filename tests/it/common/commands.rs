//! Handler apps, reviewers, dispatchers and citizens' channels as the
//! lifecycle sees them: commands on `{ns}.commands` with `user_id` set to
//! the sender's principal and the answer on direct reply-to, matched by
//! `correlation_id`.
//!
//! The harness's broker login is an impersonator (`scripts/services.sh`
//! tags it), as the gateway and the console are: it may set any `user_id`.
//! Each sender's principal is added to the test's store on first use; the
//! identity tests use real, non-impersonating users instead.

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use lapin::BasicProperties;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use mongodb::bson::doc;
use nuannan::identity::{Principal, Principals};
use nuannan::store::Store;
use serde_json::{Value, json};

const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";

pub struct Commander {
    channel: lapin::Channel,
    store: Store,
    exchange: String,
    replies: Arc<Mutex<Vec<(String, Value)>>>,
}

impl Commander {
    /// The harness's own commander (an impersonator: any `user_id`).
    pub async fn open(app: &super::TestApp) -> Commander {
        Self::on(&app.conn, app.store.clone(), &app.settings.namespace).await
    }

    /// A commander on `conn`, logged in as whoever `conn` is.
    pub async fn on(conn: &lapin::Connection, store: Store, namespace: &str) -> Commander {
        let channel = conn.create_channel().await.unwrap();
        channel.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
        // Direct reply-to: consume (no-ack) before publishing, on the same channel.
        let mut consumer = channel
            .basic_consume(
                DIRECT_REPLY_TO.into(),
                "replies".into(),
                BasicConsumeOptions { no_ack: true, ..Default::default() },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let replies = Arc::new(Mutex::new(Vec::new()));
        let sink = replies.clone();
        tokio::spawn(async move {
            while let Some(Ok(d)) = consumer.next().await {
                let correlation = d.properties.correlation_id().as_ref().map(|c| c.to_string()).unwrap_or_default();
                let body: Value = serde_json::from_slice(&d.data).expect("replies are JSON");
                sink.lock().unwrap().push((correlation, body));
            }
        });
        Commander { channel, store, exchange: format!("{namespace}.commands"), replies }
    }

    /// Sends `petition.<command>` as the principal `actor` stands for and waits for its reply.
    pub async fn send(&self, command: &str, command_id: &str, petition_id: &str, actor: Value, data: Value) -> Value {
        let user = self.principal_for(&actor, petition_id).await;
        self.send_as(Some(&user), &format!("petition.{command}"), body(command_id, petition_id, actor, data)).await
    }

    /// Sends a raw body as the district's reviewer.
    pub async fn send_raw(&self, routing_key: &str, body: Vec<u8>) -> Value {
        let user = self.principal_for(&reviewer(), "").await;
        self.send_as(Some(&user), routing_key, body).await
    }

    /// Sends with `user_id` set to `user` (or none) and waits for the reply.
    pub async fn send_as(&self, user: Option<&str>, routing_key: &str, body: Vec<u8>) -> Value {
        let correlation_id = self.publish_as(user, routing_key, body).await.expect("the broker takes the command");
        super::wait_for(&format!("reply to {routing_key}"), || async {
            let replies = self.replies.lock().unwrap();
            replies.iter().find(|(c, _)| *c == correlation_id).map(|(_, v)| v.clone())
        })
        .await
    }

    /// Publishes and waits for the broker's confirm; the error is the
    /// broker's refusal (the channel is closed then).
    pub async fn publish_as(&self, user: Option<&str>, routing_key: &str, body: Vec<u8>) -> Result<String, lapin::Error> {
        let correlation_id = uuid::Uuid::new_v4().to_string();
        let mut props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_reply_to(DIRECT_REPLY_TO.into())
            .with_correlation_id(correlation_id.as_str().into());
        if let Some(user) = user {
            props = props.with_user_id(user.into());
        }
        self.channel
            .basic_publish(
                self.exchange.as_str().into(),
                routing_key.into(),
                BasicPublishOptions { mandatory: true, ..Default::default() },
                &body,
                props,
            )
            .await?
            .await?;
        Ok(correlation_id)
    }

    /// The principal a test actor stands for, stored if new: a handler of
    /// its unit, the district's dispatcher or reviewer, or for a citizen the
    /// adapter of the petition's channel.
    pub async fn principal_for(&self, actor: &Value, petition_id: &str) -> String {
        let unit = actor["unit"].as_str().unwrap_or("shinan");
        let (user, toml) = match actor["role"].as_str().unwrap() {
            "handler" => {
                let user = format!("h-{}", unit.replace('.', "_"));
                (user.clone(), format!("user = \"{user}\"\nkind = \"handler\"\nunit = \"{unit}\""))
            }
            "dispatcher" => ("dispatcher".to_owned(), "user = \"dispatcher\"\nkind = \"dispatcher\"\nunit = \"shinan\"".to_owned()),
            "reviewer" => ("reviewer".to_owned(), "user = \"reviewer\"\nkind = \"reviewer\"".to_owned()),
            _ => {
                let petition = self.store.database().collection::<mongodb::bson::Document>("petitions");
                let channel = match petition.find_one(doc! { "_id": petition_id }).await.unwrap() {
                    Some(p) => p.get_document("source").unwrap().get_str("channel").unwrap().to_owned(),
                    None => "app".to_owned(),
                };
                let user = format!("adapter-{channel}");
                (user.clone(), format!("user = \"{user}\"\nkind = \"adapter\"\nchannel = \"{channel}\""))
            }
        };
        let principal = principal(&toml);
        self.store
            .database()
            .collection::<Principal>(nuannan::store::PRINCIPALS)
            .replace_one(doc! { "_id": &user }, &principal)
            .upsert(true)
            .await
            .unwrap();
        user
    }
}

/// A command body.
pub fn body(command_id: &str, petition_id: &str, actor: Value, data: Value) -> Vec<u8> {
    let body = json!({
        "command_id": command_id, "petition_id": petition_id, "actor": actor,
        "at": chrono::Utc::now().to_rfc3339(), "data": data,
    });
    serde_json::to_vec(&body).unwrap()
}

/// One principal from the body of a `[[principal]]` table.
pub fn principal(toml: &str) -> Principal {
    Principals::parse(&format!("[[principal]]\n{toml}")).unwrap().principals.iter().next().unwrap().clone()
}

pub fn handler(unit: &str) -> Value {
    json!({ "id": format!("staff@{unit}"), "role": "handler", "unit": unit })
}

pub fn reviewer() -> Value {
    json!({ "id": "reviewer-1", "role": "reviewer", "unit": "shinan" })
}

pub fn dispatcher() -> Value {
    json!({ "id": "dispatcher-1", "role": "dispatcher", "unit": "shinan" })
}

pub fn citizen(id: &str) -> Value {
    json!({ "id": id, "role": "citizen" })
}
