//! What the benchmark sends and writes: intake messages in the three
//! channels' mix, and the documents the pipeline writes per petition.

use chrono::Utc;
use mongodb::bson::{self, Document};
use serde_json::json;

use crate::domain::{
    Category, Channel, Citizen, Event, EventType, NewPetition, Outbound, OutboundKind, PetitionId, ReceiptTime, Recipient, RoutingHints,
    Source,
};
use crate::store::{OutboxMessage, PetitionRecord};

const TEXTS: [&str; 4] =
    ["团岛二路路灯不亮，晚上很危险", "楼道里堆放杂物，存在消防隐患", "小区门口占道经营，影响通行", "下水道堵塞，污水外溢"];

/// The i-th intake message of a run: (routing key, dedup key, body).
pub fn intake(run: u32, i: usize) -> (&'static str, String, Vec<u8>) {
    let text = TEXTS[i % TEXTS.len()];
    let now = Utc::now();
    match i % 3 {
        0 => {
            let msg_id = format!("{run}{i:08}");
            let xml = format!(
                "<xml><ToUserName><![CDATA[gh_nuannan]]></ToUserName><FromUserName><![CDATA[o-bench-{run}-{i}]]></FromUserName>\
                 <CreateTime>{}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{text}]]></Content>\
                 <MsgId>{msg_id}</MsgId></xml>",
                now.timestamp()
            );
            ("wechat", msg_id, xml.into_bytes())
        }
        1 => {
            let key = format!("bench-{run}-{i}");
            let body = json!({
                "request_id": key, "submitted_at": now.to_rfc3339(), "user": { "id": format!("u-{run}-{i}"), "phone": "13812345678" },
                "content": text, "category": "livelihood", "location": { "lng": 120.3826, "lat": 36.0671 },
            });
            ("app", key, body.to_string().into_bytes())
        }
        _ => {
            let key = format!("BENCH-{run}-{i:06}");
            let body = json!({
                "order_no": key, "created_at": now.to_rfc3339(), "caller": { "phone": "13912345678" },
                "content": text, "street": "八大峡街道", "community": "团岛社区", "urgency": "normal",
            });
            ("hotline", key, body.to_string().into_bytes())
        }
    }
}

/// An App livelihood petition in 团岛, as intake parses it.
pub fn new_petition(key: String, n: u32, received: chrono::DateTime<Utc>) -> NewPetition {
    NewPetition {
        source: Source { channel: Channel::App, message_id: key },
        citizen: Citizen { id: format!("u-{n}"), phone: Some("13812345678".into()), name: None },
        content: TEXTS[n as usize % TEXTS.len()].into(),
        received: ReceiptTime { at: received, note: None },
        category: Some(Category::Livelihood),
        subcategory: None,
        classification: None,
        urgent: false,
        time_limit_days: None,
        point: None,
        address: Some("团岛二路".into()),
        hints: RoutingHints::default(),
        images: Vec::new(),
    }
}

/// The petition document intake writes, with its outbox (event + receipt).
pub fn petition(run: &str, n: u32) -> anyhow::Result<(PetitionRecord, Document)> {
    let now = Utc::now();
    let new = new_petition(format!("raw-{run}-{n}"), n, now);
    let id = PetitionId::new(now.date_naive(), n);
    let mut record = PetitionRecord::new(id.clone(), new, now);
    let event = Event::new(&id, 1, EventType::Received, now, json!({ "channel": "app" }));
    let receipt = Outbound {
        petition_id: id.clone(),
        channel: Channel::App,
        recipient: Recipient::of(&record.source, &record.citizen),
        kind: OutboundKind::Receipt,
        text: crate::domain::receipt_text(&id, 4),
        at: now,
    };
    record.outbox = vec![OutboxMessage::event(event), OutboxMessage::outbound(receipt, 1)];
    let doc = bson::to_document(&record)?;
    Ok((record, doc))
}

/// The `events` document of an event.
pub fn event_doc(id: &PetitionId, version: i64, kind: EventType) -> Document {
    bson::doc! {
        "_id": format!("{id}/v{version}"), "petition_id": id.as_str(), "type": kind.as_str(),
        "at": bson::DateTime::now(), "data": { "unit": "shinan.badaxia.tuandao" },
    }
}
