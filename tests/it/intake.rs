//! Intake through the real broker and store: the normalize role in-process
//! (routing has its own tests), messages published as channel adapters do.

use crate::common::schemas::assert_all_valid;
use crate::common::{TestApp, app_petition, fixture, hotline_order, wait_for, wechat_location, wechat_text};
use mongodb::bson::doc;
use nuannan::bus::Exchange;
use nuannan_workers::Role;

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[tokio::test]
async fn each_channel_becomes_a_petition_with_event_and_receipt_on_its_own_channel() {
    let app = TestApp::spawn_roles(&[Role::Normalize]).await;
    let events = app.tap(Exchange::Events).await;
    let outbound = app.tap(Exchange::Outbound).await;

    let recognised = fixture("voice.xml")
        .replace("1234567890123456", "2234567890123456")
        .replace("</xml>", "<Recognition><![CDATA[小区门口垃圾没人清运]]></Recognition></xml>");
    app.publish_intake("wechat", fixture("text_official_doc.xml"), Some("1234567890123456")).await;
    app.publish_intake("wechat", recognised, Some("2234567890123456")).await;
    app.publish_intake("app", app_petition("req-1", "楼道灯坏了"), Some("req-1")).await;
    app.publish_intake("hotline", hotline_order("QD-0001", "夜间施工噪音"), Some("QD-0001")).await;

    let cases = [
        ("wechat", "1234567890123456", "this is a test", "fromUser", None),
        ("wechat", "2234567890123456", "小区门口垃圾没人清运", "fromUser", None),
        ("app", "req-1", "楼道灯坏了", "user-req-1", None),
        ("hotline", "QD-0001", "夜间施工噪音", "13912345678", Some("QD-0001")),
    ];
    for (channel, key, content, citizen, order_no) in cases {
        let p = app.wait_for_petition(channel, key).await;
        let id = p.get_str("_id").unwrap().to_owned();
        assert_eq!(p.get_str("content").unwrap(), content);
        assert_eq!(p.get_str("status").unwrap(), "received");
        assert_eq!(p.get_document("citizen").unwrap().get_str("id").unwrap(), citizen);
        assert_eq!(p.get_i64("version").unwrap(), 1);
        assert_eq!(p.get_i32("escalation_level").unwrap(), 0);
        assert!(p.get_datetime("received_at").is_ok() && p.get_datetime("created_at").is_ok());
        assert_eq!(app.count("events", doc! { "petition_id": &id, "type": "received" }).await, 1);

        let event = events.wait_for("received event", |m| m.body["petition_id"] == id.as_str()).await;
        assert_eq!(event.routing_key, "petition.received");
        assert_eq!(event.body["event_id"], format!("{id}/v1"));
        let receipt = outbound.wait_for("receipt", |m| m.body["petition_id"] == id.as_str()).await;
        assert_eq!(receipt.routing_key, channel, "answer goes out the door it came in");
        assert_eq!(receipt.body["kind"], "receipt");
        assert_eq!(receipt.body["recipient"]["id"], citizen);
        assert_eq!(receipt.body["recipient"]["order_no"].as_str(), order_no);
        assert!(receipt.body["text"].as_str().unwrap().contains(&id), "receipt quotes the number");
    }
    // The WeChat sample's CreateTime is from 2012: the clock starts at first sight, with the reason.
    let old = app.wait_for_petition("wechat", "1234567890123456").await;
    assert_eq!(old.get_str("receipt_time_note").unwrap(), "too_old");

    assert_all_valid(&events, "messages/event.schema.json").await;
    assert_all_valid(&outbound, "messages/outbound.schema.json").await;
    app.cleanup().await;
}

