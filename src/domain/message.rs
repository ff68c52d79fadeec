//! Messages the pipeline publishes (`docs/contract.md` §6). Field names are CONTRACT.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Category, Channel, Citizen, Deadlines, Level, LocationRecord, Person, PetitionId, Source, UnitPath};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    Received,
    Assigned,
    Triaged,
    Accepted,
    Progressed,
    Resolved,
    Approved,
    Returned,
    FeedbackSent,
    Rated,
    Closed,
    Reopened,
    Escalated,
    Warned,
    Transferred,
    Refused,
    /// A provisional resolution deadline recomputed on the official calendar.
    DeadlineChanged,
    /// The citizen sent the petition's place after it was routed (a WeChat
    /// location): routing looks at it again.
    Located,
    /// A message reached the citizen's channel (`data.message_id`, `channel`, `kind`).
    Delivered,
    /// A message ended `failed` or `undeliverable` (`data.status`, `reason`).
    DeliveryFailed,
    /// Petitions of one category clustered in a grid or a few hundred metres
    /// (未诉先办): `data` is the [`HotspotNotice`], the event is filed under
    /// the cluster's latest petition.
    Hotspot,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Received => "received",
            EventType::Assigned => "assigned",
            EventType::Triaged => "triaged",
            EventType::Accepted => "accepted",
            EventType::Progressed => "progressed",
            EventType::Resolved => "resolved",
            EventType::Approved => "approved",
            EventType::Returned => "returned",
            EventType::FeedbackSent => "feedback_sent",
            EventType::Rated => "rated",
            EventType::Closed => "closed",
            EventType::Reopened => "reopened",
            EventType::Escalated => "escalated",
            EventType::Warned => "warned",
            EventType::Transferred => "transferred",
            EventType::Refused => "refused",
            EventType::DeadlineChanged => "deadline_changed",
            EventType::Located => "located",
            EventType::Delivered => "delivered",
            EventType::DeliveryFailed => "delivery_failed",
            EventType::Hotspot => "hotspot",
        }
    }

    /// Routing key on `{ns}.events`.
    pub fn routing_key(self) -> String {
        format!("petition.{}", self.as_str())
    }
}

/// One entry of a petition's history, published on `{ns}.events` and
/// appended to the `events` collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// `<petition id>/v<version>`: every change of a petition bumps its
    /// version and emits exactly one event, so the id is stable across
    /// redeliveries and consumers dedupe on it.
    pub event_id: String,
    pub petition_id: PetitionId,
    #[serde(rename = "type")]
    pub kind: EventType,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<serde_json::Value>,
    pub data: serde_json::Value,
}

impl Event {
    pub fn new(petition_id: &PetitionId, version: i64, kind: EventType, at: DateTime<Utc>, data: serde_json::Value) -> Self {
        Event { event_id: format!("{petition_id}/v{version}"), petition_id: petition_id.clone(), kind, at, actor: None, data }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboundKind {
    Receipt,
    Progress,
    Result,
    RatingRequest,
}

impl OutboundKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboundKind::Receipt => "receipt",
            OutboundKind::Progress => "progress",
            OutboundKind::Result => "result",
            OutboundKind::RatingRequest => "rating_request",
        }
    }
}

/// Whom the channel adapter delivers to: the openid, the App user id, or the
/// caller's phone with the 12345 order number the answer belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_no: Option<String>,
}

impl Recipient {
    pub fn of(source: &Source, citizen: &Citizen) -> Self {
        Recipient { id: citizen.id.clone(), order_no: (source.channel == Channel::Hotline).then(|| source.message_id.clone()) }
    }
}

/// A message for the citizen, published on `{ns}.outbound` with the
/// channel as routing key ("one door in, one door out").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outbound {
    pub petition_id: PetitionId,
    pub channel: Channel,
    pub recipient: Recipient,
    pub kind: OutboundKind,
    pub text: String,
    pub at: DateTime<Utc>,
}

impl Outbound {
    /// Stable AMQP `message_id`: adapters dedupe on it, so a re-sent
    /// receipt after a crash reaches the citizen once.
    pub fn message_id(&self, sequence: u32) -> String {
        format!("{}/{}/{sequence}", self.petition_id, self.kind.as_str())
    }
}

/// The receipt a citizen gets on the channel they used.
pub fn receipt_text(petition_id: &PetitionId, respond_hours: i64) -> String {
    format!("【暖南诉办】您的诉求已受理，诉求编号：{petition_id}。我们将在{respond_hours}小时内响应，处理结果将通过本渠道反馈，请留意。")
}

