//! The route role's writes: the routing decision, and the registry.

use mongodb::bson::{self, Document, doc};
use sha2::{Digest, Sha256};

use super::{OutboxMessage, PETITIONS, Store};
use crate::domain::{Category, Deadlines, Status, UnitPath};
use crate::routing::Registry;

pub const REGISTRY: &str = "registry";
pub const UNITS: &str = "units";

/// What routing sets on a petition, in one conditional update.
pub struct Routed<'a> {
    pub grid: Option<&'a UnitPath>,
    pub unit: &'a UnitPath,
    pub category: Option<Category>,
    pub status: Status,
    pub deadlines: Deadlines,
    /// How it was placed and classified, for the audit and triage operators.
    pub routing: Document,
    pub clock: super::ClockRecord,
    pub outbox: Vec<OutboxMessage>,
}

/// The street and community a petition belongs to, for the KPI report:
/// where it is, not who holds it now (escalations move the unit).
fn area(place: &UnitPath) -> Document {
    use crate::domain::Level;
    doc! {
        "street": place.at_level(Level::Street).map(|u| u.as_str().to_owned()),
        "community": place.at_level(Level::Community).map(|u| u.as_str().to_owned()),
    }
}

/// The conditional update that applies a routing decision: only if the
/// petition is still `received` at `version`.
pub fn route_write(id: &str, version: i64, r: &Routed<'_>) -> anyhow::Result<(Document, Document)> {
    let outbox = r.outbox.iter().map(bson::to_bson).collect::<Result<Vec<_>, _>>()?;
    let update = doc! {
        "$set": {
            "grid": r.grid.map(|g| g.as_str()),
            "unit": r.unit.as_str(),
            "category": bson::to_bson(&r.category)?,
            "status": bson::to_bson(&r.status)?,
            "deadlines": {
                "respond_by": bson::DateTime::from(r.deadlines.respond_by),
                "resolve_by": bson::DateTime::from(r.deadlines.resolve_by),
            },
            "routing": r.routing.clone(),
            "area": area(r.grid.unwrap_or(r.unit)),
            "clock": bson::to_bson(&r.clock)?,
            "updated_at": bson::DateTime::now(),
        },
        "$inc": { "version": 1, "dispatch_attempts": 1 },
        "$push": { "outbox": { "$each": outbox } },
    };
    Ok((doc! { "_id": id, "version": version, "status": "received" }, update))
}

impl Store {
    /// Applies the decision only if the petition is still `received` at
    /// `version`; `false` means someone changed it first (re-read, decide again).
    pub async fn route_petition(&self, id: &str, version: i64, r: Routed<'_>) -> anyhow::Result<bool> {
        let (filter, update) = route_write(id, version, &r)?;
        let result = self.collection::<Document>(PETITIONS).update_one(filter, update).await?;
        Ok(result.modified_count == 1)
    }

    /// The registry routing uses, as last loaded.
    pub async fn registry_source(&self) -> anyhow::Result<Option<String>> {
        let current = self.collection::<Document>(REGISTRY).find_one(doc! { "_id": "current" }).await?;
        Ok(current.and_then(|d| d.get_str("source").ok().map(str::to_owned)))
    }

    /// Replaces the registry: the source document routing reads, and one
    /// `units` document per unit for handler apps and reports.
    pub async fn load_registry(&self, source: &str, registry: &Registry) -> anyhow::Result<String> {
        let digest = format!("{:x}", Sha256::digest(source.as_bytes()));
        let registry_docs = self.collection::<Document>(REGISTRY);
        let current = registry_docs.find_one(doc! { "_id": "current", "sha256": &digest }).await?;
        if current.is_some() {
            return Ok(digest);
        }
        // `units` is a read model for handler apps; routing reads `registry`,
        // which is switched last, so a reader never routes on half a load.
        let docs = registry
            .units()
            .map(|unit| {
                let mut doc = bson::to_document(unit)?;
                doc.insert("_id", unit.path.as_str());
                doc.insert("level", unit.path.level().as_str());
                doc.insert("parent", unit.path.parent().map(|p| p.to_string()));
                Ok(doc)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let units = self.collection::<Document>(UNITS);
        units.delete_many(doc! {}).await?;
        units.insert_many(docs).await?;
        self.collection::<Document>(REGISTRY)
            .replace_one(
                doc! { "_id": "current" },
                doc! { "_id": "current", "sha256": &digest, "source": source, "loaded_at": bson::DateTime::now() },
            )
            .upsert(true)
            .await?;
        Ok(digest)
    }
}
