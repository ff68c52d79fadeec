//! Hot spots (未诉先办): petitions of one category that cluster in one grid,
//! or within `hotspot.radius_m` of one another, within `hotspot.window_days`.
//! The platform tells the responsible unit before the next resident has to
//! ask. Pure: the deadline role reads the recent petitions, asks [`detect`]
//! for the clusters and [`reconcile`] which of them are new, and raises each
//! new one once (`docs/deadlines.md`, "Hot spots").

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};

use crate::config::HotspotSettings;
use crate::domain::{Category, GeoPoint, HotspotNotice, PetitionId, UnitPath};

/// Mean earth radius, as elsewhere in the code.
const EARTH_RADIUS_M: f64 = 6_371_000.0;

/// A recent petition, as detection sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Sighting {
    pub id: PetitionId,
    pub category: Category,
    /// Its grid, when routing placed it that precisely.
    pub grid: Option<UnitPath>,
    /// The unit routing made responsible (not where escalations moved it since).
    pub unit: UnitPath,
    /// WGS-84.
    pub point: Option<GeoPoint>,
    /// Receipt time.
    pub at: DateTime<Utc>,
}

/// `hotspot.*` as detection applies it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Petitions that make a cluster (the configuration keeps it ≥ 2).
    pub min_count: usize,
    pub window: Duration,
    pub radius_m: f64,
}

impl Rule {
    pub fn new(s: &HotspotSettings) -> Self {
        Rule { min_count: s.min_count as usize, window: Duration::days(i64::from(s.window_days)), radius_m: s.radius_m }
    }

    /// The oldest receipt time that still counts at `now`.
    pub fn since(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now - self.window
    }

