//! The `principals` collection (`docs/contract.md` §13): one document per
//! broker user, `_id` = the user name. Replaced as a whole by
//! `nuannan principals load|apply`; read by every role that authorizes.

use futures::TryStreamExt;
use mongodb::bson::doc;

use super::{Result, Store};
use crate::identity::{Principal, Principals};

pub const PRINCIPALS: &str = "principals";

impl Store {
    /// Makes `principals` the whole set: each one written, then every
    /// other user removed. A reader in between sees the new principals
    /// plus some of the old, never fewer than either set.
    pub async fn replace_principals(&self, principals: &Principals) -> Result<()> {
        let coll = self.collection::<Principal>(PRINCIPALS);
        for p in principals.iter() {
            coll.replace_one(doc! { "_id": p.user.as_str() }, p).upsert(true).await?;
        }
        let users: Vec<&str> = principals.iter().map(|p| p.user.as_str()).collect();
        coll.delete_many(doc! { "_id": { "$nin": users } }).await?;
        Ok(())
    }

    pub async fn principal(&self, user: &str) -> Result<Option<Principal>> {
        Ok(self.collection::<Principal>(PRINCIPALS).find_one(doc! { "_id": user }).await?)
    }

    pub async fn principals(&self) -> Result<Principals> {
        let list: Vec<Principal> = self.collection::<Principal>(PRINCIPALS).find(doc! {}).await?.try_collect().await?;
        Ok(Principals::from_list(list))
    }
}
