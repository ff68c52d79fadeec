//! What operators rely on: poison messages set aside with their error while
//! traffic flows, /healthz and /metrics, and a prompt, clean SIGTERM.

use std::time::{Duration, Instant};

use crate::common::{TestApp, app_petition, settings_env, test_settings, wait_for};
use lapin::options::BasicGetOptions;
use lapin::types::AMQPValue;
use mongodb::bson::doc;
use nuannan::bus::{Exchange, Outgoing};
use nuannan_workers::Role;

pub(crate) fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

pub(crate) async fn get(addr: &str, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes()).await.ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    let status = out.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, out.split_once("\r\n\r\n")?.1.to_owned()))
}

#[tokio::test]
async fn a_poison_message_is_dead_lettered_with_its_error_while_traffic_flows() {
    let mut settings = test_settings().await;
    settings.amqp.delivery_limit = 2;
    let mut app = TestApp::with_settings(settings).await;
    app.start_workers(&[Role::Normalize, Role::Route]);
    // An event for a petition that does not exist: routing fails every time.
    let poison =
        br#"{"event_id":"20261128-999999/v1","petition_id":"20261128-999999","type":"received","at":"2026-11-28T01:00:00Z","data":{}}"#;
    app.publisher.publish(&Outgoing::json(Exchange::Events, "petition.received", poison.to_vec(), "poison-1")).await.unwrap();
    for i in 0..20 {
        app.publish_intake("app", app_petition(&format!("healthy-{i}"), "路灯不亮"), None).await;
    }
    wait_for("healthy traffic routed", || async {
        (app.count("petitions", doc! { "status": { "$in": ["assigned", "triage"] } }).await == 20).then_some(())
    })
    .await;

    let ch = app.conn.create_channel().await.unwrap();
    let dead = format!("{}.dead", app.settings.namespace);
    let msg = wait_for("the poison message in the dead-letter queue", || async {
        ch.basic_get(dead.as_str().into(), BasicGetOptions::default()).await.unwrap()
    })
    .await;
    let d = msg.delivery;
    assert_eq!(d.properties.message_id().as_ref().unwrap().as_str(), "poison-1");
    assert_eq!(d.routing_key.as_str(), "petition.received");
    let headers = d.properties.headers().clone().unwrap();
    let header = |k: &str| match headers.inner().get(k) {
        Some(AMQPValue::LongString(s)) => s.to_string(),
        other => panic!("{k}: {other:?}"),
    };
    assert!(header("x-nuannan-error").contains("20261128-999999 not found"), "{}", header("x-nuannan-error"));
    assert_eq!(header("x-nuannan-queue"), format!("{}.route", app.settings.namespace));
    assert!(headers.inner().contains_key("x-delivery-count"), "delivered limit + 1 times first");
    app.cleanup().await;
}

#[tokio::test]
async fn health_and_metrics_are_served_and_sigterm_stops_within_ten_seconds() {
    let mut settings = test_settings().await;
    settings.ops.http_addr = free_addr();
    let app = TestApp::with_settings(settings).await;
    let addr = app.settings.ops.http_addr.clone();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_nuannan"))
        .arg("run")
        .envs(settings_env(&app.settings))
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let health = wait_for("healthy", || async { get(&addr, "/healthz").await.filter(|(s, _)| *s == 200) }).await;
    let health: serde_json::Value = serde_json::from_str(&health.1).unwrap();
    assert_eq!((&health["broker"], &health["store"]), (&serde_json::json!(true), &serde_json::json!(true)), "{health}");

    for i in 0..50 {
        app.publish_intake("app", app_petition(&format!("m-{i}"), "路灯不亮"), None).await;
    }
    wait_for("routed", || async {
        (app.count("petitions", doc! { "status": { "$ne": "received" }, "outbox": { "$size": 0 } }).await == 50).then_some(())
    })
    .await;
    let (status, metrics) = get(&addr, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    for line in [
        "nuannan_messages_consumed_total{role=\"normalize\"} 50",
        "nuannan_messages_consumed_total{role=\"route\"} 50",
        "nuannan_processing_seconds_count{role=\"route\"} 50",
        "nuannan_store_connected 1",
    ] {
        assert!(metrics.contains(line), "missing `{line}` in\n{metrics}");
    }
    assert!(metrics.contains("nuannan_messages_published_total{role=\"normalize\"}"));
    assert_eq!(get(&addr, "/nope").await.unwrap().0, 404);

    // SIGTERM while busy: finish, ack, close, exit 0 within 10 s.
    for i in 0..100 {
        app.publish_intake("app", app_petition(&format!("t-{i}"), "路灯不亮"), None).await;
    }
    let pid = child.id().unwrap().to_string();
    let asked = Instant::now();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await.expect("exited within 10 s").unwrap();
    assert!(status.success(), "clean exit, got {status}");
    eprintln!("SIGTERM to exit: {:?}", asked.elapsed());
    // Nothing half-done: every stored petition announced its receipt.
    assert_eq!(app.count("petitions", doc! { "outbox": { "$ne": [] } }).await, 0);
    app.cleanup().await;
}
