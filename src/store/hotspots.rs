//! Hot spots: the recent petitions detection reads, and `hotspots`, one
//! document per raised cluster (`_id` = its key). Two unique indexes make a
//! raise happen once however many deadline workers look: on `_id`, and on
//! the member petitions (a petition belongs to one raised cluster, so a
//! cluster whose key moved is not raised again, see `hotspot::detect`).
//! A raise is recorded `published: false` and marked once it is out, so a
//! worker that dies in between leaves it for the next scan to publish.

use futures::TryStreamExt;
use mongodb::IndexModel;
use mongodb::bson::{DateTime, Document, doc};
use mongodb::options::IndexOptions;
use serde::{Deserialize, Serialize};

use super::{PETITIONS, Result, Store, fields, is_duplicate_key};
use crate::domain::{Category, GeoJsonPoint, GeoPoint, HotspotNotice, PetitionId, UnitPath};
use crate::hotspot::{Growth, Raised, Sighting};

pub const HOTSPOTS: &str = "hotspots";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HotspotRecord {
    #[serde(rename = "_id")]
    pub key: String,
    pub unit: UnitPath,
    pub category: Category,
    pub grid: Option<UnitPath>,
    /// The petitions raised with it and those that joined since. Unique
    /// across records (index).
    pub petition_ids: Vec<PetitionId>,
    pub first_at: DateTime,
    pub last_at: DateTime,
    /// When it was raised: the notice's and the event's `at`.
    pub raised_at: DateTime,
    /// `last_at` + the window: none of its petitions counts after that. The
    /// TTL index removes it, and the same place can be raised again.
    pub expires_at: DateTime,
    /// The notice and the event are out.
    pub published: bool,
}

impl HotspotRecord {
    /// An unpublished raise of `notice`.
    pub fn new(notice: &HotspotNotice, expires_at: chrono::DateTime<chrono::Utc>) -> Self {
        HotspotRecord {
            key: notice.key.clone(),
            unit: notice.unit.clone(),
            category: notice.category,
            grid: notice.grid.clone(),
            petition_ids: notice.petition_ids.clone(),
            first_at: notice.first_at.into(),
            last_at: notice.last_at.into(),
            raised_at: notice.at.into(),
            expires_at: expires_at.into(),
            published: false,
        }
    }

    /// What (re-)publishing it sends: the same key, hence the same message id.
    pub fn notice(&self) -> HotspotNotice {
        HotspotNotice {
            key: self.key.clone(),
            unit: self.unit.clone(),
            category: self.category,
            grid: self.grid.clone(),
            petition_ids: self.petition_ids.clone(),
            count: self.petition_ids.len(),
            first_at: self.first_at.to_chrono(),
            last_at: self.last_at.to_chrono(),
            at: self.raised_at.to_chrono(),
        }
    }
}

/// The fields of a petition detection reads.
#[derive(Deserialize)]
struct SightingFields {
    #[serde(rename = "_id")]
    id: PetitionId,
    category: Category,
    #[serde(default)]
    grid: Option<UnitPath>,
    routing: RoutedTo,
    #[serde(default)]
    location: Option<PointOnly>,
    received_at: DateTime,
}

#[derive(Deserialize)]
struct RoutedTo {
    unit: UnitPath,
}

#[derive(Deserialize)]
struct PointOnly {
    #[serde(default)]
    point: Option<GeoJsonPoint>,
}

impl From<SightingFields> for Sighting {
    fn from(f: SightingFields) -> Self {
        let point = f.location.and_then(|l| l.point).and_then(|p| GeoPoint::new(p.coordinates[0], p.coordinates[1]).ok());
        Sighting { id: f.id, category: f.category, grid: f.grid, unit: f.routing.unit, point, at: f.received_at.to_chrono() }
    }
}

impl Store {
    pub(super) async fn ensure_hotspot_indexes(&self) -> Result<()> {
        let hotspots = self.collection::<Document>(HOTSPOTS);
        let unique = IndexOptions::builder().unique(true).build();
        hotspots.create_index(IndexModel::builder().keys(doc! { "petition_ids": 1 }).options(unique).build()).await?;
        let expiring = IndexOptions::builder().expire_after(std::time::Duration::ZERO).build();
        hotspots.create_index(IndexModel::builder().keys(doc! { "expires_at": 1 }).options(expiring).build()).await?;
        hotspots.create_index(IndexModel::builder().keys(doc! { "published": 1, "raised_at": 1 }).build()).await?;
        Ok(())
    }

