//! What the console reads (`docs/contract.md` §15): the escalation feed from
//! `events`, the open petitions of a subtree, the review and triage queues,
//! and a petition's deliveries.

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use mongodb::bson::{Document, doc};
use serde::{Deserialize, Serialize};

use super::{DELIVERIES, DeliveryRecord, EVENTS, PETITIONS, PetitionRecord, Result, Store};
use crate::console::OpenPetition;
use crate::domain::{Status, UnitPath};

/// The event types of the live feed.
pub const FEED_TYPES: [&str; 3] = ["escalated", "warned", "hotspot"];

/// One entry of the escalation feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedItem {
    #[serde(rename = "_id")]
    pub id: String,
    pub petition_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(with = "bson::serde_helpers::chrono_datetime_as_bson_datetime")]
    pub at: DateTime<Utc>,
    #[serde(default)]
    pub data: serde_json::Value,
}

impl FeedItem {
    /// The units it concerns: where it came from, where it went, or the unit warned.
    pub fn units(&self) -> impl Iterator<Item = UnitPath> + '_ {
        ["unit", "from_unit", "to_unit"].into_iter().filter_map(|k| self.data[k].as_str()?.parse().ok())
    }

    /// `<at in ms>:<event id>`: the feed is ordered by time, then id.
    pub fn cursor(&self) -> String {
        format!("{}:{}", self.at.timestamp_millis(), self.id)
    }
}

/// A feed cursor: `<ms>:<event id>`.
pub fn parse_cursor(cursor: &str) -> Option<(DateTime<Utc>, String)> {
    let (ms, id) = cursor.split_once(':')?;
    Some((DateTime::from_timestamp_millis(ms.parse().ok()?)?, id.to_owned()))
}

/// Matches unit paths within `root` (the path itself or below it).
fn within(root: &UnitPath) -> Document {
    doc! { "$regex": format!("^{}(\\.|$)", root.as_str().replace('.', "\\.")) }
}

const OPEN: [Status; 6] = [Status::Received, Status::Triage, Status::Assigned, Status::Accepted, Status::Resolved, Status::Reopened];

impl Store {
    /// Feed entries after `after` (time, then id), oldest first.
    pub async fn feed_after(&self, after: Option<&(DateTime<Utc>, String)>, limit: i64) -> Result<Vec<FeedItem>> {
        let mut filter = doc! { "type": { "$in": FEED_TYPES.to_vec() } };
        if let Some((at, id)) = after {
            let at = mongodb::bson::DateTime::from_chrono(*at);
            filter.insert("$or", vec![doc! { "at": { "$gt": at } }, doc! { "at": at, "_id": { "$gt": id } }]);
        }
        let found = self.collection::<FeedItem>(EVENTS).find(filter).sort(doc! { "at": 1, "_id": 1 }).limit(limit).await?;
        Ok(found.try_collect().await?)
    }

    /// The newest feed entries, newest first.
    pub async fn feed_latest(&self, limit: i64) -> Result<Vec<FeedItem>> {
        let found = self
            .collection::<FeedItem>(EVENTS)
            .find(doc! { "type": { "$in": FEED_TYPES.to_vec() } })
            .sort(doc! { "at": -1, "_id": -1 })
            .limit(limit)
            .await?;
        Ok(found.try_collect().await?)
    }

    /// The open petitions held in `root`'s subtree.
    pub async fn open_in(&self, root: &UnitPath) -> Result<Vec<OpenPetition>> {
        #[derive(Deserialize)]
        struct Open {
            unit: UnitPath,
            #[serde(default)]
            grid: Option<UnitPath>,
            status: Status,
            deadlines: Option<super::DeadlinesRecord>,
            escalation_level: i32,
        }
        let found: Vec<Open> = self
            .collection::<Open>(PETITIONS)
            .find(doc! { "status": { "$in": mongodb::bson::to_bson(&OPEN)? }, "unit": within(root) })
            .projection(doc! { "unit": 1, "grid": 1, "status": 1, "deadlines": 1, "escalation_level": 1 })
            .await?
            .try_collect()
            .await?;
        Ok(found
            .into_iter()
            .map(|p| OpenPetition {
                unit: p.unit,
                grid: p.grid,
                status: p.status,
                respond_by: p.deadlines.as_ref().map(|d| d.respond_by.to_chrono()),
                resolve_by: p.deadlines.as_ref().map(|d| d.resolve_by.to_chrono()),
                escalation_level: p.escalation_level,
            })
            .collect())
    }

    /// Petitions in `root`'s subtree with one of `statuses` (every open one
    /// when empty), the longest waiting first.
    pub async fn petitions_in(&self, root: &UnitPath, statuses: &[Status], limit: i64) -> Result<Vec<PetitionRecord>> {
        let statuses = if statuses.is_empty() { &OPEN[..] } else { statuses };
        let found = self
            .collection::<PetitionRecord>(PETITIONS)
            .find(doc! { "status": { "$in": mongodb::bson::to_bson(statuses)? }, "unit": within(root) })
            .sort(doc! { "updated_at": 1 })
            .limit(limit)
            .await?;
        Ok(found.try_collect().await?)
    }

    /// The messages sent to the petition's citizen.
    pub async fn deliveries_of(&self, petition_id: &str) -> Result<Vec<DeliveryRecord>> {
        let found = self.collection::<DeliveryRecord>(DELIVERIES).find(doc! { "petition_id": petition_id }).sort(doc! { "at": 1 }).await?;
        Ok(found.try_collect().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_units_come_from_the_data() {
        let item = FeedItem {
            id: "20261128-000001/v3".into(),
            petition_id: "20261128-000001".into(),
            kind: "escalated".into(),
            at: DateTime::from_timestamp_millis(1_764_300_000_123).unwrap(),
            data: serde_json::json!({ "from_unit": "shinan.badaxia.tuandao", "to_unit": "shinan.badaxia" }),
        };
        assert_eq!(parse_cursor(&item.cursor()), Some((item.at, item.id.clone())));
        assert_eq!(item.units().map(|u| u.as_str().to_owned()).collect::<Vec<_>>(), ["shinan.badaxia.tuandao", "shinan.badaxia"]);
        assert_eq!(parse_cursor("nonsense"), None);
    }
}
