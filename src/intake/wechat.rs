//! WeChat official-account callback XML, plaintext mode.

use chrono::{DateTime, TimeZone, Utc};
use serde::Deserialize;

use super::text::{invalid, optional, required};
use super::{ChannelEvent, HeldAttachment, Intake, RejectReason, Rejection};
use crate::domain::{
    Attachment, AttachmentKind, Channel, Citizen, GeoPoint, NewPetition, ReceiptClock, RoutingHints, Source, gcj02_to_wgs84,
};

/// Every element optional so that XML syntax errors (`malformed`) are told
/// apart from missing or bad fields (`invalid`).
#[derive(Deserialize, Default)]
#[serde(rename = "xml", rename_all = "PascalCase")]
struct WechatXml {
    from_user_name: Option<String>,
    create_time: Option<String>,
    msg_type: Option<String>,
    content: Option<String>,
    msg_id: Option<String>,
    recognition: Option<String>,
    #[serde(rename = "Location_X")]
    location_x: Option<String>,
    #[serde(rename = "Location_Y")]
    location_y: Option<String>,
    label: Option<String>,
    pic_url: Option<String>,
    event: Option<String>,
    event_key: Option<String>,
}

pub(super) fn parse(text: &str, first_seen: DateTime<Utc>, clock: &ReceiptClock) -> Result<Intake, Rejection> {
    let xml: WechatXml =
        quick_xml::de::from_str(text).map_err(|e| Rejection::new(RejectReason::Malformed, format!("not well-formed WeChat XML: {e}")))?;
    let id = optional(xml.msg_id.clone());
    message(xml, first_seen, clock).map_err(|r| r.with_id(id))
}

fn message(xml: WechatXml, first_seen: DateTime<Utc>, clock: &ReceiptClock) -> Result<Intake, Rejection> {
    let openid = required("FromUserName", xml.from_user_name)?;
    let created = optional(xml.create_time)
        .map(|s| {
            s.parse::<i64>()
                .ok()
                .and_then(|secs| Utc.timestamp_opt(secs, 0).single())
                .ok_or_else(|| invalid("`CreateTime` must be seconds since the epoch"))
        })
        .transpose()?;
    let received = clock.decide(created, first_seen);
    let msg_type = required("MsgType", xml.msg_type)?;
    let msg_id = || required("MsgId", xml.msg_id.clone());
    let attachment = |kind, point, label, url| -> Result<Intake, Rejection> {
        Ok(Intake::Attachment(HeldAttachment {
            channel: Channel::Wechat,
            citizen_id: openid.clone(),
            at: received.at,
            attachment: Attachment { kind, message_id: msg_id()?, point, label, url },
        }))
    };
    let text = match msg_type.as_str() {
        "text" => required("Content", xml.content)?,
        "voice" => optional(xml.recognition).ok_or_else(|| {
            Rejection::new(RejectReason::Unsupported, "voice message without `Recognition` (speech recognition is off for this account)")
        })?,
        "location" => {
            let lat = coordinate("Location_X", xml.location_x)?;
            let lng = coordinate("Location_Y", xml.location_y)?;
            // WeChat sends Tencent-map coordinates, GCJ-02; we store WGS-84.
            let gcj = GeoPoint::new(lng, lat).map_err(|e| invalid(e.to_string()))?;
            let point = gcj02_to_wgs84(gcj);
            return attachment(AttachmentKind::Location, Some(point), optional(xml.label), None);
        }
        "image" => {
            let url = required("PicUrl", xml.pic_url)?;
            return attachment(AttachmentKind::Image, None, None, Some(url));
        }
        "event" => {
            let event = required("Event", xml.event)?;
            let create_time = created.map(|t| t.timestamp().to_string()).unwrap_or_default();
            return Ok(Intake::ChannelEvent(ChannelEvent {
                channel: Channel::Wechat,
                dedup_key: format!("{openid}:{create_time}:{event}"),
                citizen_id: openid,
                data: serde_json::json!({ "event_key": optional(xml.event_key) }),
                event,
                at: received.at,
            }));
        }
        other => {
            return Err(Rejection::new(RejectReason::Unsupported, format!("WeChat `{other}` messages cannot become petitions")));
        }
    };
    Ok(Intake::Petition(Box::new(NewPetition {
        source: Source { channel: Channel::Wechat, message_id: msg_id()? },
        citizen: Citizen { id: openid, phone: None, name: None },
        content: text,
        received,
        category: None,
        subcategory: None,
        classification: None,
        urgent: false,
        time_limit_days: None,
        point: None,
        address: None,
        hints: RoutingHints::default(),
        images: Vec::new(),
    })))
}

fn coordinate(field: &str, value: Option<String>) -> Result<f64, Rejection> {
    required(field, value)?.parse().map_err(|_| invalid(format!("`{field}` must be a decimal number")))
}
