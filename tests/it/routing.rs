//! Routing through the real broker and store: intake → route → dispatch.

use crate::common::schemas::assert_all_valid;
use crate::common::{TestApp, hotline_order, wait_for, wechat_text};
use mongodb::bson::doc;
use nuannan::bus::{Exchange, Outgoing};
use serde_json::json;

fn app_payload(id: &str, content: &str, extra: serde_json::Value) -> String {
    let mut p = json!({ "request_id": id, "submitted_at": chrono::Utc::now().to_rfc3339(), "user": { "id": "u1" }, "content": content });
    p.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    p.to_string()
}

/// Waits until the petition is routed and its announcements published.
async fn routed(app: &TestApp, channel: &str, key: &str) -> mongodb::bson::Document {
    let filter = doc! { "source.channel": channel, "source.message_id": key, "status": { "$ne": "received" }, "outbox": { "$size": 0 } };
    wait_for(&format!("{channel}/{key} routed"), || app.find_one("petitions", filter.clone())).await
}

#[tokio::test]
async fn each_rule_sends_the_petition_to_the_right_unit_with_deadlines() {
    let app = TestApp::spawn().await;
    let dispatch = app.tap(Exchange::Dispatch).await;
    let events = app.tap(Exchange::Events).await;
    // 120.30,36.06 lies in grid shinan.badaxia.badaxia.g006 (synthetic geometry).
    let at_badaxia = json!({ "location": { "lng": 120.30, "lat": 36.06 } });
    let cases = [
        (
            "app",
            "r-live",
            app_payload("r-live", "楼道灯坏了", json!({ "category": "livelihood", "location": at_badaxia["location"] })),
            "shinan.badaxia.badaxia",
            "community",
            "assigned",
            Some("shinan.badaxia.badaxia.g006"),
        ),
        (
            "app",
            "r-enf",
            app_payload("r-enf", "夜间施工噪音扰民", json!({ "location": at_badaxia["location"] })),
            "shinan.badaxia",
            "street",
            "assigned",
            Some("shinan.badaxia.badaxia.g006"),
        ),
        (
            "app",
            "r-dev",
            app_payload("r-dev", "咨询企业扶持政策", json!({ "category": "development", "address": "团岛附近" })),
            "shinan.badaxia",
            "street",
            "assigned",
            None,
        ),
        (
            "app",
            "r-bldg",
            app_payload("r-bldg", "写字楼空调不制冷", json!({ "building_id": "B001" })),
            "shinan.zhanshan.xiuzhanlu.s01",
            "grid",
            "assigned",
            Some("shinan.zhanshan.xiuzhanlu.s01"),
        ),
        ("hotline", "QD-R1", hotline_order("QD-R1", "楼道垃圾无人清理"), "shinan.badaxia.tuandao", "community", "assigned", None),
        ("wechat", "7001", wechat_text("oRoute", "7001", "路灯坏了", chrono::Utc::now().timestamp()), "shinan", "district", "triage", None),
    ];
    for (channel, key, body, ..) in &cases {
        app.publish_intake(channel, body.clone(), Some(key)).await;
    }
    for (channel, key, _, unit, level, status, grid) in cases {
        let p = routed(&app, channel, key).await;
        let id = p.get_str("_id").unwrap();
        assert_eq!(p.get_str("unit").unwrap(), unit, "{key}");
        assert_eq!(p.get_str("status").unwrap(), status, "{key}");
        assert_eq!(p.get_str("grid").ok(), grid, "{key}");
        assert_eq!(p.get_i64("version").unwrap(), 2);
        let deadlines = p.get_document("deadlines").unwrap();
        let received = p.get_datetime("received_at").unwrap().timestamp_millis();
        assert_eq!(deadlines.get_datetime("respond_by").unwrap().timestamp_millis() - received, 4 * 3600 * 1000);
        assert!(deadlines.get_datetime("resolve_by").unwrap().timestamp_millis() > received);

        let a = dispatch.wait_for("assignment", |m| m.body["petition_id"] == id).await;
        assert_eq!(a.routing_key, format!("unit.{unit}"));
        assert_eq!((a.body["unit"].as_str(), a.body["level"].as_str(), a.body["attempt"].as_u64()), (Some(unit), Some(level), Some(1)));
        let kind = if status == "triage" { "triaged" } else { "assigned" };
        let e = events.wait_for("routing event", |m| m.body["petition_id"] == id && m.body["type"] == kind).await;
        assert_eq!(e.routing_key, format!("petition.{kind}"));
        assert_eq!(app.count("events", doc! { "petition_id": id, "type": kind }).await, 1);
    }
    let triaged = app.find_one("petitions", doc! { "source.message_id": "7001" }).await.unwrap();
    assert_eq!(triaged.get_document("routing").unwrap().get_str("triage_reason").unwrap(), "not_located");
    assert_all_valid(&dispatch, "messages/assignment.schema.json").await;
    assert_all_valid(&events, "messages/event.schema.json").await;
    app.cleanup().await;
}

