//! Classifying a petition into livelihood / enforcement / development.
//! The App's own category first; a hotline classification through the
//! taxonomy map (`data/taxonomy/category_map.csv`); otherwise keywords with
//! a confidence, below which the petition goes to manual triage.

use std::collections::HashMap;

use aho_corasick::{AhoCorasick, MatchKind};
use serde::Serialize;

use crate::domain::Category;

pub const TAXONOMY_MAP: &str = include_str!("../../data/taxonomy/category_map.csv");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassifiedBy {
    App,
    Taxonomy,
    Keywords,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Classified {
    pub category: Category,
    pub confidence: f64,
    pub by: ClassifiedBy,
    /// The subcategory's resolution class (working days), when known.
    pub working_days: Option<u8>,
}

/// Keyword → (category, weight). Weights reflect how strongly a word alone
/// points at a category; words common to several get low weights.
const KEYWORDS: &[(&str, Category, f64)] = {
    use Category::{Development as D, Enforcement as E, Livelihood as L};
    &[
        // 民生: utilities, housing estates, schools, transport, social security.
        ("路灯", L, 2.0),
        ("供水", L, 2.0),
        ("停水", L, 2.0),
        ("自来水", L, 2.0),
        ("停电", L, 2.0),
        ("供电", L, 1.5),
        ("暖气", L, 2.0),
        ("供暖", L, 2.0),
        ("燃气", L, 1.5),
        ("物业", L, 2.0),
        ("小区", L, 1.0),
        ("业主", L, 1.0),
        ("电梯", L, 1.5),
        ("漏水", L, 1.5),
        ("下水道", L, 1.5),
        ("井盖", L, 1.5),
        ("垃圾", L, 1.0),
        ("环卫", L, 1.5),
        ("公交", L, 2.0),
        ("地铁", L, 1.5),
        ("站台", L, 1.0),
        ("红绿灯", L, 1.5),
        ("道路", L, 0.5),
        ("修路", L, 1.0),
        ("学校", L, 2.0),
        ("学生", L, 2.0),
        ("孩子", L, 1.5),
        ("老师", L, 2.0),
        ("教师", L, 2.0),
        ("幼儿园", L, 2.0),
        ("入学", L, 2.0),
        ("学位", L, 2.0),
        ("招生", L, 1.5),
        ("教育", L, 1.5),
        ("小学", L, 2.0),
        ("中学", L, 2.0),
        ("补课", L, 1.5),
        ("社保", L, 2.0),
        ("医保", L, 2.0),
        ("养老", L, 2.0),
        ("退休", L, 2.0),
        ("公积金", L, 2.0),
        ("工资", L, 1.5),
        ("社会保险", L, 2.0),
        ("就业", L, 1.0),
        ("劳动合同", L, 1.5),
        ("停车", L, 1.0),
        ("车位", L, 1.0),
        ("住房", L, 1.0),
        ("房产证", L, 1.5),
        ("维修", L, 1.0),
        ("出行", L, 1.0),
        ("文化", L, 0.5),
        ("体育", L, 1.0),
        ("医院", L, 1.0),
        ("快递", L, 1.0),
        ("交通", L, 0.5),
        ("公路", L, 1.0),
        ("高速", L, 1.0),
        ("收费", L, 0.5),
        ("出租车", L, 1.5),
        ("驾校", L, 1.5),
        ("培训机构", L, 1.5),
        ("棚户区", L, 2.0),
        ("棚改", L, 2.0),
        ("安置", L, 1.0),
        ("房屋", L, 1.0),
        ("工伤", L, 2.0),
        ("保险", L, 1.0),
        ("村民", L, 1.0),
        ("群众", L, 0.5),
        // 执法: violations, pollution, nuisance, unlicensed activity.
        ("违建", E, 3.0),
        ("违章", E, 2.5),
        ("违法", E, 2.0),
        ("违规", E, 1.0),
        ("占道", E, 3.0),
        ("噪音", E, 3.0),
        ("噪声", E, 3.0),
        ("扰民", E, 3.0),
        ("污染", E, 3.0),
        ("排放", E, 2.0),
        ("排污", E, 3.0),
        ("偷排", E, 3.0),
        ("油烟", E, 3.0),
        ("粉尘", E, 2.5),
        ("扬尘", E, 2.5),
        ("臭味", E, 2.5),
        ("异味", E, 2.5),
        ("恶臭", E, 3.0),
        ("废气", E, 3.0),
        ("废水", E, 3.0),
        ("焚烧", E, 2.5),
        ("环保", E, 2.0),
        ("执法", E, 1.0),
        ("非法", E, 2.0),
        ("无证", E, 2.5),
        ("黑作坊", E, 3.0),
        ("乱搭", E, 3.0),
        ("私搭", E, 3.0),
        ("查处", E, 2.0),
        ("化工", E, 2.0),
        ("养殖", E, 1.5),
        ("砂石", E, 1.5),
        ("搅拌站", E, 2.5),
        ("夜间施工", E, 3.0),
        ("河道", E, 1.0),
        ("水质", E, 1.5),
        // 发展: the economy, enterprises, land and planning.
        ("企业", D, 0.5),
        ("营商", D, 3.0),
        ("投资", D, 2.0),
        ("招商", D, 3.0),
        ("融资", D, 3.0),
        ("贷款", D, 1.5),
        ("补贴", D, 0.5),
        ("创业", D, 2.0),
        ("产业", D, 1.0),
        ("园区", D, 1.5),
        ("经济", D, 1.0),
        ("规划", D, 0.5),
        ("征收", D, 1.5),
        ("征地", D, 2.5),
        ("拆迁", D, 0.5),
        ("土地", D, 1.5),
        ("审批", D, 1.0),
        ("开发区", D, 2.0),
    ]
};

/// Below this share of the keyword score the petition goes to triage.
pub const MIN_CONFIDENCE: f64 = 0.6;

pub struct Classifier {
    by_path: HashMap<String, (Category, u8)>,
    by_name: HashMap<String, (Category, u8)>,
    keywords: AhoCorasick,
    min_confidence: f64,
}

impl Classifier {
    pub fn bundled() -> Classifier {
        Classifier::new(TAXONOMY_MAP, MIN_CONFIDENCE).expect("bundled taxonomy map is valid")
    }

    /// `taxonomy`: `level1,level2,level3,category,working_days` lines.
    pub fn new(taxonomy: &str, min_confidence: f64) -> anyhow::Result<Classifier> {
        let mut by_path = HashMap::new();
        let mut names: HashMap<String, Vec<(Category, u8)>> = HashMap::new();
        for (i, line) in taxonomy.lines().enumerate().skip(1).filter(|(_, l)| !l.is_empty()) {
            let f: Vec<&str> = line.split(',').collect();
            anyhow::ensure!(f.len() == 5, "taxonomy line {}: expected 5 fields", i + 1);
            let category: Category = serde_json::from_value(serde_json::Value::String(f[3].to_owned()))
                .map_err(|_| anyhow::anyhow!("taxonomy line {}: unknown category `{}`", i + 1, f[3]))?;
            let days: u8 = f[4].parse()?;
            by_path.insert(format!("{}/{}/{}", f[0], f[1], f[2]), (category, days));
            names.entry(f[2].to_owned()).or_default().push((category, days));
            names.entry(f[1].to_owned()).or_default().push((category, days));
        }
        // A bare name counts only where every row it names agrees (其他 never does).
        let by_name = names
            .into_iter()
            .filter_map(|(name, rows)| {
                let (c, _) = rows[0];
                rows.iter().all(|(rc, _)| *rc == c).then(|| (name, (c, rows.iter().map(|r| r.1).max().unwrap_or(2))))
            })
            .collect();
        let keywords = AhoCorasick::builder().match_kind(MatchKind::LeftmostLongest).build(KEYWORDS.iter().map(|k| k.0))?;
        Ok(Classifier { by_path, by_name, keywords, min_confidence })
    }

    /// `None`: cannot be classified with confidence (→ triage).
    pub fn classify(&self, app: Option<Category>, hotline_class: Option<&str>, text: &str) -> Option<Classified> {
        if let Some(category) = app {
            return Some(Classified { category, confidence: 1.0, by: ClassifiedBy::App, working_days: None });
        }
        if let Some(&(category, days)) = hotline_class.and_then(|n| self.by_path.get(n.trim()).or(self.by_name.get(n.trim()))) {
            return Some(Classified { category, confidence: 1.0, by: ClassifiedBy::Taxonomy, working_days: Some(days) });
        }
        self.by_keywords(text).filter(|c| c.confidence >= self.min_confidence)
    }

    /// The keyword vote alone, whatever its confidence.
    pub fn by_keywords(&self, text: &str) -> Option<Classified> {
        let mut score = [0.0_f64; 3];
        for m in self.keywords.find_iter(text) {
            let (_, category, weight) = KEYWORDS[m.pattern().as_usize()];
            score[category as usize] += weight;
        }
        let total: f64 = score.iter().sum();
        if total == 0.0 {
            return None;
        }
        let (best, top) = score.iter().enumerate().fold((0, 0.0), |acc, (i, &s)| if s > acc.1 { (i, s) } else { acc });
        let category = [Category::Livelihood, Category::Enforcement, Category::Development][best];
        Some(Classified { category, confidence: top / total, by: ClassifiedBy::Keywords, working_days: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Category::*;

    #[test]
    fn the_app_category_is_taken_as_given() {
        let c = Classifier::bundled().classify(Some(Development), None, "路灯坏了").unwrap();
        assert_eq!((c.category, c.by), (Development, ClassifiedBy::App));
    }

    #[test]
    fn hotline_classification_goes_through_the_taxonomy_map() {
        let cl = Classifier::bundled();
        let c = cl.classify(None, Some("违章建筑"), "").unwrap();
        assert_eq!((c.category, c.by, c.working_days), (Enforcement, ClassifiedBy::Taxonomy, Some(5)));
        let c = cl.classify(None, Some("城乡建设/安全生产/安全隐患"), "").unwrap();
        assert_eq!((c.category, c.working_days), (Enforcement, Some(1)));
        let c = cl.classify(None, Some("燃气供应"), "").unwrap();
        assert_eq!((c.category, c.working_days), (Livelihood, Some(1)));
        // `其他` names rows of every category: not trusted, the text decides.
        let c = cl.classify(None, Some("其他"), "夜间施工噪音扰民").unwrap();
        assert_eq!((c.category, c.by), (Enforcement, ClassifiedBy::Keywords));
    }

    #[test]
    fn keywords_with_confidence_or_triage() {
        let cl = Classifier::bundled();
        assert_eq!(cl.classify(None, None, "小区路灯坏了一周，物业不管").unwrap().category, Livelihood);
        assert_eq!(cl.classify(None, None, "工地夜间施工噪音扰民").unwrap().category, Enforcement);
        assert_eq!(cl.classify(None, None, "企业融资难，营商环境需改善").unwrap().category, Development);
        assert!(cl.classify(None, None, "你好").is_none(), "nothing to go on");
        // Evenly split evidence is below the confidence floor.
        assert!(cl.classify(None, None, "物业 违章").is_none());
    }
}
