//! Correct over time: the calendar as data, RabbitMQ 4 semantics, bounded
//! queues and records, durable writes, and the smaller defects — each shown
//! through the real broker and store.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{Datelike, NaiveDate, Utc, Weekday};
use chrono_tz::Asia::Shanghai;
use lapin::options::{BasicGetOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::{BasicProperties, Channel};
use mongodb::bson::{Document, doc};
use nuannan::bus::Exchange;
use nuannan_workers::Role;
use sha2::{Digest, Sha256};

use crate::common::store_server::{StoreServer, mongod_command};
use crate::common::{TestApp, app_petition, settings_env, test_settings, wait_for, wait_up_to};
use crate::ops::{free_addr, get};

// ---- the calendar -----------------------------------------------------------

/// A year file in the bundled format: weekends off, `holidays` off.
fn year_file(year: i32, holidays: &[NaiveDate]) -> String {
    let mut text = String::from("date,is_workday,day_type,holiday_name_zh\n");
    let first = NaiveDate::from_ymd_opt(year, 1, 1).unwrap();
    for day in first.iter_days().take_while(|d| d.year() == year) {
        let weekend = matches!(day.weekday(), Weekday::Sat | Weekday::Sun);
        let (workday, kind, name) = match (holidays.contains(&day), weekend) {
            (true, _) => (false, "holiday", "测试假日"),
            (false, true) => (false, "weekend", ""),
            (false, false) => (true, "workday", ""),
        };
        text.push_str(&format!("{day},{workday},{kind},{name}\n"));
    }
    text
}

/// A calendar directory holding only these years.
fn calendar_dir(name: &str, years: &[(i32, &[NaiveDate])]) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("calendar-{name}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    for (year, holidays) in years {
        std::fs::write(dir.join(format!("cn_workdays_{year}.csv")), year_file(*year, holidays)).unwrap();
    }
    dir
}

fn this_year() -> i32 {
    Utc::now().with_timezone(&Shanghai).year()
}

fn resolve_by(p: &Document) -> chrono::DateTime<Utc> {
    p.get_document("deadlines").unwrap().get_datetime("resolve_by").unwrap().to_chrono()
}

#[tokio::test]
async fn a_deadline_in_a_year_without_data_is_provisional_until_the_year_is_imported() {
    // Only an old year on file: every deadline from today is computed on the weekend rule.
    let mut settings = test_settings().await;
    settings.calendar.dir = calendar_dir("provisional", &[(2024, &[])]);
    let mut app = TestApp::with_settings(settings).await;
    app.start_workers(&[Role::Normalize, Role::Route]);
    let events = app.tap(Exchange::Events).await;
    app.publish_intake("app", app_petition("prov-1", "路灯不亮"), None).await;
    let p = wait_for("assigned", || {
        app.find_one("petitions", doc! { "source.message_id": "prov-1", "status": "assigned", "outbox": { "$size": 0 } })
    })
    .await;
    assert!(p.get_document("deadlines").unwrap().get_bool("provisional").unwrap(), "marked provisional: {p}");
    let before = resolve_by(&p);

    // The State Council publishes the year: the provisional due day is a holiday in it.
    let due_day = before.with_timezone(&Shanghai).date_naive();
    let csv = year_file(due_day.year(), &[due_day]);
    let conn = nuannan::bus::connect(&app.settings.amqp.url, "calendar-import").await.unwrap();
    let publisher = nuannan::bus::Publisher::open(&conn, nuannan::bus::topology(&app.settings)).await.unwrap();
    let imported = nuannan_workers::calendar::import(&app.settings, &app.store, &publisher, &csv).await.unwrap();
    assert_eq!((imported.recomputed, imported.changed), (1, 1));

    let p = app.find_one("petitions", doc! { "source.message_id": "prov-1" }).await.unwrap();
    let after = resolve_by(&p);
    assert!(after > before, "the holiday pushed the deadline: {before} → {after}");
    assert_eq!(p.get_document("deadlines").unwrap().get_bool("provisional").ok(), None, "no longer provisional: {p}");
    let clock = p.get_document("clock").unwrap();
    assert_eq!(clock.get_document("resolve").unwrap().get_datetime("due").unwrap().to_chrono(), after);
    assert!(clock.get_datetime("next_at").unwrap().to_chrono() <= after, "re-indexed: {clock}");
    let id = p.get_str("_id").unwrap();
    let changed =
        events.wait_for("deadline_changed", |m| m.routing_key == "petition.deadline_changed" && m.body["petition_id"] == id).await;
    assert_eq!(changed.body["data"]["to"], serde_json::json!(after));
    assert_eq!(app.count("events", doc! { "petition_id": id, "type": "deadline_changed" }).await, 1);
    let _ = conn.close(200, "bye".into()).await;
    app.cleanup().await;
}

