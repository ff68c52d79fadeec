//! Publishing petitions' outboxes: audit first, then the broker, then
//! forget. Any crash in between leaves the outbox in place for the
//! redelivery (or the deadline role's sweep) to finish; consumers dedupe on
//! the stable message ids.

use crate::bus::{Outgoing, Publisher};
use crate::domain::PetitionId;
use crate::store::{OutboxMessage, Store};

pub async fn flush(store: &Store, publisher: &Publisher, id: &PetitionId, outbox: &[OutboxMessage]) -> anyhow::Result<()> {
    flush_many(store, publisher, &[(id, outbox)]).await
}

/// Several petitions' outboxes in one go: one insert into `events`, one
/// pipelined batch of confirmed publishes, one update to forget them.
pub async fn flush_many(store: &Store, publisher: &Publisher, pending: &[(&PetitionId, &[OutboxMessage])]) -> anyhow::Result<()> {
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
    store.append_events(&events).await?;
    let messages: Vec<Outgoing> = all.iter().map(|m| m.to_outgoing()).collect();
    publisher.publish_all(&messages).await?;
    let ids: Vec<&PetitionId> = pending.iter().filter(|(_, o)| !o.is_empty()).map(|(id, _)| *id).collect();
    let message_ids: Vec<&str> = all.iter().map(|m| m.id()).collect();
    store.clear_outboxes(&ids, &message_ids).await
}
