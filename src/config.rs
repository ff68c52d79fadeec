//! Layered configuration: `config/default.toml` (compiled in, so the binary
//! always has a complete base) < optional `--config FILE` < `NUANNAN__SECTION__KEY`.
//!
//! Every key must exist in `config/default.toml`: a key that is not there (a
//! typo in the file or in an environment variable) stops start-up naming it,
//! and so does a value out of its range (`Settings::validate`; the bounds are
//! listed in `docs/contract.md` §10).

use std::path::{Path, PathBuf};

use chrono::NaiveTime;
use serde::Deserialize;

const DEFAULTS: &str = include_str!("../config/default.toml");
const ENV_PREFIX: &str = "NUANNAN";
const ENV_SEPARATOR: &str = "__";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub namespace: String,
    pub amqp: AmqpSettings,
    pub mongodb: MongoSettings,
    pub intake: IntakeSettings,
    pub deadline: DeadlineSettings,
    pub lifecycle: LifecycleSettings,
    #[serde(default)]
    pub calendar: CalendarSettings,
    #[serde(default)]
    pub retention: RetentionSettings,
    /// Unknown keys under `[notify]` are caught by the key check in `load`.
    pub notify: crate::templates::Templates,
    pub ops: OpsSettings,
    #[serde(default)]
    pub gateway: GatewaySettings,
    #[serde(default)]
    pub wechat: WechatSettings,
    #[serde(default)]
    pub hotline: HotlineSettings,
    #[serde(default)]
    pub app: AppSettings,
    #[serde(default)]
    pub deliver: DeliverSettings,
    #[serde(default)]
    pub open311: Open311Settings,
    #[serde(default)]
    pub console: ConsoleSettings,
    #[serde(default)]
    pub hotspot: HotspotSettings,
}

/// The HTTP edge (`docs/contract.md` §12).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySettings {
    /// Empty disables the gateway.
    pub http_addr: String,
    pub publish_timeout_ms: u64,
    /// Per principal or client address; 0 = no limit.
    pub rate_limit_per_s: u32,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        GatewaySettings { http_addr: String::new(), publish_timeout_ms: 3000, rate_limit_per_s: 50 }
    }
}

/// The supervisors' console (`docs/contract.md` §15).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSettings {
    /// Empty: no console in `nuannan run`.
    pub http_addr: String,
    /// Signs session tokens and CSRF tokens; empty: a random key per process
    /// (sessions end when it restarts, and replicas do not share them).
    pub session_secret: String,
    /// How long a login lasts.
    pub session_hours: u32,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        ConsoleSettings { http_addr: String::new(), session_secret: String::new(), session_hours: 12 }
    }
}

/// Hot spots (未诉先办): petitions of one category clustering in one grid
/// or within `radius_m`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HotspotSettings {
    /// Petitions that make a cluster.
    pub min_count: u32,
    pub window_days: u32,
    pub radius_m: f64,
    /// How often the deadline role looks for new clusters; 0 turns detection off.
    pub scan_interval_ms: u64,
}

impl Default for HotspotSettings {
    fn default() -> Self {
        HotspotSettings { min_count: 3, window_days: 7, radius_m: 300.0, scan_interval_ms: 10_000 }
    }
}

/// Open311 GeoReport v2 on the gateway (`docs/contract.md` §14).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Open311Settings {
    /// The one jurisdiction served; a request naming another is 404.
    pub jurisdiction_id: String,
    /// Discovery's `contact` and `key_service`.
    pub contact: String,
    pub key_service: String,
}

