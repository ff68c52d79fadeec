use chrono::{Duration, TimeZone, Utc};

use super::*;
use crate::domain::{AttachmentKind, Category, ReceiptTimeNote, wgs84_to_gcj02};

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("../../tests/fixtures/wechat/", $name))
    };
}

fn policy() -> IntakePolicy {
    IntakePolicy { max_body_bytes: 256 * 1024, clock: ReceiptClock { future_tolerance: Duration::minutes(5), max_age: Duration::days(30) } }
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 2, 0, 0).unwrap()
}

fn parse_ok(key: &str, body: &str) -> Intake {
    parse(key, body.as_bytes(), now(), &policy()).expect("accepted")
}

fn reason(key: &str, body: &[u8]) -> RejectReason {
    parse(key, body, now(), &policy()).expect_err("rejected").reason
}

#[test]
fn wechat_text_is_a_petition_keyed_by_msgid() {
    let Intake::Petition(p) = parse_ok("wechat", fixture!("text_official_doc.xml")) else { panic!() };
    assert_eq!(p.content, "this is a test");
    assert_eq!(p.source.message_id, "1234567890123456");
    assert_eq!(p.citizen.id, "fromUser");
    // CreateTime 1348831860 is 2012: too old, so the clock starts when we saw it.
    assert_eq!(p.received.at, now());
    assert_eq!(p.received.note, Some(ReceiptTimeNote::TooOld));
}

#[test]
fn wechat_recent_create_time_starts_the_clock() {
    let body = fixture!("text_official_doc.xml").replace("1348831860", &(now().timestamp() - 60).to_string());
    let Intake::Petition(p) = parse_ok("wechat", &body) else { panic!() };
    assert_eq!(p.received.at, now() - Duration::seconds(60));
    assert_eq!(p.received.note, None);
}

#[test]
fn wechat_voice_needs_recognition() {
    assert_eq!(reason("wechat", fixture!("voice.xml").as_bytes()), RejectReason::Unsupported);
    let recognised = fixture!("voice.xml").replace("</xml>", "<Recognition><![CDATA[路灯坏了]]></Recognition></xml>");
    let Intake::Petition(p) = parse_ok("wechat", &recognised) else { panic!() };
    assert_eq!(p.content, "路灯坏了");
}

#[test]
fn wechat_location_is_an_attachment_with_lat_lng_swapped_right() {
    let Intake::Attachment(a) = parse_ok("wechat", fixture!("location.xml")) else { panic!() };
    assert_eq!(a.attachment.kind, AttachmentKind::Location);
    let p = a.attachment.point.unwrap();
    // Location_Y 113.358803 / Location_X 23.134521 (GCJ-02), converted to WGS-84.
    assert!((p.lng() - 113.353323).abs() < 1e-6 && (p.lat() - 23.137058).abs() < 1e-6, "{p:?}");
    assert_eq!(a.attachment.label.as_deref(), Some("位置信息"));
}

#[test]
fn wechat_location_is_stored_as_wgs84() {
    // A GCJ-02 point on 团岛二路 as WeChat would send it.
    let body = fixture!("location.xml").replace("23.134521", "36.0465").replace("113.358803", "120.2945");
    let Intake::Attachment(a) = parse_ok("wechat", &body) else { panic!() };
    let p = a.attachment.point.unwrap();
    // WGS-84 lies about 0.005° (450 m) west and 0.0001° (13 m) south of GCJ-02 here.
    assert!((p.lng() - 120.289490).abs() < 1e-6 && (p.lat() - 36.046379).abs() < 1e-6, "{p:?}");
    let (d_lng, d_lat) = (120.2945 - p.lng(), 36.0465 - p.lat());
    assert!((0.004..0.006).contains(&d_lng) && (0.0..0.0005).contains(&d_lat), "{d_lng} {d_lat}");
    let gcj = wgs84_to_gcj02(p);
    assert!((gcj.lng() - 120.2945).abs() < 1e-7 && (gcj.lat() - 36.0465).abs() < 1e-7, "round trip to WeChat's value: {gcj:?}");
}

#[test]
fn wechat_image_is_an_attachment() {
    let Intake::Attachment(a) = parse_ok("wechat", fixture!("image.xml")) else { panic!() };
    assert_eq!(a.attachment.kind, AttachmentKind::Image);
    assert_eq!(a.attachment.url.as_deref(), Some("this is a url"));
}

