//! The stored form of a petition's clocks, with `next_at` indexed so a
//! deadline scan reads only what is due.

use mongodb::bson::{DateTime, doc};
use serde::{Deserialize, Serialize};

use super::{PETITIONS, PetitionRecord, Result, Store};
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
        let record = |w: Option<Window>| w.map(|w| WindowRecord { started: w.started.into(), due: w.due.into(), warned: w.warned });
        ClockRecord {
            respond: record(clocks.respond),
            resolve: record(clocks.resolve),
            rating_by: clocks.rating_by.map(Into::into),
            next_at: clocks.next(warn_ratio).map(|(at, _)| at.into()),
        }
    }

    pub fn clocks(&self) -> Clocks {
        let window =
            |w: Option<WindowRecord>| w.map(|w| Window { started: w.started.to_chrono(), due: w.due.to_chrono(), warned: w.warned });
        Clocks { respond: window(self.respond), resolve: window(self.resolve), rating_by: self.rating_by.map(|t| t.to_chrono()) }
    }
}

impl Store {
    /// Petitions whose next warning or breach is due, earliest first.
    pub async fn due_petitions(&self, now: chrono::DateTime<chrono::Utc>, limit: i64) -> Result<Vec<PetitionRecord>> {
        use futures::TryStreamExt;
        let now: DateTime = now.into();
        let cursor = self
            .collection::<PetitionRecord>(PETITIONS)
            .find(doc! { super::fields::CLOCK_NEXT_AT: { "$lte": now } })
            .sort(doc! { super::fields::CLOCK_NEXT_AT: 1 })
            .limit(limit)
            .await?;
        Ok(cursor.try_collect().await?)
    }
}
