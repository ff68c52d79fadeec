//! MongoDB, the source of truth: typed access to each collection.

mod attachments;
mod batch;
mod calendars;
mod change;
mod channel_events;
mod clock;
mod commands;
mod console;
mod counters;
mod deliveries;
mod error;
mod events;
pub mod fields;
mod hotspots;
mod listing;
mod outbox;
mod petitions;
mod principals;
mod records;
mod rejections;
mod report;
mod routing;
mod tokens;

pub use crate::domain::{GeoJsonPoint, LocationRecord};
pub use calendars::CALENDARS;
pub use change::{BreachRecord, Changed, Counts, Decision, Feedback, PetitionChange, Placement};
pub use clock::{ClockRecord, WindowRecord};
pub use commands::{COMMANDS, RefusedCommand};
pub use console::{FEED_TYPES, FeedItem, parse_cursor};
pub use deliveries::{AttemptRecord, DELIVERIES, DeliveryRecord};
pub use error::{Result, StoreError};
pub use hotspots::{HOTSPOTS, HotspotRecord};
pub use listing::PetitionFilter;
pub use outbox::OutboxMessage;
pub use petitions::Inserted;
pub use principals::PRINCIPALS;
pub use records::{Area, CommandEntry, DeadlinesRecord, Kpi, PetitionRecord, RatingRecord, ResultRecord, RoutingRecord};
pub use rejections::{RawRetention, RejectionRecord};
pub use routing::{REGISTRY, UNITS, area};
pub use tokens::{StoredToken, TOKENS};

use anyhow::Context;
use mongodb::bson::{Document, doc};
use mongodb::options::{Acknowledgment, IndexOptions, WriteConcern};
use mongodb::{Client, Collection, Database, IndexModel};

pub const PETITIONS: &str = "petitions";
pub const EVENTS: &str = "events";
pub const REJECTIONS: &str = "rejections";
pub const CHANNEL_EVENTS: &str = "channel_events";
pub const HELD_ATTACHMENTS: &str = "held_attachments";
pub const COUNTERS: &str = "counters";

#[derive(Clone)]
pub struct Store {
    db: Database,
}

impl Store {
    /// Connects as configured: `mongodb.uri`, `mongodb.database`, and the
    /// write concern (`mongodb.write_concern`, `mongodb.journal`).
    pub async fn open(settings: &crate::config::MongoSettings) -> anyhow::Result<Self> {
        Self::connect_with(&settings.uri, &settings.database, settings.write_concern()).await
    }

    /// Connects with the default write concern, `w: majority, j: true`.
    pub async fn connect(uri: &str, database: &str) -> anyhow::Result<Self> {
        Self::connect_with(uri, database, durable()).await
    }

    /// "Ack after a durable write" means this write concern: acknowledged by
    /// a majority of the replica set and in its journal, so an acked effect
    /// survives a primary's crash (and, on a single mongod, a crash of it).
    async fn connect_with(uri: &str, database: &str, write_concern: WriteConcern) -> anyhow::Result<Self> {
        let mut options = mongodb::options::ClientOptions::parse(uri).await.context("parsing mongodb.uri")?;
        options.write_concern = Some(write_concern);
        // On a replica set: a write interrupted by a primary election is
        // retried once on the new primary (the driver's default, stated
        // here because exactly-once effects rely on it), and every read goes
        // to the primary, so a worker sees the write it just made. A URI
        // that asks otherwise (`retryWrites=false`, `readPreference=…`) is overruled.
        options.retry_writes = Some(true);
        options.retry_reads = Some(true);
        options.selection_criteria = Some(mongodb::options::SelectionCriteria::ReadPreference(mongodb::options::ReadPreference::Primary));
        // Fail fast while the store is down, so workers pause and resume
        // promptly (the driver's default waits 30 s per operation).
        if options.server_selection_timeout.is_none() {
            options.server_selection_timeout = Some(std::time::Duration::from_secs(5));
        }
        let client = Client::with_options(options)?;
        Ok(Store { db: client.database(database) })
    }

    pub fn write_concern(&self) -> Option<&WriteConcern> {
        self.db.write_concern()
    }

    pub async fn ping(&self) -> Result<()> {
        self.db.run_command(doc! { "ping": 1 }).await?;
        Ok(())
    }

    /// A store over a client the caller configured (monitoring, pools).
    pub fn from_database(db: Database) -> Self {
        Store { db }
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Idempotent; run by every role at start.
    pub async fn ensure_indexes(&self) -> Result<()> {
        let unique = |keys: Document| IndexModel::builder().keys(keys).options(IndexOptions::builder().unique(true).build()).build();
        let plain = |keys: Document| IndexModel::builder().keys(keys).build();
        let petitions = self.db.collection::<Document>(PETITIONS);
        petitions.create_index(unique(doc! { "source.channel": 1, "source.message_id": 1 })).await?;
        // The citizen's latest petition, for WeChat attachments.
        petitions.create_index(plain(doc! { "source.channel": 1, "citizen.id": 1, "received_at": -1 })).await?;
        petitions.create_index(plain(doc! { "clock.next_at": 1 })).await?;
        petitions.create_index(plain(doc! { "received_at": -1 })).await?;
        // Sparse: only petitions with pending publications are indexed.
        petitions
            .create_index(IndexModel::builder().keys(doc! { "outbox.id": 1 }).options(IndexOptions::builder().sparse(true).build()).build())
            .await?;
        self.db.collection::<Document>(EVENTS).create_index(plain(doc! { "petition_id": 1, "at": 1 })).await?;
        // The App feed; only App messages have a cursor.
        self.db
            .collection::<Document>(DELIVERIES)
            .create_index(IndexModel::builder().keys(doc! { "cursor": 1 }).options(IndexOptions::builder().sparse(true).build()).build())
            .await?;
        self.db.collection::<Document>(DELIVERIES).create_index(plain(doc! { "petition_id": 1 })).await?;
        self.db
            .collection::<Document>(HELD_ATTACHMENTS)
            .create_index(plain(doc! { "channel": 1, "citizen_id": 1, "status": 1, "at": 1 }))
            .await?;
        self.db.collection::<Document>(HELD_ATTACHMENTS).create_index(plain(doc! { "petition_id": 1 })).await?;
        self.db.collection::<Document>(REJECTIONS).create_index(plain(doc! { "received_at": -1 })).await?;
        // Retention: each record carries its own expiry (`retention.days` at
        // the time it was written), so changing the setting needs no rebuild.
        let expiring = IndexOptions::builder().expire_after(std::time::Duration::ZERO).build();
        self.db
            .collection::<Document>(REJECTIONS)
            .create_index(IndexModel::builder().keys(doc! { "expires_at": 1 }).options(expiring).build())
            .await?;
        self.ensure_hotspot_indexes().await?;
        Ok(())
    }

    fn collection<T: Send + Sync>(&self, name: &str) -> Collection<T> {
        self.db.collection(name)
    }
}

fn durable() -> WriteConcern {
    WriteConcern::builder().w(Acknowledgment::Majority).journal(true).build()
}

/// MongoDB's duplicate-key error, whichever operation raised it.
pub fn is_duplicate_key(err: &mongodb::error::Error) -> bool {
    use mongodb::error::{ErrorKind, WriteFailure};
    match err.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(e)) => e.code == 11000,
        ErrorKind::Command(e) => e.code == 11000,
        ErrorKind::InsertMany(e) => e.write_errors.as_ref().is_some_and(|errs| errs.iter().any(|e| e.code == 11000)),
        _ => false,
    }
}
