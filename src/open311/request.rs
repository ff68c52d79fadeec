//! `POST requests`: GeoReport's form fields → the `open311` intake payload
//! (`schemas/intake/open311.schema.json`), or the refusal a GeoReport
//! client expects. The api_key and jurisdiction are the gateway's to check
//! first; everything here is about the request itself.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::Open311Error;
use crate::domain::Category;
use crate::intake::RejectReason;
use crate::intake::open311::MAX_DESCRIPTION_CHARS;

/// A request that will not be published: GeoReport's error, and the reason
/// code it is recorded under in `rejections`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub error: Open311Error,
    pub reason: RejectReason,
}

fn refuse(status: u16, description: impl Into<String>) -> Refusal {
    Refusal { error: Open311Error::new(status, description), reason: RejectReason::Invalid }
}

/// Text fields copied as sent (blank = absent).
const TEXT_FIELDS: [&str; 9] =
    ["address_string", "address_id", "email", "phone", "first_name", "last_name", "media_url", "device_id", "account_id"];

/// The payload published for a request the gateway accepted, with the
/// `token` it issued as the dedup key.
pub fn request_payload(form: &[(String, String)], token: &str, now: DateTime<Utc>) -> Result<Value, Refusal> {
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim()).filter(|v| !v.is_empty());
    let code = field("service_code").ok_or_else(|| refuse(400, "service_code is required"))?;
    if Category::from_code(code).is_none() {
        return Err(refuse(404, format!("service_code `{code}` not found; GET services lists them")));
    }
    let mut payload = Map::new();
    payload.insert("token".into(), json!(token));
    payload.insert("requested_at".into(), json!(now.to_rfc3339()));
    payload.insert("service_code".into(), json!(code));
    match (field("lat"), field("long")) {
        (Some(lat), Some(lng)) => {
            payload.insert("lat".into(), json!(coordinate("lat", lat, 90.0)?));
            payload.insert("long".into(), json!(coordinate("long", lng, 180.0)?));
        }
        (None, None) => {}
        _ => return Err(refuse(400, "lat and long come together")),
    }
    for name in TEXT_FIELDS {
        if let Some(v) = field(name) {
            payload.insert(name.into(), json!(v));
        }
    }
    if !payload.contains_key("lat") && !payload.contains_key("address_string") {
        return Err(refuse(400, "a location is required: lat and long, or address_string"));
    }
    let description = field("description").ok_or_else(|| refuse(400, "description is required: it is the petition's text"))?;
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(refuse(400, format!("description is over {MAX_DESCRIPTION_CHARS} characters")));
    }
    payload.insert("description".into(), json!(description));
    let attributes = attributes(form);
    if !attributes.is_empty() {
        payload.insert("attributes".into(), Value::Object(attributes));
    }
    Ok(Value::Object(payload))
}

fn coordinate(name: &str, value: &str, bound: f64) -> Result<f64, Refusal> {
    value
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && v.abs() <= bound)
        .ok_or_else(|| refuse(400, format!("{name} must be a WGS-84 coordinate within ±{bound}")))
}

/// `attribute[CODE]=v` → `CODE: v`; `attribute[CODE][]=v1&…` → `CODE: [v1, …]`.
fn attributes(form: &[(String, String)]) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, value) in form {
        let Some(rest) = key.strip_prefix("attribute[") else { continue };
        if let Some(code) = rest.strip_suffix("][]") {
            let entry = out.entry(code.to_owned()).or_insert_with(|| json!([]));
            if let Value::Array(values) = entry {
                values.push(json!(value));
            }
        } else if let Some(code) = rest.strip_suffix(']') {
            out.insert(code.to_owned(), json!(value));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn post(pairs: &[(&str, &str)]) -> Result<Value, Refusal> {
        request_payload(&form(pairs), "tok-1", "2026-11-28T01:00:00Z".parse().unwrap())
    }

    #[test]
    fn a_request_as_three_posts_it() {
        let v = post(&[
            ("description", "八大关路灯不亮"),
            ("service_code", "livelihood"),
            ("long", "120.3390"),
            ("lat", "36.0582"),
            ("api_key", "k"),
            ("email", "a@b.c"),
            ("attribute[floor]", "3"),
            ("attribute[kinds][]", "a"),
            ("attribute[kinds][]", "b"),
        ])
        .unwrap();
        assert_eq!(
            v,
            json!({
                "token": "tok-1", "requested_at": "2026-11-28T01:00:00+00:00", "service_code": "livelihood",
                "lat": 36.0582, "long": 120.339, "email": "a@b.c", "description": "八大关路灯不亮",
                "attributes": { "floor": "3", "kinds": ["a", "b"] },
            })
        );
        let schema: Value = serde_json::from_str(include_str!("../../schemas/intake/open311.schema.json")).unwrap();
        assert!(jsonschema::is_valid(&schema, &v), "the payload follows its schema");
    }

    #[test]
    fn refusals_carry_geo_report_statuses() {
        let status = |pairs: &[(&str, &str)]| post(pairs).unwrap_err().error.status;
        assert_eq!(status(&[("lat", "36"), ("long", "120"), ("description", "x")]), 400, "no service_code");
        assert_eq!(status(&[("service_code", "001"), ("lat", "36"), ("long", "120"), ("description", "x")]), 404);
        assert_eq!(status(&[("service_code", "livelihood"), ("description", "x")]), 400, "no location");
        assert_eq!(status(&[("service_code", "livelihood"), ("lat", "36"), ("description", "x")]), 400, "lat without long");
        assert_eq!(status(&[("service_code", "livelihood"), ("lat", "north"), ("long", "120"), ("description", "x")]), 400);
        assert_eq!(status(&[("service_code", "livelihood"), ("address_string", "南京路"), ("description", " ")]), 400);
        let long = "字".repeat(4001);
        assert_eq!(status(&[("service_code", "livelihood"), ("address_string", "南京路"), ("description", &long)]), 400);
        assert!(post(&[("service_code", "livelihood"), ("address_string", "南京路"), ("description", &long[..12000])]).is_ok());
    }
}
