use chrono::NaiveDate;

use super::*;

const COMMUNITY: &str = "shinan.badaxia.badaxia";
const G006: &str = "shinan.badaxia.badaxia.g006";
const G007: &str = "shinan.badaxia.badaxia.g007";
/// A grid of another community of the same street.
const TUANDAO_G001: &str = "shinan.badaxia.tuandao.g001";

fn now() -> DateTime<Utc> {
    "2026-03-10T08:00:00Z".parse().unwrap()
}

fn rule() -> Rule {
    Rule::new(&HotspotSettings { min_count: 3, window_days: 7, radius_m: 300.0, scan_interval_ms: 10_000 })
}

/// A point `north` and `east` metres from 120.30, 36.06 (in grid g006).
fn at_m(north: f64, east: f64) -> GeoPoint {
    let lat = 36.06 + north / 111_195.0;
    let lng = 120.30 + east / (111_195.0 * 36.06_f64.to_radians().cos());
    GeoPoint::new(lng, lat).unwrap()
}

struct S {
    n: u32,
    category: Category,
    grid: Option<&'static str>,
    unit: &'static str,
    point: Option<GeoPoint>,
    hours_ago: i64,
}

impl S {
    /// Petition `n` (received `n` hours before now unless told), livelihood,
    /// in g006, responsible: its community, at the g006 spot.
    fn new(n: u32) -> S {
        S {
            n,
            category: Category::Livelihood,
            grid: Some(G006),
            unit: COMMUNITY,
            point: Some(at_m(0.0, 0.0)),
            hours_ago: 100 - i64::from(n),
        }
    }
    fn category(self, category: Category, unit: &'static str) -> S {
        S { category, unit, ..self }
    }
    fn grid(self, grid: Option<&'static str>, unit: &'static str) -> S {
        S { grid, unit, ..self }
    }
    fn point(self, point: Option<GeoPoint>) -> S {
        S { point, ..self }
    }
    fn hours_ago(self, hours_ago: i64) -> S {
        S { hours_ago, ..self }
    }
    fn sighting(self) -> Sighting {
        Sighting {
            id: id(self.n),
            category: self.category,
            grid: self.grid.map(|g| g.parse().unwrap()),
            unit: self.unit.parse().unwrap(),
            point: self.point,
            at: now() - Duration::hours(self.hours_ago),
        }
    }
}

fn id(n: u32) -> PetitionId {
    PetitionId::new(NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(), n)
}

fn ids(ns: &[u32]) -> Vec<PetitionId> {
    ns.iter().map(|&n| id(n)).collect()
}

fn sightings(all: Vec<S>) -> Vec<Sighting> {
    all.into_iter().map(S::sighting).collect()
}

#[test]
fn three_in_one_grid_are_a_grid_cluster_for_its_community() {
    let clusters = detect(&sightings(vec![S::new(1), S::new(2), S::new(3)]), &rule(), now());
    assert_eq!(clusters.len(), 1, "{clusters:?}");
    let c = &clusters[0];
    assert_eq!(c.kind, ClusterKind::Grid);
    assert_eq!(c.key, format!("grid:livelihood:{G006}:{}", id(1)));
    assert_eq!(c.unit.as_str(), COMMUNITY, "the grid's community");
    assert_eq!(c.grid.as_ref().unwrap().as_str(), G006);
    assert_eq!(c.category, Category::Livelihood);
    assert_eq!(c.petition_ids, ids(&[1, 2, 3]), "oldest first");
    assert_eq!((c.first_at, c.last_at), (now() - Duration::hours(99), now() - Duration::hours(97)));

    let notice = c.notice(now());
    assert_eq!((notice.count, notice.at, notice.routing_key()), (3, now(), format!("hotspot.{COMMUNITY}")));
    assert_eq!(notice.message_id(), format!("hotspot/{}", c.key));
}

#[test]
fn two_are_not_enough() {
    assert!(detect(&sightings(vec![S::new(1), S::new(2)]), &rule(), now()).is_empty());
    let four = Rule { min_count: 4, ..rule() };
    assert!(detect(&sightings(vec![S::new(1), S::new(2), S::new(3)]), &four, now()).is_empty());
}