    /// Routed petitions with a category received since `since` (an indexed
    /// range on `received_at`), only the fields detection reads. Petitions
    /// not routed yet are seen by the next scan.
    pub async fn recent_sightings(&self, since: chrono::DateTime<chrono::Utc>) -> Result<Vec<Sighting>> {
        let since: DateTime = since.into();
        let filter = doc! {
            "received_at": { "$gte": since },
            fields::CATEGORY: { "$ne": null },
            "routing.unit": { "$ne": null },
        };
        let projection = doc! { fields::CATEGORY: 1, fields::GRID: 1, "routing.unit": 1, "location.point": 1, "received_at": 1 };
        let found: Vec<SightingFields> =
            self.collection::<SightingFields>(PETITIONS).find(filter).projection(projection).await?.try_collect().await?;
        Ok(found.into_iter().map(Sighting::from).collect())
    }

    /// The raised hot spots whose record has not expired at `now`.
    pub async fn raised_hotspots(&self, now: chrono::DateTime<chrono::Utc>) -> Result<Vec<Raised>> {
        #[derive(Deserialize)]
        struct Members {
            #[serde(rename = "_id")]
            key: String,
            petition_ids: Vec<PetitionId>,
        }
        let now: DateTime = now.into();
        let found: Vec<Members> = self
            .collection::<Members>(HOTSPOTS)
            .find(doc! { "expires_at": { "$gt": now } })
            .projection(doc! { "petition_ids": 1 })
            .await?
            .try_collect()
            .await?;
        Ok(found.into_iter().map(|m| Raised { key: m.key, petition_ids: m.petition_ids }).collect())
    }

    /// Records a raise. `false`: it was recorded already, or a hot spot
    /// sharing a petition with it was (another worker got there first).
    pub async fn record_hotspot(&self, record: &HotspotRecord) -> Result<bool> {
        match self.collection::<HotspotRecord>(HOTSPOTS).insert_one(record).await {
            Ok(_) => Ok(true),
            Err(e) if is_duplicate_key(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Adds the newcomers to a raised hot spot and moves its expiry with
    /// its latest petition. A newcomer that another worker has just
    /// recorded with another hot spot fails the update (duplicate key): it
    /// is left as it is, and the next scan looks again.
    pub async fn grow_hotspot(&self, growth: &Growth, expires_at: chrono::DateTime<chrono::Utc>) -> Result<()> {
        let ids: Vec<&str> = growth.petition_ids.iter().map(PetitionId::as_str).collect();
        let update = doc! {
            "$addToSet": { "petition_ids": { "$each": ids } },
            "$min": { "first_at": DateTime::from(growth.first_at) },
            "$max": { "last_at": DateTime::from(growth.last_at), "expires_at": DateTime::from(expires_at) },
        };
        match self.collection::<Document>(HOTSPOTS).update_one(doc! { "_id": &growth.key }, update).await {
            Ok(_) => Ok(()),
            Err(e) if is_duplicate_key(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Raises recorded before `before` and still not published: their
    /// worker died between recording and publishing.
    pub async fn unpublished_hotspots(&self, before: chrono::DateTime<chrono::Utc>, limit: i64) -> Result<Vec<HotspotRecord>> {
        let before: DateTime = before.into();
        let found = self
            .collection::<HotspotRecord>(HOTSPOTS)
            .find(doc! { "published": false, "raised_at": { "$lt": before } })
            .sort(doc! { "raised_at": 1 })
            .limit(limit)
            .await?;
        Ok(found.try_collect().await?)
    }

    pub async fn mark_hotspots_published(&self, keys: &[&str]) -> Result<()> {
        if !keys.is_empty() {
            self.collection::<Document>(HOTSPOTS)
                .update_many(doc! { "_id": { "$in": keys } }, doc! { "$set": { "published": true } })
                .await?;
        }
        Ok(())
    }
}