#[tokio::test]
async fn healthz_reports_a_calendar_about_to_run_out_and_stays_200() {
    for (name, years, degraded) in [("short", vec![this_year() - 1], true), ("long", vec![this_year(), this_year() + 1], false)] {
        let mut settings = test_settings().await;
        let years: Vec<(i32, &[NaiveDate])> = years.iter().map(|y| (*y, &[][..])).collect();
        settings.calendar.dir = calendar_dir(name, &years);
        settings.ops.http_addr = free_addr();
        let app = TestApp::with_settings(settings).await;
        let addr = app.settings.ops.http_addr.clone();
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_nuannan"))
            .args(["worker", "route"])
            .envs(settings_env(&app.settings))
            .env("RUST_LOG", "error")
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let (status, body) = wait_for("healthz", || async { get(&addr, "/healthz").await.filter(|(s, _)| *s == 200) }).await;
        let health: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!((status, health["calendar"].as_str()), (200, Some(if degraded { "degraded" } else { "ok" })), "{name}: {health}");
        let (_, metrics) = get(&addr, "/metrics").await.unwrap();
        let days: i64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("nuannan_calendar_days_ahead "))
            .unwrap_or_else(|| panic!("no calendar metric in\n{metrics}"))
            .parse()
            .unwrap();
        assert_eq!(days < 45, degraded, "{name}: {days} days ahead");
        // Stopped before its namespace goes: a role whose queues vanish reconnects and declares them again.
        child.start_kill().unwrap();
        child.wait().await.unwrap();
        app.cleanup().await;
    }
}

#[test]
fn nuannan_deadline_warns_on_stderr_never_on_stdout() {
    let dir = format!("{}/data/calendar", crate::common::ROOT);
    let run = |from: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_nuannan"))
            .args(["deadline", "--from", from, "--working-days", "5"])
            .env("NUANNAN__CALENDAR__DIR", &dir)
            .output()
            .unwrap()
    };
    // 2099 has no data.
    let out = run("2099-12-28T10:00:00+08:00");
    assert!(out.status.success());
    let (stdout, stderr) = (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap());
    assert_eq!(stdout.lines().count(), 1, "only the instant on stdout: {stdout}");
    assert!(chrono::DateTime::parse_from_rfc3339(stdout.trim()).is_ok(), "{stdout}");
    assert!(stderr.contains("provisional"), "a warning on stderr: {stderr}");
    // A covered year: no warning.
    let out = run("2026-11-27T10:00:00+08:00");
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), "2026-12-04T17:30:00+08:00");
    assert!(!String::from_utf8(out.stderr).unwrap().contains("provisional"));
}

#[test]
fn calendar_import_refuses_a_wrong_file_and_changes_nothing() {
    let dir = calendar_dir("bad", &[]);
    let file = dir.join("bad.csv");
    let good = year_file(2031, &[]);
    let missing_day: String = good.lines().filter(|l| !l.starts_with("2031-06-01")).map(|l| format!("{l}\n")).collect();
    std::fs::write(&file, missing_day).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nuannan"))
        .args(["calendar", "import", file.to_str().unwrap()])
        .env("NUANNAN__MONGODB__URI", "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=100")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("2031 lists 364 dates"), "names the problem: {stderr}");
}

