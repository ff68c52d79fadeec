//! `calendars`: working-day years imported at run time (`nuannan calendar
//! import`), one document per year, read by every role next to the files in
//! `calendar.dir`.

use std::path::Path;

use futures::TryStreamExt;
use mongodb::bson::{self, doc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{PETITIONS, PetitionRecord, Result, Store};
use crate::clock::{Calendar, YearFile};
use crate::domain::Status;

pub const CALENDARS: &str = "calendars";

#[derive(Debug, Serialize, Deserialize)]
struct CalendarRecord {
    #[serde(rename = "_id")]
    year: i32,
    /// The file as imported, in the bundled files' format.
    csv: String,
    sha256: String,
    imported_at: bson::DateTime,
}

impl Store {
    /// Stores a validated year, replacing an earlier import of it.
    pub async fn import_calendar_year(&self, year: &YearFile, csv: &str) -> Result<()> {
        let record = CalendarRecord {
            year: year.year,
            csv: csv.to_owned(),
            sha256: format!("{:x}", Sha256::digest(csv.as_bytes())),
            imported_at: bson::DateTime::now(),
        };
        self.collection::<CalendarRecord>(CALENDARS).replace_one(doc! { "_id": year.year }, &record).upsert(true).await?;
        Ok(())
    }

    /// The calendar every role and `nuannan deadline` use: the year files in
    /// `dir`, then the imported years (an import wins over a file).
    pub async fn calendar(&self, dir: &Path) -> anyhow::Result<Calendar> {
        self.with_imported_years(Calendar::from_dir(dir)?).await
    }

    /// `calendar` with the imported years added.
    pub async fn with_imported_years(&self, mut calendar: Calendar) -> anyhow::Result<Calendar> {
        let imported: Vec<CalendarRecord> =
            self.collection::<CalendarRecord>(CALENDARS).find(doc! {}).sort(doc! { "_id": 1 }).await?.try_collect().await?;
        for record in imported {
            match YearFile::parse(&record.csv) {
                Ok(year) => calendar.add(&year),
                // Validated at import; a hand-edited document is skipped, loudly.
                Err(e) => tracing::error!(year = record.year, error = %e, "ignoring an invalid imported calendar year"),
            }
        }
        Ok(calendar)
    }

    /// Open petitions whose resolution deadline was computed without the
    /// official schedule of its day.
    pub async fn provisional_petitions(&self) -> Result<Vec<PetitionRecord>> {
        let open = [Status::Triage, Status::Assigned, Status::Accepted, Status::Reopened]
            .map(|s| bson::to_bson(&s))
            .into_iter()
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let filter = doc! { super::fields::DEADLINES_PROVISIONAL: true, super::fields::STATUS: { "$in": open } };
        Ok(self.collection::<PetitionRecord>(PETITIONS).find(filter).await?.try_collect().await?)
    }
}
