//! `nuannan report`: the platform's KPIs (`docs/contract.md` §10) from counts the store
//! aggregates; the rates and the rendering are pure.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GroupBy {
    Street,
    Community,
    Category,
    Channel,
}

impl GroupBy {
    /// The petition field the report groups on.
    pub fn field(self) -> &'static str {
        match self {
            GroupBy::Street => "$area.street",
            GroupBy::Community => "$area.community",
            GroupBy::Category => "$category",
            GroupBy::Channel => "$source.channel",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// What the store counts per group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Counts {
    /// The group's key; `None` for the total or a petition without one.
    #[serde(rename = "_id")]
    pub key: Option<String>,
    pub received: u64,
    pub closed: u64,
    pub responded_on_time: u64,
    pub responded_late: u64,
    pub resolved_on_time: u64,
    pub resolved_late: u64,
    /// Closed with a rating (unrated closures are left out of satisfaction).
    pub rated: u64,
    pub satisfied: u64,
    pub escalations: u64,
    pub refusals: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub group: Option<String>,
    pub received: u64,
    pub closed: u64,
    pub closure_rate: Option<f64>,
    pub on_time_response_rate: Option<f64>,
    pub on_time_resolution_rate: Option<f64>,
    pub satisfaction_rate: Option<f64>,
    pub escalations: u64,
    pub refusals: u64,
}

fn rate(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

impl From<Counts> for Row {
    fn from(c: Counts) -> Row {
        Row {
            closure_rate: rate(c.closed, c.received),
            on_time_response_rate: rate(c.responded_on_time, c.responded_on_time + c.responded_late),
            on_time_resolution_rate: rate(c.resolved_on_time, c.resolved_on_time + c.resolved_late),
            satisfaction_rate: rate(c.satisfied, c.rated),
            group: c.key,
            received: c.received,
            closed: c.closed,
            escalations: c.escalations,
            refusals: c.refusals,
        }
    }
}

pub fn render(rows: &[Row], by: Option<GroupBy>, format: Format) -> String {
    match format {
        Format::Json => serde_json::to_string_pretty(rows).expect("rows serialize"),
        Format::Table => table(rows, by),
    }
}

fn table(rows: &[Row], by: Option<GroupBy>) -> String {
    let percent = |r: Option<f64>| r.map_or("-".to_owned(), |r| format!("{:.1}%", r * 100.0));
    let head = by.map_or("scope", |b| match b {
        GroupBy::Street => "street",
        GroupBy::Community => "community",
        GroupBy::Category => "category",
        GroupBy::Channel => "channel",
    });
    let mut lines = vec![
        [head, "received", "closed", "closure", "on-time response", "on-time resolution", "satisfaction", "escalations", "refusals"]
            .map(str::to_owned),
    ];
    for r in rows {
        let group = r.group.clone().unwrap_or_else(|| if by.is_some() { "(none)".into() } else { "all".into() });
        lines.push([
            group,
            r.received.to_string(),
            r.closed.to_string(),
            percent(r.closure_rate),
            percent(r.on_time_response_rate),
            percent(r.on_time_resolution_rate),
            percent(r.satisfaction_rate),
            r.escalations.to_string(),
            r.refusals.to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..9).map(|i| lines.iter().map(|l| l[i].chars().count()).max().unwrap_or(0)).collect();
    lines
        .iter()
        .map(|l| {
            l.iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, (cell, w))| {
                    let pad = " ".repeat(w - cell.chars().count());
                    if i == 0 { format!("{cell}{pad}") } else { format!("{pad}{cell}") }
                })
                .collect::<Vec<_>>()
                .join("  ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_leave_out_what_is_unknown() {
        let row = Row::from(Counts {
            key: Some("shinan.badaxia".into()),
            received: 4,
            closed: 3,
            responded_on_time: 2,
            responded_late: 1,
            rated: 2,
            satisfied: 1,
            ..Counts::default()
        });
        assert_eq!(row.closure_rate, Some(0.75));
        assert_eq!(row.on_time_response_rate, Some(2.0 / 3.0));
        assert_eq!(row.on_time_resolution_rate, None, "nothing resolved yet");
        assert_eq!(row.satisfaction_rate, Some(0.5));
        let table = render(&[row], Some(GroupBy::Street), Format::Table);
        assert!(table.contains("shinan.badaxia") && table.contains("75.0%") && table.contains("66.7%"), "{table}");
    }
}
