//! The deadline role at scale (issue 4): with 100 000 open petitions whose
//! next warning or breach is spread over a week, how late do warnings and
//! breaches fire, and what does a scan with nothing due cost?
//!
//! `./scripts/bench deadline` (or `cargo bench --bench deadline_scale -- [--petitions N]
//! [--due M] [--window-secs S] [--workers W]`) against the broker and store in
//! `NUANNAN__AMQP__URL` / `NUANNAN__MONGODB__URI` (defaults: local). Under
//! `cargo test` it runs a small smoke size and asserts the same bounds.
//!
//! 1. Seeds the background petitions, due between 10 minutes and 7 days from now.
//! 2. Runs the deadline workers over them with nothing due, counting the
//!    queries each scan sends (driver command monitoring) and explaining the
//!    scan query.
//! 3. Adds `due` petitions whose warning (half) or breach (half) points are
//!    spread over the next `window` seconds, and measures each one's
//!    lateness: the `warned` / `escalated` event's time minus the due time.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use mongodb::bson::{self, Document, doc};
use mongodb::event::EventHandler;
use mongodb::event::command::CommandEvent;
use mongodb::options::ClientOptions;
use nuannan::bus::{self, Publisher};
use nuannan::clock::{Clocks, Window};
use nuannan::config::Settings;
use nuannan::domain::{PetitionId, Status};
use nuannan::store::{ClockRecord, DeadlinesRecord, PetitionRecord, Store};
use nuannan_workers::{DeadlineWorker, declare_topology, topology};
use tokio_util::sync::CancellationToken;

const UNIT: &str = "shinan.badaxia.tuandao";

struct Args {
    petitions: u32,
    due: u32,
    window_secs: i64,
    workers: usize,
    full: bool,
}

