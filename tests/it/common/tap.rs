//! A test-only queue bound to an exchange with `#`: it sees a copy of every
//! message published there, so tests can count and validate them.

use std::sync::Mutex;

use lapin::options::{BasicAckOptions, BasicGetOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;

#[derive(Debug, Clone)]
pub struct Tapped {
    pub routing_key: String,
    pub message_id: Option<String>,
    /// The JSON body (`null` for an XML one: WeChat intake).
    pub body: serde_json::Value,
    pub raw: Vec<u8>,
}

pub struct Tap {
    channel: lapin::Channel,
    queue: String,
    seen: Mutex<Vec<Tapped>>,
}

impl Tap {
    pub async fn open(conn: &lapin::Connection, exchange: &str) -> Tap {
        let channel = conn.create_channel().await.unwrap();
        let queue = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() },
                FieldTable::default(),
            )
            .await
            .unwrap()
            .name()
            .to_string();
        channel
            .queue_bind(queue.as_str().into(), exchange.into(), "#".into(), QueueBindOptions::default(), FieldTable::default())
            .await
            .unwrap();
        Tap { channel, queue, seen: Mutex::new(Vec::new()) }
    }

    /// Everything seen so far.
    pub async fn messages(&self) -> Vec<Tapped> {
        while let Some(msg) = self.channel.basic_get(self.queue.as_str().into(), BasicGetOptions::default()).await.unwrap() {
            let d = msg.delivery;
            let xml = d.properties.content_type().as_ref().is_some_and(|c| c.as_str() == "application/xml");
            let body = if xml { serde_json::Value::Null } else { serde_json::from_slice(&d.data).expect("published messages are JSON") };
            let message_id = d.properties.message_id().as_ref().map(|s| s.to_string());
            d.ack(BasicAckOptions::default()).await.unwrap();
            self.seen.lock().unwrap().push(Tapped { routing_key: d.routing_key.to_string(), message_id, body, raw: d.data.clone() });
        }
        self.seen.lock().unwrap().clone()
    }

    /// Waits until a message matching `pred` has been seen.
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&Tapped) -> bool) -> Tapped {
        super::wait_for(what, || async { self.messages().await.into_iter().find(|m| pred(m)) }).await
    }
}
