//! `tokens`: access tokens shared by every worker (WeChat's, per app id),
//! with a lease so that one worker at a time fetches a new one.

use chrono::{DateTime, Utc};
use mongodb::bson::{self, Document, doc};

use super::{Result, Store, is_duplicate_key};

pub const TOKENS: &str = "tokens";

/// A stored token and when to stop using it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToken {
    pub value: String,
    pub refresh_at: DateTime<Utc>,
}

impl Store {
    pub async fn token(&self, key: &str) -> Result<Option<StoredToken>> {
        let Some(d) = self.collection::<Document>(TOKENS).find_one(doc! { "_id": key }).await? else { return Ok(None) };
        match (d.get_str("value"), d.get_datetime("refresh_at")) {
            (Ok(value), Ok(at)) => Ok(Some(StoredToken { value: value.to_owned(), refresh_at: at.to_chrono() })),
            _ => Ok(None),
        }
    }

    /// Takes the right to fetch a new token until `until`, unless another
    /// worker holds it; `false` then.
    pub async fn lease_token(&self, key: &str, owner: &str, now: DateTime<Utc>, until: DateTime<Utc>) -> Result<bool> {
        let (now, until) = (bson::DateTime::from_chrono(now), bson::DateTime::from_chrono(until));
        let free = doc! { "_id": key, "$or": [{ "lease_until": { "$exists": false } }, { "lease_until": { "$lt": now } }] };
        let take = doc! { "$set": { "lease_owner": owner, "lease_until": until } };
        match self.collection::<Document>(TOKENS).update_one(free, take).upsert(true).await {
            Ok(_) => Ok(true),
            // The document exists and its lease is held: the upsert's insert collided.
            Err(e) if is_duplicate_key(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Stores the token the lease holder fetched and gives the lease up.
    pub async fn save_token(&self, key: &str, owner: &str, token: &StoredToken) -> Result<()> {
        let at = bson::DateTime::from_chrono(token.refresh_at);
        self.collection::<Document>(TOKENS)
            .update_one(
                doc! { "_id": key, "lease_owner": owner },
                doc! { "$set": { "value": &token.value, "refresh_at": at }, "$unset": { "lease_owner": "", "lease_until": "" } },
            )
            .await?;
        Ok(())
    }

    /// Gives the lease up without a token (the fetch failed): another worker may try at once.
    pub async fn release_token(&self, key: &str, owner: &str) -> Result<()> {
        self.collection::<Document>(TOKENS)
            .update_one(doc! { "_id": key, "lease_owner": owner }, doc! { "$unset": { "lease_owner": "", "lease_until": "" } })
            .await?;
        Ok(())
    }

    /// Marks `value` as refused by the remote, if it is still the stored
    /// token: the next reader fetches a new one. Two workers retiring the
    /// same token cause one refresh.
    pub async fn retire_token(&self, key: &str, value: &str) -> Result<()> {
        self.collection::<Document>(TOKENS)
            .update_one(doc! { "_id": key, "value": value }, doc! { "$set": { "refresh_at": bson::DateTime::from_millis(0) } })
            .await?;
        Ok(())
    }
}
