//! Shared field checks for the channel parsers.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Asia::Shanghai;
use serde::de::DeserializeOwned;

use super::{RejectReason, Rejection};

/// Two phases so the reason is precise: syntax errors are `malformed`,
/// shape and type errors `invalid` (and carry the payload's id if readable).
pub(super) fn parse_json<T: DeserializeOwned>(text: &str, id_field: &str) -> Result<T, Rejection> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| Rejection::new(RejectReason::Malformed, format!("not well-formed JSON: {e}")))?;
    let id = value.get(id_field).and_then(|v| v.as_str()).map(str::to_owned);
    serde_json::from_value(value).map_err(|e| Rejection::new(RejectReason::Invalid, e.to_string()).with_id(id))
}

pub(super) fn invalid(detail: impl Into<String>) -> Rejection {
    Rejection::new(RejectReason::Invalid, detail)
}

/// A required text field: present and not blank once trimmed.
pub(super) fn required(field: &str, value: Option<String>) -> Result<String, Rejection> {
    optional(value).ok_or_else(|| invalid(format!("`{field}` is required and must not be blank")))
}

/// An optional text field; blank counts as absent.
pub(super) fn optional(value: Option<String>) -> Option<String> {
    value.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

pub(super) fn rfc3339(field: &str, value: &str) -> Result<DateTime<Utc>, Rejection> {
    DateTime::parse_from_rfc3339(value.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| invalid(format!("`{field}` is not an RFC 3339 instant: {e}")))
}

/// RFC 3339, or the `YYYY-MM-DD HH:MM:SS` local (Asia/Shanghai) form that
/// 12345 work-order systems commonly write.
pub(super) fn instant_or_local(field: &str, value: &str) -> Result<DateTime<Utc>, Rejection> {
    rfc3339(field, value).or_else(|err| {
        NaiveDateTime::parse_from_str(value.trim(), "%Y-%m-%d %H:%M:%S")
            .ok()
            .and_then(|naive| Shanghai.from_local_datetime(&naive).earliest())
            .map(|t| t.with_timezone(&Utc))
            .ok_or(err)
    })
}

/// For optional fields of a JSON payload: absent is `None`, but an explicit
/// `null` is an error — the schemas allow no nulls, and the parser must not
/// accept what the schema refuses. Use with `#[serde(default, deserialize_with = "present")]`.
pub(super) fn present<'de, D: serde::Deserializer<'de>, T: serde::Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_hotline_time_is_shanghai() {
        let t = instant_or_local("created_at", "2026-11-27 09:30:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-27T01:30:00+00:00");
        assert!(instant_or_local("created_at", "yesterday").is_err());
    }
}