#[tokio::test]
async fn location_after_text_attaches_to_the_latest_petition() {
    let app = TestApp::spawn_roles(&[Role::Normalize]).await;
    app.publish_intake("wechat", wechat_text("oCitizenA", "9001", "路灯不亮", now()), None).await;
    let p = app.wait_for_petition("wechat", "9001").await;
    app.publish_intake("wechat", wechat_location("oCitizenA", "9002", 36.0465, 120.2945, now()), None).await;

    let id = p.get_str("_id").unwrap();
    let attached = wait_for("location attached", || app.find_one("petitions", doc! { "_id": id, "attachments.message_id": "9002" })).await;
    let point = attached.get_document("location").unwrap().get_document("point").unwrap();
    assert_eq!(point.get_str("type").unwrap(), "Point");
    let coords = point.get_array("coordinates").unwrap();
    // WeChat sends GCJ-02; the petition's point is WGS-84.
    let wgs = nuannan::domain::gcj02_to_wgs84(nuannan::domain::GeoPoint::new(120.2945, 36.0465).unwrap());
    let (lng, lat) = (coords[0].as_f64().unwrap(), coords[1].as_f64().unwrap());
    assert!((lng - wgs.lng()).abs() < 1e-9 && (lat - wgs.lat()).abs() < 1e-9, "({lng}, {lat}) is the WGS-84 of the GCJ-02 point");
    assert!((lng - 120.2945).abs() > 1e-3, "converted, not stored raw");
    assert_eq!(app.count("petitions", doc! {}).await, 1, "a location is not a petition");
    app.cleanup().await;
}

#[tokio::test]
async fn location_first_is_held_for_the_next_text_and_not_given_to_others() {
    let app = TestApp::spawn_roles(&[Role::Normalize]).await;
    app.publish_intake("wechat", wechat_location("oCitizenB", "9101", 36.06, 120.38, now()), None).await;
    wait_for("held location", || app.find_one("held_attachments", doc! { "_id": "wechat:9101", "status": "held" })).await;

    // Another citizen's text must not take it; the same citizen's does.
    app.publish_intake("wechat", wechat_text("oSomeoneElse", "9102", "别人的诉求", now()), None).await;
    app.publish_intake("wechat", wechat_text("oCitizenB", "9103", "这里井盖丢了", now()), None).await;
    let other = app.wait_for_petition("wechat", "9102").await;
    let mine = app.wait_for_petition("wechat", "9103").await;
    let id = mine.get_str("_id").unwrap();
    wait_for("held location attached", || app.find_one("petitions", doc! { "_id": id, "attachments.message_id": "9101" })).await;
    assert!(other.get_array("attachments").unwrap().is_empty());
    let held = app.find_one("held_attachments", doc! { "_id": "wechat:9101" }).await.unwrap();
    assert_eq!(held.get_str("status").unwrap(), "attached");
    assert_eq!(held.get_str("petition_id").unwrap(), id);
    app.cleanup().await;
}

#[tokio::test]
async fn location_outside_the_window_is_not_attached() {
    let app = TestApp::spawn_roles(&[Role::Normalize]).await;
    app.publish_intake("wechat", wechat_text("oCitizenC", "9201", "路面塌陷", now() - 3600), None).await;
    let p = app.wait_for_petition("wechat", "9201").await;
    app.publish_intake("wechat", wechat_location("oCitizenC", "9202", 36.06, 120.38, now()), None).await;
    wait_for("held location", || app.find_one("held_attachments", doc! { "_id": "wechat:9202", "status": "held" })).await;
    let p = app.find_one("petitions", doc! { "_id": p.get_str("_id").unwrap() }).await.unwrap();
    assert!(p.get_array("attachments").unwrap().is_empty());
    app.cleanup().await;
}

#[tokio::test]
async fn image_attaches_its_picture() {
    let app = TestApp::spawn_roles(&[Role::Normalize]).await;
    app.publish_intake("wechat", fixture("text_official_doc.xml"), None).await;
    let p = app.wait_for_petition("wechat", "1234567890123456").await;
    app.publish_intake("wechat", fixture("image.xml").replace("1234567890123456", "1234567890123457"), None).await;
    let id = p.get_str("_id").unwrap();
    let p =
        wait_for("image attached", || app.find_one("petitions", doc! { "_id": id, "attachments.message_id": "1234567890123457" })).await;
    let a = p.get_array("attachments").unwrap()[0].as_document().unwrap().clone();
    assert_eq!(a.get_str("kind").unwrap(), "image");
    assert_eq!(a.get_str("url").unwrap(), "this is a url");
    app.cleanup().await;
}