#[tokio::test]
async fn hotline_time_limit_and_classification_set_the_clock() {
    let app = TestApp::spawn().await;
    let order = json!({
        "order_no": "QD-T1", "created_at": "2026-11-27T09:00:00+08:00", "caller": { "phone": "13900000000" },
        "content": "小区燃气管道漏气", "classification": { "code": "x", "name": "燃气供应" },
        "street": "八大峡街道", "community": "团岛社区",
    });
    app.publish_intake("hotline", order.to_string(), None).await;
    let p = routed(&app, "hotline", "QD-T1").await;
    assert_eq!(p.get_str("category").unwrap(), "livelihood");
    let resolve_by = p.get_document("deadlines").unwrap().get_datetime("resolve_by").unwrap().to_chrono();
    // 燃气供应 is class 1: Monday 17:30 for a Friday receipt.
    assert_eq!(resolve_by.to_rfc3339(), "2026-11-30T09:30:00+00:00");
    let mut with_limit = order.clone();
    with_limit["order_no"] = json!("QD-T2");
    with_limit["time_limit_days"] = json!(5);
    app.publish_intake("hotline", with_limit.to_string(), None).await;
    let p = routed(&app, "hotline", "QD-T2").await;
    let resolve_by = p.get_document("deadlines").unwrap().get_datetime("resolve_by").unwrap().to_chrono();
    assert_eq!(resolve_by.to_rfc3339(), "2026-12-04T09:30:00+00:00", "time_limit_days overrides");
    app.cleanup().await;
}

#[tokio::test]
async fn a_redelivered_received_event_never_dispatches_twice() {
    let app = TestApp::spawn().await;
    let dispatch = app.tap(Exchange::Dispatch).await;
    let events = app.tap(Exchange::Events).await;
    app.publish_intake("app", app_payload("r-once", "楼道灯坏了", json!({ "category": "livelihood", "address": "团岛" })), None).await;
    let p = routed(&app, "app", "r-once").await;
    let id = p.get_str("_id").unwrap().to_owned();
    let received = events.wait_for("received", |m| m.body["petition_id"] == id.as_str() && m.body["type"] == "received").await;
    for _ in 0..3 {
        let again = Outgoing::json(
            Exchange::Events,
            "petition.received",
            serde_json::to_vec(&received.body).unwrap(),
            received.message_id.clone().unwrap(),
        );
        app.publisher.publish(&again).await.unwrap();
    }
    // A later petition routed means the redeliveries ahead of it were handled.
    app.publish_intake("app", app_payload("r-after", "井盖丢了", json!({ "category": "livelihood", "address": "团岛" })), None).await;
    let after = routed(&app, "app", "r-after").await;
    let after_id = after.get_str("_id").unwrap();
    dispatch.wait_for("later assignment", |m| m.body["petition_id"] == after_id).await;

    let mine: Vec<_> = dispatch.messages().await.into_iter().filter(|m| m.body["petition_id"] == id.as_str()).collect();
    assert_eq!(mine.len(), 1, "one assignment");
    let p = app.find_one("petitions", doc! { "_id": &id }).await.unwrap();
    assert_eq!(p.get_i64("version").unwrap(), 2);
    assert_eq!(app.count("events", doc! { "petition_id": &id, "type": "assigned" }).await, 1);
    app.cleanup().await;
}

