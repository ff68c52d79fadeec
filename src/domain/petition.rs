use std::fmt;
use std::str::FromStr;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::{Channel, ReceiptTime};

/// Human-quotable petition number: `YYYYMMDD-NNNNNN`, the date being the
/// Asia/Shanghai day the pipeline registered it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PetitionId(String);

#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a petition number (YYYYMMDD-NNNNNN)")]
pub struct BadPetitionId(String);

impl PetitionId {
    pub fn new(day: NaiveDate, sequence: u32) -> Self {
        PetitionId(format!("{}-{sequence:06}", day.format("%Y%m%d")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for PetitionId {
    type Err = BadPetitionId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadPetitionId(s.to_owned());
        let (day, seq) = s.split_once('-').ok_or_else(bad)?;
        let day_ok = day.len() == 8 && NaiveDate::parse_from_str(day, "%Y%m%d").is_ok();
        let seq_ok = seq.len() >= 6 && seq.bytes().all(|b| b.is_ascii_digit());
        if day_ok && seq_ok { Ok(PetitionId(s.to_owned())) } else { Err(bad()) }
    }
}

impl TryFrom<String> for PetitionId {
    type Error = BadPetitionId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<PetitionId> for String {
    fn from(id: PetitionId) -> String {
        id.0
    }
}

impl fmt::Display for PetitionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Livelihood,
    Enforcement,
    Development,
}

impl Category {
    pub const ALL: [Category; 3] = [Category::Livelihood, Category::Enforcement, Category::Development];

    /// The category stored and published as `code`.
    pub fn from_code(code: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.as_str() == code)
    }

    /// The stored and published name (`livelihood`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Livelihood => "livelihood",
            Category::Enforcement => "enforcement",
            Category::Development => "development",
        }
    }

    /// What people here call it (the console's labels, Open311's `service_name`).
    pub fn name_zh(self) -> &'static str {
        match self {
            Category::Livelihood => "民生服务",
            Category::Enforcement => "城市管理与执法",
            Category::Development => "经济发展与规划建设",
        }
    }
}

/// Lifecycle states (`docs/contract.md` §5). Later states are added by the lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Received,
    Triage,
    Assigned,
    Accepted,
    Resolved,
    Approved,
    Closed,
    Reopened,
}

/// How a petition was closed (`closure`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Closure {
    /// The citizen rated the result.
    Rated,
    /// No rating within the rating period: left out of the satisfaction rate.
    NoRating,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub channel: Channel,
    /// The channel's dedup key: WeChat `MsgId`, App `request_id`, hotline `order_no`.
    pub message_id: String,
}

/// Who filed it, as the channel knows them. `id` is the openid, the App
/// user id, or (hotline) the caller's phone number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Citizen {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A WGS-84 point; construction guarantees valid ranges.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoPoint {
    lng: f64,
    lat: f64,
}

#[derive(Debug, thiserror::Error)]
#[error("coordinates out of range: lng {lng}, lat {lat}")]
pub struct BadPoint {
    pub lng: f64,
    pub lat: f64,
}

impl GeoPoint {
    pub fn new(lng: f64, lat: f64) -> Result<Self, BadPoint> {
        let ok = lng.is_finite() && lat.is_finite() && (-180.0..=180.0).contains(&lng) && (-90.0..=90.0).contains(&lat);
        if ok { Ok(GeoPoint { lng, lat }) } else { Err(BadPoint { lng, lat }) }
    }

    pub fn lng(&self) -> f64 {
        self.lng
    }

    pub fn lat(&self) -> f64 {
        self.lat
    }
}

/// The 12345 unified classification as the hotline sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Classification {
    pub code: String,
    pub name: String,
}

/// What the channel told us about where the petition belongs; the route
/// role turns these into a grid and a unit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingHints {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub street: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub community: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub building_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachmentKind {
    Location,
    Image,
}

/// A WeChat location or picture that belongs to a petition sent separately.
#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    pub kind: AttachmentKind,
    /// The WeChat `MsgId` of the attachment message: its dedup key.
    pub message_id: String,
    pub point: Option<GeoPoint>,
    pub label: Option<String>,
    pub url: Option<String>,
}

/// A petition as intake parsed it, before it has a number.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPetition {
    pub source: Source,
    pub citizen: Citizen,
    pub content: String,
    pub received: ReceiptTime,
    pub category: Option<Category>,
    pub subcategory: Option<String>,
    pub classification: Option<Classification>,
    pub urgent: bool,
    pub time_limit_days: Option<u8>,
    pub point: Option<GeoPoint>,
    pub address: Option<String>,
    pub hints: RoutingHints,
    pub images: Vec<String>,
}

/// GeoJSON, so a `2dsphere` index and `$geoWithin` work on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeoJsonPoint {
    #[serde(rename = "type")]
    pub kind: String,
    /// `[lng, lat]`, GeoJSON order.
    pub coordinates: [f64; 2],
}

impl From<GeoPoint> for GeoJsonPoint {
    fn from(p: GeoPoint) -> Self {
        GeoJsonPoint { kind: "Point".to_owned(), coordinates: [p.lng(), p.lat()] }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LocationRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point: Option<GeoJsonPoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// Deadlines of the two clocks (`docs/contract.md` §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deadlines {
    pub respond_by: chrono::DateTime<chrono::Utc>,
    pub resolve_by: chrono::DateTime<chrono::Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn category_names_are_the_serialized_ones() {
        for c in [Category::Livelihood, Category::Enforcement, Category::Development] {
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
    }

    #[test]
    fn petition_id_is_date_and_six_digits() {
        let id = PetitionId::new(NaiveDate::from_ymd_opt(2026, 11, 27).unwrap(), 42);
        assert_eq!(id.as_str(), "20261127-000042");
        assert_eq!("20261127-000042".parse::<PetitionId>().unwrap(), id);
        for bad in ["2026-11-27", "20261327-000001", "20261127-12", "x", "20261127-00004a"] {
            assert!(bad.parse::<PetitionId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn points_outside_wgs84_ranges_are_refused() {
        assert!(GeoPoint::new(120.38, 36.06).is_ok());
        assert!(GeoPoint::new(181.0, 0.0).is_err());
        assert!(GeoPoint::new(0.0, f64::NAN).is_err());
    }
}
