//! Hot spots (未诉先办) through the real broker and store: petitions of one
//! category clustering in a grid raise `hotspot.<unit>` once.

use crate::common::schemas::{assert_all_valid, assert_valid};
use crate::common::tap::Tapped;
use crate::common::{TestApp, test_settings, wait_for};
use mongodb::bson::doc;
use nuannan::bus::Exchange;
use nuannan::domain::{Category, HotspotNotice};
use nuannan::store::HotspotRecord;
use nuannan_workers::Role;
use serde_json::json;

const COMMUNITY: &str = "shinan.badaxia.badaxia";

/// A livelihood App petition in grid shinan.badaxia.badaxia.g006 (synthetic
/// geometry), received `minutes_ago`.
fn petition(key: &str, minutes_ago: i64) -> String {
    json!({
        "request_id": key,
        "submitted_at": (chrono::Utc::now() - chrono::Duration::minutes(minutes_ago)).to_rfc3339(),
        "user": { "id": format!("u-{key}") },
        "content": "小区门口路灯不亮，晚上很黑",
        "category": "livelihood",
        "location": { "lng": 120.30, "lat": 36.06 },
    })
    .to_string()
}

async fn hotspot_app() -> TestApp {
    let mut settings = test_settings().await;
    settings.hotspot.scan_interval_ms = 200;
    TestApp::with_settings(settings).await
}

/// The petition's number once routing has placed it and announced it.
async fn routed(app: &TestApp, key: &str) -> String {
    let filter = doc! { "source.message_id": key, "routing.unit": { "$exists": true }, "outbox": { "$size": 0 } };
    let p = wait_for(&format!("{key} routed"), || app.find_one("petitions", filter.clone())).await;
    assert_eq!(p.get_str("grid").unwrap(), "shinan.badaxia.badaxia.g006");
    p.get_str("_id").unwrap().to_owned()
}

#[tokio::test]
async fn three_in_one_grid_raise_one_hot_spot_however_it_grows_and_however_many_workers_look() {
    let mut app = hotspot_app().await;
    let escalations = app.tap(Exchange::Escalations).await;
    let events = app.tap(Exchange::Events).await;
    app.start_workers(&[Role::Normalize, Role::Route]);
    let mut ids = Vec::new();
    for (n, key) in ["h1", "h2", "h3"].into_iter().enumerate() {
        app.publish_intake("app", petition(key, 30 - n as i64), None).await;
        ids.push(routed(&app, key).await);
    }

    // Two deadline workers start together on a cluster that is already
    // there: both find it at once, one raise.
    app.start_workers(&[Role::Deadline, Role::Deadline]);
    let raised = escalations.wait_for("the hot spot", |m| m.routing_key.starts_with("hotspot.")).await;
    assert_eq!(raised.routing_key, format!("hotspot.{COMMUNITY}"));
    let body = &raised.body;
    let key = body["key"].as_str().unwrap().to_owned();
    assert_eq!(key, format!("grid:livelihood:shinan.badaxia.badaxia.g006:{}", ids[0]));
    assert_eq!(raised.message_id.as_deref(), Some(format!("hotspot/{key}").as_str()));
    assert_eq!(
        (body["kind"].as_str(), body["unit"].as_str(), body["category"].as_str()),
        (Some("hotspot"), Some(COMMUNITY), Some("livelihood"))
    );
    assert_eq!(body["petition_ids"], json!(ids), "oldest first");
    assert_eq!(body["count"], 3);
    assert!(body["first_at"].as_str().unwrap() < body["last_at"].as_str().unwrap());
    assert_valid("messages/hotspot.schema.json", body);

    let recorded = wait_for("the raise marked published", || app.find_one("hotspots", doc! { "_id": &key, "published": true })).await;
    assert!(recorded.get_datetime("expires_at").is_ok());
    let event = app.find_one("events", doc! { "type": "hotspot" }).await.expect("the hotspot event is in the audit log");
    assert_eq!(event.get_str("_id").unwrap(), format!("hotspot/{key}"));
    assert_eq!(event.get_str("petition_id").unwrap(), ids[2], "filed under the latest petition");
    assert_eq!(event.get_document("data").unwrap().get_str("unit").unwrap(), COMMUNITY, "the console's feed filters on data.unit");

    // A fourth joins: recorded with the same hot spot, not raised again.
    app.publish_intake("app", petition("h4", 1), None).await;
    let fourth = routed(&app, "h4").await;
    wait_for("the fourth recorded with the hot spot", || {
        app.find_one("hotspots", doc! { "_id": &key, "petition_ids": { "$size": 4 }, "petition_ids.3": &fourth })
    })
    .await;

    // Scans by both workers have passed since the raise.
    let sent = |m: &Tapped| (m.routing_key.clone(), m.message_id.clone(), m.body["at"].clone());
    let hot: Vec<_> = escalations.messages().await.iter().filter(|m| m.routing_key.starts_with("hotspot.")).map(sent).collect();
    assert_eq!(hot.len(), 1, "one raise: {hot:?}");
    let hot_events: Vec<_> = events.messages().await.iter().filter(|m| m.routing_key == "petition.hotspot").map(sent).collect();
    assert_eq!(hot_events.len(), 1, "{hot_events:?}");
    assert_eq!(hot_events[0].1.as_deref(), Some(format!("hotspot/{key}").as_str()));
    assert_eq!(app.count("events", doc! { "type": "hotspot" }).await, 1);
    assert_eq!(app.count("hotspots", doc! {}).await, 1);
    assert_all_valid(&events, "messages/event.schema.json").await;
    app.cleanup().await;
}

#[tokio::test]
async fn a_hot_spot_recorded_but_not_published_is_published_by_the_next_scan() {
    let mut app = hotspot_app().await;
    let escalations = app.tap(Exchange::Escalations).await;
    // What a deadline worker leaves when it dies between recording a raise and publishing it.
    // Milliseconds, as the store keeps times.
    let raised_at = chrono::DateTime::from_timestamp_millis(chrono::Utc::now().timestamp_millis() - 5 * 60_000).unwrap();
    let key = "grid:livelihood:shinan.badaxia.badaxia.g006:20260301-000001".to_owned();
    let notice = HotspotNotice {
        key: key.clone(),
        unit: COMMUNITY.parse().unwrap(),
        category: Category::Livelihood,
        grid: Some("shinan.badaxia.badaxia.g006".parse().unwrap()),
        petition_ids: ["20260301-000001", "20260301-000002", "20260301-000003"].map(|id| id.parse().unwrap()).to_vec(),
        count: 3,
        first_at: raised_at - chrono::Duration::hours(2),
        last_at: raised_at - chrono::Duration::minutes(1),
        at: raised_at,
    };
    assert!(app.store.record_hotspot(&HotspotRecord::new(&notice, raised_at + chrono::Duration::days(7))).await.unwrap());

    app.start_workers(&[Role::Deadline]);
    let message_id = format!("hotspot/{key}");
    let published = escalations.wait_for("the orphaned raise", |m| m.message_id.as_deref() == Some(message_id.as_str())).await;
    assert_eq!(published.routing_key, format!("hotspot.{COMMUNITY}"));
    assert_eq!(serde_json::from_value::<HotspotNotice>(published.body.clone()).unwrap(), notice, "as it was raised, at the same time");
    wait_for("marked published", || app.find_one("hotspots", doc! { "_id": &key, "published": true })).await;
    let event = app.find_one("events", doc! { "_id": &message_id }).await.expect("the event appended too");
    assert_eq!(event.get_str("petition_id").unwrap(), "20260301-000003");
    app.cleanup().await;
}
