//! A handler app, reviewer or citizen channel as the lifecycle sees it:
//! commands on `{ns}.commands` with `reply_to` its own reply queue
//! (`{ns}.reply.<user>.…`) and `user_id` its login, answers matched by
//! `correlation_id`.

use std::sync::Mutex;

use lapin::BasicProperties;
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use serde_json::{Value, json};

pub struct Commander {
    channel: lapin::Channel,
    user: String,
    exchange: String,
    reply_queue: String,
    replies: Mutex<Vec<(String, Value)>>,
}

impl Commander {
    /// `user` is the connection's login (RabbitMQ refuses any other `user_id`).
    pub async fn open(conn: &lapin::Connection, namespace: &str, user: &str) -> Commander {
        let channel = conn.create_channel().await.unwrap();
        channel.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
        let name = format!("{namespace}.reply.{user}.{}", uuid::Uuid::new_v4().simple());
        let reply_queue = channel
            .queue_declare(
                name.as_str().into(),
                QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() },
                FieldTable::default(),
            )
            .await
            .unwrap()
            .name()
            .to_string();
        Commander {
            channel,
            user: user.to_owned(),
            exchange: format!("{namespace}.commands"),
            reply_queue,
            replies: Mutex::new(Vec::new()),
        }
    }

    /// Sends `petition.<command>` and waits for its reply.
    pub async fn send(&self, command: &str, command_id: &str, petition_id: &str, actor: Value, data: Value) -> Value {
        let body = json!({
            "command_id": command_id, "petition_id": petition_id, "actor": actor,
            "at": chrono::Utc::now().to_rfc3339(), "data": data,
        });
        self.send_raw(&format!("petition.{command}"), serde_json::to_vec(&body).unwrap()).await
    }

    pub async fn send_raw(&self, routing_key: &str, body: Vec<u8>) -> Value {
        let correlation_id = uuid::Uuid::new_v4().to_string();
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_reply_to(self.reply_queue.as_str().into())
            .with_user_id(self.user.as_str().into())
            .with_correlation_id(correlation_id.as_str().into());
        self.channel
            .basic_publish(
                self.exchange.as_str().into(),
                routing_key.into(),
                BasicPublishOptions { mandatory: true, ..Default::default() },
                &body,
                props,
            )
            .await
            .unwrap()
            .await
            .unwrap();
        super::wait_for(&format!("reply to {routing_key}"), || async {
            self.drain().await;
            let replies = self.replies.lock().unwrap();
            replies.iter().find(|(c, _)| *c == correlation_id).map(|(_, v)| v.clone())
        })
        .await
    }

    async fn drain(&self) {
        while let Some(msg) = self.channel.basic_get(self.reply_queue.as_str().into(), BasicGetOptions::default()).await.unwrap() {
            let d = msg.delivery;
            let correlation = d.properties.correlation_id().as_ref().map(|c| c.to_string()).unwrap_or_default();
            let body: Value = serde_json::from_slice(&d.data).expect("replies are JSON");
            d.ack(BasicAckOptions::default()).await.unwrap();
            self.replies.lock().unwrap().push((correlation, body));
        }
    }
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
