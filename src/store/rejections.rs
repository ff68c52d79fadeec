//! `rejections`: every intake body that could not become a petition, with
//! its raw bytes and a stable reason code.

use mongodb::bson::{self, Binary, Bson, doc, spec::BinarySubtype};
use sha2::{Digest, Sha256};

use super::{REJECTIONS, Result, Store};
use crate::intake::{RejectReason, Rejection};

/// MongoDB documents stop at 16 MiB; a larger body keeps its first bytes.
const MAX_RAW_BYTES: usize = 8 * 1024 * 1024;

/// How long a rejection keeps its raw body, and how much of a `too_large`
/// one: a flood of huge bodies must not fill the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawRetention {
    pub days: u32,
    pub too_large_bytes: usize,
}

impl Default for RawRetention {
    fn default() -> Self {
        RawRetention { days: 30, too_large_bytes: 64 * 1024 }
    }
}

pub struct RejectionRecord<'a> {
    pub channel: &'a str,
    pub message_id: Option<&'a str>,
    pub received_at: chrono::DateTime<chrono::Utc>,
    pub rejection: &'a Rejection,
    pub raw: &'a [u8],
    pub retention: RawRetention,
}

impl Store {
    /// Idempotent: the same body redelivered on the same key is one record.
    pub async fn record_rejection(&self, r: &RejectionRecord<'_>) -> Result<()> {
        let mut hash = Sha256::new();
        hash.update(r.channel.as_bytes());
        hash.update([0]);
        hash.update(r.message_id.unwrap_or_default().as_bytes());
        hash.update([0]);
        hash.update(r.raw);
        let id = format!("{:x}", hash.finalize());

        let limit = match r.rejection.reason {
            RejectReason::TooLarge => r.retention.too_large_bytes,
            _ => MAX_RAW_BYTES,
        };
        let truncated = r.raw.len() > limit;
        let kept = &r.raw[..r.raw.len().min(limit)];
        // Text stays readable in the shell; anything else (a cut in the
        // middle of a character included) is kept as bytes.
        let raw = match std::str::from_utf8(kept) {
            Ok(text) => Bson::String(text.to_owned()),
            Err(_) => Bson::Binary(Binary { subtype: BinarySubtype::Generic, bytes: kept.to_vec() }),
        };
        let expires_at = r.received_at + chrono::Duration::days(i64::from(r.retention.days));
        let message_id = r.message_id.map(str::to_owned).or_else(|| r.rejection.payload_id.clone());
        let record = doc! {
            "_id": &id,
            "channel": r.channel,
            "message_id": message_id,
            "received_at": bson::DateTime::from(r.received_at),
            "reason": r.rejection.reason.as_str(),
            "detail": &r.rejection.detail,
            "raw": raw,
            "raw_bytes": r.raw.len() as i64,
            "raw_truncated": truncated,
            "raw_sha256": format!("{:x}", Sha256::digest(r.raw)),
            // A TTL index removes the record, raw body and all, at this time.
            "expires_at": bson::DateTime::from(expires_at),
        };
        self.collection::<bson::Document>(REJECTIONS).update_one(doc! { "_id": &id }, doc! { "$setOnInsert": record }).upsert(true).await?;
        Ok(())
    }
}