#[test]
fn petitions_outside_the_window_do_not_count() {
    let week = 7 * 24;
    let old = detect(&sightings(vec![S::new(1).hours_ago(week + 1), S::new(2), S::new(3)]), &rule(), now());
    assert!(old.is_empty(), "{old:?}");
    let just_in = detect(&sightings(vec![S::new(1).hours_ago(week - 1), S::new(2), S::new(3)]), &rule(), now());
    assert_eq!(just_in.len(), 1);
}

#[test]
fn categories_do_not_mix() {
    let street = "shinan.badaxia";
    let mixed = sightings(vec![S::new(1), S::new(2), S::new(3).category(Category::Enforcement, street)]);
    assert!(detect(&mixed, &rule(), now()).is_empty(), "neither by grid nor by distance");
    let mixed = sightings(vec![
        S::new(1).grid(None, COMMUNITY),
        S::new(2).grid(None, COMMUNITY),
        S::new(3).grid(None, street).category(Category::Development, street),
    ]);
    assert!(detect(&mixed, &rule(), now()).is_empty());
}

#[test]
fn nearby_petitions_across_grids_are_a_near_cluster_for_their_common_unit() {
    let clusters = detect(
        &sightings(vec![
            S::new(1).point(Some(at_m(0.0, 0.0))),
            S::new(2).point(Some(at_m(100.0, 50.0))),
            // Over the border, in another community: 200 m away.
            S::new(3).grid(Some(TUANDAO_G001), "shinan.badaxia.tuandao").point(Some(at_m(-120.0, 160.0))),
        ]),
        &rule(),
        now(),
    );
    assert_eq!(clusters.len(), 1, "{clusters:?}");
    let c = &clusters[0];
    assert_eq!((c.kind, c.key.clone()), (ClusterKind::Near, format!("near:livelihood:{}", id(1))));
    assert_eq!(c.unit.as_str(), "shinan.badaxia", "the street both communities belong to");
    assert_eq!(c.grid, None);
    assert_eq!(c.petition_ids, ids(&[1, 2, 3]));
}

#[test]
fn petitions_without_a_grid_cluster_by_distance() {
    let clusters = detect(&sightings((1..=3).map(|n| S::new(n).grid(None, "shinan")).collect()), &rule(), now());
    assert_eq!(clusters.len(), 1);
    assert_eq!((clusters[0].kind, clusters[0].unit.as_str()), (ClusterKind::Near, "shinan"));
}

#[test]
fn a_near_cluster_is_all_within_the_radius_of_its_anchor() {
    // On a line 250 m apart, oldest first: 1 reaches only 2; 2 reaches 1 and 3.
    let line = |n: u32, metres: f64| S::new(n).grid(None, COMMUNITY).point(Some(at_m(0.0, metres)));
    let clusters = detect(&sightings(vec![line(1, 0.0), line(2, 250.0), line(3, 500.0), line(4, 750.0)]), &rule(), now());
    assert_eq!(clusters.len(), 1, "{clusters:?}");
    assert_eq!(clusters[0].key, format!("near:livelihood:{}", id(2)), "anchored at the one they are all near");
    assert_eq!(clusters[0].petition_ids, ids(&[1, 2, 3]), "4 is 500 m from the anchor");
}

#[test]
fn petitions_farther_apart_than_the_radius_are_not_a_cluster() {
    // A triangle with 400 m sides: no one is within 300 m of the two others.
    let spread = sightings(vec![
        S::new(1).grid(None, COMMUNITY).point(Some(at_m(0.0, 0.0))),
        S::new(2).grid(None, COMMUNITY).point(Some(at_m(0.0, 400.0))),
        S::new(3).grid(None, COMMUNITY).point(Some(at_m(346.4, 200.0))),
    ]);
    assert!(detect(&spread, &rule(), now()).is_empty());
    assert_eq!(detect(&spread, &Rule { radius_m: 410.0, ..rule() }, now()).len(), 1);
    let no_points: Vec<Sighting> = (1..=3).map(|n| S::new(n).grid(None, COMMUNITY).point(None).sighting()).collect();
    assert!(detect(&no_points, &rule(), now()).is_empty(), "neither a grid nor a point");
}

