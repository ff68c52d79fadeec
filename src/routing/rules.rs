//! The dispatch rule (`docs/contract.md` §1): livelihood starts at the community of the
//! grid, enforcement and development at the street; a commercial building's
//! special grid goes to its building team; what can be neither placed nor
//! classified goes to the district platform for manual triage.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Classified, Classifier, LocateQuery, Location, Person, Registry};
use crate::clock::{DeadlinePolicy, Deadlines, working_days};
use crate::domain::{Category, GeoPoint, Level, Status, UnitPath};

#[derive(Debug, Clone, Default)]
pub struct RouteInput<'a> {
    pub received_at: Option<DateTime<Utc>>,
    pub content: &'a str,
    pub point: Option<GeoPoint>,
    pub address: Option<&'a str>,
    pub building_id: Option<&'a str>,
    pub street: Option<&'a str>,
    pub community: Option<&'a str>,
    pub category: Option<Category>,
    pub hotline_class: Option<&'a str>,
    pub urgent: bool,
    pub time_limit_days: Option<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TriageReason {
    NotLocated,
    NotClassified,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteDecision {
    pub status: Status,
    pub unit: UnitPath,
    pub level: Level,
    pub grid: Option<UnitPath>,
    pub category: Option<Category>,
    pub working_days: u8,
    pub deadlines: Deadlines,
    pub handler: Option<Person>,
    pub location: Option<Location>,
    pub classified: Option<Classified>,
    pub triage: Option<TriageReason>,
}

pub struct Router {
    pub registry: Arc<Registry>,
    pub classifier: Classifier,
    pub deadlines: DeadlinePolicy,
}

impl Router {
    pub fn decide(&self, input: &RouteInput<'_>) -> RouteDecision {
        let location = self.registry.locate(&LocateQuery {
            point: input.point,
            building_id: input.building_id,
            street: input.street,
            community: input.community,
            address: input.address,
            content: Some(input.content),
        });
        let classified = self.classifier.classify(input.category, input.hotline_class, input.content);
        let category = classified.map(|c| c.category);
        let target = match (&location, category) {
            (None, _) => Err(TriageReason::NotLocated),
            // A building team answers for everything in its building.
            (Some(l), _) if self.is_special(l) => Ok(l.unit.clone()),
            (Some(_), None) => Err(TriageReason::NotClassified),
            (Some(l), Some(c)) => Ok(self.responsible_unit(l, c)),
        };
        let (status, unit, triage) = match target {
            Ok(unit) => (Status::Assigned, unit, None),
            Err(reason) => (Status::Triage, self.registry.district().clone(), Some(reason)),
        };
        let days = working_days(input.time_limit_days, input.urgent, classified.and_then(|c| c.working_days), category);
        let received = input.received_at.unwrap_or_else(Utc::now);
        RouteDecision {
            status,
            level: unit.level(),
            handler: self.registry.unit(&unit).and_then(|u| u.handler().cloned()),
            grid: location.as_ref().and_then(|l| l.grid.clone()),
            unit,
            category,
            working_days: days,
            deadlines: self.deadlines.deadlines(received, days),
            location,
            classified,
            triage,
        }
    }

    fn is_special(&self, location: &Location) -> bool {
        location.grid.as_ref().and_then(|g| self.registry.unit(g)).is_some_and(|u| u.grid_kind == Some(super::GridKind::Special))
    }

    fn responsible_unit(&self, location: &Location, category: Category) -> UnitPath {
        let level = match category {
            Category::Livelihood => Level::Community,
            Category::Enforcement | Category::Development => Level::Street,
        };
        // Placed less precisely than the rule's level (a street only): the
        // lowest known unit above it takes the petition and passes it down.
        location.unit.at_level(level).unwrap_or_else(|| location.unit.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router {
        Router {
            registry: Arc::new(Registry::bundled()),
            classifier: Classifier::bundled(),
            deadlines: crate::clock::deadlines::default_policy(),
        }
    }

    /// The centre of a grid's polygon, read from the bundled registry file.
    fn centre(grid: &str) -> GeoPoint {
        let file: serde_json::Value = serde_json::from_str(super::super::registry::BUNDLED).unwrap();
        let g = file["grids"].as_array().unwrap().iter().find(|g| g["path"] == grid).unwrap();
        let ring = g["polygon"].as_array().unwrap();
        let (x0, y0) = (ring[0][0].as_f64().unwrap(), ring[0][1].as_f64().unwrap());
        let (x1, y1) = (ring[2][0].as_f64().unwrap(), ring[2][1].as_f64().unwrap());
        GeoPoint::new((x0 + x1) / 2.0, (y0 + y1) / 2.0).unwrap()
    }

    fn unit(s: &str) -> UnitPath {
        s.parse().unwrap()
    }

    #[test]
    fn livelihood_goes_to_the_community_of_the_grid() {
        let point = centre("shinan.badaxia.tuandao.g003");
        let d = router().decide(&RouteInput { content: "路灯坏了", point: Some(point), ..Default::default() });
        assert_eq!(d.status, Status::Assigned);
        assert_eq!(d.grid, Some(unit("shinan.badaxia.tuandao.g003")));
        assert_eq!((d.unit, d.level), (unit("shinan.badaxia.tuandao"), Level::Community));
        assert_eq!(d.category, Some(Category::Livelihood));
        assert_eq!(d.working_days, 2);
        assert_eq!(d.handler.unwrap().role, "responsible");
    }

    #[test]
    fn enforcement_and_development_go_to_the_street() {
        let point = centre("shinan.badaxia.tuandao.g003");
        for (text, category) in [("夜间施工噪音扰民", Category::Enforcement), ("企业融资难", Category::Development)] {
            let d = router().decide(&RouteInput { content: text, point: Some(point), ..Default::default() });
            assert_eq!((d.unit, d.level, d.category), (unit("shinan.badaxia"), Level::Street, Some(category)));
            assert_eq!(d.working_days, 5);
            assert_eq!(d.handler.unwrap().role, "responsible", "the street's 1+1+1 directly responsible person");
        }
    }

    #[test]
    fn a_special_grid_goes_to_its_building_team_whatever_the_category() {
        for (content, category) in [("写字楼电梯故障", Some(Category::Enforcement)), ("空调不制冷", None)] {
            let d = router().decide(&RouteInput { content, building_id: Some("B002"), category, ..Default::default() });
            assert_eq!((d.status, d.unit.as_str(), d.level), (Status::Assigned, "shinan.badahu.tiantailu.s01", Level::Grid));
            assert_eq!(d.handler.unwrap().role, "building_steward");
        }
    }

    #[test]
    fn unplaceable_or_unclassifiable_goes_to_district_triage() {
        let d = router().decide(&RouteInput { content: "路灯坏了", ..Default::default() });
        assert_eq!((d.status, d.unit.as_str(), d.triage), (Status::Triage, "shinan", Some(TriageReason::NotLocated)));
        assert_eq!(d.category, Some(Category::Livelihood), "the category is kept for the triage operator");
        let d = router().decide(&RouteInput { content: "你好在吗", community: Some("团岛社区"), ..Default::default() });
        assert_eq!((d.status, d.triage), (Status::Triage, Some(TriageReason::NotClassified)));
        assert_eq!(d.level, Level::District);
    }

    #[test]
    fn hotline_names_and_time_limit() {
        let d = router().decide(&RouteInput {
            content: "楼道垃圾",
            street: Some("八大峡街道"),
            community: Some("团岛社区"),
            hotline_class: Some("环境卫生"),
            time_limit_days: Some(1),
            received_at: Some("2026-11-27T01:00:00Z".parse().unwrap()),
            ..Default::default()
        });
        assert_eq!(d.unit, unit("shinan.badaxia.tuandao"));
        assert_eq!(d.grid, None);
        assert_eq!(d.working_days, 1);
        assert_eq!(d.deadlines.respond_by, "2026-11-27T05:00:00Z".parse::<DateTime<Utc>>().unwrap());
        assert_eq!(d.deadlines.resolve_by, "2026-11-30T09:30:00Z".parse::<DateTime<Utc>>().unwrap());
    }

    #[test]
    fn livelihood_placed_only_to_a_street_stays_at_the_street() {
        let d = router().decide(&RouteInput { content: "路灯坏了", street: Some("八大峡街道"), ..Default::default() });
        assert_eq!((d.status, d.unit.as_str()), (Status::Assigned, "shinan.badaxia"));
    }
}
