//! Per-day sequences behind the human-quotable petition numbers.

use chrono::NaiveDate;
use mongodb::bson::{Document, doc};
use mongodb::options::ReturnDocument;

use super::{COUNTERS, Store, is_duplicate_key};
use crate::domain::PetitionId;

impl Store {
    /// Allocates the next number of `day`. A number allocated by a worker
    /// that then crashed, or lost a dedup race, is skipped: numbers are
    /// unique and increasing, not gapless.
    pub async fn next_petition_id(&self, day: NaiveDate) -> anyhow::Result<PetitionId> {
        let key = format!("petition:{}", day.format("%Y%m%d"));
        let counters = self.collection::<Document>(COUNTERS);
        // Two first-of-the-day upserts can race on the unique `_id`; the loser retries.
        for _ in 0..3 {
            let result = counters
                .find_one_and_update(doc! { "_id": &key }, doc! { "$inc": { "seq": 1_i64 } })
                .upsert(true)
                .return_document(ReturnDocument::After)
                .await;
            match result {
                Ok(Some(doc)) => {
                    let seq = doc.get_i64("seq")?;
                    return Ok(PetitionId::new(day, u32::try_from(seq)?));
                }
                Ok(None) => anyhow::bail!("counter upsert returned nothing"),
                Err(e) if is_duplicate_key(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        anyhow::bail!("could not allocate a petition number for {day}")
    }
}