#[tokio::test]
async fn wechat_events_are_recorded_never_petitions_nor_rejections() {
    let app = TestApp::spawn_roles(&[Role::Normalize]).await;
    let names = ["event_subscribe_scan.xml", "event_click.xml", "event_location.xml", "event_templatesendjobfinish.xml"];
    for name in names {
        app.publish_intake("wechat", fixture(name), None).await;
        app.publish_intake("wechat", fixture(name), None).await; // WeChat retries callbacks
    }
    wait_for("4 channel events", || async { (app.count("channel_events", doc! {}).await == 4).then_some(()) }).await;
    let click = app.find_one("channel_events", doc! { "event": "CLICK" }).await.unwrap();
    assert_eq!(click.get_str("citizen_id").unwrap(), "FromUser");
    // A petition published after the events is stored; only then are the counts final.
    app.publish_intake("app", app_petition("after-events", "x"), None).await;
    app.wait_for_petition("app", "after-events").await;
    assert_eq!(app.count("petitions", doc! {}).await, 1);
    assert_eq!(app.count("rejections", doc! {}).await, 0);
    assert_eq!(app.count("channel_events", doc! {}).await, 4);
    app.cleanup().await;
}

#[tokio::test]
async fn a_redelivered_or_resent_message_is_stored_once() {
    let app = TestApp::spawn_roles(&[Role::Normalize]).await;
    let outbound = app.tap(Exchange::Outbound).await;
    for _ in 0..5 {
        app.publish_intake("hotline", hotline_order("QD-DUP", "重复工单"), Some("QD-DUP")).await;
        app.publish_intake("app", app_petition("req-dup", "重复提交"), Some("req-dup")).await;
    }
    app.publish_intake("app", app_petition("sentinel", "最后一条"), None).await;
    app.wait_for_petition("app", "sentinel").await;
    let queue = format!("{}.normalize", app.settings.namespace);
    wait_for("normalize queue drained", || async {
        let ch = app.conn.create_channel().await.unwrap();
        let q = ch
            .queue_declare(
                queue.as_str().into(),
                lapin::options::QueueDeclareOptions { passive: true, ..Default::default() },
                Default::default(),
            )
            .await
            .unwrap();
        (q.message_count() == 0).then_some(())
    })
    .await;

    assert_eq!(app.count("petitions", doc! { "source.message_id": "QD-DUP" }).await, 1);
    assert_eq!(app.count("petitions", doc! { "source.message_id": "req-dup" }).await, 1);
    assert_eq!(app.count("events", doc! { "type": "received" }).await, 3);
    let receipts = outbound.messages().await;
    let mut ids: Vec<_> = receipts.iter().filter_map(|m| m.message_id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "one receipt per petition (by message id): {ids:?}");
    app.cleanup().await;
}

