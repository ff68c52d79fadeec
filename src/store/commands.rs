//! Refused commands, remembered by petition and `command_id` so a repeat
//! gets the same answer. (Applied commands are remembered inside the
//! petition, in the same write as their effect.) A `command_id` is unique
//! per sender, not worldwide: two apps may reuse one for different petitions.

use mongodb::bson::{self, doc};
use serde::{Deserialize, Serialize};

use super::{Result, Store, is_duplicate_key};
use crate::domain::CommandReply;

pub const COMMANDS: &str = "commands";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefusedCommand {
    /// `<petition_id>/<command_id>`, or `-/<command_id>` when the petition
    /// could not be read.
    #[serde(rename = "_id")]
    pub key: String,
    pub command_id: String,
    pub petition_id: Option<String>,
    pub command: String,
    pub actor: Option<serde_json::Value>,
    /// The broker-authenticated sender (AMQP `user_id`), if any.
    #[serde(default)]
    pub user_id: Option<String>,
    pub at: bson::DateTime,
    pub reply: CommandReply,
    pub detail: Option<String>,
}

impl RefusedCommand {
    pub fn key(petition_id: Option<&str>, command_id: &str) -> String {
        format!("{}/{command_id}", petition_id.unwrap_or("-"))
    }

    /// The key of a refusal of the sender itself (unauthenticated,
    /// forbidden, wrong unit): recorded per sender and never answered from
    /// memory, so nobody can spend another sender's `command_id`.
    pub fn sender_key(petition_id: Option<&str>, command_id: &str, user_id: Option<&str>) -> String {
        format!("{}@{}", Self::key(petition_id, command_id), user_id.unwrap_or("-"))
    }
}

impl Store {
    pub async fn remembered_reply(&self, petition_id: Option<&str>, command_id: &str) -> Result<Option<CommandReply>> {
        let key = RefusedCommand::key(petition_id, command_id);
        let found = self.collection::<RefusedCommand>(COMMANDS).find_one(doc! { "_id": key }).await?;
        Ok(found.map(|c| c.reply))
    }

    /// Records the refusal; if the same command was refused before, that
    /// first reply stands and is returned.
    pub async fn remember_refusal(&self, refused: &RefusedCommand) -> Result<CommandReply> {
        match self.collection::<RefusedCommand>(COMMANDS).insert_one(refused).await {
            Ok(_) => Ok(refused.reply.clone()),
            Err(e) if is_duplicate_key(&e) => {
                let found = self.collection::<RefusedCommand>(COMMANDS).find_one(doc! { "_id": &refused.key }).await?;
                Ok(found.map_or_else(|| refused.reply.clone(), |c| c.reply))
            }
            Err(e) => Err(e.into()),
        }
    }
}