#[test]
fn the_key_stays_when_a_fourth_petition_joins() {
    let three = vec![S::new(1), S::new(2), S::new(3)];
    let before = detect(&sightings(three), &rule(), now());
    let after = detect(&sightings(vec![S::new(1), S::new(2), S::new(3), S::new(4)]), &rule(), now());
    assert_eq!(after[0].key, before[0].key);
    assert_eq!(after[0].petition_ids, ids(&[1, 2, 3, 4]));

    let near = |n: u32, east: f64| S::new(n).grid(None, COMMUNITY).point(Some(at_m(0.0, east)));
    let before = detect(&sightings(vec![near(1, 0.0), near(2, 100.0), near(3, 200.0)]), &rule(), now());
    let after = detect(&sightings(vec![near(1, 0.0), near(2, 100.0), near(3, 200.0), near(4, -150.0)]), &rule(), now());
    assert_eq!(after[0].key, before[0].key);
    assert_eq!(after[0].petition_ids.len(), 4);
}

#[test]
fn a_group_is_reported_as_a_grid_cluster_not_also_as_a_near_one() {
    // Three in g006 and one over the border 50 m away: the grid cluster only.
    let group = sightings(vec![S::new(1), S::new(2), S::new(3), S::new(4).grid(Some(G007), COMMUNITY).point(Some(at_m(50.0, 0.0)))]);
    let clusters = detect(&group, &rule(), now());
    assert_eq!(clusters.len(), 1, "{clusters:?}");
    assert_eq!((clusters[0].kind, clusters[0].petition_ids.clone()), (ClusterKind::Grid, ids(&[1, 2, 3])));

    // Three in each of two grids, all within 100 m: two grid clusters.
    let both: Vec<Sighting> =
        sightings((1..=6).map(|n| if n % 2 == 0 { S::new(n).grid(Some(G007), COMMUNITY) } else { S::new(n) }).collect());
    let clusters = detect(&both, &rule(), now());
    assert_eq!(clusters.iter().map(|c| c.kind).collect::<Vec<_>>(), [ClusterKind::Grid, ClusterKind::Grid]);
}

#[test]
fn enforcement_clusters_go_to_the_street_that_handles_them() {
    let street = "shinan.badaxia";
    let clusters = detect(&sightings((1..=3).map(|n| S::new(n).category(Category::Enforcement, street)).collect()), &rule(), now());
    assert_eq!(clusters[0].unit.as_str(), street);
    assert!(clusters[0].key.starts_with("grid:enforcement:"));
}

#[test]
fn the_order_of_the_sightings_does_not_matter() {
    let all = || {
        sightings(vec![
            S::new(1),
            S::new(2),
            S::new(3),
            S::new(4).grid(None, COMMUNITY).point(Some(at_m(1000.0, 0.0))),
            S::new(5).grid(None, COMMUNITY).point(Some(at_m(1100.0, 0.0))),
            S::new(6).grid(None, COMMUNITY).point(Some(at_m(1000.0, 100.0))),
        ])
    };
    let forward = detect(&all(), &rule(), now());
    let mut reversed = all();
    reversed.reverse();
    assert_eq!(forward.len(), 2);
    assert_eq!(detect(&reversed, &rule(), now()), forward);
}

#[test]
fn distances_are_great_circle_metres() {
    let p = |lng, lat| GeoPoint::new(lng, lat).unwrap();
    assert!((distance_m(p(120.0, 36.0), p(120.0, 37.0)) - 111_195.0).abs() < 1.0);
    // A thousandth of a degree of longitude at 36.06° N.
    assert!((distance_m(p(120.300, 36.06), p(120.301, 36.06)) - 89.88).abs() < 0.05);
    assert_eq!(distance_m(p(120.3, 36.06), p(120.3, 36.06)), 0.0);
    assert!((distance_m(p(179.9995, 0.0), p(-179.9995, 0.0)) - 111.2).abs() < 0.1, "across the antimeridian");
}

