//! The KPI counts, by one MongoDB aggregation over `petitions`.

use futures::TryStreamExt;
use mongodb::bson::{self, Bson, DateTime, Document, doc};

use super::fields as f;
use super::{PETITIONS, Result, Store};
use crate::domain::{Closure, Level, Rating, Status, UnitPath};
use crate::report::{Counts, DeliveryCounts, GroupBy, Row};

/// 1 when `expr` holds, else 0: summed per group.
fn count_if(expr: Document) -> Document {
    doc! { "$sum": { "$cond": [expr, 1, 0] } }
}

fn eq(field: &str, value: impl Into<Bson>) -> Document {
    doc! { "$eq": [field, value.into()] }
}

impl Store {
    /// The rows of `nuannan report` (and of the console's rates): the counts,
    /// their rates, and the feedback delivered where it is known.
    /// With `within`, only petitions placed in that unit's area (a street or
    /// community supervisor's own); the feedback delivered is then unknown.
    pub async fn report_rows(
        &self,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
        by: Option<GroupBy>,
        within: Option<&UnitPath>,
    ) -> Result<Vec<Row>> {
        let rows: Vec<Row> = self.report(from.into(), to.into(), by, within).await?.into_iter().map(Into::into).collect();
        if within.is_some() {
            return Ok(rows);
        }
        let channels: Vec<(String, DeliveryCounts)> =
            self.delivery_counts(from.into(), to.into()).await?.into_iter().map(|(c, d)| (c.as_str().to_owned(), d)).collect();
        Ok(crate::report::with_deliveries(rows, by, &channels))
    }

    /// Petitions received in `[from, to)`, grouped by `by` (one total row without).
    pub async fn report(&self, from: DateTime, to: DateTime, by: Option<GroupBy>, within: Option<&UnitPath>) -> Result<Vec<Counts>> {
        let mut matching = doc! { "received_at": { "$gte": from, "$lt": to } };
        if let Some(unit) = within {
            let field = match unit.level() {
                Level::District => None,
                Level::Street => Some("area.street"),
                Level::Community => Some("area.community"),
                Level::Grid => Some("grid"),
            };
            if let Some(field) = field {
                matching.insert(field, unit.as_str());
            }
        }
        let key = by.map_or(Bson::Null, |b| Bson::String(b.field().to_owned()));
        let field = |path: &str| format!("${path}");
        let rated = eq(&field(f::CLOSURE), bson::to_bson(&Closure::Rated)?);
        let pipeline = vec![
            doc! { "$match": matching },
            doc! { "$group": {
                "_id": key,
                "received": { "$sum": 1 },
                "closed": count_if(eq(&field(f::STATUS), bson::to_bson(&Status::Closed)?)),
                "responded_on_time": count_if(eq(&field(f::KPI_RESPONDED_ON_TIME), true)),
                "responded_late": count_if(eq(&field(f::KPI_RESPONDED_ON_TIME), false)),
                "resolved_on_time": count_if(eq(&field(f::KPI_RESOLVED_ON_TIME), true)),
                "resolved_late": count_if(eq(&field(f::KPI_RESOLVED_ON_TIME), false)),
                "rated": count_if(rated.clone()),
                "satisfied": count_if(doc! { "$and": [rated, doc! { "$ne": [field(f::RATING_VALUE), bson::to_bson(&Rating::Unsatisfied)?] }] }),
                "escalations": { "$sum": field(f::ESCALATIONS) },
                "refusals": { "$sum": field(f::REFUSALS) },
            } },
            doc! { "$sort": { "_id": 1 } },
        ];
        let docs: Vec<Document> = self.collection::<Document>(PETITIONS).aggregate(pipeline).await?.try_collect().await?;
        docs.into_iter().map(|d| Ok(mongodb::bson::from_document(normalize_numbers(d))?)).collect()
    }
}

/// `$sum` yields Int32 or Int64 depending on size; make them one type.
fn normalize_numbers(d: Document) -> Document {
    d.into_iter()
        .map(|(k, v)| match v {
            Bson::Int32(n) => (k, Bson::Int64(n.into())),
            Bson::Double(x) => (k, Bson::Int64(x as i64)),
            other => (k, other),
        })
        .collect()
}
