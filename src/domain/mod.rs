//! Pure domain types: no I/O here. Wire payloads become these at the edge.

mod channel;
mod command;
mod datum;
mod message;
mod petition;
mod receipt;
mod unit;

pub use channel::{Channel, UnknownChannel};
pub use command::{Action, Actor, ActorRole, BadCommand, Command, CommandReply, Rating, RefuseReason};
pub use datum::{gcj02_to_wgs84, wgs84_to_gcj02};
pub use message::{
    Assignment, EscalationNotice, EscalationReason, Event, EventType, HotspotNotice, Outbound, OutboundKind, Recipient, receipt_text,
};
pub use petition::{
    Attachment, AttachmentKind, Category, Citizen, Classification, Closure, Deadlines, GeoJsonPoint, GeoPoint, LocationRecord, NewPetition,
    PetitionId, RoutingHints, Source, Status,
};
pub use receipt::{ReceiptClock, ReceiptTime, ReceiptTimeNote};
pub use unit::{BadUnitPath, Level, Person, UnitPath};
