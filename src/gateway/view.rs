//! The citizen's view of their petition (`GET /app/petitions/{id}`,
//! `docs/contract.md` §12): status, deadlines and a timeline in plain
//! words. Like every text for citizens it is built from the petition and
//! the registry only; the one outside text shown is the handler's result.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::store::PetitionRecord;

/// One stored event, as the view reads it.
pub struct TimelineEvent {
    pub kind: String,
    pub at: DateTime<Utc>,
    pub data: Value,
}

/// The view, or `None` unless `user` filed the petition through `channel`.
pub fn citizen_view(
    p: &PetitionRecord,
    channel: crate::domain::Channel,
    user: &str,
    unit_name: Option<&str>,
    events: &[TimelineEvent],
) -> Option<Value> {
    if p.source.channel != channel || p.citizen.id != user {
        return None;
    }
    let timeline: Vec<Value> = events
        .iter()
        .filter_map(|e| text(&e.kind, &e.data).map(|t| json!({ "type": e.kind, "at": e.at.to_rfc3339(), "text": t })))
        .collect();
    Some(json!({
        "petition_id": p.id,
        "status": p.status,
        "category": p.category,
        "unit_name": unit_name,
        "respond_by": p.deadlines.as_ref().map(|d| d.respond_by.to_chrono().to_rfc3339()),
        "resolve_by": p.deadlines.as_ref().map(|d| d.resolve_by.to_chrono().to_rfc3339()),
        "timeline": timeline,
    }))
}

/// What the citizen reads for an event; internal steps (warnings, late
/// locations, deadline recomputations) are not shown.
fn text(kind: &str, data: &Value) -> Option<String> {
    Some(match kind {
        "received" => "诉求已受理".to_owned(),
        "assigned" | "transferred" => "已派至承办单位".to_owned(),
        "triaged" | "refused" => "平台正在重新派单".to_owned(),
        "accepted" => "承办单位已接单，正在办理".to_owned(),
        "progressed" | "returned" => "正在办理中".to_owned(),
        "escalated" => "已提级办理".to_owned(),
        "resolved" => match data["result"].as_str() {
            Some(result) => format!("办理结果：{result}"),
            None => "已办结，待审核".to_owned(),
        },
        "approved" => "办理结果已审核通过".to_owned(),
        "feedback_sent" => "办理结果已反馈，请评价".to_owned(),
        "rated" => "已收到您的评价".to_owned(),
        "reopened" => "已重新办理".to_owned(),
        "closed" => "诉求已办结".to_owned(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::text;
    use serde_json::json;

    #[test]
    fn only_the_result_comes_from_outside_and_internal_steps_are_hidden() {
        assert_eq!(text("resolved", &json!({ "result": "已更换灯泡" })).unwrap(), "办理结果：已更换灯泡");
        assert_eq!(text("progressed", &json!({ "note": "内部备注：联系人 13800000000" })).unwrap(), "正在办理中");
        assert!(text("warned", &json!({})).is_none());
        assert!(text("deadline_changed", &json!({})).is_none());
    }
}
