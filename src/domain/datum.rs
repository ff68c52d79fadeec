//! GCJ-02 ⇄ WGS-84 (pure).
//!
//! Maps published in mainland China — Tencent (and so WeChat), Amap, the
//! phone's own map — must use GCJ-02, the "Mars" datum: WGS-84 shifted by a
//! smooth, deliberately obfuscated offset of a few hundred metres. The
//! registry's grid polygons and the stored `location.point` are WGS-84, so
//! coordinates that arrive in GCJ-02 are converted at intake.
//!
//! The forward transform is the widely published series (`transformLat` /
//! `transformLng` on the Krasovsky ellipsoid, a = 6378245.0,
//! e² = 0.00669342162296594323), as in eviltransform and coordtransform.
//! Like them it applies only inside a bounding rectangle of China
//! (longitude 73.66–135.05, latitude 3.86–53.55, China's extreme points);
//! points outside it are the same in both datums. The rectangle is coarse:
//! it also covers e.g. Korea, but no channel of ours sends points from there.
//!
//! GCJ-02 has no closed-form inverse. [`gcj02_to_wgs84`] solves
//! `forward(w) = g` by fixed-point iteration; the offset changes slowly
//! with position, so it converges in two or three steps to a residual
//! under 1e-7° (about 1 cm).

use std::f64::consts::PI;

use super::GeoPoint;

/// Semi-major axis of the Krasovsky 1940 ellipsoid, as the series uses it.
const A: f64 = 6378245.0;
/// First eccentricity squared of the same ellipsoid.
const EE: f64 = 0.006_693_421_622_965_943;

/// Stop iterating once `forward(w)` is this close to the GCJ-02 input
/// (degrees; about 1 cm).
const TOLERANCE: f64 = 1e-7;
const MAX_ITERATIONS: usize = 10;

/// WGS-84 → GCJ-02, what Chinese map SDKs do to a GPS fix. Points outside
/// China's bounding rectangle are returned unchanged.
pub fn wgs84_to_gcj02(wgs: GeoPoint) -> GeoPoint {
    let (lng, lat) = (wgs.lng(), wgs.lat());
    if !in_china(lng, lat) {
        return wgs;
    }
    let (d_lng, d_lat) = offset(lng, lat);
    point(lng + d_lng, lat + d_lat)
}

/// GCJ-02 → WGS-84, the accurate inverse of [`wgs84_to_gcj02`]: the WGS-84
/// point whose GCJ-02 image is within 1e-7° of `gcj`. Points outside China's
/// bounding rectangle are returned unchanged.
pub fn gcj02_to_wgs84(gcj: GeoPoint) -> GeoPoint {
    let (g_lng, g_lat) = (gcj.lng(), gcj.lat());
    if !in_china(g_lng, g_lat) {
        return gcj;
    }
    // w ← w − (forward(w) − g) from w = g: the first step is the common
    // one-step approximation g − offset(g) (about a metre off), the next
    // ones refine it.
    let (mut lng, mut lat) = (g_lng, g_lat);
    for _ in 0..MAX_ITERATIONS {
        let (d_lng, d_lat) = offset(lng, lat);
        let (r_lng, r_lat) = (lng + d_lng - g_lng, lat + d_lat - g_lat);
        if r_lng.abs() < TOLERANCE && r_lat.abs() < TOLERANCE {
            break;
        }
        (lng, lat) = (lng - r_lng, lat - r_lat);
    }
    point(lng, lat)
}

/// The bounding rectangle the forward transform applies in.
fn in_china(lng: f64, lat: f64) -> bool {
    lng > 73.66 && lng < 135.05 && lat > 3.86 && lat < 53.55
}

/// The GCJ-02 offset `(Δlng, Δlat)` in degrees at WGS-84 `(lng, lat)`.
fn offset(lng: f64, lat: f64) -> (f64, f64) {
    let (x, y) = (lng - 105.0, lat - 35.0);
    let rad_lat = lat / 180.0 * PI;
    let magic = 1.0 - EE * rad_lat.sin() * rad_lat.sin();
    let sqrt_magic = magic.sqrt();
    let d_lat = transform_lat(x, y) * 180.0 / ((A * (1.0 - EE)) / (magic * sqrt_magic) * PI);
    let d_lng = transform_lng(x, y) * 180.0 / (A / sqrt_magic * rad_lat.cos() * PI);
    (d_lng, d_lat)
}

/// The published latitude series, in metres-ish units, at `x = lng − 105`,
/// `y = lat − 35`.
fn transform_lat(x: f64, y: f64) -> f64 {
    let mut ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * x.abs().sqrt();
    ret += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    ret += (20.0 * (y * PI).sin() + 40.0 * (y / 3.0 * PI).sin()) * 2.0 / 3.0;
    ret += (160.0 * (y / 12.0 * PI).sin() + 320.0 * (y * PI / 30.0).sin()) * 2.0 / 3.0;
    ret
}

