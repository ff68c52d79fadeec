//! What each page and its JSON twin show, gathered once for both (so the
//! two cannot disagree) and bounded by the principal's subtree.

use std::collections::HashMap;

use chrono::{DateTime, FixedOffset, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use nuannan::console::{Counts, GridShape, Scope, backlog, grid_map};
use nuannan::domain::{Category, Status, UnitPath};
use nuannan::report::{GroupBy, Row};
use nuannan::store::{FeedItem, PetitionRecord, StoreError};
use nuannan::telemetry::{mask_id, mask_phone};

use super::Console;

/// Lists are cut here; the page says so.
pub const LIST_LIMIT: i64 = 200;

/// Beijing time, as people here read it.
pub fn local(t: DateTime<Utc>) -> String {
    t.with_timezone(&FixedOffset::east_opt(8 * 3600).expect("a valid offset")).format("%Y-%m-%d %H:%M").to_string()
}

#[derive(Serialize)]
pub struct UnitRow {
    pub unit: UnitPath,
    pub name: String,
    #[serde(flatten)]
    pub counts: Counts,
}

#[derive(Serialize)]
pub struct UnitView {
    #[serde(flatten)]
    pub unit: UnitRow,
    pub children: Vec<UnitRow>,
}

#[derive(Serialize)]
pub struct FeedView {
    pub id: String,
    pub cursor: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub label: &'static str,
    pub petition_id: String,
    pub at: String,
    pub text: String,
}

#[derive(Serialize)]
pub struct Summary {
    pub petition_id: String,
    pub status: Status,
    pub category: Option<String>,
    pub unit: Option<UnitPath>,
    pub unit_name: Option<String>,
    pub content: String,
    pub received_at: String,
    pub resolve_by: Option<String>,
    pub result: Option<String>,
    pub escalation_level: i32,
}

#[derive(Serialize)]
pub struct RateRow {
    pub label: String,
    #[serde(flatten)]
    pub row: Row,
}

#[derive(Serialize)]
pub struct GridView {
    pub grid: UnitPath,
    pub name: String,
    pub special: bool,
    pub open: u64,
}

/// A petition is the principal's when it is held, or was placed, in its subtree.
pub fn visible(scope: &Scope, p: &PetitionRecord) -> bool {
    p.unit.as_ref().is_some_and(|u| scope.sees(u)) || p.grid.as_ref().is_some_and(|g| scope.sees(g))
}

impl Console {
    pub fn name_of(&self, unit: &UnitPath) -> String {
        self.shared.registry.unit(unit).map_or_else(|| unit.as_str().to_owned(), |u| u.name.clone())
    }

    /// The unit and its children with their backlog; `None` outside the scope.
    pub async fn unit_view(&self, scope: &Scope, unit: &UnitPath) -> Result<Option<UnitView>, StoreError> {
        if !scope.sees(unit) || self.shared.registry.unit(unit).is_none() {
            return Ok(None);
        }
        let children: Vec<UnitPath> = self.shared.registry.children(unit).into_iter().map(|u| u.path.clone()).collect();
        let open = self.store.open_in(unit).await?;
        let b = backlog(unit, &children, &open, Utc::now());
        let row = |unit: UnitPath, counts| UnitRow { name: self.name_of(&unit), unit, counts };
        Ok(Some(UnitView { unit: row(b.unit, b.counts), children: b.children.into_iter().map(|(u, c)| row(u, c)).collect() }))
    }

    /// Feed entries the principal may see, after `after` or the newest ones.
    pub async fn feed(&self, scope: &Scope, after: Option<&(DateTime<Utc>, String)>, limit: i64) -> Result<Vec<FeedView>, StoreError> {
        let items = match after {
            Some(after) => self.store.feed_after(Some(after), limit).await?,
            None => self.store.feed_latest(limit).await?,
        };
        Ok(items.into_iter().filter(|i| i.units().any(|u| scope.sees(&u))).map(|i| self.feed_view(i)).collect())
    }

    pub fn feed_view(&self, i: FeedItem) -> FeedView {
        let unit = |key: &str| i.data[key].as_str().and_then(|u| u.parse::<UnitPath>().ok()).map(|u| self.name_of(&u)).unwrap_or_default();
        let (label, text) = match i.kind.as_str() {
            "escalated" => ("升级", format!("{} → {}", unit("from_unit"), unit("to_unit"))),
            "warned" => ("预警", format!("{} 即将超时", unit("unit"))),
            _ => ("热点", format!("{} 同类诉求 {} 件", unit("unit"), i.data["count"].as_u64().unwrap_or_default())),
        };
        FeedView { cursor: i.cursor(), id: i.id, kind: i.kind, label, petition_id: i.petition_id, at: local(i.at), text }
    }

    pub fn summary(&self, p: &PetitionRecord) -> Summary {
        Summary {
            petition_id: p.id.as_str().to_owned(),
            status: p.status,
            category: p.category.map(|c| c.as_str().to_owned()),
            unit: p.unit.clone(),
            unit_name: p.unit.as_ref().map(|u| self.name_of(u)),
            content: p.content.clone(),
            received_at: local(p.received_at.to_chrono()),
            resolve_by: p.deadlines.as_ref().map(|d| local(d.resolve_by.to_chrono())),
            result: p.result.as_ref().map(|r| r.text.clone()),
            escalation_level: p.escalation_level,
        }
    }

    /// Petitions of the subtree in `statuses` (every open one when empty).
    pub async fn queue(&self, scope: &Scope, root: &UnitPath, statuses: &[Status]) -> Result<Vec<Summary>, StoreError> {
        let found = self.store.petitions_in(root, statuses, LIST_LIMIT).await?;
        Ok(found.iter().filter(|p| visible(scope, p)).map(|p| self.summary(p)).collect())
    }

    /// The petition, if it is within the scope.
    pub async fn visible_petition(&self, scope: &Scope, id: &str) -> Result<Option<PetitionRecord>, StoreError> {
        let Ok(petition_id) = id.parse::<nuannan::domain::PetitionId>() else { return Ok(None) };
        Ok(self.store.petition(&petition_id).await?.filter(|p| visible(scope, p)))
    }

    /// The petition with its timeline, breaches and deliveries; `None` outside the scope.
    pub async fn petition_view(&self, scope: &Scope, id: &str) -> Result<Option<Value>, StoreError> {
        let Some(p) = self.visible_petition(scope, id).await? else { return Ok(None) };
        let timeline: Vec<Value> =
            self.store.events_of(id).await?.into_iter().map(|e| json!({ "type": e.kind, "at": local(e.at), "data": e.data })).collect();
        let breaches: Vec<Value> = p
            .breaches
            .iter()
            .map(|b| {
                json!({
                    "clock": b.clock, "unit": b.unit, "unit_name": self.name_of(&b.unit),
                    "responsible": b.responsible.as_ref().map(|r| json!({ "name": r.name, "role": r.role })),
                    "due_at": local(b.due_at.to_chrono()), "breached_at": local(b.breached_at.to_chrono()),
                })
            })
            .collect();
        let deliveries: Vec<Value> = self
            .store
            .deliveries_of(id)
            .await?
            .into_iter()
            .map(|d| json!({ "message_id": d.message_id, "channel": d.channel, "kind": d.kind, "status": d.status, "attempts": d.attempts.len(), "reason": d.reason, "at": local(d.at.to_chrono()) }))
            .collect();
        let mut view = serde_json::to_value(self.summary(&p)).unwrap_or_default();
        view["channel"] = json!(p.source.channel);
        // Staff see the petition, not the citizen's identifiers.
        view["citizen"] =
            json!({ "id": mask_id(&p.citizen.id), "phone": p.citizen.phone.as_deref().map(mask_phone), "name": p.citizen.name });
        view["address"] = json!(p.location.address);
        view["point"] = json!(p.location.point.as_ref().map(|pt| pt.coordinates));
        view["grid"] = json!(p.grid);
        view["respond_by"] = json!(p.deadlines.as_ref().map(|d| local(d.respond_by.to_chrono())));
        view["timeline"] = json!(timeline);
        view["breaches"] = json!(breaches);
        view["deliveries"] = json!(deliveries);
        Ok(Some(view))
    }

    /// The report's rows for the period, by street or category, within the
    /// principal's area (the district's principals see `nuannan report`'s rows).
    pub async fn rates(&self, scope: &Scope, from: DateTime<Utc>, to: DateTime<Utc>, by: GroupBy) -> Result<Vec<RateRow>, StoreError> {
        let within = (scope.root != *self.shared.registry.district()).then_some(&scope.root);
        let rows = self.store.report_rows(from, to, Some(by), within).await?;
        Ok(rows
            .into_iter()
            .filter(|r| {
                by != GroupBy::Street
                    || r.group.as_ref().and_then(|g| g.parse::<UnitPath>().ok()).is_none_or(|g| scope.sees(&g) || scope.root.is_within(&g))
            })
            .map(|row| {
                let label = match (&row.group, by) {
                    (None, _) => "（未知）".to_owned(),
                    (Some(g), GroupBy::Street) => g.parse::<UnitPath>().map_or_else(|_| g.clone(), |u| self.name_of(&u)),
                    (Some(g), _) => Category::from_code(g).map_or_else(|| g.clone(), |c| c.name_zh().to_owned()),
                };
                RateRow { label, row }
            })
            .collect())
    }

    /// The grids of the subtree with their open petitions, and the SVG.
    pub async fn map(&self, scope: &Scope) -> Result<(Vec<GridView>, String), StoreError> {
        let open = self.store.open_in(&scope.root).await?;
        let mut per: HashMap<UnitPath, u64> = HashMap::new();
        let shapes: Vec<(&UnitPath, bool, &[[f64; 2]])> = self.shared.registry.grid_shapes().filter(|(g, _, _)| scope.sees(g)).collect();
        // By where each petition is, not which unit holds it now (an
        // escalated one is held by a street, but its place is still a grid).
        for g in open.iter().filter_map(|p| p.grid.as_ref()) {
            *per.entry(g.clone()).or_default() += 1;
        }
        let names: Vec<String> = shapes.iter().map(|(g, _, _)| self.name_of(g)).collect();
        let drawn: Vec<GridShape> =
            shapes.iter().zip(&names).map(|((path, special, ring), name)| GridShape { path, name, special: *special, ring }).collect();
        let svg = grid_map(&drawn, &per);
        let grids = shapes
            .iter()
            .zip(names)
            .map(|((g, special, _), name)| GridView {
                grid: (*g).clone(),
                name,
                special: *special,
                open: per.get(*g).copied().unwrap_or(0),
            })
            .collect();
        Ok((grids, svg))
    }
}

pub fn status_name(s: Status) -> &'static str {
    match s {
        Status::Received => "已受理",
        Status::Triage => "待派单",
        Status::Assigned => "已派单",
        Status::Accepted => "办理中",
        Status::Resolved => "待审核",
        Status::Approved => "已审核",
        Status::Closed => "已办结",
        Status::Reopened => "重新办理",
    }
}