fn args() -> Args {
    let argv: Vec<String> = std::env::args().collect();
    // `cargo bench` passes --bench; `cargo test` does not: then a smoke size.
    let full = argv.iter().any(|a| a == "--bench");
    let value = |name: &str| argv.iter().position(|a| a == name).and_then(|i| argv.get(i + 1)).map(|v| v.parse().expect(name));
    Args {
        petitions: value("--petitions").unwrap_or(if full { 100_000 } else { 2_000 }) as u32,
        due: value("--due").unwrap_or(if full { 2_400 } else { 100 }) as u32,
        window_secs: value("--window-secs").unwrap_or(if full { 60 } else { 5 }),
        workers: value("--workers").unwrap_or(1) as usize,
        full,
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args();
    let mut settings = Settings::load(None)?;
    let id = uuid::Uuid::new_v4().simple().to_string();
    settings.namespace = format!("bench-{}", &id[..12]);
    settings.mongodb.database = format!("bench_{}", &id[..12]);
    // The deadline scans alone: hot spot scans (on their own cadence) would
    // add their reads to the queries counted per scan.
    settings.hotspot.scan_interval_ms = 0;
    let interval = Duration::from_millis(settings.deadline.scan_interval_ms);

    let finds = Arc::new(AtomicU64::new(0));
    let store = monitored_store(&settings, finds.clone()).await?;
    store.ensure_indexes().await?;
    declare_topology(&settings).await?;
    let result = run(&args, &settings, &store, &finds, interval).await;

    let conn = bus::connect(&settings.amqp.url, "nuannan-bench-teardown").await?;
    topology(&settings).delete(&conn.create_channel().await?).await?;
    store.database().drop().await?;
    result
}

async fn run(args: &Args, settings: &Settings, store: &Store, finds: &AtomicU64, interval: Duration) -> anyhow::Result<()> {
    let now = Utc::now();
    let seeding = Instant::now();
    let petitions = store.database().collection::<Document>("petitions");
    let week_ms = 7 * 24 * 3600 * 1000_i64;
    for start in (0..args.petitions).step_by(1000) {
        let batch: Vec<Document> = (start..(start + 1000).min(args.petitions))
            .map(|n| {
                let offset = 600_000 + (n as i64 * 7919 % week_ms.max(1));
                record(n, now + chrono::Duration::milliseconds(offset), n % 2 == 0)
            })
            .collect::<anyhow::Result<_>>()?;
        petitions.insert_many(batch).await?;
    }
    println!("seeded {} open petitions due over 7 days in {:.1} s", args.petitions, seeding.elapsed().as_secs_f64());

    // The workers, in this process, so the store client counts their queries.
    let shutdown = CancellationToken::new();
    let conn = bus::connect(&settings.amqp.url, "nuannan-bench-deadline").await?;
    let mut tasks = Vec::new();
    for _ in 0..args.workers {
        let publisher = Publisher::open(&conn, topology(settings)).await?;
        let policy = settings.deadline_policy(nuannan::clock::SharedCalendar::new(nuannan::clock::Calendar::bundled()));
        let principals = nuannan_workers::Directory::load(store.clone()).await?;
        let shared = nuannan_workers::Shared {
            registry: std::sync::Arc::new(store.registry().await?),
            policy,
            principals,
            gateway: Default::default(),
            console: Default::default(),
        };
        let worker = DeadlineWorker::new(settings, store.clone(), publisher, &shared);
        let token = shutdown.clone();
        tasks.push(tokio::spawn(async move { worker.run(&token).await }));
    }

    // Nothing due: what does a scan cost? Skip the first scan (it also sweeps outboxes).
    tokio::time::sleep(interval + Duration::from_millis(300)).await;
    let idle = 5;
    let before = finds.load(Ordering::SeqCst);
    tokio::time::sleep(interval * idle).await;
    let per_scan = (finds.load(Ordering::SeqCst) - before) as f64 / (idle as f64 * args.workers as f64);
    let plan = explain(store).await?;

    // The measured petitions: due over the next window, half warnings, half breaches.
    let start = Utc::now() + chrono::Duration::seconds(2);
    let span_ms = args.window_secs * 1000;
    let mut due_at = HashMap::new();
    let measured: Vec<Document> = (0..args.due)
        .map(|k| {
            let n = args.petitions + k;
            let at = start + chrono::Duration::milliseconds(k as i64 * span_ms / args.due.max(1) as i64);
            due_at.insert(petition_id(n).to_string(), at);
            record(n, at, k % 2 == 0)
        })
        .collect::<anyhow::Result<_>>()?;
    petitions.insert_many(measured).await?;

    let events = store.database().collection::<Document>("events");
    let filter = doc! { "type": { "$in": ["warned", "escalated"] } };
    let deadline = Instant::now() + Duration::from_secs(args.window_secs as u64 + 60);
    while events.count_documents(filter.clone()).await? < args.due as u64 {
        anyhow::ensure!(Instant::now() < deadline, "not every due petition fired within the window + 60 s");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    shutdown.cancel();
    for t in tasks {
        t.await??;
    }

    let fired: Vec<Document> = events.find(filter).await?.try_collect().await?;
    let mut lateness: Vec<f64> = Vec::new();
    let mut seen = HashMap::new();
    for e in &fired {
        let id = e.get_str("petition_id")?;
        let at = match e.get_datetime("at") {
            Ok(t) => t.to_chrono(),
            Err(_) => DateTime::parse_from_rfc3339(e.get_str("at").context("event at")?)?.with_timezone(&Utc),
        };
        *seen.entry(id.to_owned()).or_insert(0) += 1;
        if let Some(due) = due_at.get(id) {
            lateness.push((at - *due).num_milliseconds() as f64 / 1000.0);
        }
    }
    let duplicates = seen.values().filter(|&&n| n > 1).count();
    lateness.sort_by(f64::total_cmp);
    let pct = |p: f64| lateness[((lateness.len() as f64 * p).ceil() as usize).clamp(1, lateness.len()) - 1];
    let bound = interval.as_secs_f64() + 1.0;

    println!();
    println!("| deadline role at scale | value |");
    println!("|---|---|");
    println!("| open petitions (due over 7 days) | {} |", args.petitions);
    println!("| due during the run (warnings + breaches) | {} over {} s |", args.due, args.window_secs);
    println!("| deadline workers / scan interval | {} / {} ms |", args.workers, interval.as_millis());
    println!("| queries per scan with nothing due | {per_scan:.2} |");
    println!("| empty scan plan | {plan} |");
    println!("| lateness p50 / p99 / max | {:.3} s / {:.3} s / {:.3} s |", pct(0.5), pct(0.99), pct(1.0));
    println!("| bound (scan interval + 1 s) | {bound:.3} s |");
    println!("| fired twice | {duplicates} |");

    anyhow::ensure!(lateness.len() == args.due as usize, "{} of {} measured petitions fired", lateness.len(), args.due);
    anyhow::ensure!(duplicates == 0, "{duplicates} petitions fired twice");
    anyhow::ensure!(pct(0.99) <= bound, "p99 lateness {:.3} s exceeds {bound:.3} s", pct(0.99));
    anyhow::ensure!(per_scan <= 1.0 + f64::EPSILON, "an empty scan sent {per_scan} queries");
    anyhow::ensure!(plan.starts_with("IXSCAN clock.next_at_1, 0 keys, 0 docs"), "empty scan plan: {plan}");
    if !args.full {
        println!("(smoke size; `cargo bench --bench deadline_scale` for the full run)");
    }
    Ok(())
}

/// A store whose client counts `find`s on `petitions`: the deadline scan's query.
async fn monitored_store(settings: &Settings, finds: Arc<AtomicU64>) -> anyhow::Result<Store> {
    let mut options = ClientOptions::parse(&settings.mongodb.uri).await?;
    options.command_event_handler = Some(EventHandler::callback(move |event: CommandEvent| {
        if let CommandEvent::Started(started) = event
            && started.command_name == "find"
            && started.command.get_str("find") == Ok("petitions")
        {
            finds.fetch_add(1, Ordering::SeqCst);
        }
    }));
    let client = mongodb::Client::with_options(options)?;
    Ok(Store::from_database(client.database(&settings.mongodb.database)))
}

/// The winning plan of the scan query with nothing due, and what it touched.
async fn explain(store: &Store) -> anyhow::Result<String> {
    let now = bson::DateTime::now();
    let command = doc! {
        "explain": {
            "find": "petitions",
            "filter": { "clock.next_at": { "$lte": now } },
            "sort": { "clock.next_at": 1 },
            "limit": 500,
        },
        "verbosity": "executionStats",
    };
    let out = store.database().run_command(command).await?;
    let plan = out.get_document("queryPlanner")?.get_document("winningPlan")?;
    let ixscan = find_stage(plan, "IXSCAN").context("no IXSCAN in the plan")?;
    let stats = out.get_document("executionStats")?;
    let number =
        |k: &str| stats.get(k).and_then(|v| v.as_i64().or(v.as_i32().map(i64::from)).or(v.as_f64().map(|f| f as i64))).unwrap_or(-1);
    Ok(format!(
        "IXSCAN {}, {} keys, {} docs examined",
        ixscan.get_str("indexName").unwrap_or("?"),
        number("totalKeysExamined"),
        number("totalDocsExamined")
    ))
}

fn find_stage<'a>(plan: &'a Document, stage: &str) -> Option<&'a Document> {
    if plan.get_str("stage") == Ok(stage) {
        return Some(plan);
    }
    plan.get_document("inputStage").ok().and_then(|p| find_stage(p, stage))
}

