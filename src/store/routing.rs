//! The route role's writes: the routing decision, and the registry.

use mongodb::bson::{self, Bson, Document, doc};
use mongodb::options::{ReplaceOneModel, WriteModel};
use sha2::{Digest, Sha256};

use super::{Area, Store};
use crate::domain::UnitPath;
use crate::routing::Registry;

pub const REGISTRY: &str = "registry";
pub const UNITS: &str = "units";

/// The street and community a petition belongs to, for the KPI report:
/// where it is, not who holds it now (escalations move the unit).
pub fn area(place: &UnitPath) -> Area {
    use crate::domain::Level;
    Area {
        street: place.at_level(Level::Street).map(|u| u.as_str().to_owned()),
        community: place.at_level(Level::Community).map(|u| u.as_str().to_owned()),
    }
}

impl Store {
    /// The registry every role works with: as last loaded, or the bundled
    /// one, stored on first start so `units` is there for handler apps.
    pub async fn registry(&self) -> anyhow::Result<Registry> {
        Ok(match self.registry_source().await? {
            Some(source) => Registry::from_json(&source)?,
            None => {
                let bundled = Registry::bundled();
                self.load_registry(crate::routing::BUNDLED_REGISTRY, &bundled).await?;
                bundled
            }
        })
    }

    /// The registry's source document, as last loaded.
    pub async fn registry_source(&self) -> super::Result<Option<String>> {
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
        // Units are upserted, then the ones no longer listed removed: roles
        // starting side by side may load at once, and `units` is never empty.
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
        let namespace = units.namespace();
        let ids: Vec<Bson> = docs.iter().filter_map(|d| d.get("_id").cloned()).collect();
        let upserts: Vec<WriteModel> = docs
            .into_iter()
            .map(|doc| {
                let filter = doc! { "_id": doc.get("_id").cloned().unwrap_or(Bson::Null) };
                WriteModel::ReplaceOne(
                    ReplaceOneModel::builder().namespace(namespace.clone()).filter(filter).replacement(doc).upsert(true).build(),
                )
            })
            .collect();
        self.db.client().bulk_write(upserts).ordered(false).await?;
        units.delete_many(doc! { "_id": { "$nin": ids } }).await?;
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
