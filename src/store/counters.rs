//! Per-day sequences behind the human-quotable petition numbers.

use chrono::NaiveDate;
use mongodb::bson::{Document, doc};
use mongodb::options::ReturnDocument;

use super::{COUNTERS, Result, Store, StoreError, is_duplicate_key};
use crate::domain::PetitionId;

impl Store {
    /// Allocates the next number of `day`. A number allocated by a worker
    /// that then crashed, or lost a dedup race, is skipped: numbers are
    /// unique and increasing, not gapless.
    pub async fn next_petition_id(&self, day: NaiveDate) -> Result<PetitionId> {
        let mut ids = self.next_petition_ids(day, 1).await?;
        ids.pop().ok_or_else(|| StoreError::Shape("no petition number allocated".into()))
    }

    /// `count` consecutive numbers of `day` in one counter update.
    pub async fn next_petition_ids(&self, day: NaiveDate, count: u32) -> Result<Vec<PetitionId>> {
        let key = format!("petition:{}", day.format("%Y%m%d"));
        // Two first-of-the-day upserts can race on the unique `_id`; the loser retries.
        for _ in 0..3 {
            let result = self
                .collection::<Document>(COUNTERS)
                .find_one_and_update(doc! { "_id": &key }, doc! { "$inc": { "seq": i64::from(count) } })
                .upsert(true)
                .return_document(ReturnDocument::After)
                .await;
            match result {
                Ok(Some(after)) => {
                    let last = after
                        .get_i64("seq")
                        .ok()
                        .and_then(|n| u32::try_from(n).ok())
                        .ok_or_else(|| StoreError::Shape(format!("counter {day}: bad seq")))?;
                    return Ok((last + 1 - count..=last).map(|seq| PetitionId::new(day, seq)).collect());
                }
                Ok(None) => return Err(StoreError::Shape("counter upsert returned nothing".into())),
                Err(e) if is_duplicate_key(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Shape(format!("could not allocate petition numbers for {day}")))
    }
}
