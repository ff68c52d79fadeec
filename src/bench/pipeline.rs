//! The pipeline as operators run it: `nuannan worker normalize` and
//! `nuannan worker route` processes, fed intake messages, timed from publish
//! to the `assigned` (or `triaged`) event.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection};
use mongodb::bson::{Document, doc};

use super::sample;
use crate::config::Settings;
use crate::store::Store;

pub struct Workers {
    children: Vec<(String, std::process::Child)>,
}

impl Workers {
    pub fn start(settings: &Settings, roles: &[&str]) -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?;
        let mut children = Vec::new();
        for role in roles {
            let child = std::process::Command::new(&exe)
                .args(["worker", role])
                .env("NUANNAN__NAMESPACE", &settings.namespace)
                .env("NUANNAN__AMQP__URL", &settings.amqp.url)
                .env("NUANNAN__MONGODB__URI", &settings.mongodb.uri)
                .env("NUANNAN__MONGODB__DATABASE", &settings.mongodb.database)
                .env("NUANNAN__OPS__HTTP_ADDR", "")
                .env("RUST_LOG", "warn")
                .stdout(std::process::Stdio::null())
                .spawn()?;
            children.push((role.to_string(), child));
        }
        Ok(Workers { children })
    }

    /// Peak resident set size of each worker so far (Linux `VmHWM`), MiB.
    pub fn peak_rss(&self) -> Vec<(String, f64)> {
        self.children
            .iter()
            .map(|(role, c)| {
                let status = std::fs::read_to_string(format!("/proc/{}/status", c.id())).unwrap_or_default();
                let kib = status
                    .lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(f64::NAN);
                (role.clone(), kib / 1024.0)
            })
            .collect()
    }

    pub fn stop(mut self) {
        for (_, c) in &mut self.children {
            let _ = std::process::Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
        }
        for (_, c) in &mut self.children {
            let _ = c.wait();
        }
    }
}

pub struct Run {
    pub petitions: usize,
    pub rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Publishes `n` petitions (at `rate` per second, or as fast as confirms
/// allow) and waits for every one to be routed.
pub async fn run(conn: &Connection, settings: &Settings, store: &Store, run: u32, n: usize, rate: Option<f64>) -> anyhow::Result<Run> {
    let ns = &settings.namespace;
    let listen = conn.create_channel().await?;
    let queue = listen
        .queue_declare("".into(), QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() }, FieldTable::default())
        .await?
        .name()
        .to_string();
    for key in ["petition.assigned", "petition.triaged"] {
        listen
            .queue_bind(
                queue.as_str().into(),
                format!("{ns}.events").as_str().into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    let routed: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut consumer = listen
        .basic_consume(
            queue.as_str().into(),
            "bench".into(),
            BasicConsumeOptions { no_ack: true, ..Default::default() },
            FieldTable::default(),
        )
        .await?;
    let seen = routed.clone();
    let listener = tokio::spawn(async move {
        while let Some(Ok(d)) = consumer.next().await {
            if let Ok(event) = serde_json::from_slice::<serde_json::Value>(&d.data)
                && let Some(id) = event["petition_id"].as_str()
            {
                seen.lock().expect("routed").entry(id.to_owned()).or_insert_with(Instant::now);
            }
        }
    });

    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    let exchange = format!("{ns}.intake");
    let mut published: HashMap<String, Instant> = HashMap::with_capacity(n);
    let mut pending = Vec::new();
    let mut ticks = rate.map(|r| tokio::time::interval(Duration::from_secs_f64(1.0 / r)));
    let started = Instant::now();
    for i in 0..n {
        if let Some(t) = ticks.as_mut() {
            t.tick().await;
        }
        let (channel, key, body) = sample::intake(run, i);
        let content_type = if channel == "wechat" { "application/xml" } else { "application/json" };
        let props =
            BasicProperties::default().with_delivery_mode(2).with_content_type(content_type.into()).with_message_id(key.as_str().into());
        published.insert(key, Instant::now());
        let confirm = ch
            .basic_publish(
                exchange.as_str().into(),
                channel.into(),
                BasicPublishOptions { mandatory: true, ..Default::default() },
                &body,
                props,
            )
            .await?;
        pending.push(confirm);
        if pending.len() >= 256 || rate.is_some() {
            for c in pending.drain(..) {
                anyhow::ensure!(matches!(c.await?, lapin::Confirmation::Ack(None)), "intake publish not confirmed");
            }
        }
    }
    for c in pending {
        anyhow::ensure!(matches!(c.await?, lapin::Confirmation::Ack(None)), "intake publish not confirmed");
    }

    let limit = Instant::now() + Duration::from_secs(300);
    while routed.lock().expect("routed").len() < n {
        anyhow::ensure!(Instant::now() < limit, "only {} of {n} petitions routed", routed.lock().expect("routed").len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let routed = routed.lock().expect("routed").clone();
    listener.abort();
    let last = routed.values().max().copied().unwrap_or(started);
    let throughput = n as f64 / (last - started).as_secs_f64();

    // Petition number → the intake key it came from.
    let petitions = store.database().collection::<Document>("petitions");
    let docs: Vec<Document> = petitions.find(doc! {}).projection(doc! { "source.message_id": 1 }).await?.try_collect().await?;
    let mut latencies: Vec<f64> = docs
        .iter()
        .filter_map(|d| {
            let key = d.get_document("source").ok()?.get_str("message_id").ok()?;
            let sent = published.get(key)?;
            let done = routed.get(d.get_str("_id").ok()?)?;
            Some((*done - *sent).as_secs_f64() * 1000.0)
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    anyhow::ensure!(latencies.len() == n, "matched {} of {n} petitions", latencies.len());
    let pct = |p: f64| latencies[((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1];
    Ok(Run { petitions: n, rate: throughput, p50_ms: pct(0.5), p99_ms: pct(0.99) })
}
