//! The grids as an SVG map (no tiles, no script): the registry's polygons
//! projected to the page, each filled by its open petitions, special grids
//! (buildings, campuses) outlined apart.

use std::collections::HashMap;
use std::fmt::Write;

use super::escape;
use crate::domain::UnitPath;

/// One grid to draw.
pub struct GridShape<'a> {
    pub path: &'a UnitPath,
    pub name: &'a str,
    pub special: bool,
    /// `[lng, lat]` ring (WGS-84), closed.
    pub ring: &'a [[f64; 2]],
}

const WIDTH: f64 = 800.0;

/// Fill from pale (none open) to deep red (the most open of any grid).
fn fill(open: u64, most: u64) -> String {
    if open == 0 {
        return "#eef3f8".to_owned();
    }
    let t = open as f64 / most.max(1) as f64;
    let (r, g, b) = (255.0, 220.0 - 180.0 * t, 200.0 - 180.0 * t);
    format!("rgb({r:.0},{g:.0},{b:.0})")
}

pub fn grid_map(grids: &[GridShape], open: &HashMap<UnitPath, u64>) -> String {
    let points = grids.iter().flat_map(|g| g.ring.iter());
    let (mut min_x, mut max_x, mut min_y, mut max_y) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for [x, y] in points {
        (min_x, max_x, min_y, max_y) = (min_x.min(*x), max_x.max(*x), min_y.min(*y), max_y.max(*y));
    }
    if grids.is_empty() {
        (min_x, max_x, min_y, max_y) = (0.0, 1.0, 0.0, 1.0);
    }
    // Equirectangular around the middle latitude: right enough for a district.
    let squeeze = ((min_y + max_y) / 2.0).to_radians().cos();
    let scale = WIDTH / ((max_x - min_x) * squeeze).max(1e-9);
    let height = ((max_y - min_y) * scale).max(1.0);
    let most = open.values().copied().max().unwrap_or(0);
    let mut svg =
        format!(r#"<svg id="map" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height:.0}" role="img" aria-label="网格地图">"#);
    // Special grids last, so they sit on top of the basic grid around them.
    let mut ordered: Vec<&GridShape> = grids.iter().collect();
    ordered.sort_by_key(|g| g.special);
    for g in ordered {
        let n = open.get(g.path).copied().unwrap_or(0);
        let mut d = String::new();
        for (i, [x, y]) in g.ring.iter().enumerate() {
            let _ = write!(d, "{}{:.1},{:.1}", if i == 0 { "M" } else { "L" }, (x - min_x) * squeeze * scale, (max_y - y) * scale);
        }
        d.push('Z');
        let class = if g.special { "grid special" } else { "grid" };
        let stroke = if g.special {
            r##"stroke="#6a1b9a" stroke-width="2" stroke-dasharray="4 2""##
        } else {
            r##"stroke="#8aa" stroke-width="0.6""##
        };
        let _ = write!(
            svg,
            r#"<path class="{class}" data-grid="{path}" data-open="{n}" d="{d}" fill="{fill}" {stroke}><title>{name} {path}：{n} 件在办</title></path>"#,
            path = escape(g.path.as_str()),
            fill = fill(n, most),
            name = escape(g.name),
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_path_per_grid_coloured_by_open_petitions() {
        let (a, b): (UnitPath, UnitPath) = ("x.s.c.g001".parse().unwrap(), "x.s.c.s01".parse().unwrap());
        let ring_a = [[120.0, 36.0], [120.01, 36.0], [120.01, 36.01], [120.0, 36.0]];
        let ring_b = [[120.002, 36.002], [120.004, 36.002], [120.004, 36.004], [120.002, 36.002]];
        let grids = [
            GridShape { path: &b, name: "大厦", special: true, ring: &ring_b },
            GridShape { path: &a, name: "一号网格", special: false, ring: &ring_a },
        ];
        let svg = grid_map(&grids, &HashMap::from([(a.clone(), 3)]));
        assert_eq!(svg.matches("<path ").count(), 2);
        assert_eq!(svg.matches(r#"class="grid special""#).count(), 1);
        assert!(svg.contains(r#"data-grid="x.s.c.g001" data-open="3""#));
        assert!(svg.find("x.s.c.g001").unwrap() < svg.find("x.s.c.s01").unwrap(), "special grids drawn on top");
    }
}