// ---- RabbitMQ semantics -----------------------------------------------------

async fn queue_state(ch: &Channel, queue: &str) -> (u32, u32) {
    let q = ch.queue_declare(queue.into(), QueueDeclareOptions { passive: true, ..Default::default() }, Default::default()).await.unwrap();
    (q.message_count(), q.consumer_count())
}

#[tokio::test]
async fn a_consumer_cancelled_by_the_broker_reconnects() {
    let app = TestApp::spawn_roles(&[Role::Normalize]).await;
    app.publish_intake("app", app_petition("before", "路灯不亮"), None).await;
    app.wait_for_petition("app", "before").await;
    // Deleting its queue makes the broker cancel the consumer (basic.cancel).
    let ch = app.conn.create_channel().await.unwrap();
    let queue = format!("{}.normalize", app.settings.namespace);
    ch.queue_delete(queue.as_str().into(), Default::default()).await.unwrap();
    // The role reconnects, declares its queue again, and consumes. (A
    // passive declare of a missing queue closes its channel: one per probe.)
    wait_for("the queue declared again and consumed", || async {
        let probe = app.conn.create_channel().await.ok()?;
        let passive = QueueDeclareOptions { passive: true, ..Default::default() };
        let q = probe.queue_declare(queue.as_str().into(), passive, Default::default()).await.ok()?;
        let _ = probe.close(200, "probed".into()).await;
        (q.consumer_count() > 0).then_some(())
    })
    .await;
    app.publish_intake("app", app_petition("after", "路灯不亮"), None).await;
    app.wait_for_petition("app", "after").await;
    app.cleanup().await;
}

#[tokio::test]
async fn a_publishing_channel_closed_by_the_broker_is_replaced() {
    let app = TestApp::spawn_roles(&[Role::Normalize]).await;
    app.publish_intake("app", app_petition("first", "路灯不亮"), None).await;
    app.wait_for_petition("app", "first").await;
    // Publishing to a missing exchange closes the publisher's channel (404).
    let ch = app.conn.create_channel().await.unwrap();
    let events = format!("{}.events", app.settings.namespace);
    ch.exchange_delete(events.as_str().into(), Default::default()).await.unwrap();
    app.publish_intake("app", app_petition("second", "路灯不亮"), None).await;
    // The role reconnects (declaring the exchange again) and finishes the work.
    wait_up_to("announced after the reconnect", Duration::from_secs(60), || {
        app.find_one("petitions", doc! { "source.message_id": "second", "outbox": { "$size": 0 } })
    })
    .await;
    app.cleanup().await;
}

#[tokio::test]
async fn a_long_store_outage_cancels_the_consumer_until_the_store_answers() {
    let Some(mongod) = mongod_command() else {
        eprintln!("skipped: no MongoDB server binary to start and stop (set NUANNAN_FAULT_MONGOD)");
        return;
    };
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("outage-{}", uuid::Uuid::new_v4().simple()));
    let mut store = StoreServer::new(mongod, &dir);
    store.start().await;
    let mut settings = test_settings().await;
    settings.mongodb.uri = store.uri();
    settings.amqp.hold_max_secs = 1;
    let mut app = TestApp::with_settings(settings).await;
    app.start_workers(&[Role::Normalize]);
    let ch = app.conn.create_channel().await.unwrap();
    let queue = format!("{}.normalize", app.settings.namespace);
    wait_for("consuming", || async { (queue_state(&ch, &queue).await.1 == 1).then_some(()) }).await;

    store.stop().await;
    app.publish_intake("app", app_petition("held", "路灯不亮"), None).await;
    // Held past hold_max: the consumer lets go, long before consumer_timeout.
    wait_for("the consumer cancelled", || async { (queue_state(&ch, &queue).await == (1, 0)).then_some(()) }).await;

    store.start().await;
    wait_up_to("consuming again", Duration::from_secs(60), || async { (queue_state(&ch, &queue).await.1 == 1).then_some(()) }).await;
    wait_up_to("the held petition stored", Duration::from_secs(60), || {
        app.find_one("petitions", doc! { "source.message_id": "held", "outbox": { "$size": 0 } })
    })
    .await;
    app.cleanup().await;
    store.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- nothing piles up ---------------------------------------------------------

