//! `nuannan bench --gateway`: the HTTP edge under `wrk` (Debian), against
//! the raw broker's confirmed publishes at the same message size and
//! concurrency, measured in the same run (`docs/contract.md` §9, §12).
//!
//! The gateway runs as its own process (`nuannan worker gateway`) so its
//! RSS is its own; wrk drives each route with a valid signed or keyed
//! request. The raw baseline is `concurrency` tasks sharing one confirm
//! channel, each publishing and awaiting its confirm — what the gateway
//! does per request — into the intake exchange the gateway publishes to
//! (the same routing and queue, so the ratio is the cost of HTTP). On a
//! small shared machine both rates swing by a third within seconds, so each
//! route runs many short paired rounds into a drained queue, alternating
//! which half goes first, and the claim is the median of the rounds' ratios
//! with its confidence interval. A plain quorum queue (the broker's best
//! case) is measured once, for reference.
//!
//! wrk runs one thread: it keeps 32 connections busy at well under a core,
//! and a second thread would only take CPU from the gateway and the broker
//! it is measuring.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Connection};

use super::stats::{median, median_interval};
use crate::config::Settings;
use crate::identity::{Principals, api_key_digest};
use crate::store::Store;

const TOKEN: &str = "bench-token";
const SECRET: &str = "bench-secret";
const APP_KEY: &str = "bench-app-key";

/// wrk's summary of one run.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
struct Wrk {
    requests: u64,
    duration_us: u64,
    non2xx: u64,
    errors: u64,
    p50: u64,
    p99: u64,
    p999: u64,
}

impl Wrk {
    fn rate(&self) -> f64 {
        self.requests as f64 / (self.duration_us as f64 / 1e6)
    }
}

struct Route {
    name: &'static str,
    method_path: String,
    headers: Vec<(&'static str, String)>,
    body: String,
}

fn routes() -> Vec<Route> {
    let now = chrono::Utc::now().timestamp();
    let hotline = hotline_body();
    let wechat = format!(
        "<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><FromUserName><![CDATA[o-bench]]></FromUserName><CreateTime>{now}</CreateTime>\
         <MsgType><![CDATA[text]]></MsgType><Content><![CDATA[团岛二路路灯不亮，晚上出门很不安全，请尽快维修。]]></Content><MsgId>7000000001</MsgId></xml>"
    );
    let app = serde_json::json!({
        "request_id": "bench-app-1", "submitted_at": chrono::Utc::now().to_rfc3339(), "user": { "id": "u-bench", "phone": "13812345678" },
        "content": "香港中路某小区门口占道经营，影响通行", "category": "enforcement", "address": "香港中路",
    })
    .to_string();
    let signature = crate::gateway::wechat::signature(&[TOKEN, &now.to_string(), "bench"]);
    vec![
        Route {
            name: "wechat",
            method_path: format!("/wechat/callback?signature={signature}&timestamp={now}&nonce=bench"),
            headers: vec![("Content-Type", "text/xml".into())],
            body: wechat,
        },
        Route {
            name: "hotline",
            method_path: "/hotline/orders".into(),
            headers: vec![
                ("Content-Type", "application/json".into()),
                ("X-Nuannan-Timestamp", now.to_string()),
                ("X-Nuannan-Signature", crate::gateway::signed::sign(SECRET, now, hotline.as_bytes())),
            ],
            body: hotline,
        },
        Route {
            name: "app",
            method_path: "/app/petitions".into(),
            headers: vec![("Content-Type", "application/json".into()), ("Authorization", format!("Bearer {APP_KEY}"))],
            body: app,
        },
    ]
}

fn hotline_body() -> String {
    serde_json::json!({
        "order_no": "QD-bench-1", "created_at": chrono::Utc::now().to_rfc3339(), "caller": { "phone": "13912345678", "name": "王女士" },
        "content": "八大峡广场附近夜间施工噪音扰民，已持续一周", "street": "八大峡街道", "community": "团岛社区", "urgency": "normal",
    })
    .to_string()
}

/// The wrk script for `route`; with `delay_ms` each connection waits that
/// long between requests (a rate below the maximum).
fn script(route: &Route, delay_ms: Option<f64>) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "wrk.method = \"POST\"\nwrk.body = [==[{}]==]", route.body);
    for (name, value) in &route.headers {
        let _ = writeln!(s, "wrk.headers[\"{name}\"] = [==[{value}]==]");
    }
    if let Some(ms) = delay_ms {
        let _ = writeln!(s, "function delay() return {} end", ms.round().max(1.0));
    }
    s.push_str(
        "done = function(summary, latency, requests)\n  io.write(string.format('{\"requests\":%d,\"duration_us\":%d,\"non2xx\":%d,\"errors\":%d,\"p50\":%d,\"p99\":%d,\"p999\":%d}\\n',\n    summary.requests, summary.duration, summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,\n    latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))\nend\n",
    );
    s
}

