//! The unit registry: district → streets → communities → grids, with grid
//! geometry, the address dictionary and the responsible persons. Format:
//! `docs/registry.md`; the bundled file is `data/registry/shinan.json`.

use std::collections::HashMap;

use aho_corasick::{AhoCorasick, MatchKind};
use rstar::{AABB, RTree, RTreeObject};
use serde::{Deserialize, Serialize};

use crate::domain::{Level, Person, UnitPath};

pub const BUNDLED: &str = include_str!("../../data/registry/shinan.json");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GridKind {
    Basic,
    Special,
}

#[derive(Deserialize)]
struct RegistryFile {
    format: String,
    district: UnitPath,
    units: Vec<UnitEntry>,
    grids: Vec<GridEntry>,
    addresses: Vec<AddressEntry>,
}

#[derive(Deserialize)]
struct UnitEntry {
    path: UnitPath,
    level: Level,
    name: String,
    code: Option<String>,
    #[serde(default)]
    persons: Vec<Person>,
}

#[derive(Deserialize)]
struct GridEntry {
    path: UnitPath,
    kind: GridKind,
    name: String,
    polygon: Vec<[f64; 2]>,
    #[serde(default)]
    buildings: Vec<String>,
    worker: Option<Person>,
}

#[derive(Deserialize)]
struct AddressEntry {
    name: String,
    unit: UnitPath,
}

/// One unit of any level.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unit {
    pub path: UnitPath,
    pub name: String,
    pub code: Option<String>,
    pub grid_kind: Option<GridKind>,
    pub persons: Vec<Person>,
}

impl Unit {
    /// Who answers for the unit: the grid worker or building steward; the
    /// directly responsible person of a "1+1+1" team.
    pub fn handler(&self) -> Option<&Person> {
        self.persons.iter().find(|p| matches!(p.role.as_str(), "grid_worker" | "building_steward" | "responsible")).or(self.persons.first())
    }
}

struct GridShape {
    path: UnitPath,
    special: bool,
    ring: Vec<[f64; 2]>,
    envelope: AABB<[f64; 2]>,
}

