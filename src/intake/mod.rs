//! Native channel payloads → domain values (pure). Every body ends as an
//! [`Intake`] or a [`Rejection`] with a stable reason code.

mod app;
mod hotline;
pub mod open311;
mod text;
mod wechat;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::{Attachment, Channel, NewPetition, ReceiptClock, UnknownChannel};

/// What one intake message turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum Intake {
    Petition(Box<NewPetition>),
    /// A WeChat location or image for the citizen's petition nearby in time.
    Attachment(HeldAttachment),
    /// Not a petition (WeChat subscribe, menu click…): recorded, acknowledged.
    ChannelEvent(ChannelEvent),
}

#[derive(Debug, Clone, PartialEq)]
pub struct HeldAttachment {
    pub channel: Channel,
    pub citizen_id: String,
    pub at: DateTime<Utc>,
    pub attachment: Attachment,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChannelEvent {
    pub channel: Channel,
    /// WeChat events carry no MsgId; WeChat's own advice is to dedupe them on
    /// `FromUserName + CreateTime + Event`.
    pub dedup_key: String,
    pub citizen_id: String,
    pub event: String,
    pub at: DateTime<Utc>,
    pub data: serde_json::Value,
}

/// Stable machine-readable rejection codes (`docs/contract.md` §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// Not well-formed JSON / XML.
    Malformed,
    /// Well-formed, but a field is missing, mistyped or out of range.
    Invalid,
    TooLarge,
    NotUtf8,
    UnknownChannel,
    /// A well-formed message of a kind that cannot become a petition
    /// (WeChat link or video, voice without speech recognition).
    Unsupported,
}

impl RejectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Malformed => "malformed",
            RejectReason::Invalid => "invalid",
            RejectReason::TooLarge => "too_large",
            RejectReason::NotUtf8 => "not_utf8",
            RejectReason::UnknownChannel => "unknown_channel",
            RejectReason::Unsupported => "unsupported",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {detail}", reason.as_str())]
pub struct Rejection {
    pub reason: RejectReason,
    pub detail: String,
    /// The payload's own id, when it could be read.
    pub payload_id: Option<String>,
}

impl Rejection {
    pub fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        Rejection { reason, detail: detail.into(), payload_id: None }
    }

    pub(crate) fn with_id(mut self, id: Option<String>) -> Self {
        self.payload_id = id;
        self
    }
}

/// The tunable parts of intake.
#[derive(Debug, Clone, Copy)]
pub struct IntakePolicy {
    pub max_body_bytes: usize,
    pub clock: ReceiptClock,
}

/// Parses one body published to `{ns}.intake` with `routing_key`.
pub fn parse(routing_key: &str, body: &[u8], first_seen: DateTime<Utc>, policy: &IntakePolicy) -> Result<Intake, Rejection> {
    let channel: Channel = routing_key.parse().map_err(|e: UnknownChannel| Rejection::new(RejectReason::UnknownChannel, e.to_string()))?;
    if body.len() > policy.max_body_bytes {
        return Err(Rejection::new(
            RejectReason::TooLarge,
            format!("body is {} bytes, the limit is {}", body.len(), policy.max_body_bytes),
        ));
    }
    let text = std::str::from_utf8(body).map_err(|e| Rejection::new(RejectReason::NotUtf8, format!("body is not UTF-8: {e}")))?;
    match channel {
        Channel::Wechat => wechat::parse(text, first_seen, &policy.clock),
        Channel::App => app::parse(text, first_seen, &policy.clock),
        Channel::Hotline => hotline::parse(text, first_seen, &policy.clock),
        Channel::Open311 => open311::parse(text, first_seen, &policy.clock),
    }
}

#[cfg(test)]
mod tests;