#[tokio::test]
async fn every_rejection_code_is_recorded_with_the_raw_body_and_acknowledged() {
    let app = TestApp::spawn_roles(&[Role::Normalize]).await;
    let huge = format!(r#"{{"request_id":"big","content":"{}"}}"#, "长".repeat(100_000));
    let cases: Vec<(&str, Vec<u8>, Option<&str>, &str)> = vec![
        ("app", b"{\"request_id\": \"m-1\", ".to_vec(), Some("m-1"), "malformed"),
        ("wechat", b"<xml><Content>".to_vec(), Some("w-1"), "malformed"),
        ("app", br#"{"request_id":"i-1","user":{"id":"u"},"content":"x","category":"gossip"}"#.to_vec(), None, "invalid"),
        ("hotline", br#"{"order_no":"i-2","caller":{"phone":"139"},"content":"  "}"#.to_vec(), None, "invalid"),
        ("app", huge.into_bytes(), Some("t-1"), "too_large"),
        ("app", vec![b'{', 0xC3, 0x28, b'}'], Some("u-1"), "not_utf8"),
        ("fax", b"hello".to_vec(), Some("f-1"), "unknown_channel"),
        ("wechat", fixture("link.xml").into_bytes(), None, "unsupported"),
        ("wechat", fixture("voice.xml").into_bytes(), None, "unsupported"),
    ];
    for (channel, body, message_id, _) in &cases {
        app.publish_intake(channel, body.clone(), *message_id).await;
    }
    for (channel, body, message_id, reason) in &cases {
        let r = app.wait_for_rejection(doc! { "channel": *channel, "reason": *reason, "raw_bytes": body.len() as i64 }).await;
        assert!(r.get_datetime("received_at").is_ok());
        assert!(!r.get_str("detail").unwrap().is_empty());
        // A too_large body keeps its first 64 KiB (and the whole body's SHA-256).
        let kept = if *reason == "too_large" { &body[..64 * 1024] } else { &body[..] };
        assert_eq!(r.get_bool("raw_truncated").unwrap(), kept.len() < body.len());
        match std::str::from_utf8(kept) {
            Ok(text) => assert_eq!(r.get_str("raw").unwrap(), text),
            Err(_) => assert_eq!(r.get_binary_generic("raw").unwrap(), kept),
        }
        if let Some(id) = message_id {
            assert_eq!(r.get_str("message_id").unwrap(), *id);
        }
    }
    // Without an AMQP message_id, the payload's own id is recorded.
    let r = app.find_one("rejections", doc! { "reason": "invalid", "channel": "app" }).await.unwrap();
    assert_eq!(r.get_str("message_id").unwrap(), "i-1");
    let r = app.find_one("rejections", doc! { "reason": "unsupported", "raw": fixture("link.xml") }).await.unwrap();
    assert_eq!(r.get_str("message_id").unwrap(), "1234567890123456");

    // Nothing was dead-lettered or left unacknowledged: invalid input is not retried.
    let ch = app.conn.create_channel().await.unwrap();
    for q in [format!("{}.normalize", app.settings.namespace), format!("{}.dead", app.settings.namespace)] {
        let info = ch
            .queue_declare(
                q.as_str().into(),
                lapin::options::QueueDeclareOptions { passive: true, ..Default::default() },
                Default::default(),
            )
            .await
            .unwrap();
        assert_eq!(info.message_count(), 0, "{q}");
    }
    assert_eq!(app.count("rejections", doc! {}).await, cases.len() as u64);
    assert_eq!(app.count("petitions", doc! {}).await, 0);
    app.cleanup().await;
}

#[tokio::test]
async fn user_supplied_json_never_becomes_an_operator_or_field_name() {
    let app = TestApp::spawn_roles(&[Role::Normalize]).await;
    let payload = serde_json::json!({
        "request_id": "inj-1",
        "user": { "id": "u-inj", "$where": "sleep(10000)", "role": "admin" },
        "content": "{\"$set\": {\"status\": \"closed\"}}",
        "address": "$gt",
        "status": "closed",
        "$set": { "status": "closed" },
        "unit": "shinan",
    });
    app.publish_intake("app", payload.to_string(), None).await;
    // An operator where a string belongs is refused as invalid.
    let op_id = serde_json::json!({ "request_id": "inj-2", "user": { "id": { "$ne": null } }, "content": "x" });
    app.publish_intake("app", op_id.to_string(), None).await;

    let p = app.wait_for_petition("app", "inj-1").await;
    assert_eq!(p.get_str("content").unwrap(), "{\"$set\": {\"status\": \"closed\"}}");
    assert_eq!(p.get_document("location").unwrap().get_str("address").unwrap(), "$gt");
    assert_eq!(p.get_str("status").unwrap(), "received");
    assert!(p.get("unit").unwrap().as_null().is_some());
    let citizen = p.get_document("citizen").unwrap();
    assert!(citizen.keys().all(|k| ["id", "phone", "name"].contains(&k.as_str())), "{citizen}");
    assert!(!p.contains_key("$set"));
    let r = app.wait_for_rejection(doc! { "message_id": "inj-2" }).await;
    assert_eq!(r.get_str("reason").unwrap(), "invalid");
    assert_eq!(app.count("petitions", doc! {}).await, 1);
    app.cleanup().await;
}
