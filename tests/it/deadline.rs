//! The deadline role through the real broker and store.

use crate::common::schemas::assert_all_valid;
use crate::common::{TestApp, test_settings, wait_for};
use mongodb::bson::doc;
use nuannan::bus::Exchange;
use nuannan_workers::Role;
use serde_json::json;

/// A livelihood App petition in 团岛社区, submitted `hours_ago`.
fn petition(id: &str, hours_ago: i64) -> String {
    json!({
        "request_id": id,
        "submitted_at": (chrono::Utc::now() - chrono::Duration::minutes(hours_ago * 60)).to_rfc3339(),
        "user": { "id": "u1" }, "content": "楼道灯坏了", "category": "livelihood", "address": "团岛",
    })
    .to_string()
}

async fn fast_app() -> TestApp {
    let mut settings = test_settings().await;
    settings.deadline.scan_interval_ms = 100;
    TestApp::with_settings(settings).await
}

#[tokio::test]
async fn a_breached_petition_escalates_exactly_once_with_three_deadline_workers() {
    let mut app = fast_app().await;
    let escalations = app.tap(Exchange::Escalations).await;
    let dispatch = app.tap(Exchange::Dispatch).await;
    app.start_workers(&[Role::Normalize, Role::Route, Role::Deadline, Role::Deadline, Role::Deadline]);

    // Received 5 hours ago: the 4-hour response window is already breached.
    app.publish_intake("app", petition("late", 5), None).await;
    let p = wait_for("escalation", || {
        app.find_one("petitions", doc! { "source.message_id": "late", "escalation_level": 1, "outbox": { "$size": 0 } })
    })
    .await;
    let id = p.get_str("_id").unwrap().to_owned();
    assert_eq!(p.get_str("unit").unwrap(), "shinan.badaxia", "community → street");
    let breach = p.get_array("breaches").unwrap()[0].as_document().unwrap().clone();
    assert_eq!(breach.get_str("unit").unwrap(), "shinan.badaxia.tuandao");
    assert_eq!(breach.get_document("responsible").unwrap().get_str("role").unwrap(), "responsible");

    // Received 3.5 hours ago: past 75 % of the window, not yet breached → one warning.
    app.publish_intake("app", petition("warn", 3), None).await;
    let warned = wait_for("warning", || {
        app.find_one("petitions", doc! { "source.message_id": "warn", "clock.respond.warned": true, "outbox": { "$size": 0 } })
    })
    .await;
    let warned_id = warned.get_str("_id").unwrap().to_owned();
    escalations
        .wait_for("warning notice", |m| m.routing_key == "warning.shinan.badaxia.tuandao" && m.body["petition_id"] == warned_id.as_str())
        .await;
    // Many scans by three workers have passed since the breach.
    let notices: Vec<_> = escalations.messages().await.into_iter().filter(|m| m.body["petition_id"] == id.as_str()).collect();
    assert_eq!(notices.len(), 1, "one escalation notice: {notices:?}");
    assert_eq!(notices[0].routing_key, "street.shinan.badaxia");
    assert_eq!(notices[0].body["reason"], "response_overdue");
    assert_eq!(app.count("events", doc! { "petition_id": &id, "type": "escalated" }).await, 1);
    assert_eq!(app.count("events", doc! { "petition_id": &warned_id, "type": "warned" }).await, 1);
    let assignments: Vec<_> = dispatch.messages().await.into_iter().filter(|m| m.body["petition_id"] == id.as_str()).collect();
    assert_eq!(
        assignments.iter().map(|m| m.routing_key.as_str()).collect::<Vec<_>>(),
        ["unit.shinan.badaxia.tuandao", "unit.shinan.badaxia"]
    );
    assert_eq!(assignments[1].body["attempt"], 2);
    assert_all_valid(&escalations, "messages/escalation.schema.json").await;
    app.cleanup().await;
}

#[tokio::test]
async fn an_accepted_petition_is_not_escalated_for_response() {
    let mut app = fast_app().await;
    app.start_workers(&[Role::Normalize, Role::Route]);
    app.publish_intake("app", petition("accepted", 5), None).await;
    app.publish_intake("app", petition("ignored", 5), None).await;
    for key in ["accepted", "ignored"] {
        wait_for("routed", || app.find_one("petitions", doc! { "source.message_id": key, "status": "assigned", "outbox": { "$size": 0 } }))
            .await;
    }
    // What the lifecycle's `accept` records: the response clock stops.
    app.collection("petitions")
        .update_one(doc! { "source.message_id": "accepted" }, doc! { "$set": { "status": "accepted", "clock.respond": null } })
        .await
        .unwrap();
    app.start_workers(&[Role::Deadline, Role::Deadline, Role::Deadline]);

    wait_for("the unaccepted one escalated", || app.find_one("petitions", doc! { "source.message_id": "ignored", "escalation_level": 1 }))
        .await;
    let accepted = app.find_one("petitions", doc! { "source.message_id": "accepted" }).await.unwrap();
    assert_eq!(accepted.get_i32("escalation_level").unwrap(), 0);
    assert_eq!(accepted.get_str("unit").unwrap(), "shinan.badaxia.tuandao");
    assert_eq!(
        app.count("events", doc! { "petition_id": accepted.get_str("_id").unwrap(), "type": { "$in": ["escalated", "warned"] } }).await,
        0
    );
    app.cleanup().await;
}

#[tokio::test]
async fn an_outbox_left_by_a_crashed_writer_is_published_by_the_sweep() {
    let mut app = fast_app().await;
    let events = app.tap(Exchange::Events).await;
    app.start_workers(&[Role::Normalize]);
    app.publish_intake("app", petition("orphan", 0), None).await;
    let p = app.wait_for_petition("app", "orphan").await;
    let id = p.get_str("_id").unwrap();
    // What a worker leaves when it dies between its update and its publish.
    let event_id = format!("{id}/v99");
    let entry = doc! { "kind": "event", "id": &event_id, "event": {
        "event_id": &event_id, "petition_id": id, "type": "progressed", "at": chrono::Utc::now().to_rfc3339(), "data": {},
    } };
    let long_ago = mongodb::bson::DateTime::from(chrono::Utc::now() - chrono::Duration::minutes(5));
    app.collection("petitions")
        .update_one(doc! { "_id": id }, doc! { "$push": { "outbox": entry }, "$set": { "updated_at": long_ago } })
        .await
        .unwrap();

    app.start_workers(&[Role::Deadline]);
    events.wait_for("the orphaned event", |m| m.message_id.as_deref() == Some(event_id.as_str())).await;
    wait_for("outbox emptied", || app.find_one("petitions", doc! { "_id": id, "outbox": { "$size": 0 } })).await;
    assert_eq!(app.count("events", doc! { "_id": &event_id }).await, 1, "appended to the audit log too");
    app.cleanup().await;
}
