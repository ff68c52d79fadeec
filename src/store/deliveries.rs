//! `deliveries`: one document per outbound message (`_id` = its message
//! id), with every attempt; the App's messages also carry the feed's cursor.

use futures::TryStreamExt;
use mongodb::bson::{DateTime, Document, doc};
use mongodb::options::ReturnDocument;
use serde::{Deserialize, Serialize};

use super::{COUNTERS, Result, Store, StoreError};
use crate::deliver::{AppNotification, Status};
use crate::domain::{Channel, Outbound};
use crate::report::DeliveryCounts;

pub const DELIVERIES: &str = "deliveries";

/// The counter behind the App feed's cursors.
const FEED_COUNTER: &str = "feed:app";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub at: DateTime,
    pub code: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    #[serde(rename = "_id")]
    pub message_id: String,
    pub petition_id: String,
    pub channel: Channel,
    pub kind: String,
    pub status: Status,
    #[serde(default)]
    pub attempts: Vec<AttemptRecord>,
    /// Why it ended `failed` or `undeliverable`.
    #[serde(default)]
    pub reason: Option<String>,
    /// The openid, App user id or phone the message is for.
    pub recipient: String,
    pub text: String,
    /// When the pipeline wrote the message.
    pub at: DateTime,
    /// App messages only: the position in `GET /app/notifications`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<i64>,
}

impl DeliveryRecord {
    pub fn notification(&self) -> Option<AppNotification> {
        Some(AppNotification {
            cursor: self.cursor?,
            message_id: self.message_id.clone(),
            petition_id: self.petition_id.clone(),
            user_id: self.recipient.clone(),
            kind: self.kind.clone(),
            text: self.text.clone(),
            at: self.at.to_chrono(),
        })
    }
}

impl Store {
    /// The message's record, created `retrying` with no attempt the first time.
    pub async fn open_delivery(&self, message_id: &str, m: &Outbound) -> Result<DeliveryRecord> {
        let fresh = DeliveryRecord {
            message_id: message_id.to_owned(),
            petition_id: m.petition_id.as_str().to_owned(),
            channel: m.channel,
            kind: m.kind.as_str().to_owned(),
            status: Status::Retrying,
            attempts: Vec::new(),
            reason: None,
            recipient: m.recipient.id.clone(),
            text: m.text.clone(),
            at: m.at.into(),
            cursor: None,
        };
        let mut insert = mongodb::bson::to_document(&fresh)?;
        insert.remove("_id");
        self.collection::<DeliveryRecord>(DELIVERIES)
            .find_one_and_update(doc! { "_id": message_id }, doc! { "$setOnInsert": insert })
            .upsert(true)
            .return_document(ReturnDocument::After)
            .await?
            .ok_or_else(|| StoreError::Shape(format!("delivery {message_id}: upsert returned nothing")))
    }

    /// Records an attempt and the status it leaves the message in.
    pub async fn record_attempt(&self, message_id: &str, attempt: &AttemptRecord, status: Status, reason: Option<&str>) -> Result<()> {
        let attempt = mongodb::bson::to_bson(attempt)?;
        self.collection::<Document>(DELIVERIES)
            .update_one(
                doc! { "_id": message_id },
                doc! { "$push": { "attempts": attempt }, "$set": { "status": status.as_str(), "reason": reason } },
            )
            .await?;
        Ok(())
    }

    pub async fn delivery(&self, message_id: &str) -> Result<Option<DeliveryRecord>> {
        Ok(self.collection::<DeliveryRecord>(DELIVERIES).find_one(doc! { "_id": message_id }).await?)
    }

    /// The message's cursor in the App feed, allocated the first time
    /// (callers that read the record already skip a message that has one).
    /// Callers allocate one at a time (see the `deliver` role), so a cursor
    /// is visible before the next is handed out and a reader that has seen
    /// cursor n never misses one below it.
    pub async fn feed_cursor(&self, message_id: &str) -> Result<i64> {
        let counter = self
            .collection::<Document>(COUNTERS)
            .find_one_and_update(doc! { "_id": FEED_COUNTER }, doc! { "$inc": { "seq": 1_i64 } })
            .upsert(true)
            .return_document(ReturnDocument::After)
            .await?
            .and_then(|d| d.get_i64("seq").ok())
            .ok_or_else(|| StoreError::Shape("feed counter: no seq".into()))?;
        let set = self
            .collection::<Document>(DELIVERIES)
            .update_one(doc! { "_id": message_id, "cursor": { "$exists": false } }, doc! { "$set": { "cursor": counter } })
            .await?;
        if set.modified_count == 1 {
            return Ok(counter);
        }
        // It had one already (allocated before a crash): that one stands, the new number is skipped.
        self.delivery(message_id)
            .await?
            .and_then(|d| d.cursor)
            .ok_or_else(|| StoreError::Shape(format!("delivery {message_id}: no cursor")))
    }

    /// The App feed after `cursor`, oldest first.
    pub async fn notifications_after(&self, cursor: i64, limit: i64) -> Result<Vec<AppNotification>> {
        let records: Vec<DeliveryRecord> = self
            .collection::<DeliveryRecord>(DELIVERIES)
            .find(doc! { "channel": Channel::App.as_str(), "cursor": { "$gt": cursor } })
            .sort(doc! { "cursor": 1 })
            .limit(limit)
            .await?
            .try_collect()
            .await?;
        Ok(records.iter().filter_map(DeliveryRecord::notification).collect())
    }

    /// Every channel's messages written in `[from, to)`, by status.
    pub async fn delivery_counts(&self, from: DateTime, to: DateTime) -> Result<Vec<(Channel, DeliveryCounts)>> {
        let pipeline = [
            doc! { "$match": { "at": { "$gte": from, "$lt": to } } },
            doc! { "$group": { "_id": { "channel": "$channel", "status": "$status", "kind": "$kind" }, "n": { "$sum": 1 } } },
        ];
        let groups: Vec<Document> = self.collection::<Document>(DELIVERIES).aggregate(pipeline).await?.try_collect().await?;
        let mut counts: Vec<(Channel, DeliveryCounts)> = Channel::PUSHED.iter().map(|c| (*c, DeliveryCounts::default())).collect();
        for g in groups {
            let key = g.get_document("_id").ok();
            let field = |k: &str| key.and_then(|d| d.get_str(k).ok()).unwrap_or_default().to_owned();
            let n = g.get_i32("n").map(i64::from).or_else(|_| g.get_i64("n")).unwrap_or(0) as u64;
            let Some((_, c)) = counts.iter_mut().find(|(ch, _)| ch.as_str() == field("channel")) else { continue };
            let status = field("status");
            c.messages += n;
            match status.as_str() {
                "delivered" => c.delivered += n,
                "retrying" => c.retrying += n,
                "failed" => c.failed += n,
                "undeliverable" => c.undeliverable += n,
                _ => {}
            }
            if field("kind") == "result" {
                c.results += n;
                if status == "delivered" {
                    c.results_delivered += n;
                }
            }
        }
        Ok(counts)
    }
}