impl RTreeObject for GridShape {
    type Envelope = AABB<[f64; 2]>;
    fn envelope(&self) -> Self::Envelope {
        self.envelope
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry is not valid JSON of the nuannan-registry/1 format: {0}")]
    Format(#[from] serde_json::Error),
    #[error("registry: {0}")]
    Invalid(String),
}

pub struct Registry {
    district: UnitPath,
    units: HashMap<UnitPath, Unit>,
    grids: RTree<GridShape>,
    buildings: HashMap<String, UnitPath>,
    names: HashMap<String, UnitPath>,
    dictionary: AhoCorasick,
    dictionary_units: Vec<UnitPath>,
}

impl Registry {
    pub fn bundled() -> Registry {
        Registry::from_json(BUNDLED).expect("bundled registry is valid")
    }

    pub fn from_json(text: &str) -> Result<Registry, RegistryError> {
        let file: RegistryFile = serde_json::from_str(text)?;
        let invalid = |msg: String| Err(RegistryError::Invalid(msg));
        if file.format != "nuannan-registry/1" {
            return invalid(format!("unknown format `{}`", file.format));
        }
        let mut units = HashMap::new();
        for u in file.units {
            if u.level != u.path.level() || u.level == Level::Grid {
                return invalid(format!("{} is listed as {:?}", u.path, u.level));
            }
            let unit = Unit { path: u.path.clone(), name: u.name, code: u.code, grid_kind: None, persons: u.persons };
            units.insert(u.path, unit);
        }
        let mut shapes = Vec::new();
        let mut buildings = HashMap::new();
        for g in file.grids {
            if g.path.level() != Level::Grid {
                return invalid(format!("grid {} is not four levels deep", g.path));
            }
            if g.polygon.len() < 4 || g.polygon.first() != g.polygon.last() {
                return invalid(format!("grid {} needs a closed polygon ring", g.path));
            }
            for b in g.buildings {
                buildings.insert(b, g.path.clone());
            }
            shapes.push(GridShape {
                path: g.path.clone(),
                special: g.kind == GridKind::Special,
                envelope: AABB::from_points(g.polygon.iter()),
                ring: g.polygon,
            });
            let persons = g.worker.into_iter().collect();
            let unit = Unit { path: g.path.clone(), name: g.name, code: None, grid_kind: Some(g.kind), persons };
            units.insert(g.path, unit);
        }
        for path in units.keys() {
            if let Some(parent) = path.parent()
                && !units.contains_key(&parent)
            {
                return invalid(format!("{path} has no parent unit {parent}"));
            }
        }
        if !units.contains_key(&file.district) {
            return invalid(format!("district {} is not a unit", file.district));
        }
        let mut names = HashMap::new();
        for a in &file.addresses {
            if !units.contains_key(&a.unit) {
                return invalid(format!("address `{}` points at unknown unit {}", a.name, a.unit));
            }
            names.insert(a.name.clone(), a.unit.clone());
        }
        for u in units.values() {
            names.entry(u.name.clone()).or_insert_with(|| u.path.clone());
        }
        let dictionary = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(file.addresses.iter().map(|a| a.name.as_str()))
            .map_err(|e| RegistryError::Invalid(e.to_string()))?;
        Ok(Registry {
            district: file.district,
            units,
            grids: RTree::bulk_load(shapes),
            buildings,
            names,
            dictionary,
            dictionary_units: file.addresses.into_iter().map(|a| a.unit).collect(),
        })
    }

    pub fn district(&self) -> &UnitPath {
        &self.district
    }

    pub fn unit(&self, path: &UnitPath) -> Option<&Unit> {
        self.units.get(path)
    }

    pub fn units(&self) -> impl Iterator<Item = &Unit> {
        self.units.values()
    }

    /// The units one level below `path`, ordered by path.
    pub fn children(&self, path: &UnitPath) -> Vec<&Unit> {
        let mut children: Vec<&Unit> = self.units.values().filter(|u| u.path.parent().as_ref() == Some(path)).collect();
        children.sort_by(|a, b| a.path.as_str().cmp(b.path.as_str()));
        children
    }

    /// Every grid: its path, whether it is special, and its polygon ring (`[lng, lat]`).
    pub fn grid_shapes(&self) -> impl Iterator<Item = (&UnitPath, bool, &[[f64; 2]])> {
        self.grids.iter().map(|g| (&g.path, g.special, g.ring.as_slice()))
    }

    /// The grid containing the point; a special grid (a building, a campus)
    /// wins over the basic grid around it.
    pub fn grid_at(&self, lng: f64, lat: f64) -> Option<&UnitPath> {
        self.grids
            .locate_in_envelope_intersecting(&AABB::from_point([lng, lat]))
            .filter(|g| contains(&g.ring, lng, lat))
            .max_by_key(|g| g.special)
            .map(|g| &g.path)
    }

    pub fn building(&self, id: &str) -> Option<&UnitPath> {
        self.buildings.get(id)
    }

    /// Exact unit name as people write it: `八大峡街道`, `团岛社区`, `团岛`.
    pub fn by_name(&self, name: &str) -> Option<&UnitPath> {
        self.names.get(name.trim())
    }

    /// The most specific unit named anywhere in free text (roads,
    /// buildings, landmarks, unit names); longest match first.
    pub fn find_in_text(&self, text: &str) -> Option<&UnitPath> {
        self.dictionary.find_iter(text).map(|m| &self.dictionary_units[m.pattern().as_usize()]).max_by_key(|u| u.level())
    }
}

/// Ray casting; points on the boundary count as inside for one of the
/// neighbouring cells, which is all tiling needs.
fn contains(ring: &[[f64; 2]], x: f64, y: f64) -> bool {
    let mut inside = false;
    for w in ring.windows(2) {
        let ([x1, y1], [x2, y2]) = (w[0], w[1]);
        if (y1 > y) != (y2 > y) && x < (x2 - x1) * (y - y1) / (y2 - y1) + x1 {
            inside = !inside;
        }
    }
    inside
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_registry_has_the_shinan_tree() {
        let r = Registry::bundled();
        let count = |level| r.units().filter(|u| u.path.level() == level).count();
        assert_eq!(count(Level::District), 1);
        assert_eq!(count(Level::Street), 11);
        assert_eq!(count(Level::Community), 50);
        let grids: Vec<_> = r.units().filter(|u| u.grid_kind.is_some()).collect();
        assert_eq!(grids.iter().filter(|u| u.grid_kind == Some(GridKind::Basic)).count(), 505);
        assert_eq!(grids.iter().filter(|u| u.grid_kind == Some(GridKind::Special)).count(), 68);
        let tuandao = r.unit(&"shinan.badaxia.tuandao".parse().unwrap()).unwrap();
        assert_eq!((tuandao.name.as_str(), tuandao.code.as_deref()), ("团岛社区", Some("370202002008")));
        assert!(grids.iter().all(|g| g.handler().is_some()), "every grid has its worker");
        let street = r.unit(&"shinan.badaxia".parse().unwrap()).unwrap();
        assert_eq!(street.persons.len(), 3, "the 1+1+1 team");
        assert_eq!(street.handler().unwrap().role, "responsible");
    }

    #[test]
    fn ray_casting() {
        let square = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.0]];
        assert!(contains(&square, 0.5, 0.5));
        assert!(!contains(&square, 1.5, 0.5));
        assert!(!contains(&square, 0.5, -0.1));
    }

    #[test]
    fn every_grid_centre_locates_to_that_grid() {
        let r = Registry::bundled();
        for shape in r.grids.iter() {
            let [[x0, y0], [x1, y1]] = [shape.envelope.lower(), shape.envelope.upper()];
            let (x, y) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
            let found = r.grid_at(x, y).unwrap();
            if shape.special {
                assert_eq!(found, &shape.path);
            } else {
                // Unless a special grid sits exactly on the basic grid's centre.
                assert!(found == &shape.path || found.parent() == shape.path.parent(), "{found} vs {}", shape.path);
            }
        }
    }

    #[test]
    fn bad_registries_are_refused() {
        assert!(Registry::from_json("{}").is_err());
        let orphan = r#"{"format":"nuannan-registry/1","district":"x","units":[{"path":"x","level":"district","name":"X"}],
            "grids":[{"path":"x.a.b.g001","kind":"basic","name":"g","polygon":[[0,0],[1,0],[1,1],[0,0]]}],"addresses":[]}"#;
        assert!(matches!(Registry::from_json(orphan), Err(RegistryError::Invalid(_))));
    }
}