async fn wrk(addr: &str, route: &Route, connections: u32, seconds: u32, delay_ms: Option<f64>) -> anyhow::Result<Wrk> {
    let dir = tempfile_dir()?;
    let path = dir.join(format!("{}.lua", route.name));
    std::fs::write(&path, script(route, delay_ms))?;
    let out = tokio::process::Command::new("wrk")
        .args(["-t", "1", "-c", &connections.to_string(), "-d", &format!("{seconds}s"), "--timeout", "10s", "-s"])
        .arg(&path)
        .arg(format!("http://{addr}{}", route.method_path))
        .output()
        .await
        .context("running wrk (apt-get install wrk)")?;
    anyhow::ensure!(out.status.success(), "wrk failed: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().rev().find(|l| l.starts_with('{')).context("no summary from wrk")?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(serde_json::from_str(line)?)
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("nuannan-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Where the raw loop publishes.
struct Target {
    exchange: String,
    routing_key: String,
    /// A plain quorum queue to declare and remove (the default exchange routes to it).
    own_queue: bool,
}

/// `concurrency` tasks on one confirm channel, each publishing `size`
/// bytes and awaiting the confirm, for `seconds`: confirmed messages/s.
async fn raw_confirmed(conn: &Connection, target: &Target, size: usize, concurrency: u32, seconds: u32) -> anyhow::Result<f64> {
    let ch = conn.create_channel().await?;
    if target.own_queue {
        let mut args = FieldTable::default();
        args.insert("x-queue-type".into(), AMQPValue::LongString(LongString::from("quorum")));
        ch.queue_declare(target.routing_key.as_str().into(), QueueDeclareOptions { durable: true, ..Default::default() }, args).await?;
    }
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let body = Arc::new(vec![b'x'; size]);
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|task| {
            let (ch, stop, count, body) = (ch.clone(), stop.clone(), count.clone(), body.clone());
            let (exchange, key) = (target.exchange.clone(), target.routing_key.clone());
            tokio::spawn(async move {
                let mut n = 0_u64;
                while !stop.load(Ordering::Relaxed) {
                    // The properties the gateway sets: persistent, a message id, a content type.
                    n += 1;
                    let props = BasicProperties::default()
                        .with_delivery_mode(2)
                        .with_message_id(format!("raw-{task}-{n}").into())
                        .with_content_type("application/json".into());
                    let options = BasicPublishOptions { mandatory: true, ..Default::default() };
                    ch.basic_publish(exchange.as_str().into(), key.as_str().into(), options, &body, props).await?.await?;
                    count.fetch_add(1, Ordering::Relaxed);
                }
                anyhow::Ok(())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(u64::from(seconds))).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await??;
    }
    let rate = count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    if target.own_queue {
        ch.queue_delete(target.routing_key.as_str().into(), Default::default()).await?;
    }
    let _ = ch.close(200, "done".into()).await;
    Ok(rate)
}

/// One round of a route: the raw broker's rate, then the gateway's, each
/// into the same drained queue.
struct Pair {
    raw: f64,
    max: Wrk,
}

/// Consumes `{ns}.normalize` — where both the raw intake loop and the
/// gateway publish — as fast as the broker delivers, for as long as the
/// benchmark runs, as normalize keeps it near empty in production. Left
/// undrained, the quorum queue would grow by over a hundred thousand
/// messages a run, and the broker's writes of that backlog would stall
/// whichever run came later. The drain stands in for a consumer that runs
/// elsewhere, so it is made as cheap as it can be: whatever CPU it takes
/// on this machine is taken from the broker and the gateway being measured.
async fn drain(conn: &Connection, namespace: &str) -> anyhow::Result<tokio_util::task::AbortOnDropHandle<()>> {
    use futures::StreamExt;
    let ch = conn.create_channel().await?;
    let queue = format!("{namespace}.normalize");
    // Settled on delivery: no acks to send or to apply.
    let options = lapin::options::BasicConsumeOptions { no_ack: true, ..Default::default() };
    let mut deliveries = ch.basic_consume(queue.as_str().into(), "bench-drain".into(), options, FieldTable::default()).await?;
    // Stops when dropped, whether the benchmark finished or failed.
    Ok(tokio_util::task::AbortOnDropHandle::new(tokio::spawn(async move { while let Some(Ok(_)) = deliveries.next().await {} })))
}

/// Waits until the drain has emptied `{ns}.normalize`, so no run starts
/// with the last one's backlog still being delivered.
async fn settle(conn: &Connection, namespace: &str) -> anyhow::Result<()> {
    let ch = conn.create_channel().await?;
    let queue = format!("{namespace}.normalize");
    let passive = QueueDeclareOptions { passive: true, ..Default::default() };
    let started = Instant::now();
    while ch.queue_declare(queue.as_str().into(), passive, FieldTable::default()).await?.message_count() > 0 {
        anyhow::ensure!(started.elapsed() < Duration::from_secs(30), "{queue} was not drained within 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = ch.close(200, "settled".into()).await;
    Ok(())
}

pub async fn measure(settings: &Settings, store: &Store, conn: &Connection, run: Run) -> anyhow::Result<String> {
    let Run { connections, seconds, rounds } = run;
    let adapter = format!(
        "[[principal]]\nuser = \"bench-app\"\nkind = \"adapter\"\nchannel = \"app\"\napi_key_sha256 = \"{}\"\n",
        api_key_digest(APP_KEY)
    );
    store.replace_principals(&Principals::parse(&adapter)?.principals).await?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?.to_string();
    drop(listener);
    let mut gateway = std::process::Command::new(std::env::current_exe()?)
        .args(["worker", "gateway"])
        .env("NUANNAN__NAMESPACE", &settings.namespace)
        .env("NUANNAN__AMQP__URL", &settings.amqp.url)
        .env("NUANNAN__MONGODB__URI", &settings.mongodb.uri)
        .env("NUANNAN__MONGODB__DATABASE", &settings.mongodb.database)
        .env("NUANNAN__OPS__HTTP_ADDR", "")
        .env("NUANNAN__GATEWAY__HTTP_ADDR", &addr)
        .env("NUANNAN__GATEWAY__RATE_LIMIT_PER_S", "0")
        .env("NUANNAN__WECHAT__TOKEN", TOKEN)
        .env("NUANNAN__HOTLINE__SECRET", SECRET)
        .env("RUST_LOG", "error")
        // As the Docker image runs it (docker/Dockerfile).
        .env("MALLOC_ARENA_MAX", "2")
        .stdout(std::process::Stdio::null())
        .spawn()?;
    let result = async {
        let ready = Instant::now();
        while crate::gateway::client::request(&addr, "GET", "/healthz", &[], b"").await.is_none_or(|(s, _)| s != 200) {
            anyhow::ensure!(ready.elapsed() < Duration::from_secs(30), "the gateway did not come up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let routes = routes();
        let size = routes[1].body.len();
        eprintln!("raw broker: confirmed publishes of {size} bytes, {connections} at a time, {seconds} s, to a plain quorum queue…");
        let plain = Target { exchange: String::new(), routing_key: format!("{}.raw-gateway", settings.namespace), own_queue: true };
        let plain = raw_confirmed(conn, &plain, size, connections, seconds).await?;
        let _drained = drain(conn, &settings.namespace).await?;
        let intake = Target { exchange: format!("{}.intake", settings.namespace), routing_key: "hotline".into(), own_queue: false };
        let mut rows = Vec::new();
        for route in &routes {
            let mut pairs = Vec::new();
            for round in 1..=rounds {
                // Odd rounds measure raw first, even rounds the gateway first, so
                // neither half always inherits the other's after-effects.
                let raw_first = round % 2 == 1;
                let order = if raw_first { "raw, then the gateway" } else { "the gateway, then raw" };
                eprintln!("{} round {round}/{rounds}: {order} (wrk -c {connections}), {seconds} s each…", route.name);
                let (raw, max) = if raw_first {
                    let raw = raw_confirmed(conn, &intake, size, connections, seconds).await?;
                    settle(conn, &settings.namespace).await?;
                    (raw, wrk(&addr, route, connections, seconds, None).await?)
                } else {
                    let max = wrk(&addr, route, connections, seconds, None).await?;
                    settle(conn, &settings.namespace).await?;
                    (raw_confirmed(conn, &intake, size, connections, seconds).await?, max)
                };
                settle(conn, &settings.namespace).await?;
                anyhow::ensure!(max.non2xx == 0 && max.errors == 0, "{}: {} non-2xx, {} errors", route.name, max.non2xx, max.errors);
                eprintln!(
                    "  raw {raw:.0} msg/s, gateway {:.0} req/s (ratio {:.2}), p50 {:.1} ms, p99 {:.1} ms",
                    max.rate(),
                    max.rate() / raw,
                    max.p50 as f64 / 1000.0,
                    max.p99 as f64 / 1000.0
                );
                pairs.push(Pair { raw, max });
            }
            let rate = median(pairs.iter().map(|p| p.max.rate()).collect());
            eprintln!("gateway {}: at half its median maximum ({:.0}/s)…", route.name, rate / 2.0);
            let delay = 1000.0 * f64::from(connections) / (rate / 2.0);
            let half = wrk(&addr, route, connections, seconds, Some(delay)).await?;
            rows.push((route.name, pairs, half));
        }
        Ok((plain, rows))
    }
    .await;
    let rss = std::fs::read_to_string(format!("/proc/{}/status", gateway.id()))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok()))
        .map_or(f64::NAN, |kib| kib / 1024.0);
    let _ = gateway.kill();
    let _ = gateway.wait();
    let (plain, rows) = result?;
    Ok(report(run, rss, plain, &rows))
}

/// The benchmark's shape: concurrency, seconds per run, paired rounds per route.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    pub connections: u32,
    pub seconds: u32,
    pub rounds: u32,
}

fn report(run: Run, rss: f64, plain: f64, rows: &[(&str, Vec<Pair>, Wrk)]) -> String {
    let Run { connections, seconds, rounds } = run;
    let ms = |us: u64| us as f64 / 1000.0;
    let mut out = format!(
        "gateway benchmark ({connections} connections, {seconds} s per run, {rounds} paired rounds per route, wrk -t 1; \
         the gateway's peak RSS {rss:.1} MiB)\n\
         raw broker to a plain quorum queue at the same size and concurrency: {plain:.0} msg/s\n\n\
         | route | raw to intake, median msg/s | gateway max, median req/s | ratio, median (95 % CI; range) | p50 ms | p99 ms | p99.9 ms | at half: req/s | p50 ms | p99 ms | p99.9 ms |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n"
    );
    let ratios = |pairs: &[Pair]| pairs.iter().map(|p| p.max.rate() / p.raw).collect::<Vec<f64>>();
    for (name, pairs, half) in rows {
        // Latencies at the maximum: the worst round's, the conservative claim.
        let worst = |f: fn(&Wrk) -> u64| pairs.iter().map(|p| f(&p.max)).max().unwrap_or(0);
        let _ = writeln!(
            out,
            "| {name} | {:.0} | {:.0} | {} | {:.1} | {:.1} | {:.1} | {:.0} | {:.1} | {:.1} | {:.1} |",
            median(pairs.iter().map(|p| p.raw).collect()),
            median(pairs.iter().map(|p| p.max.rate()).collect()),
            summary(ratios(pairs)),
            ms(worst(|w| w.p50)),
            ms(worst(|w| w.p99)),
            ms(worst(|w| w.p999)),
            half.rate(),
            ms(half.p50),
            ms(half.p99),
            ms(half.p999)
        );
    }
    let all: Vec<f64> = rows.iter().flat_map(|(_, pairs, _)| ratios(pairs)).collect();
    let above = all.iter().filter(|r| **r >= 0.70).count();
    let n = all.len();
    let _ = writeln!(out, "\nall {n} rounds' ratio: {}; {above} rounds ≥ 0.70", summary(all));
    out
}

/// "median (95 % CI lo–hi; range lo–hi)" of the rounds' ratios.
fn summary(ratios: Vec<f64>) -> String {
    let (lo, hi) = ratios.iter().fold((f64::INFINITY, 0.0_f64), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
    let interval =
        median_interval(ratios.clone()).map_or_else(|| "95 % CI needs ≥ 6 rounds".to_owned(), |(a, b)| format!("95 % CI {a:.2}–{b:.2}"));
    format!("{:.2} ({interval}; range {lo:.2}–{hi:.2})", median(ratios))
}