#[tokio::test]
async fn the_registry_is_loaded_into_mongodb_at_start() {
    let app = TestApp::spawn().await;
    // The registry document is written last, once every unit is in.
    let current = wait_for("registry loaded", || app.find_one("registry", doc! { "_id": "current" })).await;
    assert!(current.get_str("sha256").is_ok());
    assert_eq!(app.count("units", doc! {}).await, 62 + 573);
    let tuandao = app.find_one("units", doc! { "_id": "shinan.badaxia.tuandao" }).await.unwrap();
    assert_eq!(tuandao.get_str("name").unwrap(), "团岛社区");
    assert_eq!(tuandao.get_str("code").unwrap(), "370202002008");
    assert_eq!(tuandao.get_str("level").unwrap(), "community");
    assert_eq!(app.count("units", doc! { "grid_kind": "special" }).await, 68);
    app.cleanup().await;
}

/// A WeChat text routed without a place (triaged), then its location: the
/// petition is routed again to where the point is, and dispatched there.
#[tokio::test]
async fn a_late_wechat_location_routes_a_triaged_petition_again() {
    let app = TestApp::spawn().await;
    let dispatch = app.tap(Exchange::Dispatch).await;
    let now = chrono::Utc::now().timestamp();
    app.publish_intake("wechat", wechat_text("oLate", "7100", "路灯不亮，晚上很黑", now), None).await;
    let first = routed(&app, "wechat", "7100").await;
    assert_eq!((first.get_str("status").unwrap(), first.get_str("unit").unwrap()), ("triage", "shinan"), "no place yet: {first}");
    let id = first.get_str("_id").unwrap().to_owned();

    // The phone sends GCJ-02; its WGS-84 point lies in 团岛 grid 2.
    let gcj = nuannan::domain::wgs84_to_gcj02(nuannan::domain::GeoPoint::new(120.2945, 36.0465).unwrap());
    app.publish_intake("wechat", crate::common::wechat_location("oLate", "7101", gcj.lat(), gcj.lng(), now + 30), None).await;
    let again = wait_for("routed again", || {
        app.find_one("petitions", doc! { "_id": &id, "unit": "shinan.badaxia.tuandao", "outbox": { "$size": 0 } })
    })
    .await;
    assert_eq!(again.get_str("status").unwrap(), "assigned");
    assert_eq!(again.get_str("grid").unwrap(), "shinan.badaxia.tuandao.g002");
    let second = dispatch.wait_for("a second assignment", |m| m.body["petition_id"] == id.as_str() && m.body["attempt"] == 2).await;
    assert_eq!(second.routing_key, "unit.shinan.badaxia.tuandao");
    let assigned = app.find_one("events", doc! { "petition_id": &id, "type": "assigned" }).await.unwrap();
    assert_eq!(assigned.get_document("data").unwrap().get_str("rerouted_from").unwrap(), "shinan");
    // The same location again changes nothing.
    app.publish_intake("wechat", crate::common::wechat_location("oLate", "7101", gcj.lat(), gcj.lng(), now + 30), None).await;
    app.publish_intake("wechat", wechat_text("oOther", "7102", "井盖缺失，团岛二路", now), None).await;
    routed(&app, "wechat", "7102").await;
    assert_eq!(app.count("events", doc! { "petition_id": &id, "type": "assigned" }).await, 1);
    app.cleanup().await;
}
