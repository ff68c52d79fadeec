//! Petitions by filter, newest first: the public listing of Open311's
//! `GET requests` (`docs/contract.md` §14).

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use mongodb::bson::{Bson, Document, doc};

use super::{PETITIONS, PetitionRecord, Result, Store};
use crate::domain::{Category, Status};

/// Empty fields do not filter; `ids`, when set, is the whole filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PetitionFilter {
    pub ids: Option<Vec<String>>,
    pub categories: Vec<Category>,
    /// Receipt time, both ends included.
    pub received: Option<(DateTime<Utc>, DateTime<Utc>)>,
    pub statuses: Option<Vec<Status>>,
    pub skip: u64,
    pub limit: u64,
}

impl PetitionFilter {
    fn query(&self) -> Document {
        if let Some(ids) = &self.ids {
            return doc! { "_id": { "$in": ids } };
        }
        let mut q = Document::new();
        if !self.categories.is_empty() {
            q.insert("category", doc! { "$in": bson_list(&self.categories) });
        }
        if let Some((from, to)) = self.received {
            q.insert("received_at", doc! { "$gte": from, "$lte": to });
        }
        if let Some(statuses) = &self.statuses {
            q.insert("status", doc! { "$in": bson_list(statuses) });
        }
        q
    }
}

fn bson_list<T: serde::Serialize>(values: &[T]) -> Vec<Bson> {
    values.iter().map(|v| mongodb::bson::to_bson(v).expect("an enum serializes")).collect()
}

impl Store {
    pub async fn petitions_matching(&self, filter: &PetitionFilter) -> Result<Vec<PetitionRecord>> {
        let cursor = self
            .collection::<PetitionRecord>(PETITIONS)
            .find(filter.query())
            .sort(doc! { "received_at": -1, "_id": -1 })
            .skip(filter.skip)
            .limit(i64::try_from(filter.limit).unwrap_or(i64::MAX))
            .await?;
        Ok(cursor.try_collect().await?)
    }
}
