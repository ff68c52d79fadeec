//! `nuannan bench`: the pipeline end to end against the real broker and
//! store, measured in the same run against what the raw broker and the raw
//! store do alone, so the ratios are the claim (`docs/contract.md` §9).

mod gateway;
mod pipeline;
mod raw;
pub mod sample;
mod stats;

use crate::config::Settings;
use crate::store::Store;

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Petitions through the pipeline in each of its two runs.
    #[arg(long, default_value_t = 1000)]
    pub petitions: usize,
    /// Petitions written by each raw store loop.
    #[arg(long, default_value_t = 160)]
    pub store_petitions: u32,
    /// Messages through the raw broker loop.
    #[arg(long, default_value_t = 10_000)]
    pub broker_messages: usize,
    /// Benchmark the gateway instead: each route under wrk against the raw
    /// broker's confirmed publishes.
    #[arg(long)]
    pub gateway: bool,
    /// Gateway benchmark: concurrent HTTP connections (and raw publishers).
    #[arg(long, default_value_t = 32)]
    pub connections: u32,
    /// Gateway benchmark: seconds per run.
    #[arg(long, default_value_t = 5)]
    pub seconds: u32,
    /// Gateway benchmark: paired rounds (raw and gateway, alternating which goes first) per route.
    #[arg(long, default_value_t = 9)]
    pub rounds: u32,
}

pub async fn run(settings: &Settings, args: &BenchArgs) -> anyhow::Result<()> {
    let mut settings = settings.clone();
    let id = uuid::Uuid::new_v4().simple().to_string();
    settings.namespace = format!("bench-{}", &id[..12]);
    settings.mongodb.database = format!("bench_{}", &id[..12]);
    crate::bus::declare_topology(&settings).await?;
    let store = Store::open(&settings.mongodb).await?;
    store.ensure_indexes().await?;
    let conn = crate::bus::connect(&settings.amqp.url, "nuannan-bench").await?;

    let result = if args.gateway {
        let run = gateway::Run { connections: args.connections, seconds: args.seconds, rounds: args.rounds.max(1) };
        gateway::measure(&settings, &store, &conn, run).await
    } else {
        measure(&settings, &store, &conn, args).await
    };

    crate::bus::topology(&settings).delete(&conn.create_channel().await?).await?;
    store.database().drop().await?;
    let _ = conn.close(200, "bye".into()).await;
    println!("{}", result?);
    Ok(())
}

/// A light, steady load: the latency of one petition through an idle pipeline.
const LIGHT_RATE: f64 = 10.0;
const LIGHT_N: usize = 100;

async fn measure(settings: &Settings, store: &Store, conn: &lapin::Connection, args: &BenchArgs) -> anyhow::Result<String> {
    let prefetch = settings.amqp.prefetch;
    let size = sample::intake(0, 1).2.len();
    eprintln!("raw broker: {} messages of {size} bytes, prefetch {prefetch}…", args.broker_messages);
    let broker = raw::broker(conn, &format!("{}.raw-bench", settings.namespace), args.broker_messages, size, prefetch).await?;

    let mut unbatched = Vec::new();
    for (k, concurrency) in [1, 4, 16].into_iter().enumerate() {
        eprintln!("raw store, unbatched, concurrency {concurrency}…");
        let first = 1 + k as u32 * args.store_petitions;
        unbatched.push((concurrency, raw::store_unbatched(store, args.store_petitions, concurrency, first).await?));
    }
    let baseline = unbatched.iter().map(|(_, r)| *r).fold(0.0, f64::max);
    eprintln!("raw store, batched ×100…");
    let ceiling = raw::store_batched(store, args.store_petitions * 2, 100, 1 + 3 * args.store_petitions).await?;
    store.database().collection::<mongodb::bson::Document>("petitions").drop().await?;
    store.database().collection::<mongodb::bson::Document>("events").drop().await?;
    store.ensure_indexes().await?;

    let workers = pipeline::Workers::start(settings, &["normalize", "route"])?;
    eprintln!("pipeline: {} petitions as fast as confirms allow…", args.petitions);
    // A first small run warms the workers up (registry load, connections).
    pipeline::run(conn, settings, store, 1, 30, None).await?;
    let max = pipeline::run(conn, settings, store, 2, args.petitions, None).await?;
    let half_rate = max.rate / 2.0;
    eprintln!("pipeline: {} petitions at {half_rate:.0}/s…", args.petitions);
    let half = pipeline::run(conn, settings, store, 3, args.petitions, Some(half_rate)).await?;
    eprintln!("pipeline: {LIGHT_N} petitions at {LIGHT_RATE}/s…");
    let light = pipeline::run(conn, settings, store, 4, LIGHT_N, Some(LIGHT_RATE)).await?;
    let rss = workers.peak_rss();
    workers.stop();

    let smaller = broker.min(baseline);
    let mut out = String::new();
    let mut row = |k: &str, v: String| out.push_str(&format!("| {k} | {v} |\n"));
    row("measure", "value".into());
    row("---", "---".into());
    row(&format!("raw broker: confirm-publish → quorum queue → ack, {size} B, prefetch {prefetch}"), format!("{broker:.0} msg/s"));
    for (c, r) in &unbatched {
        row(&format!("raw store, unbatched, concurrency {c}"), format!("{r:.1} petitions/s"));
    }
    row("raw store, batched ×100 (ceiling)", format!("{ceiling:.1} petitions/s"));
    row(
        &format!("pipeline, {} petitions as fast as confirms allow", max.petitions),
        format!("{:.1} petitions/s (p50 {:.0} ms, p99 {:.0} ms)", max.rate, max.p50_ms, max.p99_ms),
    );
    row(
        &format!("pipeline at half that rate ({half_rate:.0}/s), publish → assigned"),
        format!("p50 {:.0} ms, p99 {:.0} ms", half.p50_ms, half.p99_ms),
    );
    row(
        &format!("pipeline at light load ({LIGHT_RATE}/s), publish → assigned"),
        format!("p50 {:.0} ms, p99 {:.0} ms", light.p50_ms, light.p99_ms),
    );
    for (role, mib) in &rss {
        row(&format!("peak RSS, {role} worker"), format!("{mib:.1} MiB"));
    }
    row("pipeline ÷ raw broker (petitions vs messages)", format!("{:.3}", max.rate / broker));
    row("pipeline ÷ unbatched store baseline", format!("{:.2}", max.rate / baseline));
    row("pipeline ÷ batched store ceiling", format!("{:.2}", max.rate / ceiling));
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    row("target: ≥ 0.8 × min(raw broker, unbatched store)", format!("{} ({:.2})", verdict(max.rate >= 0.8 * smaller), max.rate / smaller));
    row("target: ≥ 0.5 × batched store ceiling", format!("{} ({:.2})", verdict(max.rate >= 0.5 * ceiling), max.rate / ceiling));
    row("target: p99 ≤ 200 ms at half rate", format!("{} ({:.0} ms)", verdict(half.p99_ms <= 200.0), half.p99_ms));
    let worst = rss.iter().map(|(_, m)| *m).fold(0.0, f64::max);
    row("target: every worker ≤ 50 MiB RSS", format!("{} ({worst:.1} MiB)", verdict(worst <= 50.0)));
    Ok(out)
}