#[test]
fn the_band_index_finds_exactly_what_comparing_every_pair_finds() {
    // A small deterministic generator: no dependency for a test.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    let places = [(120.30, 36.06, 0.03), (179.999, 10.0, 0.004), (-179.999, 10.0, 0.004), (30.0, 89.999, 0.01), (0.0, -0.001, 0.01)];
    let mut points = Vec::new();
    for (lng, lat, spread) in places {
        for _ in 0..150 {
            let lng = (lng + (next() - 0.5) * spread).clamp(-180.0, 180.0);
            let lat = (lat + (next() - 0.5) * spread).clamp(-90.0, 90.0);
            points.push(GeoPoint::new(lng, lat).unwrap());
        }
    }
    for radius in [1.0, 120.0, 300.0, 2_500.0] {
        let nearby = Nearby::new(points.clone(), radius);
        for (i, p) in points.iter().enumerate() {
            let brute: Vec<usize> = (0..points.len()).filter(|&j| distance_m(*p, points[j]) <= radius).collect();
            assert_eq!(nearby.around(i), brute, "point {i} {p:?}, radius {radius}");
        }
    }
}

fn raised(cluster: &Cluster) -> Raised {
    Raised { key: cluster.key.clone(), petition_ids: cluster.petition_ids.clone() }
}

#[test]
fn a_new_cluster_is_raised() {
    let clusters = detect(&sightings(vec![S::new(1), S::new(2), S::new(3)]), &rule(), now());
    let plan = reconcile(clusters.clone(), &[]);
    assert_eq!(plan, Plan { raise: clusters, grow: vec![] });
}

#[test]
fn a_raised_cluster_is_not_raised_again_and_grows_by_its_newcomers() {
    let first = detect(&sightings(vec![S::new(1), S::new(2), S::new(3)]), &rule(), now());
    let record = [raised(&first[0])];
    assert_eq!(reconcile(first.clone(), &record), Plan::default(), "the same three: nothing to do");

    let grown = detect(&sightings(vec![S::new(1), S::new(2), S::new(3), S::new(4)]), &rule(), now());
    let plan = reconcile(grown, &record);
    assert!(plan.raise.is_empty());
    assert_eq!(plan.grow.len(), 1);
    assert_eq!((plan.grow[0].key.clone(), plan.grow[0].petition_ids.clone()), (first[0].key.clone(), ids(&[4])));
    assert_eq!(plan.grow[0].last_at, now() - Duration::hours(96));
}

#[test]
fn a_cluster_whose_key_moved_is_still_the_raised_one() {
    // Raised with 1, 2, 3; days later 1 has left the window and 4 came.
    let first = detect(&sightings(vec![S::new(1), S::new(2), S::new(3)]), &rule(), now());
    let later = now() + Duration::hours(7 * 24 - 98);
    let moved = detect(&sightings(vec![S::new(1), S::new(2), S::new(3), S::new(4)]), &rule(), later);
    assert_ne!(moved[0].key, first[0].key, "its oldest petition changed");
    let plan = reconcile(moved, &[raised(&first[0])]);
    assert!(plan.raise.is_empty(), "{plan:?}");
    assert_eq!((plan.grow[0].key.clone(), plan.grow[0].petition_ids.clone()), (first[0].key.clone(), ids(&[4])));

    // Raised by distance across g006 and g007; a third in g006 makes a grid
    // cluster of the same petitions: not a second raise.
    let near = sightings(vec![S::new(1), S::new(2), S::new(3).grid(Some(G007), COMMUNITY)]);
    let first = detect(&near, &rule(), now());
    assert_eq!(first[0].kind, ClusterKind::Near);
    let mut more = near.clone();
    more.push(S::new(4).sighting());
    let now_a_grid = detect(&more, &rule(), now());
    assert_eq!(now_a_grid[0].kind, ClusterKind::Grid);
    let plan = reconcile(now_a_grid, &[raised(&first[0])]);
    assert!(plan.raise.is_empty(), "{plan:?}");
    assert_eq!(plan.grow[0].petition_ids, ids(&[4]));
}

#[test]
fn clusters_apart_from_the_raised_ones_are_raised() {
    let first = detect(&sightings(vec![S::new(1), S::new(2), S::new(3)]), &rule(), now());
    let other = detect(&sightings((4..=6).map(|n| S::new(n).grid(Some(G007), COMMUNITY)).collect()), &rule(), now());
    let plan = reconcile(other.clone(), &[raised(&first[0])]);
    assert_eq!(plan.raise, other);
}
