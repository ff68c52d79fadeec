//! Hot spots (未诉先办) in the deadline role: every `hotspot.scan_interval_ms`
//! it reads the recent petitions, finds the clusters (`nuannan::hotspot`),
//! and raises each new one once: `hotspot.<unit>` on `{ns}.escalations` and
//! a `hotspot` event. Once, however many deadline workers run, because a
//! raise is first recorded in `hotspots` under unique indexes; published
//! even if its worker dies, because the record stays unpublished until the
//! messages are out, and the next scan publishes what was left.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use nuannan::bus::{Exchange, Failure, Outgoing, Publisher};
use nuannan::config::Settings;
use nuannan::domain::{Event, HotspotNotice};
use nuannan::hotspot::{self, Rule};
use nuannan::store::{HotspotRecord, Store};

/// A raise still unpublished this long after it was recorded lost its
/// worker (which publishes within a confirm timeout of recording it).
const STALE_AFTER: chrono::Duration = chrono::Duration::seconds(30);

/// Orphaned raises published per scan; the rest wait for the next one.
const REPUBLISH_BATCH: i64 = 100;

/// A scan reads every petition of the window, so its cost grows with the
/// volume: it may keep the store busy at most 1 / `BUSY_SHARE` of the time,
/// and slower scans space the next ones out. Hot spots are about days, so a
/// raise a minute later changes nothing, while the deadline scans that share
/// the store are about seconds.
const BUSY_SHARE: u32 = 10;

pub struct HotspotScan {
    store: Store,
    publisher: Publisher,
    rule: Rule,
    interval: Duration,
}

impl HotspotScan {
    /// `None` when detection is off (`hotspot.scan_interval_ms = 0`).
    pub fn new(settings: &Settings, store: Store, publisher: Publisher) -> Option<Self> {
        let interval = Duration::from_millis(settings.hotspot.scan_interval_ms);
        (!interval.is_zero()).then(|| HotspotScan { store, publisher, rule: Rule::new(&settings.hotspot), interval })
    }

    /// Scans at a fixed rate until `stop`, slower if scans take long (see
    /// `BUSY_SHARE`). A failed scan (the store or the broker away) is logged
    /// and tried again next time: nothing is lost, the petitions and the
    /// unpublished raises are still there.
    pub async fn run(&self, stop: &CancellationToken) {
        let mut next = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep_until(next) => {}
            }
            let started = tokio::time::Instant::now();
            if let Err(e) = self.scan(Utc::now()).await {
                tracing::warn!(error = format!("{e:#}"), "hot spot scan failed; retried next scan");
            }
            next = started + self.interval.max(started.elapsed() * BUSY_SHARE);
        }
    }

    async fn scan(&self, now: DateTime<Utc>) -> Result<(), Failure> {
        let orphans = self.store.unpublished_hotspots(now - STALE_AFTER, REPUBLISH_BATCH).await?;
        if !orphans.is_empty() {
            tracing::warn!(count = orphans.len(), "publishing hot spots recorded but not published");
            self.publish(&orphans).await?;
        }
        let sightings = self.store.recent_sightings(self.rule.since(now)).await?;
        let clusters = hotspot::detect(&sightings, &self.rule, now);
        if clusters.is_empty() {
            return Ok(());
        }
        let plan = hotspot::reconcile(clusters, &self.store.raised_hotspots(now).await?);
        for growth in &plan.grow {
            self.store.grow_hotspot(growth, self.rule.expires_at(growth.last_at)).await?;
        }
        let mut recorded = Vec::new();
        for cluster in &plan.raise {
            let record = HotspotRecord::new(&cluster.notice(now), self.rule.expires_at(cluster.last_at));
            // `false`: another worker recorded it (or an overlapping one) first, and publishes it.
            if self.store.record_hotspot(&record).await? {
                recorded.push(record);
            }
        }
        self.publish(&recorded).await
    }

    /// As a petition's outbox: the audit append and the confirmed publishes,
    /// then the mark. A crash before the mark re-sends the same ids.
    async fn publish(&self, records: &[HotspotRecord]) -> Result<(), Failure> {
        if records.is_empty() {
            return Ok(());
        }
        let notices: Vec<HotspotNotice> = records.iter().map(HotspotRecord::notice).collect();
        let events: Vec<Event> = notices.iter().filter_map(HotspotNotice::event).collect();
        let mut messages: Vec<Outgoing> =
            notices.iter().map(|n| Outgoing::json(Exchange::Escalations, n.routing_key(), to_json(n), n.message_id())).collect();
        messages.extend(events.iter().map(|e| Outgoing::json(Exchange::Events, e.kind.routing_key(), to_json(e), e.event_id.as_str())));
        let event_refs: Vec<&Event> = events.iter().collect();
        let (stored, published) = tokio::join!(self.store.append_events(&event_refs), self.publisher.publish_all(&messages));
        stored?;
        published?;
        let keys: Vec<&str> = records.iter().map(|r| r.key.as_str()).collect();
        self.store.mark_hotspots_published(&keys).await?;
        for n in &notices {
            tracing::info!(key = n.key, unit = %n.unit, count = n.count, "hot spot raised");
        }
        Ok(())
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("hot spot messages always serialize")
}
