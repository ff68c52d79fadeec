//! The stored shapes (`docs/contract.md` §5).

use mongodb::bson::DateTime;
use serde::{Deserialize, Serialize};

use super::OutboxMessage;
use crate::domain::{
    Attachment, AttachmentKind, Category, Citizen, Classification, Closure, GeoJsonPoint, LocationRecord, NewPetition, PetitionId, Rating,
    ReceiptTimeNote, RoutingHints, Source, Status, UnitPath,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttachmentRecord {
    pub kind: AttachmentKind,
    pub message_id: String,
    pub at: DateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point: Option<GeoJsonPoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl AttachmentRecord {
    pub fn new(a: &Attachment, at: chrono::DateTime<chrono::Utc>) -> Self {
        AttachmentRecord {
            kind: a.kind,
            message_id: a.message_id.clone(),
            at: at.into(),
            point: a.point.map(Into::into),
            label: a.label.clone(),
            url: a.url.clone(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Area {
    pub street: Option<String>,
    pub community: Option<String>,
}

/// The part of the routing decision later steps need.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoutingRecord {
    #[serde(default)]
    pub working_days: Option<u8>,
    /// How the place was found (`point`, `building`, `hotline_names`, `address`,
    /// `content`), or none when it was not.
    #[serde(default)]
    pub located_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandEntry {
    pub id: String,
    pub status: Status,
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultRecord {
    pub text: String,
    pub unit: UnitPath,
    pub at: DateTime,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RatingRecord {
    pub value: Rating,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    pub at: DateTime,
}

/// Punctuality, recorded the first time it is known (at accept / resolve,
/// or `false` at a breach).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Kpi {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responded_on_time: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_on_time: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadlinesRecord {
    pub respond_by: DateTime,
    pub resolve_by: DateTime,
    /// `resolve_by` was computed without the official schedule of its day
    /// (the weekend rule stood in); recomputed when that year is imported.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub provisional: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PetitionRecord {
    #[serde(rename = "_id")]
    pub id: PetitionId,
    pub source: Source,
    pub citizen: Citizen,
    pub content: String,
    pub category: Option<Category>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subcategory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<Classification>,
    pub urgent: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_limit_days: Option<u8>,
    pub location: LocationRecord,
    #[serde(default)]
    pub hints: RoutingHints,
    #[serde(default)]
    pub images: Vec<String>,
    #[serde(default)]
    pub attachments: Vec<AttachmentRecord>,
    pub grid: Option<UnitPath>,
    pub unit: Option<UnitPath>,
    pub status: Status,
    pub deadlines: Option<DeadlinesRecord>,
    pub escalation_level: i32,
    /// The running clocks (`docs/contract.md` §8); set by routing, kept by the deadline role.
    #[serde(default)]
    pub clock: Option<super::ClockRecord>,
    /// How many times the petition has been dispatched to a unit.
    #[serde(default)]
    pub dispatch_attempts: u32,
    /// Receipt time: the start of every clock.
    pub received_at: DateTime,
    /// Set when the channel's timestamp was missing or implausible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt_time_note: Option<ReceiptTimeNote>,
    pub created_at: DateTime,
    pub updated_at: DateTime,
    pub version: i64,
    /// Street and community of the petition's place (set by routing), for KPIs.
    #[serde(default)]
    pub area: Option<Area>,
    #[serde(default)]
    pub routing: Option<RoutingRecord>,
    /// Commands applied, with the status each left: a repeated command
    /// gets the same reply and changes nothing.
    #[serde(default)]
    pub commands: Vec<CommandEntry>,
    #[serde(default)]
    pub result: Option<ResultRecord>,
    #[serde(default)]
    pub feedback_sent_at: Option<DateTime>,
    #[serde(default)]
    pub rating: Option<RatingRecord>,
    /// Unsatisfied ratings so far; the second one closes the petition.
    #[serde(default)]
    pub unsatisfied: u32,
    /// Every climb: deadline breaches, 上报 and unsatisfied reopenings.
    #[serde(default)]
    pub escalations: u32,
    /// 退单 count.
    #[serde(default)]
    pub refusals: u32,
    #[serde(default)]
    pub closure: Option<Closure>,
    /// Every missed deadline, against the unit that missed it.
    #[serde(default)]
    pub breaches: Vec<super::BreachRecord>,
    #[serde(default)]
    pub kpi: Kpi,
    /// Messages this petition's last change still has to publish; written in
    /// the same atomic update as the change itself (transactional outbox).
    #[serde(default)]
    pub outbox: Vec<OutboxMessage>,
}

impl PetitionRecord {
    pub fn new(id: PetitionId, p: NewPetition, now: chrono::DateTime<chrono::Utc>) -> Self {
        PetitionRecord {
            id,
            source: p.source,
            citizen: p.citizen,
            content: p.content,
            category: p.category,
            subcategory: p.subcategory,
            classification: p.classification,
            urgent: p.urgent,
            time_limit_days: p.time_limit_days,
            location: LocationRecord { point: p.point.map(Into::into), address: p.address },
            hints: p.hints,
            images: p.images,
            attachments: Vec::new(),
            grid: None,
            unit: None,
            status: Status::Received,
            deadlines: None,
            escalation_level: 0,
            dispatch_attempts: 0,
            clock: None,
            received_at: p.received.at.into(),
            receipt_time_note: p.received.note,
            created_at: now.into(),
            updated_at: now.into(),
            version: 1,
            area: None,
            routing: None,
            commands: Vec::new(),
            result: None,
            feedback_sent_at: None,
            rating: None,
            unsatisfied: 0,
            escalations: 0,
            refusals: 0,
            closure: None,
            breaches: Vec::new(),
            kpi: Kpi::default(),
            outbox: Vec::new(),
        }
    }
}

impl PetitionRecord {
    /// The resolution class routing chose (1, 2 or 5 working days).
    pub fn working_days(&self) -> u8 {
        self.routing
            .as_ref()
            .and_then(|r| r.working_days)
            .unwrap_or_else(|| crate::clock::working_days(self.time_limit_days, self.urgent, None, self.category))
    }
}
