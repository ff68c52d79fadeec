//! The three rates per street or category as an SVG bar chart: one group
//! per row, one bar per rate, drawn on the server so the page needs no
//! script to show it.

use std::fmt::Write;

use super::escape;
use crate::report::Row;

const RATES: [(&str, &str); 3] = [("响应及时率", "#2f7ed8"), ("办结及时率", "#0d9f6e"), ("满意率", "#e8a317")];

/// `label` names each row (a street's Chinese name, a category's).
pub fn rates_chart(rows: &[(String, &Row)]) -> String {
    let (bar, gap, height, top, bottom) = (14.0, 18.0, 160.0, 20.0, 46.0);
    let group = bar * 3.0 + gap;
    let width = 40.0 + group * rows.len().max(1) as f64;
    let mut svg = format!(
        r#"<svg id="rates-chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {}" role="img" aria-label="三率对比">"#,
        top + height + bottom
    );
    for pct in [0.0, 0.5, 1.0] {
        let y = top + height * (1.0 - pct);
        let _ = write!(
            svg,
            r##"<line x1="30" x2="{width}" y1="{y}" y2="{y}" stroke="#ddd"/><text x="2" y="{}" font-size="9">{:.0}%</text>"##,
            y + 3.0,
            pct * 100.0
        );
    }
    for (i, (label, row)) in rows.iter().enumerate() {
        let x0 = 36.0 + group * i as f64;
        let values = [row.on_time_response_rate, row.on_time_resolution_rate, row.satisfaction_rate];
        for (j, (value, (name, colour))) in values.iter().zip(RATES).enumerate() {
            let v = value.unwrap_or(0.0).clamp(0.0, 1.0);
            let (x, h) = (x0 + bar * j as f64, (height * v).max(1.0));
            let shown = value.map_or("—".to_owned(), |v| format!("{:.1}%", v * 100.0));
            let _ = write!(
                svg,
                r#"<rect class="bar" x="{x}" y="{}" width="{}" height="{h}" fill="{colour}"><title>{} {name} {shown}</title></rect>"#,
                top + height - h,
                bar - 2.0,
                escape(label)
            );
        }
        let _ = write!(svg, r#"<text x="{x0}" y="{}" font-size="10">{}</text>"#, top + height + 14.0, escape(label));
    }
    for (j, (name, colour)) in RATES.iter().enumerate() {
        let x = 36.0 + 80.0 * j as f64;
        let y = top + height + 34.0;
        let _ = write!(
            svg,
            r#"<rect x="{x}" y="{}" width="10" height="10" fill="{colour}"/><text x="{}" y="{y}" font-size="10">{name}</text>"#,
            y - 9.0,
            x + 14.0
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_bars_per_row_and_labels_escaped() {
        let row = Row {
            group: Some("x".into()),
            received: 2,
            closed: 1,
            closure_rate: Some(0.5),
            on_time_response_rate: Some(1.0),
            on_time_resolution_rate: None,
            satisfaction_rate: Some(0.5),
            escalations: 0,
            refusals: 0,
            feedback_delivered_rate: None,
        };
        let svg = rates_chart(&[("八大峡<街道>".into(), &row), ("中山路街道".into(), &row)]);
        assert_eq!(svg.matches(r#"class="bar""#).count(), 6);
        assert!(svg.contains("八大峡&lt;街道&gt;") && !svg.contains("<街道>"));
        assert!(svg.contains("办结及时率 —"), "an unknown rate reads as such");
    }
}