#[tokio::test]
async fn unconsumed_events_are_not_kept_and_the_operator_queues_are_bounded() {
    let mut settings = test_settings().await;
    settings.amqp.unrouted_max_length = 3;
    let mut app = TestApp::with_settings(settings).await;
    app.start_workers(&[Role::Normalize, Role::Route]);
    app.publish_intake("app", app_petition("flow", "路灯不亮"), None).await;
    wait_for("assigned", || {
        app.find_one("petitions", doc! { "source.message_id": "flow", "status": "assigned", "outbox": { "$size": 0 } })
    })
    .await;
    let ch = app.conn.create_channel().await.unwrap();
    let unrouted = format!("{}.unrouted", app.settings.namespace);
    // The assignment had no handler app bound: kept. `petition.assigned` had no subscriber: not kept.
    let first = ch.basic_get(unrouted.as_str().into(), BasicGetOptions { no_ack: true }).await.unwrap().expect("the assignment kept");
    assert_eq!(first.delivery.exchange.as_str(), format!("{}.dispatch", app.settings.namespace));
    assert_eq!(queue_state(&ch, &unrouted).await.0, 0, "no event in {unrouted}");
    // Bounded: the oldest are dropped past the length limit.
    ch.confirm_select(Default::default()).await.unwrap();
    let dispatch = format!("{}.dispatch", app.settings.namespace);
    for i in 0..5 {
        let props = BasicProperties::default().with_message_id(format!("nobody-{i}").into());
        ch.basic_publish(dispatch.as_str().into(), "unit.nobody".into(), BasicPublishOptions::default(), b"{}", props)
            .await
            .unwrap()
            .await
            .unwrap();
    }
    assert_eq!(queue_state(&ch, &unrouted).await.0, 3);
    app.cleanup().await;
}

#[tokio::test]
async fn a_rejected_body_keeps_at_most_64_kib_its_hash_and_an_expiry() {
    let app = TestApp::spawn_roles(&[Role::Normalize]).await;
    let huge = format!("{{\"request_id\":\"huge\",\"content\":\"{}\"}}", "x".repeat(300 * 1024));
    app.publish_intake("app", huge.clone(), Some("huge-1")).await;
    let r = app.wait_for_rejection(doc! { "message_id": "huge-1" }).await;
    assert_eq!(r.get_str("reason").unwrap(), "too_large");
    assert_eq!(r.get_str("raw").unwrap().len(), 64 * 1024);
    assert_eq!(r.get_str("raw_sha256").unwrap(), format!("{:x}", Sha256::digest(huge.as_bytes())));
    let expires = r.get_datetime("expires_at").unwrap().to_chrono();
    let days = (expires - Utc::now()).num_hours() as f64 / 24.0;
    assert!((29.9..=30.0).contains(&days), "kept 30 days: {days}");
    let indexes = app.collection("rejections").list_index_names().await.unwrap();
    assert!(indexes.iter().any(|i| i.starts_with("expires_at")), "a TTL index: {indexes:?}");
    app.cleanup().await;
}

// ---- durability -----------------------------------------------------------------

#[tokio::test]
async fn writes_wait_for_a_majority_and_the_journal() {
    let settings = test_settings().await;
    let store = nuannan::store::Store::open(&settings.mongodb).await.unwrap();
    let wc = store.write_concern().expect("a write concern");
    assert_eq!((wc.w.clone(), wc.journal), (Some(mongodb::options::Acknowledgment::Majority), Some(true)));
    // And the server takes writes under it.
    store.database().collection::<Document>("probe").insert_one(doc! { "ok": 1 }).await.unwrap();
    let _ = store.database().drop().await;
}
