//! 12345 hotline work orders (`schemas/intake/hotline.schema.json`).

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::text::{instant_or_local, invalid, optional, parse_json, present, required};
use super::{Intake, Rejection};
use crate::domain::{Channel, Citizen, Classification, NewPetition, ReceiptClock, RoutingHints, Source};

#[derive(Deserialize)]
struct WorkOrder {
    order_no: String,
    #[serde(default, deserialize_with = "present")]
    created_at: Option<String>,
    caller: Caller,
    #[serde(default, deserialize_with = "present")]
    content: Option<String>,
    #[serde(default, deserialize_with = "present")]
    classification: Option<HotlineClass>,
    #[serde(default, deserialize_with = "present")]
    address: Option<String>,
    #[serde(default, deserialize_with = "present")]
    street: Option<String>,
    #[serde(default, deserialize_with = "present")]
    community: Option<String>,
    #[serde(default, deserialize_with = "present")]
    urgency: Option<Urgency>,
    #[serde(default, deserialize_with = "present")]
    time_limit_days: Option<u8>,
}

#[derive(Deserialize)]
struct Caller {
    phone: String,
    #[serde(default, deserialize_with = "present")]
    name: Option<String>,
}

#[derive(Deserialize)]
struct HotlineClass {
    code: String,
    name: String,
}

#[derive(Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Urgency {
    Normal,
    Urgent,
}

/// The longest time limit a work order may set, in working days.
const MAX_TIME_LIMIT_DAYS: u8 = 30;

pub(super) fn parse(text: &str, first_seen: DateTime<Utc>, clock: &ReceiptClock) -> Result<Intake, Rejection> {
    let order: WorkOrder = parse_json(text, "order_no")?;
    let id = Some(order.order_no.clone());
    petition(order, first_seen, clock).map_err(|r| r.with_id(id))
}

fn petition(o: WorkOrder, first_seen: DateTime<Utc>, clock: &ReceiptClock) -> Result<Intake, Rejection> {
    let message_id = required("order_no", Some(o.order_no))?;
    let created = o.created_at.as_deref().map(|s| instant_or_local("created_at", s)).transpose()?;
    let phone = required("caller.phone", Some(o.caller.phone))?;
    if !phone.chars().all(|c| c.is_ascii_digit() || c == '-' || c == '+') {
        return Err(invalid("`caller.phone` must be digits"));
    }
    if let Some(days) = o.time_limit_days
        && !(1..=MAX_TIME_LIMIT_DAYS).contains(&days)
    {
        return Err(invalid(format!("`time_limit_days` must be 1..={MAX_TIME_LIMIT_DAYS}")));
    }
    let classification = match o.classification {
        Some(c) => Some(Classification {
            code: required("classification.code", Some(c.code))?,
            name: required("classification.name", Some(c.name))?,
        }),
        None => None,
    };
    Ok(Intake::Petition(Box::new(NewPetition {
        source: Source { channel: Channel::Hotline, message_id },
        citizen: Citizen { id: phone.clone(), phone: Some(phone), name: optional(o.caller.name) },
        content: required("content", o.content)?,
        received: clock.decide(created, first_seen),
        category: None,
        subcategory: None,
        classification,
        urgent: o.urgency == Some(Urgency::Urgent),
        time_limit_days: o.time_limit_days,
        point: None,
        address: optional(o.address),
        hints: RoutingHints { street: optional(o.street), community: optional(o.community), building_id: None },
        images: Vec::new(),
    })))
}
