//! Publishing a petition's outbox: audit first, then the broker, then
//! forget. Any crash in between leaves the outbox in place for the
//! redelivery to finish; consumers dedupe on the stable message ids.

use crate::bus::{Outgoing, Publisher};
use crate::domain::PetitionId;
use crate::store::{OutboxMessage, Store};

pub async fn flush(store: &Store, publisher: &Publisher, id: &PetitionId, outbox: &[OutboxMessage]) -> anyhow::Result<()> {
    if outbox.is_empty() {
        return Ok(());
    }
    let events: Vec<_> = outbox
        .iter()
        .filter_map(|m| match m {
            OutboxMessage::Event { event, .. } => Some(event),
            _ => None,
        })
        .collect();
    store.append_events(&events).await?;
    let messages: Vec<Outgoing> = outbox.iter().map(OutboxMessage::to_outgoing).collect();
    publisher.publish_all(&messages).await?;
    let ids: Vec<&str> = outbox.iter().map(OutboxMessage::id).collect();
    store.clear_outbox(id, &ids).await
}
