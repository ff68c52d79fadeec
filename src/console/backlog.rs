//! The backlog of the unit tree: for a unit and each of its children, the
//! open petitions held in its subtree, those due within 4 hours, those
//! overdue and those escalated.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::domain::{Status, UnitPath};

/// "Due soon": the next deadline falls within this.
pub const DUE_SOON_HOURS: i64 = 4;

/// An open petition as the backlog reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenPetition {
    pub unit: UnitPath,
    /// Where it was placed (the map colours grids by it).
    pub grid: Option<UnitPath>,
    pub status: Status,
    pub respond_by: Option<DateTime<Utc>>,
    pub resolve_by: Option<DateTime<Utc>>,
    pub escalation_level: i32,
}

impl OpenPetition {
    /// The deadline the unit is working to now: the response until it
    /// accepted, then the resolution (a resolved petition waits for review,
    /// not for the unit).
    fn due_at(&self) -> Option<DateTime<Utc>> {
        match self.status {
            Status::Received | Status::Triage | Status::Assigned => self.respond_by,
            Status::Accepted | Status::Reopened => self.resolve_by,
            Status::Resolved | Status::Approved | Status::Closed => None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub open: u64,
    pub due_soon: u64,
    pub overdue: u64,
    pub escalated: u64,
}

impl Counts {
    fn add(&mut self, p: &OpenPetition, now: DateTime<Utc>) {
        self.open += 1;
        match p.due_at() {
            Some(due) if due < now => self.overdue += 1,
            Some(due) if due <= now + Duration::hours(DUE_SOON_HOURS) => self.due_soon += 1,
            _ => {}
        }
        if p.escalation_level > 0 {
            self.escalated += 1;
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Backlog {
    pub unit: UnitPath,
    #[serde(flatten)]
    pub counts: Counts,
    /// Each child unit with the counts of its subtree.
    pub children: Vec<(UnitPath, Counts)>,
}

/// Counts `open` petitions for `unit` (its whole subtree) and each child.
pub fn backlog(unit: &UnitPath, children: &[UnitPath], open: &[OpenPetition], now: DateTime<Utc>) -> Backlog {
    let mut total = Counts::default();
    let mut per: Vec<(UnitPath, Counts)> = children.iter().map(|c| (c.clone(), Counts::default())).collect();
    for p in open.iter().filter(|p| p.unit.is_within(unit)) {
        total.add(p, now);
        if let Some((_, c)) = per.iter_mut().find(|(child, _)| p.unit.is_within(child)) {
            c.add(p, now);
        }
    }
    Backlog { unit: unit.clone(), counts: total, children: per }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(unit: &str, status: Status, due_in_hours: i64, level: i32, now: DateTime<Utc>) -> OpenPetition {
        let due = Some(now + Duration::hours(due_in_hours));
        OpenPetition { unit: unit.parse().unwrap(), grid: None, status, respond_by: due, resolve_by: due, escalation_level: level }
    }

    #[test]
    fn counts_roll_up_the_tree() {
        let now = Utc::now();
        let petitions = [
            open("shinan.badaxia.tuandao.g001", Status::Assigned, 2, 0, now),
            open("shinan.badaxia.tuandao", Status::Accepted, -1, 1, now),
            open("shinan.badaxia.badaxia", Status::Accepted, 48, 0, now),
            open("shinan.badaxia", Status::Resolved, -10, 0, now),
            open("shinan.zhongshanlu.x", Status::Assigned, -1, 0, now),
        ];
        let children: Vec<UnitPath> = ["shinan.badaxia.tuandao", "shinan.badaxia.badaxia"].iter().map(|u| u.parse().unwrap()).collect();
        let b = backlog(&"shinan.badaxia".parse().unwrap(), &children, &petitions, now);
        assert_eq!(
            b.counts,
            Counts { open: 4, due_soon: 1, overdue: 1, escalated: 1 },
            "a resolved petition waits for review: not overdue"
        );
        assert_eq!(b.children[0].1, Counts { open: 2, due_soon: 1, overdue: 1, escalated: 1 });
        assert_eq!(b.children[1].1, Counts { open: 1, due_soon: 0, overdue: 0, escalated: 0 });
    }
}
