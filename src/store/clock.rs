//! The stored form of a petition's clocks, with `next_at` indexed so a
//! deadline scan reads only what is due.

use mongodb::bson::{DateTime, Document, doc};
use serde::{Deserialize, Serialize};

use super::{PETITIONS, PetitionRecord, Store};
use crate::clock::{Clocks, Window};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WindowRecord {
    pub started: DateTime,
    pub due: DateTime,
    pub warned: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct ClockRecord {
    pub respond: Option<WindowRecord>,
    pub resolve: Option<WindowRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rating_by: Option<DateTime>,
    /// When the next warning or breach falls due; `None` when both clocks stopped.
    pub next_at: Option<DateTime>,
}

impl ClockRecord {
    pub fn new(clocks: &Clocks, warn_ratio: f64) -> Self {
        let record = |w: Option<Window>| {
            w.map(|w| WindowRecord { started: w.started.into(), due: w.due.into(), warned: w.warned })
        };
        ClockRecord {
            respond: record(clocks.respond),
            resolve: record(clocks.resolve),
            rating_by: clocks.rating_by.map(Into::into),
            next_at: clocks.next(warn_ratio).map(|(at, _)| at.into()),
        }
    }

    pub fn clocks(&self) -> Clocks {
        let window = |w: Option<WindowRecord>| {
            w.map(|w| Window { started: w.started.to_chrono(), due: w.due.to_chrono(), warned: w.warned })
        };
        Clocks {
            respond: window(self.respond),
            resolve: window(self.resolve),
            rating_by: self.rating_by.map(|t| t.to_chrono()),
        }
    }
}

impl Store {
    /// Petitions whose next warning or breach is due, earliest first.
    pub async fn due_petitions(&self, now: chrono::DateTime<chrono::Utc>, limit: i64) -> anyhow::Result<Vec<PetitionRecord>> {
        use futures::TryStreamExt;
        let now: DateTime = now.into();
        let cursor = self
            .collection::<PetitionRecord>(PETITIONS)
            .find(doc! { "clock.next_at": { "$lte": now } })
            .sort(doc! { "clock.next_at": 1 })
            .limit(limit)
            .await?;
        Ok(cursor.try_collect().await?)
    }

    /// Applies `update` only if the petition is still at `version`: the
    /// claim that lets any number of deadline workers run side by side.
    pub async fn update_if_version(&self, id: &str, version: i64, mut update: Document) -> anyhow::Result<bool> {
        let mut inc = update.get_document("$inc").cloned().unwrap_or_default();
        inc.insert("version", 1);
        update.insert("$inc", inc);
        let result = self
            .collection::<Document>(PETITIONS)
            .update_one(doc! { "_id": id, "version": version }, update)
            .await?;
        Ok(result.modified_count == 1)
    }
}
