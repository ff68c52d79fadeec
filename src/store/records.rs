//! The stored shapes (DESIGN §5, CONTRACT field names).

use mongodb::bson::DateTime;
use serde::{Deserialize, Serialize};

use super::OutboxMessage;
use crate::domain::{
    Attachment, AttachmentKind, Category, Citizen, Classification, GeoJsonPoint, LocationRecord, NewPetition,
    PetitionId, ReceiptTimeNote, RoutingHints, Source, Status,
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadlinesRecord {
    pub respond_by: DateTime,
    pub resolve_by: DateTime,
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
    pub grid: Option<String>,
    pub unit: Option<String>,
    pub status: Status,
    pub deadlines: Option<DeadlinesRecord>,
    pub escalation_level: i32,
    /// The running clocks (DESIGN §8); set by routing, kept by the deadline role.
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
            location: LocationRecord {
                point: p.point.map(Into::into),
                address: p.address,
            },
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
            outbox: Vec::new(),
        }
    }
}
