//! Fault injection, Jepsen-style: 1000+ petitions through `nuannan worker …`
//! processes started as an operator would, while each role is killed with
//! `kill -9` and restarted, RabbitMQ is restarted, the MongoDB server is
//! stopped and restarted, and poison messages are mixed in. Then it counts
//! what was sent, stored, lost, duplicated and dead-lettered.
//!
//! It needs control over the servers: a local `rabbitmqctl` for the broker
//! (`NUANNAN_FAULT_BROKER_STOP` / `_START` override the commands) and a
//! MongoDB server binary it starts itself on a free port
//! (`NUANNAN_FAULT_MONGOD`, default `.venv/bin/secantusd-py` as
//! `./scripts/test` installs it; `mongod` works too). Without them it says so
//! and passes vacuously; `./scripts/test` and CI always have them. The
//! roles log in as a pipeline user made with `nuannan principals apply`.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::common::store_server::{StoreServer, mongod_command};
use crate::common::users::BrokerUsers;
use crate::common::{TestApp, app_petition, hotline_order, test_settings, wechat_text};
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Confirmation};
use mongodb::bson::{Document, doc};
use nuannan::config::Settings;
use tokio::process::{Child, Command};

const PETITIONS: usize = 1000;
/// Of which this many were received 5 hours ago: their response window is
/// breached the moment they are routed, so each must escalate exactly once.
pub(crate) const LATE_EVERY: usize = 10;
const POISON: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "restarts the broker and the store: run alone (see main.rs)"]
async fn nothing_is_lost_or_duplicated_under_faults() {
    let Some(mongod) = mongod_command() else {
        eprintln!("skipped: no MongoDB server binary to start and stop (set NUANNAN_FAULT_MONGOD)");
        return;
    };
    if std::env::var("NUANNAN_TEST_AMQP_URL").is_err() || which("rabbitmqctl").is_none() {
        eprintln!("skipped: needs a local RabbitMQ controllable with rabbitmqctl and NUANNAN_TEST_AMQP_URL");
        return;
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("faults-{}", std::process::id()));
    let mut store = StoreServer::new(mongod, &dir);
    store.start().await;

    let mut settings = test_settings().await;
    settings.mongodb.uri = store.uri();
    // Every kill and restart returns in-flight deliveries, which the quorum
    // queue counts; give healthy messages room for the faults we inject.
    settings.amqp.delivery_limit = 20;
    settings.deadline.scan_interval_ms = 200;
    let mut app = TestApp::with_settings(settings).await;
    let audit = Audit::declare(&mut app).await;
    // The roles run as the pipeline's own least-privilege broker user, as deployed.
    let pipeline = format!("{}-pipeline", app.settings.namespace);
    let users = BrokerUsers::apply(&app.settings, &[&pipeline], &format!("[[principal]]\nuser = \"{pipeline}\"\nkind = \"pipeline\"\n"));
    let mut as_pipeline = app.settings.clone();
    as_pipeline.amqp.url = users.url(&app.settings, &pipeline);
    let mut workers = Workers { settings: as_pipeline, logs: dir.join("logs"), running: HashMap::new(), spawned: 0 };
    for role in ["normalize", "normalize", "route", "route", "deadline", "lifecycle", "notify"] {
        workers.start(role);
    }

    let mut intake = ResilientPublisher::connect(&app.settings).await;
    let started = Instant::now();
    let mut faults = Vec::new();
    let mut late = HashSet::new();
    for i in 0..PETITIONS {
        let (key, body) = message(i);
        if i % LATE_EVERY == 3 {
            late.insert(key.clone());
        }
        intake.publish(&app.settings, "intake", channel_of(i), &key, body.into_bytes()).await;
        if i % 200 == 100 {
            let id = format!("20261128-99{i:04}");
            let poison = serde_json::json!({ "event_id": format!("{id}/v1"), "petition_id": id, "type": "received", "at": chrono::Utc::now(), "data": {} });
            intake.publish(&app.settings, "events", "petition.received", &format!("poison-{i}"), poison.to_string().into_bytes()).await;
        }
        match i {
            150 => faults.push(workers.kill_9_and_restart("normalize").await),
            300 => faults.push(workers.kill_9_and_restart("route").await),
            400 => faults.push(workers.kill_9_and_restart("deadline").await),
            450 => faults.push(workers.kill_9_and_restart("lifecycle").await),
            500 => faults.push(restart_broker().await),
            700 => faults.push(store.stop_and_restart(Duration::from_secs(4)).await),
            850 => {
                faults.push(workers.kill_9_and_restart("normalize").await);
                faults.push(workers.kill_9_and_restart("route").await);
            }
            _ => {}
        }
        if i % 4 == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    eprintln!("published {PETITIONS} petitions and {POISON} poison messages in {:?}", started.elapsed());

    eprintln!("faults injected: {}", faults.join("; "));
    settle_and_tally(&app, &audit, &mut workers, &late, PETITIONS, POISON).await;

    app.cleanup().await;
    store.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Waits for quiescence with the workers still running (every petition
/// stored, routed and announced, every late one escalated, every poison
/// message dead-lettered: poison needs delivery_limit + 1 attempts, so it
/// must be waited for while its consumers exist), stops the workers, then
/// counts what was sent, stored, lost and duplicated, prints the tally and
/// asserts that nothing was lost or duplicated.
pub(crate) async fn settle_and_tally(
    app: &TestApp,
    audit: &Audit,
    workers: &mut Workers,
    late: &HashSet<String>,
    sent_count: usize,
    poison: usize,
) {
    // Quiescence, with the workers still running: every petition stored,
    // routed and announced, every late one escalated, and every poison
    // message dead-lettered. Poison needs delivery_limit + 1 attempts, so it
    // must be waited for while its consumers exist, not after they stop.
    let db = app.store.database().clone();
    let petitions = db.collection::<Document>("petitions");
    let dead_queue = format!("{}.dead", app.settings.namespace);
    let mut dead: Vec<Seen> = Vec::new();
    let limit = Instant::now() + Duration::from_secs(240);
    loop {
        let done = petitions.count_documents(doc! { "status": { "$ne": "received" }, "outbox": { "$size": 0 } }).await.unwrap_or(0);
        let escalated = petitions.count_documents(doc! { "breaches.0": { "$exists": true }, "outbox": { "$size": 0 } }).await.unwrap_or(0);
        if done as usize >= sent_count && escalated as usize >= late.len() {
            dead.extend(audit.drain_queue(&app.settings, &dead_queue).await);
            if dead.iter().filter(|m| m.message_id.starts_with("poison-")).count() >= poison {
                break;
            }
        }
        assert!(
            Instant::now() < limit,
            "not quiescent within 240 s: {done} petitions done, {escalated} escalated, {} dead-lettered",
            dead.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Let stragglers (redeliveries, sweeps) arrive before counting.
    tokio::time::sleep(Duration::from_secs(3)).await;
    workers.stop_all().await;

    let stored: Vec<Document> = {
        use futures::TryStreamExt;
        petitions.find(doc! {}).await.unwrap().try_collect().await.unwrap()
    };
    let keys: Vec<String> = stored.iter().map(|p| p.get_document("source").unwrap().get_str("message_id").unwrap().to_owned()).collect();
    let distinct_keys: HashSet<&String> = keys.iter().collect();
    let sent: HashSet<String> = (0..sent_count).map(|i| message(i).0).collect();
    let lost = sent.iter().filter(|k| !distinct_keys.contains(k)).count();
    let petition_dups = keys.len() - distinct_keys.len();
    let by_key: HashMap<String, String> = stored
        .iter()
        .map(|p| (p.get_document("source").unwrap().get_str("message_id").unwrap().to_owned(), p.get_str("_id").unwrap().to_owned()))
        .collect();
    let late_ids: HashSet<&String> = late.iter().filter_map(|k| by_key.get(k)).collect();

    let dispatch = audit.drain(&app.settings, "dispatch").await;
    let escalations = audit.drain(&app.settings, "escalations").await;
    let outbound = audit.drain(&app.settings, "outbound").await;
    // Anything dead-lettered after quiescence counts too (a healthy message would be a failure).
    dead.extend(audit.drain_queue(&app.settings, &dead_queue).await);

    // An effect is a distinct message id; the same id twice is a redelivery consumers dedupe.
    let effects = |msgs: &[Seen], kind: &str| -> HashMap<String, HashSet<String>> {
        let mut per: HashMap<String, HashSet<String>> = HashMap::new();
        for m in msgs.iter().filter(|m| kind.is_empty() || m.body["kind"] == kind) {
            per.entry(m.body["petition_id"].as_str().unwrap_or_default().to_owned()).or_default().insert(m.message_id.clone());
        }
        per
    };
    let assignments = effects(&dispatch, "");
    let receipts = effects(&outbound, "receipt");
    let notices = effects(&escalations, "");
    let expected_assignments = |id: &String| if late_ids.contains(id) { 2 } else { 1 };
    let ids: Vec<&String> = by_key.values().collect();
    let count = |per: &HashMap<String, HashSet<String>>, want: &dyn Fn(&String) -> usize| {
        let lost = ids.iter().filter(|id| per.get(**id).map_or(0, HashSet::len) < want(id)).count();
        let dup = ids.iter().filter(|id| per.get(**id).map_or(0, HashSet::len) > want(id)).count();
        (lost, dup)
    };
    let (assign_lost, assign_dup) = count(&assignments, &expected_assignments);
    let (receipt_lost, receipt_dup) = count(&receipts, &|_| 1);
    let (esc_lost, esc_dup) = count(&notices, &|id| usize::from(late_ids.contains(id)));
    let seen: Vec<&Seen> = dispatch.iter().chain(&escalations).chain(&outbound).collect();
    let republished = seen.len() - seen.iter().map(|m| &m.message_id).collect::<HashSet<_>>().len();
    let dead_poison = dead.iter().filter(|m| m.message_id.starts_with("poison-")).count();
    let dead_healthy = dead.len() - dead_poison;

    let pair = |a: usize, b: usize| format!("{a} / {b}");
    let table = [
        ("sent (petitions)", sent_count.to_string()),
        ("stored", distinct_keys.len().to_string()),
        ("lost", lost.to_string()),
        ("duplicated petitions", petition_dups.to_string()),
        ("assignments lost / duplicated", pair(assign_lost, assign_dup)),
        ("receipts lost / duplicated", pair(receipt_lost, receipt_dup)),
        ("escalations expected", late_ids.len().to_string()),
        ("escalations lost / duplicated", pair(esc_lost, esc_dup)),
        ("same id published again (consumers dedupe)", republished.to_string()),
        ("poison sent / dead-lettered", pair(poison, dead_poison)),
        ("healthy messages dead-lettered", dead_healthy.to_string()),
    ];
    eprintln!("| measure | count |\n|---|---|");
    for (k, v) in table {
        eprintln!("| {k} | {v} |");
    }
    assert_eq!(lost, 0, "lost petitions");
    assert_eq!(petition_dups, 0, "duplicated petitions");
    assert_eq!((assign_lost, assign_dup), (0, 0), "assignments lost / duplicated");
    assert_eq!((receipt_lost, receipt_dup), (0, 0), "receipts lost / duplicated");
    assert_eq!((esc_lost, esc_dup), (0, 0), "escalations lost / duplicated");
    assert_eq!(dead_poison, poison, "every poison message dead-lettered");
    assert_eq!(dead_healthy, 0, "no healthy message dead-lettered: {:?}", dead.iter().map(|m| &m.message_id).collect::<Vec<_>>());
}

/// The i-th intake message: its dedup key and body, channels mixed.
pub(crate) fn message(i: usize) -> (String, String) {
    let content = ["团岛二路路灯不亮", "楼道堆放杂物", "噪音扰民", "下水道堵塞"][i % 4];
    match channel_of(i) {
        "wechat" => {
            let msg_id = format!("{}", 7_000_000_000_u64 + i as u64);
            let created = chrono::Utc::now().timestamp() - if i % LATE_EVERY == 3 { 5 * 3600 } else { 0 };
            (msg_id.clone(), wechat_text(&format!("o-fault-{i}"), &msg_id, &format!("{content}，团岛"), created))
        }
        "app" => {
            let key = format!("fault-app-{i}");
            let mut body: serde_json::Value = serde_json::from_str(&app_petition(&key, content)).unwrap();
            if i % LATE_EVERY == 3 {
                body["submitted_at"] = serde_json::json!((chrono::Utc::now() - chrono::Duration::hours(5)).to_rfc3339());
            }
            (key, body.to_string())
        }
        _ => {
            let key = format!("FAULT-{i:06}");
            let mut body: serde_json::Value = serde_json::from_str(&hotline_order(&key, content)).unwrap();
            if i % LATE_EVERY == 3 {
                body["created_at"] = serde_json::json!((chrono::Utc::now() - chrono::Duration::hours(5)).to_rfc3339());
            }
            (key, body.to_string())
        }
    }
}

pub(crate) fn channel_of(i: usize) -> &'static str {
    ["wechat", "app", "hotline"][i % 3]
}

// ---- the servers -----------------------------------------------------------

pub(crate) fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).map(|p| p.join(bin)).find(|p| p.is_file()))
}

async fn restart_broker() -> String {
    let stop = std::env::var("NUANNAN_FAULT_BROKER_STOP").unwrap_or_else(|_| "rabbitmqctl -q stop_app".into());
    let start =
        std::env::var("NUANNAN_FAULT_BROKER_START").unwrap_or_else(|_| "rabbitmqctl -q start_app && rabbitmqctl -q await_startup".into());
    let run = |cmd: String| async move {
        let status = Command::new("sh").arg("-c").arg(&cmd).status().await.unwrap();
        assert!(status.success(), "`{cmd}` failed");
    };
    let t = Instant::now();
    run(stop).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    run(start).await;
    format!("RabbitMQ restarted ({:?})", t.elapsed())
}

// ---- the workers -----------------------------------------------------------

pub(crate) struct Workers {
    pub(crate) settings: Settings,
    pub(crate) logs: PathBuf,
    pub(crate) running: HashMap<&'static str, Vec<Child>>,
    pub(crate) spawned: usize,
}

impl Workers {
    pub(crate) fn start(&mut self, role: &'static str) {
        self.spawned += 1;
        let log = std::fs::File::create(self.logs.join(format!("{role}-{}.log", self.spawned))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_nuannan"))
            .args(["worker", role])
            .envs(crate::common::settings_env(&self.settings))
            .env("NUANNAN__AMQP__DELIVERY_LIMIT", self.settings.amqp.delivery_limit.to_string())
            .env("NUANNAN__DEADLINE__SCAN_INTERVAL_MS", self.settings.deadline.scan_interval_ms.to_string())
            .env("NUANNAN__AMQP__RECONNECT_MAX_MS", "2000")
            .env("RUST_LOG", "warn")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        self.running.entry(role).or_default().push(child);
    }

    pub(crate) async fn kill_9_and_restart(&mut self, role: &'static str) -> String {
        let mut child = self.running.get_mut(role).and_then(|v| (!v.is_empty()).then(|| v.remove(0))).expect("a running worker");
        child.start_kill().unwrap();
        child.wait().await.unwrap();
        self.start(role);
        format!("kill -9 {role}")
    }

    pub(crate) async fn stop_all(&mut self) {
        for (_, children) in self.running.drain() {
            for mut c in children {
                let _ = c.start_kill();
                let _ = c.wait().await;
            }
        }
    }
}

// ---- the broker side of the audit -------------------------------------------

/// Publishes like a channel adapter should: with confirms, and on any
/// failure reconnects and sends the same message again (same message id).
pub(crate) struct ResilientPublisher {
    channel: Option<lapin::Channel>,
    conn: Option<lapin::Connection>,
}

impl ResilientPublisher {
    pub(crate) async fn connect(settings: &Settings) -> Self {
        let mut p = ResilientPublisher { channel: None, conn: None };
        p.reopen(settings).await;
        p
    }

    async fn reopen(&mut self, settings: &Settings) {
        loop {
            if let Ok(conn) = nuannan::bus::connect(&settings.amqp.url, "fault-adapter").await
                && let Ok(ch) = conn.create_channel().await
                && ch.confirm_select(ConfirmSelectOptions::default()).await.is_ok()
            {
                self.channel = Some(ch);
                self.conn = Some(conn);
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    pub(crate) async fn publish(&mut self, settings: &Settings, exchange: &str, key: &str, id: &str, body: Vec<u8>) {
        let exchange = format!("{}.{exchange}", settings.namespace);
        let content_type = if key == "wechat" { "application/xml" } else { "application/json" };
        loop {
            let ch = self.channel.as_ref().unwrap();
            let props = BasicProperties::default().with_delivery_mode(2).with_message_id(id.into()).with_content_type(content_type.into());
            let sent = ch
                .basic_publish(
                    exchange.as_str().into(),
                    key.into(),
                    BasicPublishOptions { mandatory: true, ..Default::default() },
                    &body,
                    props,
                )
                .await;
            // A queue without its quorum holds the confirm; past a while, send again.
            if let Ok(confirm) = sent
                && let Ok(Ok(Confirmation::Ack(None))) = tokio::time::timeout(Duration::from_secs(15), confirm).await
            {
                return;
            }
            self.reopen(settings).await;
        }
    }
}

pub(crate) struct Seen {
    message_id: String,
    body: serde_json::Value,
}

/// Durable quorum queues bound to the exchanges whose messages are effects:
/// unlike a test tap they survive the broker restart.
pub(crate) struct Audit;

impl Audit {
    const EXCHANGES: [&str; 3] = ["dispatch", "escalations", "outbound"];

    fn queue(settings: &Settings, exchange: &str) -> String {
        format!("{}.audit.{exchange}", settings.namespace)
    }

    pub(crate) async fn declare(app: &mut TestApp) -> Audit {
        let ch = app.conn.create_channel().await.unwrap();
        for x in Self::EXCHANGES {
            let mut args = FieldTable::default();
            args.insert("x-queue-type".into(), AMQPValue::LongString(LongString::from("quorum")));
            let q = Self::queue(&app.settings, x);
            // Removed with the namespace at teardown, even if the test fails.
            app.own_queue(&q);
            ch.queue_declare(q.as_str().into(), QueueDeclareOptions { durable: true, ..Default::default() }, args).await.unwrap();
            let exchange = format!("{}.{x}", app.settings.namespace);
            ch.queue_bind(q.as_str().into(), exchange.as_str().into(), "#".into(), QueueBindOptions::default(), FieldTable::default())
                .await
                .unwrap();
        }
        Audit
    }

    async fn drain(&self, settings: &Settings, exchange: &str) -> Vec<Seen> {
        self.drain_queue(settings, &Self::queue(settings, exchange)).await
    }

    async fn drain_queue(&self, settings: &Settings, queue: &str) -> Vec<Seen> {
        let conn = nuannan::bus::connect(&settings.amqp.url, "fault-audit").await.unwrap();
        let ch = conn.create_channel().await.unwrap();
        let mut seen = Vec::new();
        while let Some(msg) = ch.basic_get(queue.into(), BasicGetOptions::default()).await.unwrap() {
            let d = msg.delivery;
            seen.push(Seen {
                message_id: d.properties.message_id().as_ref().map(|s| s.to_string()).unwrap_or_default(),
                body: serde_json::from_slice(&d.data).unwrap_or_default(),
            });
            d.ack(BasicAckOptions::default()).await.unwrap();
        }
        let _ = conn.close(200, "bye".into()).await;
        seen
    }
}

/// Restores the broker's memory watermark however the test ends.
struct Unblock;

impl Drop for Unblock {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl").args(["-q", "set_vm_memory_high_watermark", "0.4"]).status();
    }
}

/// The gateway answers only after the broker's confirm: while a memory
/// alarm blocks publishers it answers 503 past `gateway.publish_timeout_ms`,
/// and the channel's retry afterwards is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "raises a memory alarm on the broker: run alone (see main.rs)"]
async fn a_blocked_broker_gets_503_and_the_retry_is_stored_once() {
    if std::env::var("NUANNAN_TEST_AMQP_URL").is_err() || which("rabbitmqctl").is_none() {
        eprintln!("skipped: needs a local RabbitMQ controllable with rabbitmqctl and NUANNAN_TEST_AMQP_URL");
        return;
    }
    use nuannan::gateway::{client::request, signed};
    let mut settings = test_settings().await;
    settings.gateway.http_addr = crate::ops::free_addr();
    settings.gateway.publish_timeout_ms = 500;
    settings.hotline.secret = "s".into();
    let mut app = TestApp::with_settings(settings).await;
    app.start_workers(&[nuannan_workers::Role::Normalize, nuannan_workers::Role::Gateway]);
    let addr = app.settings.gateway.http_addr.clone();
    crate::common::wait_for("the gateway", || async { (request(&addr, "GET", "/healthz", &[], b"").await?.0 == 200).then_some(()) }).await;
    let order = hotline_order("QD-blocked-1", "楼道灯坏了");
    let post = || async {
        let ts = chrono::Utc::now().timestamp();
        let headers = [("x-nuannan-timestamp", ts.to_string()), ("x-nuannan-signature", signed::sign("s", ts, order.as_bytes()))];
        request(&addr, "POST", "/hotline/orders", &headers, order.as_bytes()).await.unwrap()
    };
    let unblock = Unblock;
    let status = Command::new("rabbitmqctl").args(["-q", "set_vm_memory_high_watermark", "0"]).status().await.unwrap();
    assert!(status.success());
    let started = Instant::now();
    let (status, body) = post().await;
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    assert!(started.elapsed() < Duration::from_secs(4), "answered within the publish timeout, not WeChat's 5 s");
    drop(unblock);
    let (status, _) = crate::common::wait_for("a 202 once the alarm clears", || async {
        let answer = post().await;
        (answer.0 == 202).then_some(answer)
    })
    .await;
    assert_eq!(status, 202);
    app.wait_for_petition("hotline", "QD-blocked-1").await;
    assert_eq!(
        app.count("petitions", doc! { "source.message_id": "QD-blocked-1" }).await,
        1,
        "the blocked publish and the retry are one petition"
    );
    app.cleanup().await;
}
