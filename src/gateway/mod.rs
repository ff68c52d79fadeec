//! The HTTP edge's rules (`docs/contract.md` §12), pure: WeChat's
//! signatures and message crypto, the HMAC of signed requests, and what a
//! request body becomes — an intake message with its dedup key, or a
//! refusal with its status and reason code. The server is the `gateway`
//! role in the workers crate.

pub mod client;
pub mod signed;
mod view;
pub mod wechat;

pub use view::{TimelineEvent, citizen_view};

use chrono::{DateTime, Utc};

use crate::intake::{self, Intake, IntakePolicy, RejectReason, Rejection};

/// Bodies over this get 413 (`too_large`).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// The HTTP status of an intake body that cannot be published.
pub fn status(reason: RejectReason) -> u16 {
    match reason {
        RejectReason::Malformed | RejectReason::NotUtf8 => 400,
        RejectReason::TooLarge => 413,
        RejectReason::Invalid | RejectReason::UnknownChannel | RejectReason::Unsupported => 422,
    }
}

/// A body the gateway will publish: checked exactly as normalize will read
/// it, with the channel's dedup key as the AMQP `message_id`.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    pub message_id: String,
}

/// Checks `body` as the intake of `channel` would. A well-formed message of
/// a kind that cannot become a petition (`unsupported`) is still accepted:
/// the channel did nothing wrong, and normalize records it.
pub fn accept(channel: &str, body: &[u8], now: DateTime<Utc>, policy: &IntakePolicy) -> Result<Accepted, Rejection> {
    match intake::parse(channel, body, now, policy) {
        Ok(intake) => Ok(Accepted { message_id: dedup_key(&intake) }),
        Err(r) if r.reason == RejectReason::Unsupported => {
            let id = r.payload_id.clone().ok_or(r)?;
            Ok(Accepted { message_id: id })
        }
        Err(r) => Err(r),
    }
}

/// The channel's own dedup key: WeChat `MsgId` (events: `FromUserName:CreateTime:Event`),
/// App `request_id`, hotline `order_no`.
pub fn dedup_key(intake: &Intake) -> String {
    match intake {
        Intake::Petition(p) => p.source.message_id.clone(),
        Intake::Attachment(a) => a.attachment.message_id.clone(),
        Intake::ChannelEvent(e) => e.dedup_key.clone(),
    }
}

/// The WeChat account as configured (`wechat.*`).
#[derive(Debug, Clone)]
pub struct WechatAccount {
    pub token: String,
    /// Safe mode when set (`wechat.encoding_aes_key`).
    pub crypto: Option<wechat::MessageCrypto>,
    /// The account's `gh_…` id: a push to another `ToUserName` is refused.
    pub account: Option<String>,
}

/// The query string of a WeChat callback.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct WechatQuery {
    pub signature: Option<String>,
    pub timestamp: Option<String>,
    pub nonce: Option<String>,
    pub echostr: Option<String>,
    pub encrypt_type: Option<String>,
    pub msg_signature: Option<String>,
}

/// Why a WeChat callback is refused: 403 (`forbidden`, with the reason) or
/// a body that is not a WeChat envelope (400 `malformed`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WechatRefusal {
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("malformed: {0}")]
    Malformed(String),
}

/// The safe-mode envelope (and the compatible-mode body, which has both).
#[derive(serde::Deserialize, Default)]
#[serde(rename = "xml", rename_all = "PascalCase")]
struct Envelope {
    to_user_name: Option<String>,
    encrypt: Option<String>,
}

impl WechatAccount {
    /// The URL check (GET): the `echostr` to answer with.
    pub fn verify_url(&self, q: &WechatQuery, now: DateTime<Utc>) -> Result<String, WechatRefusal> {
        self.check_signature(q, now)?;
        q.echostr.clone().ok_or(WechatRefusal::Forbidden("no echostr"))
    }

    /// A push (POST): its plaintext XML, once every check passed.
    pub fn open(&self, q: &WechatQuery, body: &[u8], now: DateTime<Utc>) -> Result<Vec<u8>, WechatRefusal> {
        self.check_signature(q, now)?;
        let text = std::str::from_utf8(body).map_err(|e| WechatRefusal::Malformed(format!("body is not UTF-8: {e}")))?;
        let envelope: Envelope = quick_xml::de::from_str(text).map_err(|e| WechatRefusal::Malformed(format!("not WeChat XML: {e}")))?;
        let plain = match (&self.crypto, q.encrypt_type.as_deref()) {
            (Some(crypto), Some("aes")) => {
                let encrypt = envelope.encrypt.as_deref().ok_or_else(|| WechatRefusal::Malformed("no Encrypt element".into()))?;
                let given = q.msg_signature.as_deref().unwrap_or_default();
                let expected = wechat::signature(&[&self.token, field(&q.timestamp), field(&q.nonce), encrypt]);
                if !wechat::same(given, &expected) {
                    return Err(WechatRefusal::Forbidden("bad msg_signature"));
                }
                crypto.decrypt(encrypt).map_err(|e| match e {
                    wechat::CryptoError::WrongAppId => WechatRefusal::Forbidden("another app id"),
                    other => WechatRefusal::Malformed(other.to_string()),
                })?
            }
            // No downgrade: with a key configured, only encrypted pushes count.
            (Some(_), _) => return Err(WechatRefusal::Forbidden("plaintext push while safe mode is configured")),
            (None, _) => body.to_vec(),
        };
        if let Some(account) = &self.account {
            let to = match envelope.to_user_name {
                Some(to) => to,
                None => to_user(&plain)?,
            };
            if to.trim() != account {
                return Err(WechatRefusal::Forbidden("ToUserName is another account"));
            }
        }
        Ok(plain)
    }

    fn check_signature(&self, q: &WechatQuery, now: DateTime<Utc>) -> Result<(), WechatRefusal> {
        let ts: i64 = q.timestamp.as_deref().and_then(|t| t.parse().ok()).ok_or(WechatRefusal::Forbidden("no timestamp"))?;
        if (now.timestamp() - ts).abs() > signed::WINDOW_SECS {
            return Err(WechatRefusal::Forbidden("timestamp outside the replay window"));
        }
        let expected = wechat::signature(&[&self.token, field(&q.timestamp), field(&q.nonce)]);
        if self.token.is_empty() || !wechat::same(q.signature.as_deref().unwrap_or_default(), &expected) {
            return Err(WechatRefusal::Forbidden("bad signature"));
        }
        Ok(())
    }
}

fn field(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or_default()
}

fn to_user(plain: &[u8]) -> Result<String, WechatRefusal> {
    let text = std::str::from_utf8(plain).map_err(|e| WechatRefusal::Malformed(e.to_string()))?;
    let envelope: Envelope = quick_xml::de::from_str(text).map_err(|e| WechatRefusal::Malformed(format!("not WeChat XML: {e}")))?;
    envelope.to_user_name.ok_or_else(|| WechatRefusal::Malformed("no ToUserName".into()))
}

#[cfg(test)]
mod tests;
