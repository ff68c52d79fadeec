//! `channel_events`: channel traffic that is not a petition (WeChat
//! subscribe, menu clicks…), recorded once each.

use mongodb::bson::{self, doc};

use super::{CHANNEL_EVENTS, Result, Store};
use crate::intake::ChannelEvent;

impl Store {
    pub async fn record_channel_event(&self, e: &ChannelEvent) -> Result<()> {
        let id = format!("{}:{}", e.channel, e.dedup_key);
        let record = doc! {
            "_id": &id,
            "channel": e.channel.as_str(),
            "citizen_id": &e.citizen_id,
            "event": &e.event,
            "at": bson::DateTime::from(e.at),
            "data": bson::to_bson(&e.data)?,
            "recorded_at": bson::DateTime::now(),
        };
        self.collection::<bson::Document>(CHANNEL_EVENTS)
            .update_one(doc! { "_id": &id }, doc! { "$setOnInsert": record })
            .upsert(true)
            .await?;
        Ok(())
    }
}
