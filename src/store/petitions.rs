//! `petitions`: one document per petition.

use chrono::{DateTime, Duration, Utc};
use mongodb::bson::{self, doc};

use super::records::AttachmentRecord;
use super::{PETITIONS, PetitionRecord, Result, Store, is_duplicate_key};
use crate::domain::{AttachmentKind, Channel, PetitionId};

pub enum Inserted {
    New,
    /// Another delivery of the same source message got there first.
    Duplicate,
}

impl Store {
    fn petitions(&self) -> mongodb::Collection<PetitionRecord> {
        self.collection(PETITIONS)
    }

    pub async fn petition(&self, id: &PetitionId) -> Result<Option<PetitionRecord>> {
        Ok(self.petitions().find_one(doc! { "_id": id.as_str() }).await?)
    }

    pub async fn petition_by_source(&self, channel: Channel, message_id: &str) -> Result<Option<PetitionRecord>> {
        Ok(self.petitions().find_one(doc! { "source.channel": channel.as_str(), "source.message_id": message_id }).await?)
    }

    pub async fn insert_petition(&self, record: &PetitionRecord) -> Result<Inserted> {
        match self.petitions().insert_one(record).await {
            Ok(_) => Ok(Inserted::New),
            Err(e) if is_duplicate_key(&e) => Ok(Inserted::Duplicate),
            Err(e) => Err(e.into()),
        }
    }

    /// The citizen's petition received closest before `at + window`
    /// and after `at - window`.
    pub async fn latest_petition_near(
        &self,
        channel: Channel,
        citizen_id: &str,
        at: DateTime<Utc>,
        window: Duration,
    ) -> Result<Option<PetitionId>> {
        let from: bson::DateTime = (at - window).into();
        let to: bson::DateTime = (at + window).into();
        let found = self
            .collection::<bson::Document>(PETITIONS)
            .find_one(doc! {
                "source.channel": channel.as_str(),
                "citizen.id": citizen_id,
                "received_at": { "$gte": from, "$lte": to },
            })
            .sort(doc! { "received_at": -1 })
            .projection(doc! { "_id": 1 })
            .await?;
        Ok(found.and_then(|d| d.get_str("_id").ok().and_then(|s| s.parse().ok())))
    }

    /// Adds the attachment once (keyed by its message id); a location also
    /// becomes the petition's point if it has none yet. The point is set
    /// first, so whoever sees the attachment also sees the point.
    pub async fn attach(&self, id: &PetitionId, attachment: &AttachmentRecord) -> Result<()> {
        let petitions = self.collection::<bson::Document>(PETITIONS);
        let not_yet = doc! { "_id": id.as_str(), "attachments.message_id": { "$ne": &attachment.message_id } };
        if attachment.kind == AttachmentKind::Location
            && let Some(point) = &attachment.point
        {
            let mut filter = not_yet.clone();
            filter.insert("location.point", bson::Bson::Null);
            petitions
                .update_one(
                    filter,
                    doc! { "$set": { "location.point": bson::to_bson(point)?, "updated_at": bson::DateTime::now() }, "$inc": { "version": 1 } },
                )
                .await?;
        }
        petitions
            .update_one(
                not_yet,
                doc! {
                    "$push": { "attachments": bson::to_bson(attachment)? },
                    "$set": { "updated_at": bson::DateTime::now() },
                    "$inc": { "version": 1 },
                },
            )
            .await?;
        Ok(())
    }

    /// Drops published messages from the petitions' outboxes. Outbox ids
    /// name their petition, so one id list serves them all.
    pub async fn clear_outboxes(&self, ids: &[&PetitionId], message_ids: &[&str]) -> Result<()> {
        let ids: Vec<&str> = ids.iter().map(|id| id.as_str()).collect();
        let pull = doc! { "$pull": { "outbox": { "id": { "$in": message_ids } } } };
        let petitions = self.collection::<bson::Document>(PETITIONS);
        match ids.as_slice() {
            [one] => petitions.update_one(doc! { "_id": *one }, pull).await?,
            many => petitions.update_many(doc! { "_id": { "$in": many } }, pull).await?,
        };
        Ok(())
    }

    /// Petitions whose outbox still holds messages and that have not
    /// changed since `before`, oldest first.
    pub async fn stale_outboxes(&self, before: DateTime<Utc>, limit: i64) -> Result<Vec<PetitionRecord>> {
        use futures::TryStreamExt;
        let before: bson::DateTime = before.into();
        let cursor = self
            .petitions()
            .find(doc! { "outbox.id": { "$exists": true }, "updated_at": { "$lt": before } })
            .sort(doc! { "updated_at": 1 })
            .limit(limit)
            .await?;
        Ok(cursor.try_collect().await?)
    }
}
