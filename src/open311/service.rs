//! The services: one per category (`docs/contract.md` §14), and the
//! discovery document.

use serde_json::{Value, json};

use super::{Document, w3c};
use crate::domain::Category;

/// The published API's own changeset: bumped when these documents change.
const CHANGESET: &str = "2026-11-28T00:00:00+08:00";

fn describe(c: Category) -> (&'static str, &'static str) {
    match c {
        Category::Livelihood => {
            ("供水供电供暖、物业小区、道路照明、环卫、公交、教育、社会保障等民生诉求", "路灯,供水,供暖,物业,垃圾,公交,学校")
        }
        Category::Enforcement => ("违章搭建、占道经营、噪声扰民、油烟污染、无证经营等城市管理与执法诉求", "违建,占道,噪声,油烟,无证经营"),
        Category::Development => ("企业经营、营商环境、土地与规划建设等经济发展诉求", "企业,营商环境,规划,工程"),
    }
}

/// `GET services`: realtime services without metadata.
pub fn services() -> Document {
    let items = Category::ALL
        .into_iter()
        .map(|c| {
            let (description, keywords) = describe(c);
            json!({
                "service_code": c.as_str(),
                "service_name": c.name_zh(),
                "description": description,
                "metadata": false,
                "type": "realtime",
                "keywords": keywords,
                "group": c.name_zh(),
            })
        })
        .collect();
    Document::list("services", "service", items)
}

/// `GET services/{code}`: no service defines attributes, so an empty list.
pub fn service_definition(code: &str) -> Option<Document> {
    Category::from_code(code).map(|c| Document {
        root: "service_definition",
        item: "",
        value: json!({ "service_code": c.as_str(), "attributes": [] }),
    })
}

/// `GET discovery`: this one production endpoint in both formats.
pub fn discovery(url: &str, contact: &str, key_service: &str) -> Document {
    let value: Value = json!({
        "changeset": CHANGESET,
        "contact": contact,
        "key_service": key_service,
        "endpoints": [{
            "specification": "http://wiki.open311.org/GeoReport_v2",
            "url": url,
            "changeset": CHANGESET,
            "type": "production",
            "formats": ["text/xml", "application/json"],
        }],
    });
    debug_assert!(super::parse_w3c(CHANGESET).is_ok_and(|t| w3c(t) == CHANGESET));
    Document { root: "discovery", item: "", value }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_service_per_category_and_codes_round_trip() {
        let services = services().value;
        let codes: Vec<&str> = services.as_array().unwrap().iter().map(|s| s["service_code"].as_str().unwrap()).collect();
        assert_eq!(codes, ["livelihood", "enforcement", "development"]);
        for c in Category::ALL {
            assert_eq!(Category::from_code(c.as_str()), Some(c));
        }
        assert_eq!(Category::from_code("001"), None);
        assert!(service_definition("nope").is_none());
    }
}
