//! `events`: the append-only audit log, one document per event.

use mongodb::bson::{self, DateTime, doc};
use serde::Serialize;

use super::{EVENTS, Result, Store, is_duplicate_key};
use crate::domain::Event;

#[derive(Serialize)]
struct EventRecord<'a> {
    #[serde(rename = "_id")]
    id: &'a str,
    petition_id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    at: DateTime,
    #[serde(skip_serializing_if = "Option::is_none")]
    actor: Option<bson::Bson>,
    data: bson::Bson,
}

impl Store {
    /// Appends events; an event already recorded (same `event_id`) is left
    /// as it is, which makes re-appending after a crash harmless.
    pub async fn append_events(&self, events: &[&Event]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let docs = events
            .iter()
            .map(|e| {
                let record = EventRecord {
                    id: &e.event_id,
                    petition_id: e.petition_id.as_str(),
                    kind: e.kind.as_str(),
                    at: e.at.into(),
                    actor: e.actor.as_ref().map(bson::to_bson).transpose()?,
                    data: bson::to_bson(&e.data)?,
                };
                bson::to_document(&record)
            })
            .collect::<Result<Vec<_>, _>>()?;
        match self.collection(EVENTS).insert_many(docs).ordered(false).await {
            Ok(_) => Ok(()),
            Err(e) if only_duplicates(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

fn only_duplicates(err: &mongodb::error::Error) -> bool {
    use mongodb::error::ErrorKind;
    match err.kind.as_ref() {
        ErrorKind::InsertMany(e) => {
            e.write_concern_error.is_none() && e.write_errors.as_ref().is_some_and(|errs| errs.iter().all(|w| w.code == 11000))
        }
        _ => is_duplicate_key(err),
    }
}

impl Store {
    /// The events of one petition, oldest first.
    pub async fn events_of(&self, petition_id: &str) -> Result<Vec<crate::gateway::TimelineEvent>> {
        use futures::TryStreamExt;
        #[derive(serde::Deserialize)]
        struct Stored {
            #[serde(rename = "type")]
            kind: String,
            at: DateTime,
            #[serde(default)]
            data: serde_json::Value,
        }
        let events: Vec<Stored> = self
            .collection::<Stored>(EVENTS)
            .find(doc! { "petition_id": petition_id })
            .sort(doc! { "at": 1, "_id": 1 })
            .await?
            .try_collect()
            .await?;
        Ok(events.into_iter().map(|e| crate::gateway::TimelineEvent { kind: e.kind, at: e.at.to_chrono(), data: e.data }).collect())
    }
}