/// The published longitude series, same arguments as [`transform_lat`].
fn transform_lng(x: f64, y: f64) -> f64 {
    let mut ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * x.abs().sqrt();
    ret += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    ret += (20.0 * (x * PI).sin() + 40.0 * (x / 3.0 * PI).sin()) * 2.0 / 3.0;
    ret += (150.0 * (x / 12.0 * PI).sin() + 300.0 * (x / 30.0 * PI).sin()) * 2.0 / 3.0;
    ret
}

/// Results stay within a hundredth of a degree of an input inside the
/// rectangle, so they are always valid WGS-84 ranges.
fn point(lng: f64, lat: f64) -> GeoPoint {
    GeoPoint::new(lng, lat).expect("a GCJ-02 offset keeps a point inside China within valid ranges")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(lng: f64, lat: f64) -> GeoPoint {
        GeoPoint::new(lng, lat).unwrap()
    }

    fn assert_near(got: GeoPoint, want: GeoPoint, tolerance: f64) {
        let (d_lng, d_lat) = ((got.lng() - want.lng()).abs(), (got.lat() - want.lat()).abs());
        assert!(d_lng < tolerance && d_lat < tolerance, "got {got:?}, want {want:?} (Δ {d_lng:e}, {d_lat:e})");
    }

    /// Metres between two nearby points (equirectangular; fine at this scale).
    fn metres(a: GeoPoint, b: GeoPoint) -> f64 {
        let mid_lat = ((a.lat() + b.lat()) / 2.0).to_radians();
        let dx = (a.lng() - b.lng()).to_radians() * mid_lat.cos();
        let dy = (a.lat() - b.lat()).to_radians();
        6_371_000.0 * dx.hypot(dy)
    }

    /// `(WGS-84, GCJ-02)` as `(lng, lat)`. The first three are the test
    /// table of googollee/eviltransform (go/transform_test.go,
    /// javascript/test.js: Shanghai, Shenzhen, Beijing); the last is the
    /// `wgs84togcj02(116.404, 39.915)` example of wandergis/coordtransform's
    /// README.
    const PUBLISHED: [((f64, f64), (f64, f64)); 4] = [
        ((121.5272106, 31.1774276), (121.531541859215, 31.17530398364597)),
        ((113.912316, 22.543847), (113.9171764808363, 22.540796131694766)),
        ((116.377817, 39.911954), (116.38404722455657, 39.91334545536069)),
        ((116.404, 39.915), (116.41024449916938, 39.91640428150164)),
    ];

    #[test]
    fn forward_matches_published_pairs() {
        for ((w_lng, w_lat), (g_lng, g_lat)) in PUBLISHED {
            assert_near(wgs84_to_gcj02(p(w_lng, w_lat)), p(g_lng, g_lat), 1e-9);
        }
    }

    #[test]
    fn inverse_recovers_published_wgs84() {
        for ((w_lng, w_lat), (g_lng, g_lat)) in PUBLISHED {
            let gcj = p(g_lng, g_lat);
            let wgs = gcj02_to_wgs84(gcj);
            assert_near(wgs, p(w_lng, w_lat), 1e-6);
            // The inverse is accurate, not the one-step approximation.
            assert_near(wgs84_to_gcj02(wgs), gcj, TOLERANCE);
        }
    }

    #[test]
    fn round_trip_in_qingdao_shinan_moves_a_few_hundred_metres() {
        let wgs = p(120.38, 36.06);
        let gcj = wgs84_to_gcj02(wgs);
        // The Mars offset here is eastward, about 0.005° of longitude.
        assert!(gcj.lng() - wgs.lng() > 0.004 && gcj.lng() - wgs.lng() < 0.006, "{gcj:?}");
        let shift = metres(wgs, gcj);
        assert!((300.0..700.0).contains(&shift), "offset {shift} m");
        assert_near(gcj02_to_wgs84(gcj), wgs, 1e-6);
        // And from the GCJ side: a WeChat point there lands ~0.005° west.
        let back = gcj02_to_wgs84(wgs);
        assert_near(wgs84_to_gcj02(back), wgs, TOLERANCE);
        assert!((300.0..700.0).contains(&metres(back, wgs)));
    }

    #[test]
    fn points_outside_china_are_unchanged() {
        for (lng, lat) in [(139.6917, 35.6895), (-0.1276, 51.5072), (151.2093, -33.8688)] {
            let tokyo_etc = p(lng, lat);
            assert_eq!(wgs84_to_gcj02(tokyo_etc), tokyo_etc);
            assert_eq!(gcj02_to_wgs84(tokyo_etc), tokyo_etc);
        }
    }
}
