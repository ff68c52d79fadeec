//! A petition as a GeoReport service request. The API is public (GeoReport
//! reads need no key), so the citizen never appears, and phone numbers or
//! ids inside the texts are masked.

use serde_json::{Value, json};

use super::w3c;
use crate::domain::Status;
use crate::store::PetitionRecord;
use crate::telemetry::mask_text;

/// GeoReport has no rating step: a petition is `closed` once the district
/// approved its result (`docs/contract.md` §14).
pub fn is_closed(status: Status) -> bool {
    matches!(status, Status::Approved | Status::Closed)
}

/// One `request` of `GET requests` / `requests/{id}`; `agency` is the
/// responsible unit's Chinese name.
pub fn service_request(p: &PetitionRecord, agency: Option<&str>) -> Value {
    let point = p.location.point.as_ref().map(|pt| pt.coordinates);
    json!({
        "service_request_id": p.id.as_str(),
        "status": if is_closed(p.status) { "closed" } else { "open" },
        "status_notes": status_note(p),
        "service_name": p.category.map(|c| c.name_zh()),
        "service_code": p.category.map(|c| c.as_str()),
        "description": mask_text(&p.content),
        "agency_responsible": agency,
        "service_notice": null,
        "requested_datetime": w3c(p.received_at.to_chrono()),
        "updated_datetime": w3c(p.updated_at.to_chrono()),
        "expected_datetime": p.deadlines.as_ref().map(|d| w3c(d.resolve_by.to_chrono())),
        "address": p.location.address,
        "address_id": null,
        "zipcode": null,
        "lat": point.map(|[_, lat]| lat),
        "long": point.map(|[lng, _]| lng),
        "media_url": p.images.first(),
    })
}

/// The latest public note. The handlers' progress notes stay internal
/// (only the approved result is outside text a citizen reads); after
/// approval the note is that result.
fn status_note(p: &PetitionRecord) -> String {
    let approved = p.result.as_ref().filter(|_| is_closed(p.status)).map(|r| format!("办理结果：{}", mask_text(&r.text)));
    approved.unwrap_or_else(|| {
        match p.status {
            Status::Received => "诉求已受理",
            Status::Triage => "诉求已受理，正在派单",
            Status::Assigned => "已派至承办单位",
            Status::Accepted if p.escalation_level > 0 => "已提级办理",
            Status::Accepted => "承办单位已接单，正在办理",
            Status::Resolved => "已办结，办理结果待审核",
            Status::Reopened => "已重新办理",
            Status::Approved | Status::Closed => "诉求已办结",
        }
        .to_owned()
    })
}
