//! Bulk forms of the per-petition operations, for workers that batch
//! across in-flight deliveries: a handful of store round trips per batch
//! instead of per petition.

use std::collections::HashSet;

use chrono::NaiveDate;
use futures::TryStreamExt;
use mongodb::bson::{Document, doc};
use mongodb::options::{ReturnDocument, UpdateOneModel, WriteModel};

use super::{COUNTERS, HELD_ATTACHMENTS, PETITIONS, PetitionRecord, Store};
use crate::domain::{Channel, PetitionId};

impl Store {
    /// The petitions already stored for these (channel, dedup key) pairs.
    pub async fn petitions_by_sources(&self, sources: &[(Channel, &str)]) -> anyhow::Result<Vec<PetitionRecord>> {
        if sources.is_empty() {
            return Ok(Vec::new());
        }
        let branches: Vec<Document> = Channel::ALL
            .iter()
            .filter_map(|c| {
                let keys: Vec<&str> = sources.iter().filter(|(ch, _)| ch == c).map(|(_, k)| *k).collect();
                (!keys.is_empty()).then(|| doc! { "source.channel": c.as_str(), "source.message_id": { "$in": keys } })
            })
            .collect();
        Ok(self.collection::<PetitionRecord>(PETITIONS).find(doc! { "$or": branches }).await?.try_collect().await?)
    }

    pub async fn petitions_by_ids(&self, ids: &[&str]) -> anyhow::Result<Vec<PetitionRecord>> {
        Ok(self.collection::<PetitionRecord>(PETITIONS).find(doc! { "_id": { "$in": ids } }).await?.try_collect().await?)
    }

    /// `count` consecutive numbers of `day` in one counter update.
    pub async fn next_petition_ids(&self, day: NaiveDate, count: u32) -> anyhow::Result<Vec<PetitionId>> {
        if count == 1 {
            return Ok(vec![self.next_petition_id(day).await?]);
        }
        // The first-of-the-day upsert race is handled by the single form.
        let first = self.next_petition_id(day).await?;
        let key = format!("petition:{}", day.format("%Y%m%d"));
        let after = self
            .collection::<Document>(COUNTERS)
            .find_one_and_update(doc! { "_id": &key }, doc! { "$inc": { "seq": i64::from(count - 1) } })
            .return_document(ReturnDocument::After)
            .await?
            .ok_or_else(|| anyhow::anyhow!("counter {key} vanished"))?;
        let last = u32::try_from(after.get_i64("seq")?)?;
        let mut ids = vec![first];
        ids.extend((last + 2 - count..=last).map(|seq| PetitionId::new(day, seq)));
        Ok(ids)
    }

    /// Inserts the records; `false` marks one whose source was stored meanwhile.
    pub async fn insert_petitions(&self, records: &[PetitionRecord]) -> anyhow::Result<Vec<bool>> {
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
    pub async fn citizens_with_held(&self, channel: Channel, citizens: &[&str]) -> anyhow::Result<HashSet<String>> {
        if citizens.is_empty() {
            return Ok(HashSet::new());
        }
        let filter = doc! { "channel": channel.as_str(), "citizen_id": { "$in": citizens }, "status": "held" };
        let held: Vec<Document> = self.collection::<Document>(HELD_ATTACHMENTS).find(filter).await?.try_collect().await?;
        Ok(held.iter().filter_map(|h| h.get_str("citizen_id").ok().map(str::to_owned)).collect())
    }

    /// Conditional updates `(filter, update)` on petitions in one bulk
    /// write; `true` for each that matched.
    pub async fn update_petitions(&self, updates: Vec<(Document, Document)>) -> anyhow::Result<Vec<bool>> {
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

/// The same failure for every item of a batch. A MongoDB error is cloned, so
/// the consume loop still recognises an unreachable store.
pub fn share_error(e: &anyhow::Error) -> anyhow::Error {
    match e.chain().find_map(|c| c.downcast_ref::<mongodb::error::Error>()) {
        Some(m) => anyhow::Error::new(m.clone()).context(format!("{e:#}")),
        None => anyhow::anyhow!("{e:#}"),
    }
}

