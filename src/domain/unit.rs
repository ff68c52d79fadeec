use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The depth of a unit in the tree district → street → community → grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    District,
    Street,
    Community,
    Grid,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::District => "district",
            Level::Street => "street",
            Level::Community => "community",
            Level::Grid => "grid",
        }
    }
}

/// `shinan.badaxia.tuandao.g017`: dot-separated lower-case ASCII ids,
/// district first, one to four of them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UnitPath(String);

#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a unit path (1–4 dot-separated lower-case ASCII ids)")]
pub struct BadUnitPath(String);

impl UnitPath {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn level(&self) -> Level {
        match self.0.split('.').count() {
            1 => Level::District,
            2 => Level::Street,
            3 => Level::Community,
            _ => Level::Grid,
        }
    }

    pub fn parent(&self) -> Option<UnitPath> {
        self.0.rsplit_once('.').map(|(parent, _)| UnitPath(parent.to_owned()))
    }

    /// This unit or its ancestor at `level`, if the path is that deep.
    pub fn at_level(&self, level: Level) -> Option<UnitPath> {
        let mut unit = self.clone();
        while unit.level() > level {
            unit = unit.parent()?;
        }
        (unit.level() == level).then_some(unit)
    }

    pub fn is_within(&self, ancestor: &UnitPath) -> bool {
        self == ancestor || self.0.starts_with(&format!("{}.", ancestor.0))
    }
}

impl FromStr for UnitPath {
    type Err = BadUnitPath;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ids: Vec<&str> = s.split('.').collect();
        let id_ok = |id: &&str| !id.is_empty() && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if (1..=4).contains(&ids.len()) && ids.iter().all(id_ok) { Ok(UnitPath(s.to_owned())) } else { Err(BadUnitPath(s.to_owned())) }
    }
}

impl TryFrom<String> for UnitPath {
    type Error = BadUnitPath;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<UnitPath> for String {
    fn from(p: UnitPath) -> String {
        p.0
    }
}

impl fmt::Display for UnitPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A responsible person: grid worker, building steward, or a member of a
/// "1+1+1" team (leader, section, directly responsible person).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    pub id: String,
    pub role: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_depth() {
        let grid: UnitPath = "shinan.badaxia.tuandao.g017".parse().unwrap();
        assert_eq!(grid.level(), Level::Grid);
        assert_eq!(grid.parent().unwrap().as_str(), "shinan.badaxia.tuandao");
        assert_eq!(grid.at_level(Level::Street).unwrap().as_str(), "shinan.badaxia");
        assert!(grid.is_within(&"shinan.badaxia".parse().unwrap()));
        assert!(!grid.is_within(&"shinan.bada".parse().unwrap()));
        assert!("shinan".parse::<UnitPath>().unwrap().parent().is_none());
    }

    #[test]
    fn malformed_paths_are_refused() {
        for bad in ["", "Shinan", "shinan..x", "a.b.c.d.e", "shinan.八大峡", "shinan.bad-axia"] {
            assert!(bad.parse::<UnitPath>().is_err(), "{bad}");
        }
    }
}
