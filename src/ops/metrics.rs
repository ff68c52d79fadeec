//! Prometheus metrics per role, kept in atomics (the hot path is one
//! `fetch_add` per message) and rendered in the text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Upper bounds of the processing-latency histogram, in seconds.
const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Debug, Default)]
pub struct RoleMetrics {
    pub consumed: AtomicU64,
    pub published: AtomicU64,
    pub retried: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub redelivered: AtomicU64,
    /// Deliveries held while the store was unreachable.
    pub paused: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len()],
    latency_micros: AtomicU64,
}

impl RoleMetrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn observe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.latency_micros.fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }
}

/// Requests of one HTTP route: by status, and a latency histogram.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    statuses: Mutex<BTreeMap<u16, u64>>,
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    latency_micros: AtomicU64,
}

impl HttpMetrics {
    /// One answered request (`status`), or with status 0 one observation
    /// of a latency only (publish confirms).
    pub fn observe(&self, status: u16, took: Duration) {
        if status != 0 {
            *self.statuses.lock().expect("metrics lock").entry(status).or_default() += 1;
        }
        let secs = took.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.latency_micros.fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }
}

#[derive(Default)]
pub struct Metrics {
    http: Mutex<BTreeMap<&'static str, &'static HttpMetrics>>,
    roles: Mutex<BTreeMap<&'static str, &'static RoleMetrics>>,
    /// Batches whose work panicked; the batcher carried on.
    pub batch_panics: AtomicU64,
    /// Messages waiting in the queues only people drain (`{ns}.dead`,
    /// `{ns}.unrouted`), by queue: alert when they grow.
    queue_depths: Mutex<BTreeMap<String, u64>>,
    /// Days from today to the last day the working-day calendar covers.
    calendar_days_ahead: std::sync::atomic::AtomicI64,
    calendar_known: std::sync::atomic::AtomicBool,
    /// Messages to citizens that reached a final state, by channel and
    /// state: alert on `failed`.
    deliveries: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
}

pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::default)
}

