//! Commands from handler apps, reviewers and citizens (`docs/contract.md` §7),
//! parsed at the edge into a closed set of actions.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{PetitionId, UnitPath};

/// Who may do what (the `actor.role` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorRole {
    /// Street, community or grid staff acting for `actor.unit`.
    Handler,
    /// The district platform's dispatcher: re-assigns (transfer).
    Dispatcher,
    /// The district platform's reviewer: approves or returns results.
    Reviewer,
    /// The resident who filed the petition, through their channel.
    Citizen,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub id: String,
    pub role: ActorRole,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<UnitPath>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rating {
    Satisfied,
    BasicallySatisfied,
    Unsatisfied,
}

/// Why a handler refuses an order (退单).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefuseReason {
    WrongFunction,
    WrongLocality,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Accept,
    Progress { note: String },
    Resolve { result: String },
    Refuse { reason: RefuseReason, note: Option<String> },
    Escalate { note: Option<String> },
    Transfer { unit: UnitPath },
    Approve,
    Return { reason: String },
    Rate { rating: Rating, comment: Option<String> },
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::Accept => "accept",
            Action::Progress { .. } => "progress",
            Action::Resolve { .. } => "resolve",
            Action::Refuse { .. } => "refuse",
            Action::Escalate { .. } => "escalate",
            Action::Transfer { .. } => "transfer",
            Action::Approve => "approve",
            Action::Return { .. } => "return",
            Action::Rate { .. } => "rate",
        }
    }
}

/// The answer on the command's `reply_to` (CONTRACT).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandReply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<super::Status>,
}

impl CommandReply {
    pub fn applied(status: super::Status) -> Self {
        CommandReply { ok: true, error: None, status: Some(status) }
    }

    pub fn refused(code: &str) -> Self {
        CommandReply { ok: false, error: Some(code.to_owned()), status: None }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub id: String,
    pub petition_id: PetitionId,
    pub actor: Actor,
    pub at: DateTime<Utc>,
    pub action: Action,
}

/// Why a command could not even be read. Carries the command id when the
/// body had one, so the refusal can be remembered under it.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct BadCommand {
    pub code: &'static str,
    pub detail: String,
    pub command_id: Option<String>,
}

#[derive(Deserialize)]
struct Wire {
    command_id: String,
    petition_id: PetitionId,
    actor: Actor,
    at: DateTime<Utc>,
    #[serde(default)]
    data: serde_json::Value,
}

#[derive(Deserialize)]
struct Note {
    note: Option<String>,
}
#[derive(Deserialize)]
struct ResultData {
    result: String,
}
#[derive(Deserialize)]
struct RefuseData {
    reason: RefuseReason,
    note: Option<String>,
}
#[derive(Deserialize)]
struct TransferData {
    unit: UnitPath,
}
#[derive(Deserialize)]
struct ReturnData {
    reason: String,
}
#[derive(Deserialize)]
struct RateData {
    rating: Rating,
    comment: Option<String>,
}

impl Command {
    /// `routing_key` is `petition.<command>`; `body` the JSON command.
    pub fn parse(routing_key: &str, body: &[u8]) -> Result<Command, BadCommand> {
        let wire: Wire = serde_json::from_slice(body).map_err(|e| BadCommand {
            code: "invalid_command",
            detail: e.to_string(),
            command_id: command_id_of(body),
        })?;
        let bad = |code, detail: String| BadCommand { code, detail, command_id: Some(wire.command_id.clone()) };
        if wire.command_id.trim().is_empty() {
            return Err(bad("invalid_command", "command_id is empty".into()));
        }
        let name = routing_key.strip_prefix("petition.").unwrap_or(routing_key);
        let data = if wire.data.is_null() { serde_json::json!({}) } else { wire.data.clone() };
        let field = |e: serde_json::Error| bad("invalid_command", format!("data of `{name}`: {e}"));
        let text = |s: String, what: &str| {
            if s.trim().is_empty() { Err(bad("invalid_command", format!("{what} is empty"))) } else { Ok(s) }
        };
        let action = match name {
            "accept" => Action::Accept,
            "progress" => {
                let note = serde_json::from_value::<Note>(data).map_err(field)?.note.unwrap_or_default();
                Action::Progress { note: text(note, "data.note")? }
            }
            "resolve" => {
                let d: ResultData = serde_json::from_value(data).map_err(field)?;
                Action::Resolve { result: text(d.result, "data.result")? }
            }
            "refuse" => {
                let d: RefuseData = serde_json::from_value(data).map_err(field)?;
                Action::Refuse { reason: d.reason, note: d.note }
            }
            "escalate" => Action::Escalate { note: serde_json::from_value::<Note>(data).map_err(field)?.note },
            "transfer" => Action::Transfer { unit: serde_json::from_value::<TransferData>(data).map_err(field)?.unit },
            "approve" => Action::Approve,
            "return" => {
                let d: ReturnData = serde_json::from_value(data).map_err(field)?;
                Action::Return { reason: text(d.reason, "data.reason")? }
            }
            "rate" => {
                let d: RateData = serde_json::from_value(data).map_err(field)?;
                Action::Rate { rating: d.rating, comment: d.comment }
            }
            other => return Err(bad("unknown_command", format!("no command `{other}`"))),
        };
        Ok(Command { id: wire.command_id, petition_id: wire.petition_id, actor: wire.actor, at: wire.at, action })
    }
}

fn command_id_of(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value.get("command_id")?.as_str().filter(|s| !s.is_empty()).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(data: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "command_id": "c-1", "petition_id": "20261127-000001",
            "actor": { "id": "w1", "role": "handler", "unit": "shinan.badaxia" },
            "at": "2026-11-27T09:00:00+08:00", "data": data,
        }))
        .unwrap()
    }

    #[test]
    fn commands_parse_into_actions() {
        let c = Command::parse("petition.refuse", &body(serde_json::json!({ "reason": "wrong_locality" }))).unwrap();
        assert_eq!(c.action, Action::Refuse { reason: RefuseReason::WrongLocality, note: None });
        assert_eq!(c.actor.unit.unwrap().as_str(), "shinan.badaxia");
        let c = Command::parse("petition.rate", &body(serde_json::json!({ "rating": "basically_satisfied" }))).unwrap();
        assert_eq!(c.action, Action::Rate { rating: Rating::BasicallySatisfied, comment: None });
        assert_eq!(Command::parse("petition.accept", &body(serde_json::Value::Null)).unwrap().action, Action::Accept);
    }

    #[test]
    fn bad_commands_name_the_problem_and_keep_the_id() {
        let e = Command::parse("petition.resolve", &body(serde_json::json!({ "result": " " }))).unwrap_err();
        assert_eq!((e.code, e.command_id.as_deref()), ("invalid_command", Some("c-1")));
        let e = Command::parse("petition.transfer", &body(serde_json::json!({ "unit": "Not A Unit" }))).unwrap_err();
        assert_eq!(e.code, "invalid_command");
        let e = Command::parse("petition.delete", &body(serde_json::json!({}))).unwrap_err();
        assert_eq!(e.code, "unknown_command");
        let e = Command::parse("petition.accept", b"{not json").unwrap_err();
        assert_eq!((e.code, e.command_id), ("invalid_command", None));
    }
}
