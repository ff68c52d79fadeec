//! `held_attachments`: WeChat locations and pictures waiting for (or
//! already given to) a petition. A record is claimed for a petition with an
//! atomic update, so exactly one petition gets each attachment even when
//! the attachment and the text are processed concurrently.

use chrono::{DateTime, Duration, Utc};
use mongodb::bson::{self, doc};
use mongodb::options::ReturnDocument;
use serde::{Deserialize, Serialize};

use super::records::AttachmentRecord;
use super::{HELD_ATTACHMENTS, Result, Store, StoreError};
use crate::domain::{Channel, PetitionId};
use crate::intake::HeldAttachment;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeldRecord {
    #[serde(rename = "_id")]
    pub id: String,
    pub channel: Channel,
    pub citizen_id: String,
    pub at: bson::DateTime,
    pub attachment: AttachmentRecord,
    /// `held` until a petition claims it, then `attached`.
    pub status: String,
    pub petition_id: Option<PetitionId>,
}

impl Store {
    fn held(&self) -> mongodb::Collection<HeldRecord> {
        self.collection(HELD_ATTACHMENTS)
    }

    /// Records the attachment once; returns the stored record (which a
    /// redelivery may find already attached).
    pub async fn hold_attachment(&self, a: &HeldAttachment) -> Result<HeldRecord> {
        let record = HeldRecord {
            id: format!("{}:{}", a.channel, a.attachment.message_id),
            channel: a.channel,
            citizen_id: a.citizen_id.clone(),
            at: a.at.into(),
            attachment: AttachmentRecord::new(&a.attachment, a.at),
            status: "held".to_owned(),
            petition_id: None,
        };
        let stored = self
            .held()
            .find_one_and_update(doc! { "_id": &record.id }, doc! { "$setOnInsert": bson::to_document(&record)? })
            .upsert(true)
            .return_document(ReturnDocument::After)
            .await?;
        stored.ok_or_else(|| StoreError::Shape("upsert of held attachment returned nothing".into()))
    }

    /// Claims one specific held record for `petition`; `false` if another
    /// petition claimed it first.
    pub async fn claim_held(&self, id: &str, petition: &PetitionId) -> Result<bool> {
        let result = self
            .held()
            .update_one(doc! { "_id": id, "status": "held" }, doc! { "$set": { "status": "attached", "petition_id": petition.as_str() } })
            .await?;
        Ok(result.modified_count == 1)
    }

    /// Claims every record the citizen sent within `window` of `at`.
    pub async fn claim_held_near(
        &self,
        channel: Channel,
        citizen_id: &str,
        at: DateTime<Utc>,
        window: Duration,
        petition: &PetitionId,
    ) -> Result<()> {
        let from: bson::DateTime = (at - window).into();
        let to: bson::DateTime = (at + window).into();
        self.held()
            .update_many(
                doc! {
                    "channel": channel.as_str(),
                    "citizen_id": citizen_id,
                    "status": "held",
                    "at": { "$gte": from, "$lte": to },
                },
                doc! { "$set": { "status": "attached", "petition_id": petition.as_str() } },
            )
            .await?;
        Ok(())
    }

    pub async fn held_for(&self, petition: &PetitionId) -> Result<Vec<HeldRecord>> {
        use futures::TryStreamExt;
        let cursor = self.held().find(doc! { "petition_id": petition.as_str() }).await?;
        Ok(cursor.try_collect().await?)
    }
}