/// Work for a unit, published on `{ns}.dispatch` with key `unit.<path>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    pub petition_id: PetitionId,
    pub unit: UnitPath,
    pub level: Level,
    pub category: Option<Category>,
    pub content: String,
    pub location: LocationRecord,
    pub deadlines: Deadlines,
    pub handler: Option<Person>,
    /// The n-th dispatch of this petition (re-dispatches after 退单,
    /// transfers and escalations count up).
    pub attempt: u32,
}

impl Assignment {
    pub fn routing_key(&self) -> String {
        format!("unit.{}", self.unit)
    }

    pub fn message_id(&self) -> String {
        format!("{}/dispatch/{}", self.petition_id, self.attempt)
    }
}

/// Why a petition climbs (or returns) to another level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EscalationReason {
    ResponseOverdue,
    ResolutionOverdue,
    HandlerRequest,
    Unsatisfied,
    Refused,
}

/// A warning or an escalation, published on `{ns}.escalations` with key
/// `<level>.<unit path>` (breach, 上报, 退单, unsatisfied) or `warning.<unit path>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EscalationNotice {
    pub petition_id: PetitionId,
    pub reason: EscalationReason,
    pub from_unit: UnitPath,
    pub to_unit: UnitPath,
    pub to_level: Level,
    pub due_at: DateTime<Utc>,
    /// `None` for a warning.
    pub breached_at: Option<DateTime<Utc>>,
    pub responsible: Option<Person>,
}

impl EscalationNotice {
    pub fn routing_key(&self) -> String {
        match self.breached_at {
            Some(_) => format!("{}.{}", self.to_level.as_str(), self.to_unit),
            None => format!("warning.{}", self.to_unit),
        }
    }
}

/// A hot spot (未诉先办): petitions of one category clustering in one grid or
/// within `hotspot.radius_m` (`src/hotspot.rs`). Published once per cluster on
/// `{ns}.escalations` with key `hotspot.<unit>`, and recorded as a `hotspot`
/// event with these fields as its `data`. `kind` is always `"hotspot"`, so a
/// consumer of `{ns}.escalations` tells it from an [`EscalationNotice`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename = "hotspot")]
pub struct HotspotNotice {
    /// The cluster's identity (`grid:…` or `near:…`); see `hotspot::detect`.
    pub key: String,
    /// Who should act: the unit responsible for all its petitions.
    pub unit: UnitPath,
    pub category: Category,
    /// The grid of a grid cluster; `None` for one found by distance.
    pub grid: Option<UnitPath>,
    /// Oldest first.
    pub petition_ids: Vec<PetitionId>,
    pub count: usize,
    /// Receipt times of the oldest and the latest petition.
    pub first_at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
    /// When it was raised.
    pub at: DateTime<Utc>,
}

impl HotspotNotice {
    pub fn routing_key(&self) -> String {
        format!("hotspot.{}", self.unit)
    }

    /// Stable: a re-send after a crash carries the same id (and the key
    /// names one raise, see `hotspot::detect`), so consumers dedupe on it.
    pub fn message_id(&self) -> String {
        format!("hotspot/{}", self.key)
    }

    /// The `hotspot` event, with the same id as the message. It belongs to
    /// the latest petition, so it shows in that petition's history.
    pub fn event(&self) -> Option<Event> {
        let latest = self.petition_ids.last()?;
        let data = serde_json::to_value(self).expect("a hot spot always serializes");
        Some(Event { event_id: self.message_id(), petition_id: latest.clone(), kind: EventType::Hotspot, at: self.at, actor: None, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hotspot_notice_is_tagged_and_its_event_carries_the_same_fields() {
        let at = "2026-03-02T08:00:00Z".parse().unwrap();
        let notice = HotspotNotice {
            key: "grid:livelihood:shinan.badaxia.badaxia.g006:20260301-000001".into(),
            unit: "shinan.badaxia.badaxia".parse().unwrap(),
            category: Category::Livelihood,
            grid: Some("shinan.badaxia.badaxia.g006".parse().unwrap()),
            petition_ids: vec!["20260301-000001".parse().unwrap(), "20260302-000007".parse().unwrap()],
            count: 2,
            first_at: at,
            last_at: at,
            at,
        };
        let json = serde_json::to_value(&notice).unwrap();
        assert_eq!(json["kind"], "hotspot");
        assert_eq!(json["petition_ids"][1], "20260302-000007");
        assert_eq!(serde_json::from_value::<HotspotNotice>(json.clone()).unwrap(), notice);
        assert_eq!(notice.routing_key(), "hotspot.shinan.badaxia.badaxia");
        let event = notice.event().unwrap();
        assert_eq!(event.event_id, "hotspot/grid:livelihood:shinan.badaxia.badaxia.g006:20260301-000001");
        assert_eq!(event.petition_id.as_str(), "20260302-000007", "filed under the latest petition");
        assert_eq!(event.kind.routing_key(), "petition.hotspot");
        assert_eq!(event.data, json);
    }
}
