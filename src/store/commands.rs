//! Refused commands, remembered by `command_id` so a repeat gets the same
//! answer. (Applied commands are remembered inside the petition, in the
//! same write as their effect.)

use mongodb::bson::{self, doc};
use serde::{Deserialize, Serialize};

use super::{Result, Store, is_duplicate_key};
use crate::domain::CommandReply;

pub const COMMANDS: &str = "commands";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefusedCommand {
    #[serde(rename = "_id")]
    pub command_id: String,
    pub petition_id: Option<String>,
    pub command: String,
    pub actor: Option<serde_json::Value>,
    pub at: bson::DateTime,
    pub reply: CommandReply,
    pub detail: Option<String>,
}

impl Store {
    pub async fn remembered_reply(&self, command_id: &str) -> Result<Option<CommandReply>> {
        let found = self.collection::<RefusedCommand>(COMMANDS).find_one(doc! { "_id": command_id }).await?;
        Ok(found.map(|c| c.reply))
    }

    /// Records the refusal; if the same command was refused before, that
    /// first reply stands and is returned.
    pub async fn remember_refusal(&self, refused: &RefusedCommand) -> Result<CommandReply> {
        match self.collection::<RefusedCommand>(COMMANDS).insert_one(refused).await {
            Ok(_) => Ok(refused.reply.clone()),
            Err(e) if is_duplicate_key(&e) => {
                Ok(self.remembered_reply(&refused.command_id).await?.unwrap_or_else(|| refused.reply.clone()))
            }
            Err(e) => Err(e.into()),
        }
    }
}