fn petition_id(n: u32) -> PetitionId {
    PetitionId::new(chrono::NaiveDate::from_ymd_opt(2026, 1, 1).expect("a date"), n)
}

/// An assigned petition at 团岛社区 whose next action falls at `at`: a
/// warning (75 % into a fresh 4-hour response window) or a breach (the
/// response window, already warned, ends).
fn record(n: u32, at: DateTime<Utc>, warning: bool) -> anyhow::Result<Document> {
    let received = at - chrono::Duration::hours(3);
    let window = if warning {
        Window { started: received, due: received + chrono::Duration::hours(4), warned: false }
    } else {
        Window { started: at - chrono::Duration::hours(4), due: at, warned: true }
    };
    let resolve = Window::new(received, at + chrono::Duration::days(3));
    let clock = ClockRecord::new(&Clocks { respond: Some(window), resolve: Some(resolve), rating_by: None }, 0.75);
    let new = nuannan::bench::sample::new_petition(format!("bench-{n}"), n, received);
    let mut r = PetitionRecord::new(petition_id(n), new, received);
    r.status = Status::Assigned;
    r.unit = Some(UNIT.parse().expect("a unit path"));
    r.deadlines = Some(DeadlinesRecord { respond_by: window.due.into(), resolve_by: resolve.due.into(), provisional: false });
    r.clock = Some(clock);
    r.dispatch_attempts = 1;
    Ok(bson::to_document(&r)?)
}
