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

/// The texts of a parsed command are within [`limits`] and free of control
/// characters other than `\n` and `\t` (see [`Text`]).
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
/// body had a usable one (see [`limits::ID`]), so the refusal can be
/// remembered under it.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct BadCommand {
    pub code: &'static str,
    pub detail: String,
    pub command_id: Option<String>,
}

/// Bounds on commands (`docs/contract.md` §7). Lengths are in characters
/// (Unicode scalar values), as JSON Schema's `maxLength` counts them.
pub mod limits {
    /// A longer body is refused as `too_large` without being parsed.
    pub const BODY_BYTES: usize = 65_536;
    /// `command_id` and `actor.id`.
    pub const ID: usize = 128;
    /// `note` of `progress`, `refuse` and `escalate`.
    pub const NOTE: usize = 1000;
    /// `result` of `resolve`; it reaches the citizen through `notify.result`.
    pub const RESULT: usize = 2000;
    /// `reason` of `return`.
    pub const REASON: usize = 1000;
    /// `comment` of `rate`.
    pub const COMMENT: usize = 500;
}

/// Text from outside, checked once at the edge: at most `MAX` characters
/// (Unicode scalar values) and no control characters other than `\n` and
/// `\t`, since command texts reach citizens and reports through templates.
/// It may be empty; commands that require a text also refuse blank ones.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Text<const MAX: usize>(String);

/// Why a string is not a [`Text`]; displays as a predicate ("is longer …").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("is longer than {max} characters ({chars})")]
    TooLong { max: usize, chars: usize },
    #[error("contains the control character U+{:04X}", u32::from(*.0))]
    Control(char),
    /// Only for texts that are required.
    #[error("is empty")]
    Blank,
}