impl Default for Open311Settings {
    fn default() -> Self {
        Open311Settings {
            jurisdiction_id: "qdsn.gov.cn".into(),
            contact: "青岛市市南区 暖南诉办".into(),
            key_service: "API keys are issued by the district's operators: an adapter principal for channel open311".into(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WechatSettings {
    pub token: String,
    pub app_id: String,
    pub encoding_aes_key: String,
    pub account: String,
    /// WeChat's server API, for delivery (`https://api.weixin.qq.com`).
    pub api_base: String,
    /// With `app_id`, buys the access token; empty: WeChat messages are `not_configured`.
    pub app_secret: String,
    #[serde(default)]
    pub templates: WechatTemplates,
}

impl WechatSettings {
    /// Customer-service messages can be sent.
    pub fn can_deliver(&self) -> bool {
        !self.api_base.is_empty() && !self.app_id.is_empty() && !self.app_secret.is_empty()
    }
}

/// Template ids to fall back to, per kind of message, when a customer-service
/// message is refused (outside the 48-hour window, over quota); empty = none.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WechatTemplates {
    pub receipt: String,
    pub progress: String,
    pub result: String,
    pub rating_request: String,
}

impl WechatTemplates {
    pub fn for_kind(&self, kind: crate::domain::OutboundKind) -> Option<&str> {
        use crate::domain::OutboundKind as K;
        let id = match kind {
            K::Receipt => &self.receipt,
            K::Progress => &self.progress,
            K::Result => &self.result,
            K::RatingRequest => &self.rating_request,
        };
        (!id.is_empty()).then_some(id.as_str())
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HotlineSettings {
    pub secret: String,
    /// Where results and progress are POSTed back; empty: `not_configured`.
    pub callback_url: String,
}

/// The App backend.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSettings {
    /// Messages are POSTed here as well as kept for `GET /app/notifications`; empty: polling only.
    pub webhook_url: String,
    pub webhook_secret: String,
}

/// The `deliver` role.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverSettings {
    /// Messages of one channel in flight at once.
    pub concurrency: u16,
    /// Requests per second to one channel's remote; 0 = no limit.
    pub rate_limit_per_s: u32,
    /// How long one request may take.
    pub timeout_ms: u64,
    /// Pauses between attempts; after the last one the message fails.
    pub retry_ms: Vec<u64>,
}

impl Default for DeliverSettings {
    fn default() -> Self {
        DeliverSettings { concurrency: 8, rate_limit_per_s: 20, timeout_ms: 5000, retry_ms: vec![1000, 5000, 15000, 60000, 300000] }
    }
}

/// A held delivery must settle well within the broker's consumer timeout (30 min by default).
const MAX_RETRY_TOTAL_MS: u64 = 20 * 60 * 1000;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpsSettings {
    /// Where `/healthz` and `/metrics` are served; empty disables.
    pub http_addr: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifecycleSettings {
    pub rating_days: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpSettings {
    /// One broker URL, or a cluster's nodes separated by commas.
    pub url: String,
    /// Replicas of each quorum queue at creation (`x-quorum-initial-group-size`); 0: the broker's default.
    #[serde(default = "default::quorum_group_size")]
    pub quorum_group_size: u32,
    pub prefetch: u16,
    pub delivery_limit: u32,
    pub reconnect_initial_ms: u64,
    pub reconnect_max_ms: u64,
    /// How long a publisher waits for the broker's confirm.
    #[serde(default = "default::confirm_timeout_ms")]
    pub confirm_timeout_ms: u64,
    /// How long a consumer may hold deliveries during a store outage before it cancels itself.
    #[serde(default = "default::hold_max_secs")]
    pub hold_max_secs: u64,
    /// `x-max-length` of `{ns}.dead`.
    #[serde(default = "default::max_length")]
    pub dead_max_length: u32,
    /// `x-max-length` of `{ns}.unrouted`.
    #[serde(default = "default::max_length")]
    pub unrouted_max_length: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MongoSettings {
    pub uri: String,
    pub database: String,
    /// `w` of the write concern: `"majority"` or a number of nodes as text (`"1"` … `"50"`).
    #[serde(default = "default::write_concern")]
    pub write_concern: String,
    /// `j` of the write concern.
    #[serde(default = "default::journal")]
    pub journal: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntakeSettings {
    pub max_body_bytes: usize,
    pub attach_window_secs: i64,
    pub future_tolerance_secs: i64,
    pub max_age_days: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadlineSettings {
    pub scan_interval_ms: u64,
    pub respond_hours: i64,
    pub office_close: String,
    pub warn_ratio: f64,
}

/// The working-day calendar files (`cn_workdays_<year>.csv`) loaded at start.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CalendarSettings {
    /// Relative paths are relative to the process's working directory.
    pub dir: PathBuf,
    /// How often the directory is checked for changed files.
    pub refresh_secs: u64,
    /// Warn when the loaded calendar ends fewer than this many days ahead.
    pub warn_days_ahead: u32,
}

impl Default for CalendarSettings {
    fn default() -> Self {
        CalendarSettings { dir: PathBuf::from("data/calendar"), refresh_secs: 60, warn_days_ahead: 45 }
    }
}

/// What is kept of rejected messages.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSettings {
    /// How long rejections keep their raw bodies.
    pub days: u32,
    /// At most this many bytes of a `too_large` body are kept.
    pub raw_max_bytes: usize,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings { days: 30, raw_max_bytes: 65_536 }
    }
}

/// Serde defaults of keys added after the first release; `config/default.toml`
/// holds the same values (a test keeps them equal).
mod default {
    /// Three replicas survive one node's loss (and one more being restarted).
    pub fn quorum_group_size() -> u32 {
        3
    }
    pub fn confirm_timeout_ms() -> u64 {
        10_000
    }
    pub fn hold_max_secs() -> u64 {
        600
    }
    pub fn max_length() -> u32 {
        100_000
    }
    pub fn write_concern() -> String {
        "majority".to_owned()
    }
    pub fn journal() -> bool {
        true
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration key `{key}`: {problem}")]
    Invalid { key: &'static str, problem: String },
    #[error("configuration key `{key}` (from {origin}): no such key")]
    Unknown { key: String, origin: String },
}

type Checked = Result<(), ConfigError>;

fn invalid(key: &'static str, problem: impl Into<String>) -> Checked {
    Err(ConfigError::Invalid { key, problem: problem.into() })
}

/// `value` must lie in `lo..=hi`.
fn within<T: PartialOrd + std::fmt::Display>(key: &'static str, value: T, lo: T, hi: T) -> Checked {
    if value < lo || value > hi { invalid(key, format!("must be between {lo} and {hi}, not {value}")) } else { Ok(()) }
}

impl Settings {
    /// Loads the layers; `file` is the optional `--config` path.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with(file, None)
    }

    /// `env` replaces the process environment (for tests).
    fn load_with(file: Option<&Path>, env: Option<config::Map<String, String>>) -> Result<Self, ConfigError> {
        let defaults = config::File::from_str(DEFAULTS, config::FileFormat::Toml);
        let mut builder = config::Config::builder().add_source(defaults.clone());
        if let Some(path) = file {
            builder = builder.add_source(config::File::from(path).required(true));
        }
        let environment = config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator(ENV_SEPARATOR)
            .separator(ENV_SEPARATOR)
            .try_parsing(true)
            // NUANNAN__DELIVER__RETRY_MS=1000,5000,…
            .list_separator(",")
            .with_list_parse_key("deliver.retry_ms")
            .source(env);
        let merged = builder.add_source(environment).build()?;
        let known = config::Config::builder().add_source(defaults).build()?;
        let (known, given) = (config::Source::collect(&known)?, config::Source::collect(&merged)?);
        if let Some((key, origin)) = first_unknown(&known, &given, "") {
            let origin = match origin {
                Some(o) if o != "the environment" => o,
                _ => format!("environment variable {ENV_PREFIX}{ENV_SEPARATOR}{}", key.replace('.', ENV_SEPARATOR).to_uppercase()),
            };
            return Err(ConfigError::Unknown { key, origin });
        }
        let settings: Settings = merged.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Checked {
        let ns_ok = !self.namespace.is_empty() && self.namespace.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ns_ok {
            return invalid("namespace", "must be non-empty ASCII letters, digits, '-', '_' or '.'");
        }

        let amqp = &self.amqp;
        let nodes = crate::bus::endpoints(&amqp.url);
        if nodes.is_empty() || !nodes.iter().all(|u| u.starts_with("amqp://") || u.starts_with("amqps://")) {
            return invalid("amqp.url", "must be amqp:// or amqps:// URLs, separated by commas for a cluster");
        }
        within("amqp.quorum_group_size", amqp.quorum_group_size, 0, 99)?;
        within("amqp.prefetch", amqp.prefetch, 1, u16::MAX)?;
        within("amqp.delivery_limit", amqp.delivery_limit, 1, 1_000)?;
        within("amqp.reconnect_max_ms", amqp.reconnect_max_ms, 1, 600_000)?;
        within("amqp.reconnect_initial_ms", amqp.reconnect_initial_ms, 1, 600_000)?;
        if amqp.reconnect_initial_ms > amqp.reconnect_max_ms {
            return invalid("amqp.reconnect_initial_ms", format!("must not exceed amqp.reconnect_max_ms ({})", amqp.reconnect_max_ms));
        }
        within("amqp.confirm_timeout_ms", amqp.confirm_timeout_ms, 1, 600_000)?;
        within("amqp.hold_max_secs", amqp.hold_max_secs, 1, 86_400)?;
        within("amqp.dead_max_length", amqp.dead_max_length, 1, u32::MAX)?;
        within("amqp.unrouted_max_length", amqp.unrouted_max_length, 1, u32::MAX)?;

        let mongodb = &self.mongodb;
        if !mongodb.uri.starts_with("mongodb://") && !mongodb.uri.starts_with("mongodb+srv://") {
            return invalid("mongodb.uri", "must start with mongodb:// or mongodb+srv://");
        }
        if mongodb.database.is_empty() || mongodb.database.contains(['/', '.', ' ', '$']) {
            return invalid("mongodb.database", "must be a valid MongoDB database name");
        }
        if acknowledgment(&mongodb.write_concern).is_none() {
            return invalid("mongodb.write_concern", format!("must be \"majority\" or a number of nodes from 1 to {MAX_NODES}"));
        }

        let intake = &self.intake;
        within("intake.max_body_bytes", intake.max_body_bytes, 1, 128 << 20)?;
        within("intake.attach_window_secs", intake.attach_window_secs, 1, 86_400)?;
        within("intake.future_tolerance_secs", intake.future_tolerance_secs, 0, 86_400)?;
        within("intake.max_age_days", intake.max_age_days, 1, 3_650)?;

        let deadline = &self.deadline;
        within("deadline.scan_interval_ms", deadline.scan_interval_ms, 1, 3_600_000)?;
        within("deadline.respond_hours", deadline.respond_hours, 1, 720)?;
        if self.office_close().is_none() {
            return invalid("deadline.office_close", "must be a time of day as HH:MM");
        }
        if !(deadline.warn_ratio > 0.0 && deadline.warn_ratio < 1.0) {
            return invalid("deadline.warn_ratio", "must be between 0 and 1 (exclusive)");
        }

        within("lifecycle.rating_days", self.lifecycle.rating_days, 1, 365)?;

        let calendar = &self.calendar;
        if calendar.dir.as_os_str().is_empty() {
            return invalid("calendar.dir", "must not be empty");
        }
        within("calendar.refresh_secs", calendar.refresh_secs, 1, 86_400)?;
        within("calendar.warn_days_ahead", calendar.warn_days_ahead, 1, 366)?;

        within("retention.days", self.retention.days, 1, 3_650)?;
        // A kept body must fit in a MongoDB document (16 MiB) with room to spare.
        within("retention.raw_max_bytes", self.retention.raw_max_bytes, 1, 8 << 20)?;

        if !self.ops.http_addr.is_empty() && self.ops.http_addr.parse::<std::net::SocketAddr>().is_err() {
            return invalid("ops.http_addr", "must be HOST:PORT with an IP address, or empty to disable");
        }
        if !self.gateway.http_addr.is_empty() && self.gateway.http_addr.parse::<std::net::SocketAddr>().is_err() {
            return invalid("gateway.http_addr", "must be HOST:PORT with an IP address, or empty to disable");
        }
        within("gateway.publish_timeout_ms", self.gateway.publish_timeout_ms, 1, 60_000)?;
        within("gateway.rate_limit_per_s", self.gateway.rate_limit_per_s, 0, 1_000_000)?;
        within("console.session_hours", self.console.session_hours, 1, 720)?;
        within("hotspot.min_count", self.hotspot.min_count, 2, 1000)?;
        within("hotspot.window_days", self.hotspot.window_days, 1, 90)?;
        within("hotspot.radius_m", self.hotspot.radius_m, 1.0, 10_000.0)?;
        within("hotspot.scan_interval_ms", self.hotspot.scan_interval_ms, 0, 3_600_000)?;
        if !self.wechat.encoding_aes_key.is_empty()
            && crate::gateway::wechat::MessageCrypto::new(&self.wechat.encoding_aes_key, "").is_err()
        {
            return invalid("wechat.encoding_aes_key", "must be 43 base64 characters, or empty for plaintext mode");
        }
        for (key, url) in [
            ("wechat.api_base", &self.wechat.api_base),
            ("hotline.callback_url", &self.hotline.callback_url),
            ("app.webhook_url", &self.app.webhook_url),
        ] {
            if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
                return invalid(key, "must be an http:// or https:// URL, or empty");
            }
        }
        if !self.app.webhook_url.is_empty() && self.app.webhook_secret.is_empty() {
            return invalid("app.webhook_secret", "must be set when app.webhook_url is");
        }
        let deliver = &self.deliver;
        within("deliver.concurrency", deliver.concurrency, 1, 1_000)?;
        within("deliver.rate_limit_per_s", deliver.rate_limit_per_s, 0, 100_000)?;
        within("deliver.timeout_ms", deliver.timeout_ms, 1, 60_000)?;
        within("deliver.retry_ms (count)", deliver.retry_ms.len(), 0, 20)?;
        for &ms in &deliver.retry_ms {
            within("deliver.retry_ms", ms, 1, 600_000)?;
        }
        // Each pause also holds the broker's delivery; with the requests' own time it must stay under the consumer timeout.
        let total = deliver.retry_ms.iter().sum::<u64>() + deliver.timeout_ms * (deliver.retry_ms.len() as u64 + 1);
        within("deliver.retry_ms (total with timeouts)", total, 0, MAX_RETRY_TOTAL_MS)?;
        let templates = [
            ("notify.accepted", &self.notify.accepted),
            ("notify.result", &self.notify.result),
            ("notify.rating_request", &self.notify.rating_request),
        ];
        for (key, text) in templates {
            if text.trim().is_empty() {
                return invalid(key, "must not be empty");
            }
            if let Some(name) = crate::templates::unknown_placeholder(text) {
                return invalid(key, format!("unknown placeholder {name}"));
            }
        }
        Ok(())
    }

    /// How intake bodies are checked (normalize and the gateway alike).
    pub fn intake_policy(&self) -> crate::intake::IntakePolicy {
        crate::intake::IntakePolicy {
            max_body_bytes: self.intake.max_body_bytes,
            clock: crate::domain::ReceiptClock {
                future_tolerance: chrono::Duration::seconds(self.intake.future_tolerance_secs),
                max_age: chrono::Duration::days(self.intake.max_age_days),
            },
        }
    }

    pub fn office_close(&self) -> Option<NaiveTime> {
        NaiveTime::parse_from_str(&self.deadline.office_close, "%H:%M").ok()
    }
}

/// The first key (in sorted order) of `given` that `known` lacks, with the
/// origin of its value; `prefix` is the dotted path of both tables.
fn first_unknown(
    known: &config::Map<String, config::Value>,
    given: &config::Map<String, config::Value>,
    prefix: &str,
) -> Option<(String, Option<String>)> {
    let mut names: Vec<&String> = given.keys().collect();
    names.sort();
    for name in names {
        let path = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
        let value = &given[name];
        match (known.get(name).map(|k| &k.kind), &value.kind) {
            (None, _) => return Some((path, value.origin().map(str::to_owned))),
            (Some(config::ValueKind::Table(known)), config::ValueKind::Table(given)) => {
                if let Some(found) = first_unknown(known, given, &path) {
                    return Some(found);
                }
            }
            // A leaf, or a table where a leaf belongs: deserialization names the key.
            _ => {}
        }
    }
    None
}

/// Largest `w` accepted as a number of nodes (a replica set has at most 50 members).
const MAX_NODES: u32 = 50;

fn acknowledgment(w: &str) -> Option<mongodb::options::Acknowledgment> {
    match w {
        "majority" => Some(mongodb::options::Acknowledgment::Majority),
        n => n.parse::<u32>().ok().filter(|n| (1..=MAX_NODES).contains(n)).map(mongodb::options::Acknowledgment::Nodes),
    }
}

impl MongoSettings {
    /// `write_concern` and `journal` as the driver's write concern.
    pub fn write_concern(&self) -> mongodb::options::WriteConcern {
        let w = acknowledgment(&self.write_concern).expect("validated at load");
        mongodb::options::WriteConcern::builder().w(w).journal(self.journal).build()
    }
}

impl Settings {
    pub fn rating_period(&self) -> chrono::Duration {
        chrono::Duration::days(self.lifecycle.rating_days.into())
    }

    /// The deadline rules on `calendar` (as loaded from `calendar.dir` and
    /// the imported years; see `Store::calendar`).
    pub fn deadline_policy(&self, calendar: std::sync::Arc<crate::clock::SharedCalendar>) -> crate::clock::DeadlinePolicy {
        crate::clock::DeadlinePolicy {
            respond_within: chrono::Duration::hours(self.deadline.respond_hours),
            office_close: self.office_close().expect("validated at load"),
            calendar,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_env(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        Settings::load_with(None, Some(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()))
    }

    /// Loads with `text` as the `--config` file.
    fn load_file(name: &str, text: &str) -> Result<Settings, ConfigError> {
        let path = std::env::temp_dir().join(format!("nuannan-config-{}-{name}.toml", std::process::id()));
        std::fs::write(&path, text).unwrap();
        let loaded = Settings::load_with(Some(&path), Some(config::Map::new()));
        std::fs::remove_file(&path).unwrap();
        loaded
    }

    fn refused(loaded: Result<Settings, ConfigError>) -> String {
        loaded.expect_err("should be refused").to_string()
    }

    #[test]
    fn config_defaults_load() {
        let s = load_env(&[]).unwrap();
        assert_eq!(s.namespace, "nuannan");
        assert_eq!((s.amqp.prefetch, s.amqp.delivery_limit), (64, 5));
        assert_eq!((s.amqp.confirm_timeout_ms, s.amqp.hold_max_secs), (10_000, 600));
        assert_eq!((s.amqp.dead_max_length, s.amqp.unrouted_max_length), (100_000, 100_000));
        assert_eq!((s.mongodb.write_concern.as_str(), s.mongodb.journal), ("majority", true));
        assert_eq!(s.calendar, CalendarSettings { dir: "data/calendar".into(), refresh_secs: 60, warn_days_ahead: 45 });
        assert_eq!(s.retention, RetentionSettings { days: 30, raw_max_bytes: 65_536 });
        assert_eq!(s.office_close(), NaiveTime::from_hms_opt(17, 30, 0));
        let wc = s.mongodb.write_concern();
        assert_eq!((wc.w, wc.journal), (Some(mongodb::options::Acknowledgment::Majority), Some(true)));
    }

    #[test]
    fn config_serde_defaults_match_the_default_file() {
        let s = load_env(&[]).unwrap();
        assert_eq!(s.calendar, CalendarSettings::default());
        assert_eq!(s.retention, RetentionSettings::default());
        assert_eq!(s.amqp.confirm_timeout_ms, default::confirm_timeout_ms());
        assert_eq!(s.amqp.hold_max_secs, default::hold_max_secs());
        assert_eq!(s.amqp.dead_max_length, default::max_length());
        assert_eq!(s.amqp.unrouted_max_length, default::max_length());
        assert_eq!(s.mongodb.write_concern, default::write_concern());
        assert_eq!(s.mongodb.journal, default::journal());
    }

    #[test]
    fn config_env_overrides_apply() {
        let s = load_env(&[
            ("NUANNAN__DEADLINE__WARN_RATIO", "0.5"),
            ("NUANNAN__AMQP__RECONNECT_MAX_MS", "2000"),
            ("NUANNAN__AMQP__HOLD_MAX_SECS", "30"),
            ("NUANNAN__MONGODB__WRITE_CONCERN", "2"),
            ("NUANNAN__MONGODB__JOURNAL", "false"),
            ("NUANNAN__CALENDAR__DIR", "/srv/calendar"),
            ("NUANNAN__RETENTION__DAYS", "7"),
            ("NUANNAN__NAMESPACE", "ns-1"),
            ("NUANNAN__OPS__HTTP_ADDR", ""),
            ("UNRELATED_VAR", "x"),
        ])
        .unwrap();
        assert_eq!(s.deadline.warn_ratio, 0.5);
        assert_eq!(s.amqp.reconnect_max_ms, 2000);
        assert_eq!(s.amqp.hold_max_secs, 30);
        assert_eq!((s.mongodb.write_concern.as_str(), s.mongodb.journal), ("2", false));
        assert_eq!(s.mongodb.write_concern().w, Some(mongodb::options::Acknowledgment::Nodes(2)));
        assert_eq!(s.calendar.dir, PathBuf::from("/srv/calendar"));
        assert_eq!(s.retention.days, 7);
        assert_eq!((s.namespace.as_str(), s.ops.http_addr.as_str()), ("ns-1", ""));
    }

    #[test]
    fn config_file_layer_applies_under_env() {
        let s = load_file("layers", "[calendar]\nrefresh_secs = 5\n[amqp]\nprefetch = 8\n").unwrap();
        assert_eq!((s.calendar.refresh_secs, s.amqp.prefetch), (5, 8));
    }

    #[test]
    fn config_unknown_keys_are_refused_naming_them() {
        let e = refused(load_env(&[("NUANNAN__AMQP__PREFETC", "8")]));
        assert!(e.contains("`amqp.prefetc`") && e.contains("NUANNAN__AMQP__PREFETC"), "{e}");
        let e = refused(load_env(&[("NUANNAN__NAMESPAC", "x")]));
        assert!(e.contains("`namespac`"), "{e}");
        let e = refused(load_env(&[("NUANNAN__NOTIFY__RESULTS", "x")]));
        assert!(e.contains("`notify.results`"), "{e}");
        let e = refused(load_env(&[("NUANNAN__RETENTION__DAY", "3")]));
        assert!(e.contains("`retention.day`"), "{e}");
        let e = refused(load_file("unknown", "[calendar]\nrefresh_sec = 5\n"));
        assert!(e.contains("`calendar.refresh_sec`") && e.contains("nuannan-config-"), "{e}");
        let e = refused(load_file("section", "[deadlines]\nrespond_hours = 4\n"));
        assert!(e.contains("`deadlines`"), "{e}");
    }

    #[test]
    fn config_out_of_range_values_are_refused_naming_them() {
        let cases = [
            ("NUANNAN__NAMESPACE", "bad ns!", "namespace"),
            ("NUANNAN__AMQP__URL", "http://broker", "amqp.url"),
            ("NUANNAN__AMQP__PREFETCH", "0", "amqp.prefetch"),
            ("NUANNAN__AMQP__PREFETCH", "70000", "amqp.prefetch"),
            ("NUANNAN__AMQP__PREFETCH", "lots", "amqp.prefetch"),
            ("NUANNAN__AMQP__DELIVERY_LIMIT", "0", "amqp.delivery_limit"),
            ("NUANNAN__AMQP__DELIVERY_LIMIT", "1001", "amqp.delivery_limit"),
            ("NUANNAN__AMQP__RECONNECT_INITIAL_MS", "0", "amqp.reconnect_initial_ms"),
            ("NUANNAN__AMQP__RECONNECT_INITIAL_MS", "10001", "amqp.reconnect_initial_ms"),
            ("NUANNAN__AMQP__RECONNECT_MAX_MS", "0", "amqp.reconnect_max_ms"),
            ("NUANNAN__AMQP__RECONNECT_MAX_MS", "100", "amqp.reconnect_initial_ms"),
            ("NUANNAN__AMQP__RECONNECT_MAX_MS", "600001", "amqp.reconnect_max_ms"),
            ("NUANNAN__AMQP__CONFIRM_TIMEOUT_MS", "0", "amqp.confirm_timeout_ms"),
            ("NUANNAN__AMQP__CONFIRM_TIMEOUT_MS", "-1", "amqp.confirm_timeout_ms"),
            ("NUANNAN__AMQP__HOLD_MAX_SECS", "0", "amqp.hold_max_secs"),
            ("NUANNAN__AMQP__HOLD_MAX_SECS", "86401", "amqp.hold_max_secs"),
            ("NUANNAN__AMQP__DEAD_MAX_LENGTH", "0", "amqp.dead_max_length"),
            ("NUANNAN__AMQP__UNROUTED_MAX_LENGTH", "0", "amqp.unrouted_max_length"),
            ("NUANNAN__MONGODB__URI", "http://db", "mongodb.uri"),
            ("NUANNAN__MONGODB__DATABASE", "a/b", "mongodb.database"),
            ("NUANNAN__MONGODB__WRITE_CONCERN", "0", "mongodb.write_concern"),
            ("NUANNAN__MONGODB__WRITE_CONCERN", "51", "mongodb.write_concern"),
            ("NUANNAN__MONGODB__WRITE_CONCERN", "all", "mongodb.write_concern"),
            ("NUANNAN__MONGODB__JOURNAL", "maybe", "mongodb.journal"),
            ("NUANNAN__INTAKE__MAX_BODY_BYTES", "0", "intake.max_body_bytes"),
            ("NUANNAN__INTAKE__MAX_BODY_BYTES", "134217729", "intake.max_body_bytes"),
            ("NUANNAN__INTAKE__ATTACH_WINDOW_SECS", "0", "intake.attach_window_secs"),
            ("NUANNAN__INTAKE__FUTURE_TOLERANCE_SECS", "-1", "intake.future_tolerance_secs"),
            ("NUANNAN__INTAKE__FUTURE_TOLERANCE_SECS", "86401", "intake.future_tolerance_secs"),
            ("NUANNAN__INTAKE__MAX_AGE_DAYS", "0", "intake.max_age_days"),
            ("NUANNAN__INTAKE__MAX_AGE_DAYS", "3651", "intake.max_age_days"),
            ("NUANNAN__DEADLINE__SCAN_INTERVAL_MS", "0", "deadline.scan_interval_ms"),
            ("NUANNAN__DEADLINE__SCAN_INTERVAL_MS", "-5", "deadline.scan_interval_ms"),
            ("NUANNAN__DEADLINE__RESPOND_HOURS", "0", "deadline.respond_hours"),
            ("NUANNAN__DEADLINE__RESPOND_HOURS", "-4", "deadline.respond_hours"),
            ("NUANNAN__DEADLINE__RESPOND_HOURS", "721", "deadline.respond_hours"),
            ("NUANNAN__DEADLINE__OFFICE_CLOSE", "25:99", "deadline.office_close"),
            ("NUANNAN__DEADLINE__OFFICE_CLOSE", "5pm", "deadline.office_close"),
            ("NUANNAN__DEADLINE__WARN_RATIO", "0", "deadline.warn_ratio"),
            ("NUANNAN__DEADLINE__WARN_RATIO", "1", "deadline.warn_ratio"),
            ("NUANNAN__DEADLINE__WARN_RATIO", "NaN", "deadline.warn_ratio"),
            ("NUANNAN__LIFECYCLE__RATING_DAYS", "0", "lifecycle.rating_days"),
            ("NUANNAN__LIFECYCLE__RATING_DAYS", "366", "lifecycle.rating_days"),
            ("NUANNAN__CALENDAR__DIR", "", "calendar.dir"),
            ("NUANNAN__CALENDAR__REFRESH_SECS", "0", "calendar.refresh_secs"),
            ("NUANNAN__CALENDAR__WARN_DAYS_AHEAD", "0", "calendar.warn_days_ahead"),
            ("NUANNAN__RETENTION__DAYS", "0", "retention.days"),
            ("NUANNAN__RETENTION__DAYS", "3651", "retention.days"),
            ("NUANNAN__RETENTION__RAW_MAX_BYTES", "0", "retention.raw_max_bytes"),
            ("NUANNAN__RETENTION__RAW_MAX_BYTES", "8388609", "retention.raw_max_bytes"),
            ("NUANNAN__OPS__HTTP_ADDR", "localhost:80", "ops.http_addr"),
            ("NUANNAN__NOTIFY__RESULT", "办结：{reslut}", "notify.result"),
            ("NUANNAN__NOTIFY__ACCEPTED", " ", "notify.accepted"),
        ];
        for (var, value, key) in cases {
            let e = refused(load_env(&[(var, value)]));
            assert!(e.contains(&format!("`{key}`")), "{var}={value} should name `{key}`: {e}");
        }
    }

    #[test]
    fn config_bounds_are_inclusive() {
        let s = load_env(&[
            ("NUANNAN__AMQP__RECONNECT_INITIAL_MS", "600000"),
            ("NUANNAN__AMQP__RECONNECT_MAX_MS", "600000"),
            ("NUANNAN__AMQP__DELIVERY_LIMIT", "1"),
            ("NUANNAN__MONGODB__WRITE_CONCERN", "50"),
            ("NUANNAN__INTAKE__FUTURE_TOLERANCE_SECS", "0"),
            ("NUANNAN__DEADLINE__RESPOND_HOURS", "720"),
            ("NUANNAN__LIFECYCLE__RATING_DAYS", "365"),
            ("NUANNAN__RETENTION__RAW_MAX_BYTES", "8388608"),
        ]);
        assert!(s.is_ok(), "{:?}", s.err());
    }
}
