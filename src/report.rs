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

/// A day (its start, or with `end` the start of the next day, in
/// Asia/Shanghai) or an RFC 3339 instant: the bounds of a report's period.
pub fn instant(s: &str, end: bool) -> Result<chrono::DateTime<chrono::Utc>, BadInstant> {
    if let Ok(day) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let day = if end { day.succ_opt().ok_or(BadInstant)? } else { day };
        let local = day.and_hms_opt(0, 0, 0).expect("midnight exists");
        return local.and_local_timezone(chrono_tz::Asia::Shanghai).single().map(|t| t.with_timezone(&chrono::Utc)).ok_or(BadInstant);
    }
    Ok(chrono::DateTime::parse_from_rfc3339(s).map_err(|_| BadInstant)?.with_timezone(&chrono::Utc))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("expected YYYY-MM-DD or an RFC 3339 instant")]
pub struct BadInstant;

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

/// A channel's messages to citizens by state (`deliveries`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeliveryCounts {
    pub messages: u64,
    pub delivered: u64,
    pub retrying: u64,
    pub failed: u64,
    pub undeliverable: u64,
    /// Results (`kind` = `result`) sent, and delivered.
    pub results: u64,
    pub results_delivered: u64,
}

impl DeliveryCounts {
    pub fn add(&mut self, o: &DeliveryCounts) {
        self.messages += o.messages;
        self.delivered += o.delivered;
        self.retrying += o.retrying;
        self.failed += o.failed;
        self.undeliverable += o.undeliverable;
        self.results += o.results;
        self.results_delivered += o.results_delivered;
    }
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
    /// Results that reached the citizen on their channel, of those sent
    /// (in the report's total and by channel; unknown by area or category).
    pub feedback_delivered_rate: Option<f64>,
}

impl Row {
    /// Adds the feedback delivered, from the deliveries of the row's scope.
    pub fn with_deliveries(self, d: Option<&DeliveryCounts>) -> Row {
        Row { feedback_delivered_rate: d.and_then(|d| rate(d.results_delivered, d.results)), ..self }
    }
}

/// The rows with the feedback delivered: the total from every channel, a
/// channel's row from its own; other groupings do not know it.
pub fn with_deliveries(rows: Vec<Row>, by: Option<GroupBy>, channels: &[(String, DeliveryCounts)]) -> Vec<Row> {
    let total = channels.iter().fold(DeliveryCounts::default(), |mut t, (_, c)| {
        t.add(c);
        t
    });
    rows.into_iter()
        .map(|r| match by {
            None => r.with_deliveries(Some(&total)),
            Some(GroupBy::Channel) => {
                let own = channels.iter().find(|(c, _)| Some(c) == r.group.as_ref()).map(|(_, d)| d);
                r.with_deliveries(own)
            }
            Some(_) => r,
        })
        .collect()
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
            feedback_delivered_rate: None,
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
        [
            head,
            "received",
            "closed",
            "closure",
            "on-time response",
            "on-time resolution",
            "satisfaction",
            "escalations",
            "refusals",
            "feedback delivered",
        ]
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
            percent(r.feedback_delivered_rate),
        ]);
    }
    let widths: Vec<usize> = (0..10).map(|i| lines.iter().map(|l| l[i].chars().count()).max().unwrap_or(0)).collect();
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
        assert_eq!(row.feedback_delivered_rate, None);
        let table = render(&[row], Some(GroupBy::Street), Format::Table);
        assert!(table.contains("shinan.badaxia") && table.contains("75.0%") && table.contains("66.7%"), "{table}");
    }

    #[test]
    fn feedback_delivered_is_per_channel_and_in_the_total() {
        let row = |group: Option<&str>| Row::from(Counts { key: group.map(str::to_owned), received: 1, ..Counts::default() });
        let wechat = DeliveryCounts { results: 4, results_delivered: 3, ..DeliveryCounts::default() };
        let app = DeliveryCounts { results: 1, results_delivered: 1, ..DeliveryCounts::default() };
        let channels = [("wechat".to_owned(), wechat), ("app".to_owned(), app), ("hotline".to_owned(), DeliveryCounts::default())];
        let by_channel = with_deliveries(vec![row(Some("wechat")), row(Some("hotline"))], Some(GroupBy::Channel), &channels);
        assert_eq!(by_channel[0].feedback_delivered_rate, Some(0.75));
        assert_eq!(by_channel[1].feedback_delivered_rate, None, "no result sent yet");
        assert_eq!(with_deliveries(vec![row(None)], None, &channels)[0].feedback_delivered_rate, Some(0.8));
        assert_eq!(with_deliveries(vec![row(Some("shinan"))], Some(GroupBy::Street), &channels)[0].feedback_delivered_rate, None);
        assert!(render(&by_channel, Some(GroupBy::Channel), Format::Table).contains("75.0%"));
    }
}