impl<const MAX: usize> Text<MAX> {
    pub fn new(text: String) -> Result<Self, TextError> {
        if let Some(c) = text.chars().find(|&c| c.is_control() && c != '\n' && c != '\t') {
            return Err(TextError::Control(c));
        }
        let chars = text.chars().count();
        if chars > MAX {
            return Err(TextError::TooLong { max: MAX, chars });
        }
        Ok(Text(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl<const MAX: usize> TryFrom<String> for Text<MAX> {
    type Error = TextError;

    fn try_from(text: String) -> Result<Self, TextError> {
        Text::new(text)
    }
}

impl<const MAX: usize> From<Text<MAX>> for String {
    fn from(text: Text<MAX>) -> String {
        text.0
    }
}

impl<const MAX: usize> std::ops::Deref for Text<MAX> {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl<const MAX: usize> AsRef<str> for Text<MAX> {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl<const MAX: usize> std::fmt::Display for Text<MAX> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `command_id` and `actor.id`: at most [`limits::ID`] characters, not
/// blank, without any control character (not even `\n` or `\t`).
fn identifier(id: &str) -> Result<(), TextError> {
    if let Some(c) = id.chars().find(|c| c.is_control()) {
        return Err(TextError::Control(c));
    }
    let chars = id.chars().count();
    if chars > limits::ID {
        return Err(TextError::TooLong { max: limits::ID, chars });
    }
    if id.trim().is_empty() {
        return Err(TextError::Blank);
    }
    Ok(())
}

/// Checks the text field `what`; a `required` text must not be blank.
fn text<const MAX: usize>(what: &str, value: String, required: bool) -> Result<String, String> {
    let value = Text::<MAX>::new(value).map_err(|e| format!("{what} {e}"))?;
    if required && value.trim().is_empty() {
        return Err(format!("{what} {}", TextError::Blank));
    }
    Ok(value.into_string())
}

/// An optional text field: absent or `null` is `None`.
fn optional_text<const MAX: usize>(what: &str, value: Option<String>) -> Result<Option<String>, String> {
    value.map(|v| text::<MAX>(what, v, false)).transpose()
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
    /// `routing_key` is `petition.<command>`; `body` the JSON command, at
    /// most [`limits::BODY_BYTES`].
    pub fn parse(routing_key: &str, body: &[u8]) -> Result<Command, BadCommand> {
        if body.len() > limits::BODY_BYTES {
            return Err(BadCommand {
                code: "too_large",
                detail: format!("the body has {} bytes, more than {}", body.len(), limits::BODY_BYTES),
                command_id: None,
            });
        }
        let wire: Wire = serde_json::from_slice(body).map_err(|e| BadCommand {
            code: "invalid_command",
            detail: e.to_string(),
            command_id: command_id_of(body),
        })?;
        // A refusal is remembered under the command id, so only a valid one is kept.
        if let Err(problem) = identifier(&wire.command_id) {
            return Err(BadCommand { code: "invalid_command", detail: format!("command_id {problem}"), command_id: None });
        }
        let bad = |code, detail: String| BadCommand { code, detail, command_id: Some(wire.command_id.clone()) };
        let invalid = |detail: String| bad("invalid_command", detail);
        if let Err(problem) = identifier(&wire.actor.id) {
            return Err(invalid(format!("actor.id {problem}")));
        }
        let name = routing_key.strip_prefix("petition.").unwrap_or(routing_key);
        let data = if wire.data.is_null() { serde_json::json!({}) } else { wire.data.clone() };
        let field = |e: serde_json::Error| invalid(format!("data of `{name}`: {e}"));
        use limits::{COMMENT, NOTE, REASON, RESULT};
        let action = match name {
            "accept" => Action::Accept,
            "progress" => {
                let note = serde_json::from_value::<Note>(data).map_err(field)?.note.unwrap_or_default();
                Action::Progress { note: text::<NOTE>("data.note", note, true).map_err(invalid)? }
            }
            "resolve" => {
                let d: ResultData = serde_json::from_value(data).map_err(field)?;
                Action::Resolve { result: text::<RESULT>("data.result", d.result, true).map_err(invalid)? }
            }
            "refuse" => {
                let d: RefuseData = serde_json::from_value(data).map_err(field)?;
                Action::Refuse { reason: d.reason, note: optional_text::<NOTE>("data.note", d.note).map_err(invalid)? }
            }
            "escalate" => {
                let note = serde_json::from_value::<Note>(data).map_err(field)?.note;
                Action::Escalate { note: optional_text::<NOTE>("data.note", note).map_err(invalid)? }
            }
            "transfer" => Action::Transfer { unit: serde_json::from_value::<TransferData>(data).map_err(field)?.unit },
            "approve" => Action::Approve,
            "return" => {
                let d: ReturnData = serde_json::from_value(data).map_err(field)?;
                Action::Return { reason: text::<REASON>("data.reason", d.reason, true).map_err(invalid)? }
            }
            "rate" => {
                let d: RateData = serde_json::from_value(data).map_err(field)?;
                Action::Rate { rating: d.rating, comment: optional_text::<COMMENT>("data.comment", d.comment).map_err(invalid)? }
            }
            other => return Err(bad("unknown_command", format!("no command `{other}`"))),
        };
        Ok(Command { id: wire.command_id, petition_id: wire.petition_id, actor: wire.actor, at: wire.at, action })
    }
}

fn command_id_of(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value.get("command_id")?.as_str().filter(|id| identifier(id).is_ok()).map(str::to_owned)
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

    /// A command whose `data` has `field` set to `value`, with the other data it needs.
    fn with_text(command: &str, field: &str, value: &str) -> Vec<u8> {
        let mut data = serde_json::json!({ field: value });
        match command {
            "refuse" => data["reason"] = "wrong_function".into(),
            "rate" => data["rating"] = "satisfied".into(),
            _ => {}
        }
        body(data)
    }

    const TEXT_LIMITS: [(&str, &str, usize); 6] = [
        ("progress", "note", limits::NOTE),
        ("resolve", "result", limits::RESULT),
        ("refuse", "note", limits::NOTE),
        ("escalate", "note", limits::NOTE),
        ("return", "reason", limits::REASON),
        ("rate", "comment", limits::COMMENT),
    ];

    #[test]
    fn command_texts_at_their_limit_are_accepted_and_one_over_refused() {
        assert_eq!(TEXT_LIMITS.map(|(_, _, max)| max), [1000, 2000, 1000, 1000, 1000, 500]);
        for (command, field, max) in TEXT_LIMITS {
            let key = format!("petition.{command}");
            // Characters, not bytes: 诉 is three bytes in UTF-8.
            let at_limit = format!("{}\n\t", "诉".repeat(max - 2));
            let c = Command::parse(&key, &with_text(command, field, &at_limit)).unwrap_or_else(|e| panic!("{command}.{field}: {e}"));
            let kept = match c.action {
                Action::Progress { note } | Action::Escalate { note: Some(note) } | Action::Refuse { note: Some(note), .. } => note,
                Action::Resolve { result } => result,
                Action::Return { reason } => reason,
                Action::Rate { comment: Some(comment), .. } => comment,
                other => panic!("{other:?}"),
            };
            assert_eq!(kept, at_limit);

            let e = Command::parse(&key, &with_text(command, field, &"诉".repeat(max + 1))).unwrap_err();
            assert_eq!((e.code, e.command_id.as_deref()), ("invalid_command", Some("c-1")), "{command}.{field}");
            assert!(e.detail.contains(&format!("data.{field}")) && e.detail.contains(&max.to_string()), "{command}: {}", e.detail);
        }
    }

    #[test]
    fn command_texts_refuse_control_characters() {
        for (command, field, _) in TEXT_LIMITS {
            for bad in ["a\u{7}b", "line\r\nbreak", "\u{1b}[31mred", "\u{85}", "\u{0}"] {
                let e = Command::parse(&format!("petition.{command}"), &with_text(command, field, bad)).unwrap_err();
                assert_eq!(e.code, "invalid_command", "{command}.{field} = {bad:?}");
                assert!(e.detail.contains(&format!("data.{field}")) && e.detail.contains("control character"), "{}", e.detail);
            }
        }
    }

    #[test]
    fn command_required_texts_must_not_be_blank() {
        for (command, field) in [("progress", "note"), ("resolve", "result"), ("return", "reason")] {
            for blank in ["", " \n\t"] {
                let e = Command::parse(&format!("petition.{command}"), &with_text(command, field, blank)).unwrap_err();
                assert_eq!(e.code, "invalid_command");
                assert_eq!(e.detail, format!("data.{field} is empty"));
            }
        }
        let e = Command::parse("petition.resolve", &body(serde_json::json!({}))).unwrap_err();
        assert_eq!(e.code, "invalid_command");
        // Optional texts may be empty.
        let c = Command::parse("petition.escalate", &with_text("escalate", "note", "")).unwrap();
        assert_eq!(c.action, Action::Escalate { note: Some(String::new()) });
    }

    fn with_ids(command_id: &str, actor_id: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "command_id": command_id, "petition_id": "20261127-000001",
            "actor": { "id": actor_id, "role": "citizen" },
            "at": "2026-11-27T09:00:00+08:00",
        }))
        .unwrap()
    }

    #[test]
    fn command_ids_are_limited() {
        let max = "号".repeat(limits::ID);
        let c = Command::parse("petition.accept", &with_ids(&max, &max)).unwrap();
        assert_eq!((c.id.as_str(), c.actor.id.as_str()), (max.as_str(), max.as_str()));

        let over = "号".repeat(limits::ID + 1);
        // An unusable command id is not kept, so the refusal is not remembered under it.
        let e = Command::parse("petition.accept", &with_ids(&over, "o-1")).unwrap_err();
        assert_eq!((e.code, e.command_id), ("invalid_command", None));
        assert!(e.detail.starts_with("command_id ") && e.detail.contains("128"), "{}", e.detail);
        let e = Command::parse("petition.accept", &with_ids("c-1\n", "o-1")).unwrap_err();
        assert_eq!((e.code, e.command_id), ("invalid_command", None));
        let e = Command::parse("petition.accept", &with_ids(" ", "o-1")).unwrap_err();
        assert_eq!((e.code, e.command_id), ("invalid_command", None));
        let e = Command::parse("petition.nosuch", &[with_ids(&over, "o-1"), b"!".to_vec()].concat()).unwrap_err();
        assert_eq!((e.code, e.command_id), ("invalid_command", None));

        let e = Command::parse("petition.accept", &with_ids("c-1", &over)).unwrap_err();
        assert_eq!((e.code, e.command_id.as_deref()), ("invalid_command", Some("c-1")));
        assert!(e.detail.starts_with("actor.id ") && e.detail.contains("128"), "{}", e.detail);
        let e = Command::parse("petition.accept", &with_ids("c-1", "o\t1")).unwrap_err();
        assert!(e.detail.starts_with("actor.id ") && e.detail.contains("U+0009"), "{}", e.detail);
    }

    #[test]
    fn command_bodies_over_64_kib_are_too_large() {
        // JSON may end in white space: pad a valid command to the limit exactly.
        let mut at_limit = body(serde_json::json!({ "note": "ok" }));
        at_limit.resize(limits::BODY_BYTES, b' ');
        assert_eq!(at_limit.len(), 65_536);
        assert!(Command::parse("petition.progress", &at_limit).is_ok());

        at_limit.push(b' ');
        let e = Command::parse("petition.progress", &at_limit).unwrap_err();
        assert_eq!((e.code, e.command_id), ("too_large", None));
        assert!(e.detail.contains("65537") && e.detail.contains("65536"), "{}", e.detail);
        // Not even read: a huge non-JSON body gets the same answer.
        let e = Command::parse("petition.progress", &vec![b'x'; 1 << 20]).unwrap_err();
        assert_eq!(e.code, "too_large");
    }

    #[test]
    fn command_text_is_a_plain_string() {
        let t = Text::<5>::new("诉求\n办理".into()).unwrap();
        assert_eq!((t.as_str(), t.len(), t.to_string().as_str()), ("诉求\n办理", 13, "诉求\n办理"));
        assert_eq!(serde_json::json!({ "note": t }), serde_json::json!({ "note": "诉求\n办理" }));
        assert_eq!(Text::<4>::new("诉求\n办理".into()), Err(TextError::TooLong { max: 4, chars: 5 }));
        assert_eq!(Text::<9>::new("a\u{7f}".into()), Err(TextError::Control('\u{7f}')));
        let parsed: Result<Text<3>, _> = serde_json::from_str("\"abcd\"");
        assert!(parsed.unwrap_err().to_string().contains("longer than 3"));
        assert_eq!(String::from(Text::<3>::try_from("abc".to_owned()).unwrap()), "abc");
    }
}