impl Metrics {
    /// The counters of `role`, created on first use and kept for the process's life.
    pub fn role(&self, role: &'static str) -> &'static RoleMetrics {
        let mut roles = self.roles.lock().expect("metrics lock");
        roles.entry(role).or_insert_with(|| Box::leak(Box::default()))
    }

    /// The metrics of HTTP route `route` (`confirm`: the gateway's publish confirms).
    pub fn http(&self, route: &'static str) -> &'static HttpMetrics {
        let mut routes = self.http.lock().expect("metrics lock");
        routes.entry(route).or_insert_with(|| Box::leak(Box::default()))
    }

    pub fn set_queue_depth(&self, queue: &str, depth: u64) {
        self.queue_depths.lock().expect("metrics lock").insert(queue.to_owned(), depth);
    }

    pub fn count_delivery(&self, channel: &'static str, status: &'static str) {
        *self.deliveries.lock().expect("metrics lock").entry((channel, status)).or_default() += 1;
    }

    pub fn set_calendar_days_ahead(&self, days: i64) {
        self.calendar_days_ahead.store(days, Ordering::Relaxed);
        self.calendar_known.store(true, Ordering::Relaxed);
    }
}

/// Which counter of a role a metric reads.
type Counter = fn(&RoleMetrics) -> &AtomicU64;

pub fn render(broker: bool, store: bool) -> String {
    let roles: Vec<(&str, &RoleMetrics)> = metrics().roles.lock().expect("metrics lock").iter().map(|(k, v)| (*k, *v)).collect();
    let mut out = String::new();
    let counters: [(&str, &str, Counter); 6] = [
        ("nuannan_messages_consumed_total", "Deliveries handled.", |m| &m.consumed),
        ("nuannan_messages_published_total", "Messages published and confirmed.", |m| &m.published),
        ("nuannan_messages_failed_total", "Deliveries that failed and were requeued.", |m| &m.retried),
        ("nuannan_messages_dead_lettered_total", "Deliveries sent to the dead-letter queue.", |m| &m.dead_lettered),
        ("nuannan_messages_redelivered_total", "Deliveries the broker marked as redelivered.", |m| &m.redelivered),
        ("nuannan_deliveries_paused_total", "Deliveries held while the store was unreachable.", |m| &m.paused),
    ];
    for (name, help, get) in counters {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (role, m) in &roles {
            let _ = writeln!(out, "{name}{{role=\"{role}\"}} {}", get(m).load(Ordering::Relaxed));
        }
    }
    let name = "nuannan_processing_seconds";
    let _ = writeln!(out, "# HELP {name} Time from delivery to settlement.\n# TYPE {name} histogram");
    for (role, m) in &roles {
        let total = m.consumed.load(Ordering::Relaxed);
        histogram(&mut out, name, &format!("role=\"{role}\""), &m.buckets, total, m.latency_micros.load(Ordering::Relaxed));
    }
    let m = metrics();
    let routes: Vec<(&str, &HttpMetrics)> = m.http.lock().expect("metrics lock").iter().map(|(k, v)| (*k, *v)).collect();
    if !routes.is_empty() {
        let name = "nuannan_http_requests_total";
        let _ = writeln!(out, "# HELP {name} HTTP requests answered, by route and status.\n# TYPE {name} counter");
        for (route, h) in &routes {
            for (status, n) in h.statuses.lock().expect("metrics lock").iter() {
                let _ = writeln!(out, "{name}{{route=\"{route}\",status=\"{status}\"}} {n}");
            }
        }
        let name = "nuannan_http_seconds";
        let _ =
            writeln!(out, "# HELP {name} HTTP request latency by route (`confirm`: publish to broker confirm).\n# TYPE {name} histogram");
        for (route, h) in &routes {
            let total = h.count.load(Ordering::Relaxed);
            histogram(&mut out, name, &format!("route=\"{route}\""), &h.buckets, total, h.latency_micros.load(Ordering::Relaxed));
        }
    }
    let name = "nuannan_batch_panics_total";
    let _ = writeln!(out, "# HELP {name} Batches whose work panicked (the batcher restarted).\n# TYPE {name} counter");
    let _ = writeln!(out, "{name} {}", m.batch_panics.load(Ordering::Relaxed));
    let name = "nuannan_queue_depth";
    let _ = writeln!(out, "# HELP {name} Messages in the queues only people drain.\n# TYPE {name} gauge");
    for (queue, depth) in m.queue_depths.lock().expect("metrics lock").iter() {
        let _ = writeln!(out, "{name}{{queue=\"{queue}\"}} {depth}");
    }
    let deliveries = m.deliveries.lock().expect("metrics lock").clone();
    if !deliveries.is_empty() {
        let name = "nuannan_delivery_outcomes_total";
        let _ =
            writeln!(out, "# HELP {name} Messages to citizens that reached a final state, by channel and state.\n# TYPE {name} counter");
        for ((channel, status), n) in deliveries {
            let _ = writeln!(out, "{name}{{channel=\"{channel}\",status=\"{status}\"}} {n}");
        }
    }
    if m.calendar_known.load(Ordering::Relaxed) {
        let name = "nuannan_calendar_days_ahead";
        let _ = writeln!(out, "# HELP {name} Days until the working-day calendar runs out.\n# TYPE {name} gauge");
        let _ = writeln!(out, "{name} {}", m.calendar_days_ahead.load(Ordering::Relaxed));
    }
    for (name, up) in [("nuannan_broker_connected", broker), ("nuannan_store_connected", store)] {
        let _ = writeln!(out, "# TYPE {name} gauge\n{name} {}", u8::from(up));
    }
    out
}

/// One labelled series of a latency histogram over [`BUCKETS`].
fn histogram(out: &mut String, name: &str, label: &str, buckets: &[AtomicU64], total: u64, micros: u64) {
    let mut cumulative = 0;
    for (bound, count) in BUCKETS.iter().zip(buckets) {
        cumulative += count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{label},le=\"{bound}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_bucket{{{label},le=\"+Inf\"}} {total}");
    let _ = writeln!(out, "{name}_sum{{{label}}} {}", micros as f64 / 1e6);
    let _ = writeln!(out, "{name}_count{{{label}}} {total}");
}
