//! Placing a petition on the grid from whatever the channel told us.

use serde::Serialize;

use super::Registry;
use crate::domain::{GeoPoint, Level, UnitPath};

#[derive(Debug, Clone, Copy, Default)]
pub struct LocateQuery<'a> {
    pub point: Option<GeoPoint>,
    pub building_id: Option<&'a str>,
    /// Hotline `street` / `community` names.
    pub street: Option<&'a str>,
    pub community: Option<&'a str>,
    pub address: Option<&'a str>,
    /// The petition text, searched last for place names.
    pub content: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LocatedBy {
    Building,
    Point,
    HotlineNames,
    Address,
    Content,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    /// The grid, when the place is that precise.
    pub grid: Option<UnitPath>,
    /// The most specific unit the place falls in.
    pub unit: UnitPath,
    pub level: Level,
    pub by: LocatedBy,
}

impl Location {
    fn new(unit: &UnitPath, by: LocatedBy) -> Self {
        Location { grid: (unit.level() == Level::Grid).then(|| unit.clone()), unit: unit.clone(), level: unit.level(), by }
    }
}

impl Registry {
    /// Most reliable first: the App's building, the point, the hotline's
    /// unit names, then place names in the address and the text.
    pub fn locate(&self, q: &LocateQuery<'_>) -> Option<Location> {
        if let Some(unit) = q.building_id.and_then(|b| self.building(b)) {
            return Some(Location::new(unit, LocatedBy::Building));
        }
        if let Some(unit) = q.point.and_then(|p| self.grid_at(p.lng(), p.lat())) {
            return Some(Location::new(unit, LocatedBy::Point));
        }
        if let Some(unit) = self.hotline_names(q.street, q.community) {
            return Some(Location::new(unit, LocatedBy::HotlineNames));
        }
        if let Some(unit) = q.address.and_then(|a| self.find_in_text(a)) {
            return Some(Location::new(unit, LocatedBy::Address));
        }
        q.content.and_then(|c| self.find_in_text(c)).map(|unit| Location::new(unit, LocatedBy::Content))
    }

    /// A community inside the named street wins; a community that
    /// contradicts the street is not trusted over it.
    fn hotline_names(&self, street: Option<&str>, community: Option<&str>) -> Option<&UnitPath> {
        let street = street.and_then(|s| self.by_name(s)).filter(|u| u.level() == Level::Street);
        let community = community.and_then(|c| self.by_name(c)).filter(|u| u.level() >= Level::Community);
        match (street, community) {
            (Some(s), Some(c)) if c.is_within(s) => Some(c),
            (Some(s), _) => Some(s),
            (None, c) => c,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r() -> Registry {
        Registry::bundled()
    }

    fn path(s: &str) -> UnitPath {
        s.parse().unwrap()
    }

    #[test]
    fn building_id_finds_its_special_grid() {
        let l = r().locate(&LocateQuery { building_id: Some("B001"), ..Default::default() }).unwrap();
        assert_eq!(l.by, LocatedBy::Building);
        assert_eq!(l.grid.unwrap().as_str(), "shinan.zhanshan.xiuzhanlu.s01");
    }

    #[test]
    fn hotline_names_place_the_community_or_street() {
        let reg = r();
        let q = |street, community| LocateQuery { street, community, ..Default::default() };
        let l = reg.locate(&q(Some("八大峡街道"), Some("团岛社区"))).unwrap();
        assert_eq!((l.unit, l.level, l.grid), (path("shinan.badaxia.tuandao"), Level::Community, None));
        assert_eq!(reg.locate(&q(None, Some("团岛社区"))).unwrap().unit, path("shinan.badaxia.tuandao"));
        assert_eq!(reg.locate(&q(Some("八大峡街道"), None)).unwrap().unit, path("shinan.badaxia"));
        // A community of another street: the street is kept.
        assert_eq!(reg.locate(&q(Some("八大峡街道"), Some("云霄路社区"))).unwrap().unit, path("shinan.badaxia"));
        assert!(reg.locate(&q(Some("不存在街道"), None)).is_none());
    }

    #[test]
    fn address_text_finds_buildings_landmarks_and_roads() {
        let reg = r();
        let by_address = |a| reg.locate(&LocateQuery { address: Some(a), ..Default::default() }).unwrap().unit;
        assert_eq!(by_address("香港西路青岛海天中心写字楼12层"), path("shinan.zhanshan.xiuzhanlu.s01"));
        assert_eq!(by_address("山东路6号华润万象城B1"), path("shinan.badahu.tiantailu.s01"));
        assert_eq!(by_address("五四广场东侧"), path("shinan.xianggangzhonglu.wusiguangchang"));
        let in_text = reg.locate(&LocateQuery { content: Some("团岛附近路灯不亮"), ..Default::default() }).unwrap();
        assert_eq!((in_text.unit, in_text.by), (path("shinan.badaxia.tuandao"), LocatedBy::Content));
    }

    #[test]
    fn points_outside_shinan_are_not_placed() {
        let q = LocateQuery { point: Some(GeoPoint::new(113.35, 23.13).unwrap()), ..Default::default() };
        assert!(r().locate(&q).is_none());
    }
}
