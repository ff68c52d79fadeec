//! Open311 GeoReport v2 service requests, as the gateway publishes them
//! (`schemas/intake/open311.schema.json`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::text::{invalid, optional, parse_json, present, required, rfc3339};
use super::{Intake, Rejection};
use crate::domain::{Category, Channel, Citizen, GeoPoint, NewPetition, ReceiptClock, RoutingHints, Source};

/// GeoReport's limit on `description`, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 4000;

#[derive(Deserialize)]
struct Request {
    token: String,
    #[serde(default, deserialize_with = "present")]
    requested_at: Option<String>,
    service_code: Category,
    #[serde(default, deserialize_with = "present")]
    lat: Option<f64>,
    #[serde(default, deserialize_with = "present")]
    long: Option<f64>,
    #[serde(default, deserialize_with = "present")]
    address_string: Option<String>,
    #[serde(default, deserialize_with = "present")]
    description: Option<String>,
    #[serde(default, deserialize_with = "present")]
    email: Option<String>,
    #[serde(default, deserialize_with = "present")]
    phone: Option<String>,
    #[serde(default, deserialize_with = "present")]
    first_name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    last_name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    media_url: Option<String>,
    #[serde(default, deserialize_with = "present")]
    device_id: Option<String>,
    #[serde(default, deserialize_with = "present")]
    account_id: Option<String>,
    /// Kept on the message as sent (no service defines attributes), but
    /// checked: the parser accepts nothing the schema refuses.
    #[serde(default, rename = "attributes", deserialize_with = "present")]
    _attributes: Option<BTreeMap<String, Attribute>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Attribute {
    One(#[allow(dead_code)] String),
    Many(#[allow(dead_code)] Vec<String>),
}

pub(super) fn parse(text: &str, first_seen: DateTime<Utc>, clock: &ReceiptClock) -> Result<Intake, Rejection> {
    let r: Request = parse_json(text, "token")?;
    let id = Some(r.token.clone());
    petition(r, first_seen, clock).map_err(|e| e.with_id(id))
}

fn petition(r: Request, first_seen: DateTime<Utc>, clock: &ReceiptClock) -> Result<Intake, Rejection> {
    let message_id = required("token", Some(r.token))?;
    let requested = r.requested_at.as_deref().map(|s| rfc3339("requested_at", s)).transpose()?;
    let point = match (r.lat, r.long) {
        (Some(lat), Some(lng)) => Some(GeoPoint::new(lng, lat).map_err(|e| invalid(format!("`lat`/`long`: {e}")))?),
        (None, None) => None,
        _ => return Err(invalid("`lat` and `long` come together")),
    };
    let address = optional(r.address_string);
    if point.is_none() && address.is_none() {
        return Err(invalid("a location is required: `lat` and `long`, or `address_string`"));
    }
    let content = required("description", r.description)?;
    if content.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(invalid(format!("`description` is over {MAX_DESCRIPTION_CHARS} characters")));
    }
    let phone = optional(r.phone);
    let id = [optional(r.account_id), optional(r.email), phone.clone(), optional(r.device_id)]
        .into_iter()
        .flatten()
        .next()
        // Anonymous: the token, so no two anonymous requests share a citizen.
        .unwrap_or_else(|| message_id.clone());
    Ok(Intake::Petition(Box::new(NewPetition {
        source: Source { channel: Channel::Open311, message_id },
        citizen: Citizen { id, phone, name: full_name(optional(r.first_name), optional(r.last_name)) },
        content,
        received: clock.decide(requested, first_seen),
        category: Some(r.service_code),
        subcategory: None,
        classification: None,
        urgent: false,
        time_limit_days: None,
        point,
        address,
        hints: RoutingHints::default(),
        images: optional(r.media_url).into_iter().collect(),
    })))
}

/// A Chinese name is written family name first and without a space
/// (张 + 三 → 张三); others as `first last`.
fn full_name(first: Option<String>, last: Option<String>) -> Option<String> {
    let cjk = |s: &str| s.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c));
    match (first, last) {
        (Some(f), Some(l)) if cjk(&f) || cjk(&l) => Some(format!("{l}{f}")),
        (Some(f), Some(l)) => Some(format!("{f} {l}")),
        (f, l) => f.or(l),
    }
}

#[cfg(test)]
mod tests {
    use super::full_name;

    #[test]
    fn chinese_names_put_the_family_name_first() {
        assert_eq!(full_name(Some("三".into()), Some("张".into())).as_deref(), Some("张三"));
        assert_eq!(full_name(Some("Ada".into()), Some("Lovelace".into())).as_deref(), Some("Ada Lovelace"));
        assert_eq!(full_name(None, Some("张".into())).as_deref(), Some("张"));
        assert_eq!(full_name(None, None), None);
    }
}
