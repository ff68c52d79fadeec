//! JSON-lines logging through `tracing`, filtered by `RUST_LOG`, plus the
//! masking helpers that keep citizens' identifiers out of info-level logs.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// Installs the global subscriber once; later calls (tests) are no-ops.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::registry().with(filter).with(fmt::layer().json().flatten_event(true).with_current_span(false)).try_init();
}

/// `13812345678` → `138****5678`; anything short is fully masked.
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    if chars.len() < 7 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 7))
}

/// Keeps the first four characters of an openid or user id: enough to
/// correlate log lines, not enough to identify a citizen.
pub fn mask_id(id: &str) -> String {
    let head: String = id.chars().take(4).collect();
    format!("{head}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_keeps_prefix_and_last_four() {
        assert_eq!(mask_phone("13812345678"), "138****5678");
        assert_eq!(mask_phone("12345"), "*****");
    }

    #[test]
    fn id_keeps_four_chars() {
        assert_eq!(mask_id("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"), "oUpF…");
    }
}
