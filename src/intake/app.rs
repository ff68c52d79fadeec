//! The App backend's JSON (`schemas/intake/app.schema.json`).

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::text::{optional, parse_json, present, required, rfc3339};
use super::{Intake, Rejection};
use crate::domain::{Category, Channel, Citizen, GeoPoint, NewPetition, ReceiptClock, RoutingHints, Source};

/// Unknown fields are ignored (adapters may add fields); nothing from the
/// payload is stored except these typed values.
#[derive(Deserialize)]
struct AppPayload {
    request_id: String,
    #[serde(default, deserialize_with = "present")]
    submitted_at: Option<String>,
    user: AppUser,
    #[serde(default, deserialize_with = "present")]
    content: Option<String>,
    #[serde(default, deserialize_with = "present")]
    category: Option<Category>,
    #[serde(default, deserialize_with = "present")]
    subcategory: Option<String>,
    #[serde(default, deserialize_with = "present")]
    urgent: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    location: Option<AppLocation>,
    #[serde(default, deserialize_with = "present")]
    address: Option<String>,
    #[serde(default, deserialize_with = "present")]
    building_id: Option<String>,
    #[serde(default, deserialize_with = "present")]
    images: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct AppUser {
    id: String,
    #[serde(default, deserialize_with = "present")]
    phone: Option<String>,
    #[serde(default, deserialize_with = "present")]
    name: Option<String>,
}

#[derive(Deserialize)]
struct AppLocation {
    lng: f64,
    lat: f64,
}

pub(super) fn parse(text: &str, first_seen: DateTime<Utc>, clock: &ReceiptClock) -> Result<Intake, Rejection> {
    let p: AppPayload = parse_json(text, "request_id")?;
    let id = Some(p.request_id.clone());
    petition(p, first_seen, clock).map_err(|r| r.with_id(id))
}

fn petition(p: AppPayload, first_seen: DateTime<Utc>, clock: &ReceiptClock) -> Result<Intake, Rejection> {
    let message_id = required("request_id", Some(p.request_id))?;
    let submitted = p.submitted_at.as_deref().map(|s| rfc3339("submitted_at", s)).transpose()?;
    let point =
        p.location.map(|l| GeoPoint::new(l.lng, l.lat)).transpose().map_err(|e| super::text::invalid(format!("`location`: {e}")))?;
    Ok(Intake::Petition(Box::new(NewPetition {
        source: Source { channel: Channel::App, message_id },
        citizen: Citizen { id: required("user.id", Some(p.user.id))?, phone: optional(p.user.phone), name: optional(p.user.name) },
        content: required("content", p.content)?,
        received: clock.decide(submitted, first_seen),
        category: p.category,
        subcategory: optional(p.subcategory),
        classification: None,
        urgent: p.urgent.unwrap_or(false),
        time_limit_days: None,
        point,
        address: optional(p.address),
        hints: RoutingHints { building_id: optional(p.building_id), ..RoutingHints::default() },
        images: p.images.unwrap_or_default().into_iter().filter_map(|u| optional(Some(u))).collect(),
    })))
}
