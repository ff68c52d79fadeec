//! Layered configuration: `config/default.toml` (compiled in, so the binary
//! always has a complete base) < optional `--config FILE` < `NUANNAN__SECTION__KEY`.

use std::path::Path;

use chrono::NaiveTime;
use serde::Deserialize;

const DEFAULTS: &str = include_str!("../config/default.toml");

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub namespace: String,
    pub amqp: AmqpSettings,
    pub mongodb: MongoSettings,
    pub intake: IntakeSettings,
    pub deadline: DeadlineSettings,
    pub lifecycle: LifecycleSettings,
    pub notify: crate::templates::Templates,
    pub ops: OpsSettings,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OpsSettings {
    /// Where `/healthz` and `/metrics` are served; empty disables.
    pub http_addr: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LifecycleSettings {
    pub rating_days: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AmqpSettings {
    pub url: String,
    pub prefetch: u16,
    pub delivery_limit: u32,
    pub reconnect_initial_ms: u64,
    pub reconnect_max_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MongoSettings {
    pub uri: String,
    pub database: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct IntakeSettings {
    pub max_body_bytes: usize,
    pub attach_window_secs: i64,
    pub future_tolerance_secs: i64,
    pub max_age_days: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DeadlineSettings {
    pub scan_interval_ms: u64,
    pub respond_hours: i64,
    pub office_close: String,
    pub warn_ratio: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration key `{key}`: {problem}")]
    Invalid { key: &'static str, problem: String },
}

impl Settings {
    /// Loads the layers; `file` is the optional `--config` path.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder().add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        if let Some(path) = file {
            builder = builder.add_source(config::File::from(path).required(true));
        }
        let settings: Settings = builder
            .add_source(config::Environment::with_prefix("NUANNAN").prefix_separator("__").separator("__").try_parsing(true))
            .build()?
            .try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, problem: &str| Err(ConfigError::Invalid { key, problem: problem.to_owned() });
        let ns_ok = !self.namespace.is_empty() && self.namespace.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ns_ok {
            return invalid("namespace", "must be non-empty ASCII letters, digits, '-', '_' or '.'");
        }
        if !(self.amqp.url.starts_with("amqp://") || self.amqp.url.starts_with("amqps://")) {
            return invalid("amqp.url", "must start with amqp:// or amqps://");
        }
        if self.amqp.prefetch == 0 {
            return invalid("amqp.prefetch", "must be at least 1");
        }
        if self.amqp.delivery_limit == 0 {
            return invalid("amqp.delivery_limit", "must be at least 1");
        }
        if !self.mongodb.uri.starts_with("mongodb://") && !self.mongodb.uri.starts_with("mongodb+srv://") {
            return invalid("mongodb.uri", "must start with mongodb:// or mongodb+srv://");
        }
        if self.mongodb.database.is_empty() || self.mongodb.database.contains(['/', '.', ' ', '$']) {
            return invalid("mongodb.database", "must be a valid MongoDB database name");
        }
        if self.intake.max_body_bytes == 0 {
            return invalid("intake.max_body_bytes", "must be positive");
        }
        if self.deadline.scan_interval_ms == 0 {
            return invalid("deadline.scan_interval_ms", "must be positive");
        }
        if self.office_close().is_none() {
            return invalid("deadline.office_close", "must be a time of day as HH:MM");
        }
        if !(self.deadline.warn_ratio > 0.0 && self.deadline.warn_ratio < 1.0) {
            return invalid("deadline.warn_ratio", "must be between 0 and 1 (exclusive)");
        }
        if !self.ops.http_addr.is_empty() && self.ops.http_addr.parse::<std::net::SocketAddr>().is_err() {
            return invalid("ops.http_addr", "must be HOST:PORT with an IP address, or empty to disable");
        }
        if self.lifecycle.rating_days == 0 {
            return invalid("lifecycle.rating_days", "must be at least 1");
        }
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
                return invalid(key, &format!("unknown placeholder {name}"));
            }
        }
        Ok(())
    }

    pub fn office_close(&self) -> Option<NaiveTime> {
        NaiveTime::parse_from_str(&self.deadline.office_close, "%H:%M").ok()
    }
}

impl Settings {
    pub fn rating_period(&self) -> chrono::Duration {
        chrono::Duration::days(self.lifecycle.rating_days.into())
    }

    /// The deadline rules with the bundled working-day calendar.
    pub fn deadline_policy(&self) -> crate::clock::DeadlinePolicy {
        crate::clock::DeadlinePolicy {
            respond_within: chrono::Duration::hours(self.deadline.respond_hours),
            office_close: self.office_close().expect("validated at load"),
            calendar: std::sync::Arc::new(crate::clock::Calendar::bundled()),
        }
    }
}