#[test]
fn wechat_events_are_channel_events() {
    for body in [
        fixture!("event_click.xml"),
        fixture!("event_subscribe_scan.xml"),
        fixture!("event_location.xml"),
        fixture!("event_templatesendjobfinish.xml"),
    ] {
        assert!(matches!(parse_ok("wechat", body), Intake::ChannelEvent(_)), "{body}");
    }
    let Intake::ChannelEvent(e) = parse_ok("wechat", fixture!("event_click.xml")) else { panic!() };
    assert_eq!(e.dedup_key, "FromUser:123456789:CLICK");
}

#[test]
fn wechat_link_is_unsupported_and_broken_xml_malformed() {
    assert_eq!(reason("wechat", fixture!("link.xml").as_bytes()), RejectReason::Unsupported);
    assert_eq!(reason("wechat", b"<xml><Content>unclosed"), RejectReason::Malformed);
    let no_from = fixture!("text_official_doc.xml").replace("<FromUserName><![CDATA[fromUser]]></FromUserName>", "");
    let err = parse("wechat", no_from.as_bytes(), now(), &policy()).unwrap_err();
    assert_eq!(err.reason, RejectReason::Invalid);
    assert_eq!(err.payload_id.as_deref(), Some("1234567890123456"));
}

const APP: &str = r#"{"request_id":"r-1","submitted_at":"2026-11-27T09:00:00+08:00",
  "user":{"id":"u-1","phone":"13812345678"},"content":" 楼道灯坏了 ","category":"livelihood",
  "urgent":true,"location":{"lng":120.3826,"lat":36.0671},"building_id":"b-7","images":["https://x/1.jpg"]}"#;

#[test]
fn app_payload_becomes_a_typed_petition() {
    let Intake::Petition(p) = parse_ok("app", APP) else { panic!() };
    assert_eq!(p.source.message_id, "r-1");
    assert_eq!(p.content, "楼道灯坏了");
    assert_eq!(p.category, Some(Category::Livelihood));
    assert!(p.urgent);
    assert_eq!(p.received.at, Utc.with_ymd_and_hms(2026, 11, 27, 1, 0, 0).unwrap());
    assert_eq!(p.hints.building_id.as_deref(), Some("b-7"));
    assert_eq!(p.point.unwrap().lat(), 36.0671);
}

#[test]
fn app_type_errors_are_invalid_and_keep_the_request_id() {
    for bad in [
        APP.replace(r#""category":"livelihood""#, r#""category":"gossip""#),
        APP.replace(r#"" 楼道灯坏了 ""#, r#"{"$gt":""}"#),
        APP.replace(r#""lat":36.0671"#, r#""lat":96"#),
        APP.replace(r#""2026-11-27T09:00:00+08:00""#, r#""tomorrow""#),
        APP.replace(r#"" 楼道灯坏了 ""#, r#""   ""#),
    ] {
        let err = parse("app", bad.as_bytes(), now(), &policy()).unwrap_err();
        assert_eq!(err.reason, RejectReason::Invalid, "{bad}");
        assert_eq!(err.payload_id.as_deref(), Some("r-1"));
    }
}

const HOTLINE: &str = r#"{"order_no":"12345-20261127-0001","created_at":"2026-11-27 09:30:00",
  "caller":{"phone":"13912345678","name":"王女士"},"content":"噪音扰民",
  "classification":{"code":"0301","name":"噪声污染"},"street":"八大峡街道","community":"团岛社区",
  "urgency":"urgent","time_limit_days":1}"#;

#[test]
fn hotline_order_becomes_a_petition_identified_by_phone() {
    let Intake::Petition(p) = parse_ok("hotline", HOTLINE) else { panic!() };
    assert_eq!(p.citizen.id, "13912345678");
    assert_eq!(p.source.message_id, "12345-20261127-0001");
    assert_eq!(p.received.at, Utc.with_ymd_and_hms(2026, 11, 27, 1, 30, 0).unwrap());
    assert_eq!(p.hints.community.as_deref(), Some("团岛社区"));
    assert_eq!(p.time_limit_days, Some(1));
    assert!(p.urgent);
}

#[test]
fn hotline_bad_time_limit_is_invalid() {
    let bad = HOTLINE.replace(r#""time_limit_days":1"#, r#""time_limit_days":0"#);
    assert_eq!(reason("hotline", bad.as_bytes()), RejectReason::Invalid);
}

#[test]
fn envelope_rejections() {
    assert_eq!(reason("fax", APP.as_bytes()), RejectReason::UnknownChannel);
    assert_eq!(reason("app", &[b'{', 0xff, 0xfe, b'}']), RejectReason::NotUtf8);
    assert_eq!(reason("app", b"{\"request_id\":"), RejectReason::Malformed);
    let huge = vec![b' '; 256 * 1024 + 1];
    assert_eq!(reason("app", &huge), RejectReason::TooLarge);
}
