//! The working-day calendar at run time: loaded from `calendar.dir` and the
//! imported years before any role starts, refreshed every
//! `calendar.refresh_secs` so an import reaches every worker without a
//! redeploy, and watched: when the data runs out within
//! `calendar.warn_days_ahead` days, `/healthz` says `calendar: degraded` and
//! `nuannan_calendar_days_ahead` shows how close it is.
//!
//! `nuannan calendar import` stores a year and recomputes the provisional
//! deadlines of open petitions ([`import`]).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use chrono_tz::Asia::Shanghai;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::outbox;
use nuannan::bus::Publisher;
use nuannan::clock::{Calendar, DeadlinePolicy, SharedCalendar, Window, YearFile};
use nuannan::config::Settings;
use nuannan::domain::{Deadlines, Event, EventType};
use nuannan::store::{Changed, ClockRecord, Decision, OutboxMessage, PetitionChange, PetitionRecord, Store};

/// The calendar as every role sees it, reported (health, metric) and shared.
pub fn watch(settings: &Settings, calendar: Calendar) -> Arc<SharedCalendar> {
    report(settings, &calendar);
    SharedCalendar::new(calendar)
}

/// Reloads the calendar every `calendar.refresh_secs` until shutdown.
pub async fn refresh(settings: Settings, store: Store, calendar: Arc<SharedCalendar>, shutdown: CancellationToken) {
    let every = Duration::from_secs(settings.calendar.refresh_secs);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        match store.calendar(&settings.calendar.dir).await {
            Ok(fresh) => {
                report(&settings, &fresh);
                calendar.replace(fresh);
            }
            Err(e) => tracing::warn!(error = format!("{e:#}"), "refreshing the calendar failed; keeping the last one"),
        }
    }
}

/// Days from today (Asia/Shanghai) to the last day with official data.
pub fn days_ahead(calendar: &Calendar) -> i64 {
    let today = Utc::now().with_timezone(&Shanghai).date_naive();
    calendar.last_day().map_or(-1, |last| (last - today).num_days())
}

fn report(settings: &Settings, calendar: &Calendar) {
    let ahead = days_ahead(calendar);
    nuannan::ops::metrics().set_calendar_days_ahead(ahead);
    let ok = ahead >= i64::from(settings.calendar.warn_days_ahead);
    if !ok {
        tracing::warn!(
            days_ahead = ahead,
            "the working-day calendar runs out soon: import next year's schedule with `nuannan calendar import` once the State Council publishes it"
        );
    }
    nuannan::ops::health().set_calendar(ok);
}

/// What an import did.
#[derive(Debug, Default)]
pub struct Imported {
    pub year: i32,
    /// Open petitions whose provisional deadline was recomputed.
    pub recomputed: usize,
    /// Of those, how many got a different deadline (a `deadline_changed` event each).
    pub changed: usize,
}

/// Validates and stores a year file, then recomputes every open petition's
/// provisional resolution deadline on the calendar that now includes it.
pub async fn import(settings: &Settings, store: &Store, publisher: &Publisher, csv: &str) -> anyhow::Result<Imported> {
    let year = YearFile::parse(csv)?;
    store.import_calendar_year(&year, csv).await?;
    let calendar = store.calendar(&settings.calendar.dir).await?;
    let policy = settings.deadline_policy(SharedCalendar::new(calendar));
    let mut imported = Imported { year: year.year, ..Default::default() };
    for p in store.provisional_petitions().await? {
        let changed = store.change_petition(&p.id, |p| recompute(p, &policy, settings.deadline.warn_ratio)).await?;
        if let Changed::Applied { petition, outbox: announcements, value: moved } = changed {
            outbox::flush(store, publisher, &petition.id, &announcements).await?;
            imported.recomputed += 1;
            imported.changed += usize::from(moved);
        }
    }
    Ok(imported)
}

/// The petition's resolution deadline counted again from the start of its
/// window; `true` when it moved.
fn recompute(p: &PetitionRecord, policy: &DeadlinePolicy, warn_ratio: f64) -> Decision<bool> {
    let (Some(record), Some(deadlines)) = (p.clock, &p.deadlines) else { return Decision::Keep(false) };
    if !deadlines.provisional {
        return Decision::Keep(false);
    }
    let mut clocks = record.clocks();
    let old = deadlines.resolve_by.to_chrono();
    let new = match clocks.resolve {
        Some(window) => policy.resolve_by(window.started, p.working_days()),
        // The clock stopped (resolved meanwhile): only the flag is stale.
        None => old,
    };
    if let Some(window) = &mut clocks.resolve {
        *window = Window { due: new, ..*window };
    }
    let moved = new != old;
    let outbox = if moved {
        let data = json!({ "clock": "resolve", "from": old, "to": new, "reason": "calendar_imported" });
        vec![OutboxMessage::event(Event::new(&p.id, p.version + 1, EventType::DeadlineChanged, Utc::now(), data))]
    } else {
        Vec::new()
    };
    Decision::write(
        PetitionChange {
            clocks: Some(ClockRecord::new(&clocks, warn_ratio)),
            deadlines: Some(Deadlines { respond_by: deadlines.respond_by.to_chrono(), resolve_by: new }),
            provisional: policy.provisional(new),
            outbox,
            ..Default::default()
        },
        moved,
    )
}
