//! Bulk forms of the per-petition operations, for workers that batch
//! across in-flight deliveries: a handful of store round trips per batch
//! instead of per petition.

use std::collections::HashSet;

use futures::TryStreamExt;
use mongodb::bson::{Document, doc};
use mongodb::options::{UpdateOneModel, WriteModel};

use super::{HELD_ATTACHMENTS, PETITIONS, PetitionRecord, Result, Store};
use crate::domain::Channel;

impl Store {
    pub async fn petitions_by_ids(&self, ids: &[&str]) -> Result<Vec<PetitionRecord>> {
        Ok(self.collection::<PetitionRecord>(PETITIONS).find(doc! { "_id": { "$in": ids } }).await?.try_collect().await?)
    }

    /// Inserts the records; `false` marks one whose source was stored meanwhile.
    pub async fn insert_petitions(&self, records: &[PetitionRecord]) -> Result<Vec<bool>> {
        use mongodb::error::ErrorKind;
        let mut inserted = vec![true; records.len()];
        match self.collection::<PetitionRecord>(PETITIONS).insert_many(records).ordered(false).await {
            Ok(_) => {}
            Err(e) => match e.kind.as_ref() {
                ErrorKind::InsertMany(failure)
                    if failure.write_concern_error.is_none()
                        && failure.write_errors.as_ref().is_some_and(|errs| errs.iter().all(|w| w.code == 11000)) =>
                {
                    for w in failure.write_errors.iter().flatten() {
                        inserted[w.index] = false;
                    }
                }
                _ => return Err(e.into()),
            },
        }
        Ok(inserted)
    }

    /// Of these citizens, those with a WeChat attachment waiting for a petition.
    pub async fn citizens_with_held(&self, channel: Channel, citizens: &[&str]) -> Result<HashSet<String>> {
        if citizens.is_empty() {
            return Ok(HashSet::new());
        }
        let filter = doc! { "channel": channel.as_str(), "citizen_id": { "$in": citizens }, "status": "held" };
        let held: Vec<Document> = self.collection::<Document>(HELD_ATTACHMENTS).find(filter).await?.try_collect().await?;
        Ok(held.iter().filter_map(|h| h.get_str("citizen_id").ok().map(str::to_owned)).collect())
    }

    /// Conditional updates `(filter, update)` on petitions in one bulk
    /// write; `true` for each that matched.
    pub async fn update_petitions(&self, updates: Vec<(Document, Document)>) -> Result<Vec<bool>> {
        let n = updates.len();
        let namespace = self.collection::<Document>(PETITIONS).namespace();
        let models: Vec<WriteModel> = updates
            .into_iter()
            .map(|(filter, update)| {
                WriteModel::UpdateOne(UpdateOneModel::builder().namespace(namespace.clone()).filter(filter).update(update).build())
            })
            .collect();
        let result = self.db.client().bulk_write(models).ordered(false).verbose_results().await?;
        Ok((0..n).map(|i| result.update_results.get(&i).is_some_and(|r| r.matched_count == 1)).collect())
    }
}
