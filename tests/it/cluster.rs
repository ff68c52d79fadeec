//! Node loss in a three-node RabbitMQ cluster, Jepsen-style (`./scripts/cluster-test`
//! starts the cluster, runs this, and stops it). The roles run as processes
//! given every node's URL (`amqp.url` as a list); 1 000 petitions in the
//! three channels' mix stream in while the node leading `{ns}.normalize` is
//! killed with `kill -9`, and later a second node's application is stopped
//! (leaving one node of three: the queues lose their quorum) before both
//! come back. Then the same tally as the fault suite: sent, stored, lost,
//! duplicated effects, escalations expected / lost / duplicated, and the
//! time from each fault to the first petition stored from a message sent
//! after it.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use mongodb::bson::doc;
use tokio::process::Command;

use crate::common::{ROOT, TestApp, test_settings};
use crate::faults::{Audit, LATE_EVERY, ResilientPublisher, Workers, channel_of, message, settle_and_tally};

/// `scripts/cluster ARGS…`: its output, trimmed.
async fn cluster(args: &[&str]) -> String {
    let out = Command::new(format!("{ROOT}/scripts/cluster")).args(args).output().await.unwrap();
    assert!(out.status.success(), "scripts/cluster {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A fault, when it happened, and the first message sent after it.
struct Fault {
    what: String,
    at: DateTime<Utc>,
    next_key: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the three-node cluster of ./scripts/cluster-test"]
async fn nothing_is_lost_when_broker_nodes_die() {
    let urls = std::env::var("NUANNAN_CLUSTER_URLS").expect("run through ./scripts/cluster-test (NUANNAN_CLUSTER_URLS)");
    let sent: usize = std::env::var("NUANNAN_CLUSTER_PETITIONS").ok().and_then(|n| n.parse().ok()).unwrap_or(1000);
    let mut settings = test_settings().await;
    settings.amqp.url = urls;
    // Every node loss returns in-flight deliveries, which the quorum queue counts.
    settings.amqp.delivery_limit = 20;
    settings.deadline.scan_interval_ms = 200;
    let mut app = TestApp::with_settings(settings).await;
    let audit = Audit::declare(&mut app).await;
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cluster-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let mut workers = Workers { settings: app.settings.clone(), logs: dir.join("logs"), running: Default::default(), spawned: 0 };
    for role in ["normalize", "normalize", "route", "route", "deadline", "lifecycle", "notify"] {
        workers.start(role);
    }

    let normalize_queue = format!("{}.normalize", app.settings.namespace);
    let mut intake = ResilientPublisher::connect(&app.settings).await;
    let mut faults: Vec<Fault> = Vec::new();
    let mut late = HashSet::new();
    let (mut killed, mut stopped) = (String::new(), String::new());
    let started = Instant::now();
    for i in 0..sent {
        let (key, body) = message(i);
        if i % LATE_EVERY == 3 {
            late.insert(key.clone());
        }
        if let Some(f) = faults.last_mut().filter(|f| f.next_key.is_none()) {
            f.next_key = Some(key.clone());
        }
        intake.publish(&app.settings, "intake", channel_of(i), &key, body.into_bytes()).await;
        if i == sent * 3 / 10 {
            killed = cluster(&["leader", &normalize_queue]).await;
            let at = Utc::now();
            cluster(&["kill", &killed]).await;
            faults.push(Fault { what: format!("kill -9 node {killed} (leader of {normalize_queue})"), at, next_key: None });
        }
        if i == sent * 6 / 10 {
            stopped = (1..=3).map(|n| n.to_string()).find(|n| *n != killed).unwrap();
            let at = Utc::now();
            cluster(&["stop_app", &stopped]).await;
            // One node of three left: no quorum until the others are back.
            tokio::time::sleep(Duration::from_secs(2)).await;
            cluster(&["start", &killed]).await;
            cluster(&["start_app", &stopped]).await;
            faults.push(Fault {
                what: format!("stop_app node {stopped} with node {killed} still down, then both restarted"),
                at,
                next_key: None,
            });
        }
        if i % 4 == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    eprintln!("published {sent} petitions in {:?}", started.elapsed());
    assert!(!killed.is_empty() && !stopped.is_empty(), "both faults injected");

    settle_and_tally(&app, &audit, &mut workers, &late, sent, 0).await;

    eprintln!("| fault | recovered in |\n|---|---|");
    for f in &faults {
        let key = f.next_key.as_deref().expect("a message after each fault");
        let stored = app.find_one("petitions", doc! { "source.message_id": key }).await.expect("stored");
        let at: DateTime<Utc> = stored.get_datetime("created_at").unwrap().to_chrono();
        eprintln!("| {} | {:.1} s |", f.what, (at - f.at).num_milliseconds() as f64 / 1000.0);
    }
    app.cleanup().await;
    let _ = std::fs::remove_dir_all(&dir);
}
