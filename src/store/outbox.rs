//! Pending publications kept inside the petition document, so the change
//! and the duty to announce it are one atomic write.

use serde::{Deserialize, Serialize};

use crate::bus::{Exchange, Outgoing};
use crate::domain::{Assignment, EscalationNotice, Event, Outbound};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OutboxMessage {
    Event { id: String, event: Event },
    Outbound { id: String, message: Outbound },
    Dispatch { id: String, assignment: Assignment },
    Escalation { id: String, notice: EscalationNotice },
}

impl OutboxMessage {
    pub fn event(event: Event) -> Self {
        OutboxMessage::Event { id: event.event_id.clone(), event }
    }

    pub fn outbound(message: Outbound, sequence: u32) -> Self {
        OutboxMessage::Outbound { id: message.message_id(sequence), message }
    }

    pub fn dispatch(assignment: Assignment) -> Self {
        OutboxMessage::Dispatch { id: assignment.message_id(), assignment }
    }

    pub fn id(&self) -> &str {
        match self {
            OutboxMessage::Event { id, .. }
            | OutboxMessage::Outbound { id, .. }
            | OutboxMessage::Dispatch { id, .. }
            | OutboxMessage::Escalation { id, .. } => id,
        }
    }

    pub fn to_outgoing(&self) -> Outgoing {
        let (exchange, key, body) = match self {
            OutboxMessage::Event { event, .. } => (Exchange::Events, event.kind.routing_key(), to_json(event)),
            OutboxMessage::Outbound { message, .. } => (Exchange::Outbound, message.channel.as_str().to_owned(), to_json(message)),
            OutboxMessage::Dispatch { assignment, .. } => (Exchange::Dispatch, assignment.routing_key(), to_json(assignment)),
            OutboxMessage::Escalation { notice, .. } => (Exchange::Escalations, notice.routing_key(), to_json(notice)),
        };
        Outgoing::json(exchange, key, body, self.id())
    }
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("domain messages always serialize")
}
