//! Publishing petitions' outboxes: audit first, then the broker, then
//! forget. Any crash in between leaves the outbox in place for the
//! redelivery (or the deadline role's sweep) to finish; consumers dedupe on
//! the stable message ids.

use std::sync::LazyLock;
use std::time::Duration;

use tokio_util::task::TaskTracker;

use chrono::{DateTime, Utc};
use nuannan::bus::{Failure, Outgoing, Publisher};
use nuannan::domain::PetitionId;
use nuannan::store::{OutboxMessage, Store};

/// An outbox entry this old lost its publisher.
const STALE_AFTER: chrono::Duration = chrono::Duration::seconds(30);

/// Petitions swept at a time; the rest wait for the next sweep.
const SWEEP_BATCH: i64 = 500;

pub async fn flush(store: &Store, publisher: &Publisher, id: &PetitionId, outbox: &[OutboxMessage]) -> Result<(), Failure> {
    flush_many(store, publisher, &[(id, outbox)]).await
}

/// Several petitions' outboxes in one go: one insert into `events`, one
/// pipelined batch of confirmed publishes, one update to forget them.
pub async fn flush_many(store: &Store, publisher: &Publisher, pending: &[(&PetitionId, &[OutboxMessage])]) -> Result<(), Failure> {
    let all: Vec<&OutboxMessage> = pending.iter().flat_map(|(_, outbox)| outbox.iter()).collect();
    if all.is_empty() {
        return Ok(());
    }
    let events: Vec<_> = all
        .iter()
        .filter_map(|m| match m {
            OutboxMessage::Event { event, .. } => Some(event),
            _ => None,
        })
        .collect();
    let messages: Vec<Outgoing> = all.iter().map(|m| m.to_outgoing()).collect();
    // The audit append and the publish are independent: both must finish before the ack.
    let (stored, published) = tokio::join!(store.append_events(&events), publisher.publish_all(&messages));
    stored?;
    published?;
    // Forgetting what was published is housekeeping, off the ack's path: if it
    // is lost, a redelivery or the sweep re-sends the same ids, which consumers dedupe.
    let ids: Vec<PetitionId> = pending.iter().filter(|(_, o)| !o.is_empty()).map(|(id, _)| (*id).clone()).collect();
    let message_ids: Vec<String> = all.iter().map(|m| m.id().to_owned()).collect();
    let store = store.clone();
    housekeeping().spawn(async move {
        let ids: Vec<&PetitionId> = ids.iter().collect();
        let message_ids: Vec<&str> = message_ids.iter().map(String::as_str).collect();
        if let Err(e) = store.clear_outboxes(&ids, &message_ids).await {
            tracing::warn!(error = format!("{e:#}"), "could not clear published outbox entries; they will be re-sent");
        }
    });
    Ok(())
}

/// Publishes what a worker wrote to an outbox but did not get to publish
/// (it crashed in between): entries untouched for a while. The deadline
/// role runs it on its own cadence.
pub async fn sweep(store: &Store, publisher: &Publisher, now: DateTime<Utc>) -> Result<(), Failure> {
    for p in store.stale_outboxes(now - STALE_AFTER, SWEEP_BATCH).await? {
        tracing::warn!(petition_id = %p.id, pending = p.outbox.len(), "publishing a stale outbox");
        flush(store, publisher, &p.id, &p.outbox).await?;
    }
    Ok(())
}

fn housekeeping() -> &'static TaskTracker {
    static TASKS: LazyLock<TaskTracker> = LazyLock::new(TaskTracker::new);
    &TASKS
}

/// On shutdown: lets the outbox clean-ups still running finish (briefly),
/// so a clean stop leaves nothing to re-send.
pub async fn drain() {
    let tasks = housekeeping();
    tasks.close();
    let _ = tokio::time::timeout(Duration::from_secs(2), tasks.wait()).await;
}
