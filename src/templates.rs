//! The citizen-facing texts, from configuration (`[notify]`), rendered with
//! named placeholders.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct Templates {
    pub accepted: String,
    pub result: String,
    pub rating_request: String,
}

/// The values a template may use.
#[derive(Debug, Clone, Default)]
pub struct Vars<'a> {
    pub petition_id: &'a str,
    pub unit: &'a str,
    pub result: &'a str,
    pub rating_days: u32,
}

pub const PLACEHOLDERS: [&str; 4] = ["{petition_id}", "{unit}", "{result}", "{rating_days}"];

/// Replaces each placeholder once, left to right, so text a citizen or
/// handler wrote (the result) is never itself expanded.
pub fn render(template: &str, v: &Vars) -> String {
    let mut out = String::with_capacity(template.len() + v.result.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let value = match PLACEHOLDERS.iter().find(|p| rest.starts_with(**p)) {
            Some(&"{petition_id}") => v.petition_id.to_owned(),
            Some(&"{unit}") => v.unit.to_owned(),
            Some(&"{result}") => v.result.to_owned(),
            Some(&"{rating_days}") => v.rating_days.to_string(),
            _ => {
                out.push('{');
                rest = &rest[1..];
                continue;
            }
        };
        out.push_str(&value);
        rest = &rest[rest.find('}').map_or(rest.len(), |i| i + 1)..];
    }
    out.push_str(rest);
    out
}

/// A placeholder that is not one of ours, e.g. a typo like `{unti}`.
pub fn unknown_placeholder(template: &str) -> Option<String> {
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let end = rest[start..].find('}')?;
        let name = &rest[start..start + end + 1];
        if !PLACEHOLDERS.contains(&name) {
            return Some(name.to_owned());
        }
        rest = &rest[start + end + 1..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_and_user_text_is_not_expanded() {
        let v = Vars { petition_id: "20261127-000001", unit: "团岛社区", result: "已修复{unit}", rating_days: 3 };
        assert_eq!(render("{petition_id}由{unit}办结：{result}，{rating_days}天", &v), "20261127-000001由团岛社区办结：已修复{unit}，3天");
        assert_eq!(render("无占位 {x", &v), "无占位 {x");
    }

    #[test]
    fn typos_are_found() {
        assert_eq!(unknown_placeholder("{petition_id} {unti}"), Some("{unti}".into()));
        assert_eq!(unknown_placeholder("{petition_id}"), None);
    }
}