    /// When a raised cluster whose latest petition arrived at `last_at` has
    /// none of its petitions left in the window: its record may go then.
    pub fn expires_at(&self, last_at: DateTime<Utc>) -> DateTime<Utc> {
        last_at + self.window
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterKind {
    /// Same grid.
    Grid,
    /// All within `radius_m` of one of them (its anchor), whatever their grids.
    Near,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    /// `grid:<category>:<grid>:<first petition>` or `near:<category>:<anchor petition>`.
    pub key: String,
    pub kind: ClusterKind,
    /// The unit responsible for all its petitions (their common ancestor).
    pub unit: UnitPath,
    pub category: Category,
    pub grid: Option<UnitPath>,
    /// Oldest first.
    pub petition_ids: Vec<PetitionId>,
    pub first_at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
}

impl Cluster {
    /// What is published when it is raised at `at`.
    pub fn notice(&self, at: DateTime<Utc>) -> HotspotNotice {
        HotspotNotice {
            key: self.key.clone(),
            unit: self.unit.clone(),
            category: self.category,
            grid: self.grid.clone(),
            petition_ids: self.petition_ids.clone(),
            count: self.petition_ids.len(),
            first_at: self.first_at,
            last_at: self.last_at,
            at,
        }
    }
}

/// The clusters among `sightings` at `now`: at least `min_count` petitions
/// of one category received within the window, either in the same grid or
/// all within `radius_m` of one of them. The result depends only on the
/// sightings (not on their order), so every deadline worker finds the same
/// clusters with the same keys.
///
/// - **Grids first, then distance.** A grid has an owner and is the more
///   precise statement, so same-grid clusters are formed first, and their
///   petitions take no part in distance clustering: one group is never
///   reported both as a grid and as a `near` cluster. Distance catches what
///   grid boundaries split (and petitions with a point but no grid).
/// - **Distance is greedy around one anchor.** Petitions are taken oldest
///   first; each one not yet in a cluster is the anchor of a candidate made
///   of the unclustered petitions within `radius_m` of it (haversine), which
///   becomes a cluster if it is big enough. Anchored rather than chained, so
///   a cluster is one place (at most 2 × `radius_m` across) and never a
///   string of petitions spanning a district; oldest first, so the anchor is
///   the oldest petition that makes a cluster, and a petition that arrives
///   later joins it rather than moving it. A latitude-band index keeps this
///   near-linear (see `Nearby`).
/// - **Keys.** `grid:<category>:<grid>:<oldest petition>` and
///   `near:<category>:<anchor petition>`. A newer petition joining leaves the
///   oldest (or anchor) petition, hence the key, unchanged. The petition in
///   the key makes each key one raise: a grid that clusters again after a
///   quiet spell is a new raise with a new key, and message and event ids
///   (`hotspot/<key>`) are never reused. Keys move when the window passes
///   their petition, when a late petition with an older receipt time joins,
///   or when a newcomer makes an older petition an anchor: then the cluster
///   shares petitions with the one raised before, and [`reconcile`] (and in
///   the store, the unique index on member petitions) treats it as that one.
pub fn detect(sightings: &[Sighting], rule: &Rule, now: DateTime<Utc>) -> Vec<Cluster> {
    let since = rule.since(now);
    let mut recent: Vec<&Sighting> = sightings.iter().filter(|s| s.at >= since).collect();
    recent.sort_by(|a, b| (a.at, a.id.as_str()).cmp(&(b.at, b.id.as_str())));

    let mut clusters = Vec::new();
    let mut by_grid: HashMap<(Category, &UnitPath), Vec<&Sighting>> = HashMap::new();
    for s in &recent {
        if let Some(grid) = &s.grid {
            by_grid.entry((s.category, grid)).or_default().push(s);
        }
    }
    let mut in_grid_cluster: HashSet<&PetitionId> = HashSet::new();
    for ((category, grid), members) in by_grid {
        if members.len() < rule.min_count {
            continue;
        }
        let key = format!("grid:{}:{grid}:{}", category.as_str(), members[0].id);
        if let Some(cluster) = cluster(key, ClusterKind::Grid, Some(grid.clone()), &members) {
            in_grid_cluster.extend(members.iter().map(|s| &s.id));
            clusters.push(cluster);
        }
    }

    for category in [Category::Livelihood, Category::Enforcement, Category::Development] {
        let candidates: Vec<(&Sighting, GeoPoint)> = recent
            .iter()
            .filter(|s| s.category == category && !in_grid_cluster.contains(&s.id))
            .filter_map(|s| s.point.map(|p| (*s, p)))
            .collect();
        let nearby = Nearby::new(candidates.iter().map(|(_, p)| *p).collect(), rule.radius_m);
        let mut taken = vec![false; candidates.len()];
        for anchor in 0..candidates.len() {
            if taken[anchor] {
                continue;
            }
            let around: Vec<usize> = nearby.around(anchor).into_iter().filter(|&i| !taken[i]).collect();
            if around.len() < rule.min_count {
                continue;
            }
            let members: Vec<&Sighting> = around.iter().map(|&i| candidates[i].0).collect();
            let key = format!("near:{}:{}", category.as_str(), candidates[anchor].0.id);
            if let Some(cluster) = cluster(key, ClusterKind::Near, None, &members) {
                around.iter().for_each(|&i| taken[i] = true);
                clusters.push(cluster);
            }
        }
    }
    clusters.sort_by(|a, b| (a.first_at, &a.key).cmp(&(b.first_at, &b.key)));
    clusters
}

/// `members` oldest first. `None` if they share no unit at all (petitions
/// of different districts): nobody to raise it for.
fn cluster(key: String, kind: ClusterKind, grid: Option<UnitPath>, members: &[&Sighting]) -> Option<Cluster> {
    let (first, last) = (members.first()?, members.last()?);
    Some(Cluster {
        key,
        kind,
        unit: common_unit(members.iter().map(|s| &s.unit))?,
        category: first.category,
        grid,
        petition_ids: members.iter().map(|s| s.id.clone()).collect(),
        first_at: first.at,
        last_at: last.at,
    })
}

/// The lowest unit that contains all of `units`. By the dispatch rule, that
/// is the grid's community for livelihood petitions in a basic grid, the
/// building team for a special grid, the street for enforcement and
/// development: the unit that handles every one of them, so it can act.
fn common_unit<'a>(units: impl IntoIterator<Item = &'a UnitPath>) -> Option<UnitPath> {
    let mut common: Option<UnitPath> = None;
    for unit in units {
        let mut c = common.unwrap_or_else(|| unit.clone());
        while !unit.is_within(&c) {
            c = c.parent()?;
        }
        common = Some(c);
    }
    common
}

/// Great-circle distance in metres (haversine).
pub fn distance_m(a: GeoPoint, b: GeoPoint) -> f64 {
    let (lat_a, lat_b) = (a.lat().to_radians(), b.lat().to_radians());
    let half_dlat = (lat_b - lat_a) / 2.0;
    let half_dlng = (b.lng() - a.lng()).to_radians() / 2.0;
    let h = half_dlat.sin().powi(2) + lat_a.cos() * lat_b.cos() * half_dlng.sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
}

/// Points bucketed in latitude bands `radius_m` wide, each band sorted by
/// longitude, so finding the neighbours of one looks at its own band and
/// the two beside it, and only at the longitudes that can be in reach. Both
/// bounds are exact, the haversine decides: two points within `radius_m`
/// are at most one band apart (the great-circle distance is at least the
/// meridian arc between their latitudes), and a circle of angular radius δ
/// around latitude φ spans `asin(sin δ / cos φ)` of longitude either side.
struct Nearby {
    radius_m: f64,
    points: Vec<GeoPoint>,
    bands: HashMap<i64, Vec<(f64, usize)>>,
}

impl Nearby {
    fn new(points: Vec<GeoPoint>, radius_m: f64) -> Self {
        let mut nearby = Nearby { radius_m, points, bands: HashMap::new() };
        for (i, p) in nearby.points.iter().enumerate() {
            nearby.bands.entry(band(*p, radius_m)).or_default().push((p.lng(), i));
        }
        for row in nearby.bands.values_mut() {
            row.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        nearby
    }

    /// Indices of the points within `radius_m` of point `i`, itself included, ascending.
    fn around(&self, i: usize) -> Vec<usize> {
        let p = self.points[i];
        let ranges = longitudes(p, self.radius_m);
        let here = band(p, self.radius_m);
        let mut found = Vec::new();
        for row in (here - 1..=here + 1).filter_map(|b| self.bands.get(&b)) {
            for &(lo, hi) in &ranges {
                let start = row.partition_point(|(lng, _)| *lng < lo);
                for &(_, j) in row[start..].iter().take_while(|(lng, _)| *lng <= hi) {
                    if distance_m(p, self.points[j]) <= self.radius_m {
                        found.push(j);
                    }
                }
            }
        }
        found.sort_unstable();
        found.dedup();
        found
    }
}

fn band(p: GeoPoint, radius_m: f64) -> i64 {
    (p.lat().to_radians() * EARTH_RADIUS_M / radius_m).floor() as i64
}

/// The longitude ranges (degrees) within `radius_m` of `p`: one, two across
/// the antimeridian, or all of them when the circle reaches a pole.
fn longitudes(p: GeoPoint, radius_m: f64) -> Vec<(f64, f64)> {
    let ratio = (radius_m / EARTH_RADIUS_M).sin() / p.lat().to_radians().cos();
    if !(0.0..1.0).contains(&ratio) {
        return vec![(-180.0, 180.0)];
    }
    // A hair wider than exact, against rounding: the haversine decides.
    let span = ratio.asin().to_degrees() * (1.0 + 1e-9) + 1e-9;
    let (lo, hi) = (p.lng() - span, p.lng() + span);
    let mut ranges = vec![(lo.max(-180.0), hi.min(180.0))];
    if lo < -180.0 {
        ranges.push((lo + 360.0, 180.0));
    }
    if hi > 180.0 {
        ranges.push((-180.0, hi - 360.0));
    }
    ranges
}

/// A cluster raised before whose record has not expired: its key and every
/// petition recorded with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Raised {
    pub key: String,
    pub petition_ids: Vec<PetitionId>,
}

/// What a scan does with the clusters it found.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// New clusters: each is raised once.
    pub raise: Vec<Cluster>,
    /// Raised clusters that grew: the newcomers are recorded under the
    /// raised key (which keeps the record, hence the once-only, alive while
    /// the cluster goes on); nothing is published again.
    pub grow: Vec<Growth>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Growth {
    /// The raised cluster's key.
    pub key: String,
    /// Petitions not recorded with any raised cluster yet.
    pub petition_ids: Vec<PetitionId>,
    pub first_at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
}

/// Sorts the clusters `detect` found against the ones already `raised`.
/// A cluster is one raised before if it has that one's key or shares any
/// petition with it (its key moved, see [`detect`]): then it only grows
/// that one. The store enforces the same rule (a unique index on member
/// petitions), so a raise this misses because another worker was quicker
/// fails there instead.
pub fn reconcile(clusters: Vec<Cluster>, raised: &[Raised]) -> Plan {
    let holder_of: HashMap<&PetitionId, &str> =
        raised.iter().flat_map(|r| r.petition_ids.iter().map(move |id| (id, r.key.as_str()))).collect();
    let mut plan = Plan::default();
    for cluster in clusters {
        let mut shared: HashMap<&str, usize> = HashMap::new();
        for id in &cluster.petition_ids {
            if let Some(key) = holder_of.get(id) {
                *shared.entry(*key).or_default() += 1;
            }
        }
        let same_key = raised.iter().find(|r| r.key == cluster.key).map(|r| r.key.as_str());
        // Its own key, else the raised cluster it shares most with (ties: the smaller key).
        let holder = same_key.or_else(|| shared.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0))).map(|(key, _)| *key));
        let Some(holder) = holder else {
            plan.raise.push(cluster);
            continue;
        };
        let newcomers: Vec<PetitionId> = cluster.petition_ids.iter().filter(|id| !holder_of.contains_key(id)).cloned().collect();
        if !newcomers.is_empty() {
            plan.grow.push(Growth {
                key: holder.to_owned(),
                petition_ids: newcomers,
                first_at: cluster.first_at,
                last_at: cluster.last_at,
            });
        }
    }
    plan
}

#[cfg(test)]
mod tests;
