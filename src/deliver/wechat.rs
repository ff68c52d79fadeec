//! WeChat's server API as the `deliver` role uses it (`docs/contract.md` §12,
//! Delivery): the access token and customer-service (客服) messages, with a
//! template message as the optional fallback outside the 48-hour window.

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Answer, Verdict};
use crate::domain::Outbound;

/// `GET {base}/cgi-bin/token`'s answer: a token, or an error code.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenAnswer {
    pub access_token: Option<String>,
    pub expires_in: Option<i64>,
    #[serde(default)]
    pub errcode: i64,
    #[serde(default)]
    pub errmsg: String,
}

/// A token to use until `refresh_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub value: String,
    pub refresh_at: DateTime<Utc>,
}

impl TokenAnswer {
    /// The token, refreshed a while before it expires (a tenth of its life,
    /// at most 5 minutes), so no send races the expiry.
    pub fn token(self, now: DateTime<Utc>) -> Result<Token, String> {
        match (self.access_token, self.expires_in) {
            (Some(value), Some(expires_in)) if self.errcode == 0 && !value.is_empty() && expires_in > 0 => {
                let margin = (expires_in / 10).min(300);
                Ok(Token { value, refresh_at: now + Duration::seconds(expires_in - margin) })
            }
            _ => Err(format!("token refused: errcode {} {}", self.errcode, self.errmsg)),
        }
    }
}

pub fn token_path(app_id: &str, secret: &str) -> String {
    format!("/cgi-bin/token?grant_type=client_credential&appid={}&secret={}", encode(app_id), encode(secret))
}

pub fn custom_send_path(token: &str) -> String {
    format!("/cgi-bin/message/custom/send?access_token={}", encode(token))
}

pub fn template_send_path(token: &str) -> String {
    format!("/cgi-bin/message/template/send?access_token={}", encode(token))
}

/// A text customer-service message.
pub fn custom_send_body(m: &Outbound) -> Value {
    json!({ "touser": m.recipient.id, "msgtype": "text", "text": { "content": m.text } })
}

/// A template message: the account's template for this kind gets the
/// petition number as `petition_id` and the text as `content`.
pub fn template_send_body(m: &Outbound, template_id: &str) -> Value {
    json!({
        "touser": m.recipient.id,
        "template_id": template_id,
        "data": { "petition_id": { "value": m.petition_id }, "content": { "value": m.text } },
    })
}

/// The `{errcode, errmsg}` of a send.
#[derive(Debug, Clone, Deserialize)]
pub struct SendAnswer {
    #[serde(default)]
    pub errcode: i64,
    #[serde(default)]
    pub errmsg: String,
}

/// What WeChat's `errcode` means for the message.
pub fn send_verdict(errcode: i64, errmsg: &str) -> Answer {
    let why = |what: &str| format!("{what} ({errcode} {errmsg})");
    let verdict = match errcode {
        0 => Verdict::Delivered,
        // Invalid, malformed or expired access token.
        40001 | 40014 | 42001 => Verdict::Refresh(why("access token refused")),
        45015 => Verdict::Undeliverable(why("outside_window")),
        45047 => Verdict::Undeliverable(why("over_quota")),
        // System busy; API call frequency limit.
        -1 | 45009 | 45011 => Verdict::Retry(why("busy")),
        _ => Verdict::Failed(why("refused")),
    };
    Answer::new(errcode, verdict)
}

/// Percent-encodes a query value (tokens and secrets are URL-safe in
/// practice, but nothing here depends on it).
fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_refreshed_before_it_expires() {
        let now = DateTime::parse_from_rfc3339("2026-11-28T10:00:00Z").unwrap().with_timezone(&Utc);
        let answer: TokenAnswer = serde_json::from_str(r#"{"access_token":"T","expires_in":7200}"#).unwrap();
        assert_eq!(answer.token(now).unwrap().refresh_at, now + Duration::seconds(6900));
        let short: TokenAnswer = serde_json::from_str(r#"{"access_token":"T","expires_in":60}"#).unwrap();
        assert_eq!(short.token(now).unwrap().refresh_at, now + Duration::seconds(54));
        let refused: TokenAnswer = serde_json::from_str(r#"{"errcode":40125,"errmsg":"invalid appsecret"}"#).unwrap();
        assert_eq!(refused.token(now).unwrap_err(), "token refused: errcode 40125 invalid appsecret");
    }

    #[test]
    fn errcodes_decide_refresh_undeliverable_retry_or_failed() {
        assert_eq!(send_verdict(0, "ok").verdict, Verdict::Delivered);
        for code in [40001, 40014, 42001] {
            assert!(matches!(send_verdict(code, "").verdict, Verdict::Refresh(_)), "{code}");
        }
        assert_eq!(
            send_verdict(45015, "response out of time limit").verdict,
            Verdict::Undeliverable("outside_window (45015 response out of time limit)".into())
        );
        assert!(matches!(send_verdict(45047, "").verdict, Verdict::Undeliverable(r) if r.starts_with("over_quota")));
        assert!(matches!(send_verdict(-1, "system busy").verdict, Verdict::Retry(_)));
        assert!(matches!(send_verdict(40003, "invalid openid").verdict, Verdict::Failed(_)));
        assert_eq!(send_verdict(45015, "").code.as_deref(), Some("45015"));
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(token_path("wx1", "a b&c"), "/cgi-bin/token?grant_type=client_credential&appid=wx1&secret=a%20b%26c");
    }
}
