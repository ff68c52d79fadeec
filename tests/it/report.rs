//! `nuannan report` against a known data set, figures computed by hand.

use crate::common::{TestApp, settings_env};
use mongodb::bson::{Bson, DateTime, Document, doc};
use serde_json::{Value, json};

pub(crate) fn day(d: u32) -> DateTime {
    let t = chrono::DateTime::parse_from_rfc3339(&format!("2026-11-{d:02}T10:00:00+08:00")).unwrap();
    DateTime::from(t.with_timezone(&chrono::Utc))
}

/// One stored petition with just the fields the report reads.
pub(crate) fn petition(
    n: u32,
    received: DateTime,
    street: Option<&str>,
    category: &str,
    channel: &str,
    status: &str,
    extra: Document,
) -> Document {
    let mut d = doc! {
        "_id": format!("20261101-{n:06}"),
        "source": { "channel": channel, "message_id": format!("m{n}") },
        "category": category, "status": status, "received_at": received,
        "area": { "street": street.map(|s| Bson::String(s.into())).unwrap_or(Bson::Null) },
        "escalations": 0_i64, "refusals": 0_i64,
    };
    d.extend(extra);
    d
}

pub(crate) fn report(app: &TestApp, args: &[&str]) -> Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nuannan"))
        .arg("report")
        .args(args)
        .args(["--format", "json"])
        .envs(settings_env(&app.settings))
        .output()
        .expect("running nuannan report");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON report")
}

fn row(group: Option<&str>, received: u64, closed: u64, rates: [Option<f64>; 4], escalations: u64, refusals: u64) -> Value {
    json!({
        "group": group, "received": received, "closed": closed,
        "closure_rate": rates[0], "on_time_response_rate": rates[1],
        "on_time_resolution_rate": rates[2], "satisfaction_rate": rates[3],
        "escalations": escalations, "refusals": refusals, "feedback_delivered_rate": null,
    })
}

fn with_feedback(mut row: Value, rate: f64) -> Value {
    row["feedback_delivered_rate"] = json!(rate);
    row
}

/// A message to a citizen as the deliver role records it.
fn delivery(n: u32, channel: &str, kind: &str, status: &str, at: DateTime) -> Document {
    doc! {
        "_id": format!("{n}/{kind}/1"), "petition_id": format!("20261102-{n:06}"), "channel": channel, "kind": kind,
        "status": status, "attempts": [], "recipient": "r", "text": "t", "at": at,
    }
}

#[tokio::test]
async fn the_report_matches_figures_computed_by_hand() {
    let app = TestApp::without_workers().await;
    let (badaxia, zhongshanlu) = (Some("shinan.badaxia"), Some("shinan.zhongshanlu"));
    let data = vec![
        petition(
            1,
            day(2),
            badaxia,
            "livelihood",
            "wechat",
            "closed",
            doc! {
            "kpi": { "responded_on_time": true, "resolved_on_time": true }, "closure": "rated", "rating": { "value": "satisfied" } },
        ),
        petition(
            2,
            day(3),
            badaxia,
            "livelihood",
            "app",
            "closed",
            doc! {
            "kpi": { "responded_on_time": false, "resolved_on_time": true }, "closure": "rated", "rating": { "value": "unsatisfied" }, "escalations": 2_i64 },
        ),
        petition(
            3,
            day(4),
            badaxia,
            "enforcement",
            "hotline",
            "accepted",
            doc! {
            "kpi": { "responded_on_time": true }, "refusals": 1_i64 },
        ),
        petition(
            4,
            day(5),
            zhongshanlu,
            "development",
            "hotline",
            "closed",
            doc! {
            "kpi": { "responded_on_time": true, "resolved_on_time": false }, "closure": "no_rating", "escalations": 1_i64 },
        ),
        petition(
            5,
            day(6),
            zhongshanlu,
            "livelihood",
            "wechat",
            "closed",
            doc! {
            "kpi": { "responded_on_time": true, "resolved_on_time": true }, "closure": "rated", "rating": { "value": "basically_satisfied" } },
        ),
        petition(6, day(7), None, "livelihood", "app", "triage", doc! {}),
        // Received in October: outside the period.
        petition(
            7,
            DateTime::from(day(2).to_chrono() - chrono::Duration::days(30)),
            badaxia,
            "livelihood",
            "wechat",
            "closed",
            doc! {
            "closure": "rated", "rating": { "value": "satisfied" } },
        ),
    ];
    app.collection("petitions").insert_many(data).await.unwrap();
    // Results: two of three reached 12345 callers, WeChat's one did; receipts do not count.
    let deliveries = vec![
        delivery(3, "hotline", "result", "delivered", day(4)),
        delivery(4, "hotline", "result", "failed", day(5)),
        delivery(5, "wechat", "result", "delivered", day(6)),
        delivery(6, "hotline", "result", "delivered", day(6)),
        delivery(6, "hotline", "receipt", "undeliverable", day(6)),
        // October: outside the period.
        delivery(7, "wechat", "result", "failed", DateTime::from(day(2).to_chrono() - chrono::Duration::days(30))),
    ];
    app.collection("deliveries").insert_many(deliveries).await.unwrap();

    let period = ["--from", "2026-11-01", "--to", "2026-11-30"];
    let by_street = report(&app, &[&period[..], &["--by", "street"]].concat());
    assert_eq!(
        by_street,
        json!([
            row(None, 1, 0, [Some(0.0), None, None, None], 0, 0),
            row(badaxia, 3, 2, [Some(2.0 / 3.0), Some(2.0 / 3.0), Some(1.0), Some(0.5)], 2, 1),
            row(zhongshanlu, 2, 2, [Some(1.0), Some(1.0), Some(0.5), Some(1.0)], 1, 0),
        ])
    );
    let total = report(&app, &period);
    assert_eq!(total, json!([with_feedback(row(None, 6, 4, [Some(4.0 / 6.0), Some(0.8), Some(0.75), Some(2.0 / 3.0)], 3, 1), 0.75)]));

    let by_channel = report(&app, &[&period[..], &["--by", "channel"]].concat());
    let hotline = by_channel.as_array().unwrap().iter().find(|r| r["group"] == "hotline").unwrap();
    assert_eq!(hotline, &with_feedback(row(Some("hotline"), 2, 1, [Some(0.5), Some(1.0), Some(0.0), None], 1, 1), 2.0 / 3.0));
    app.cleanup().await;
}
