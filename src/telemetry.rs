//! JSON-lines logging through `tracing`, filtered by `RUST_LOG`, plus the
//! masking helpers that keep citizens' identifiers out of info-level logs.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// Installs the global subscriber once; later calls (tests) are no-ops.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::registry().with(filter).with(fmt::layer().json().flatten_event(true).with_current_span(true)).try_init();
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

/// Masks what looks like a phone number (a run of 7 or more digits) or an
/// openid / user id (a run of 16 or more id characters mixing letters and
/// digits) inside free text, such as a parser's error quoting its input.
pub fn mask_text(text: &str) -> String {
    let is_id_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(is_id_char) {
        out.push_str(&rest[..start]);
        let token_len = rest[start..].find(|c: char| !is_id_char(c)).unwrap_or(rest.len() - start);
        let token = &rest[start..start + token_len];
        out.push_str(&mask_token(token));
        rest = &rest[start + token_len..];
    }
    out.push_str(rest);
    out
}

fn mask_token(token: &str) -> String {
    let digits = token.chars().filter(char::is_ascii_digit).count();
    let letters = token.chars().filter(char::is_ascii_alphabetic).count();
    if digits == token.len() && digits >= 7 {
        mask_phone(token)
    } else if token.len() >= 16 && digits > 0 && letters > 0 {
        mask_id(token)
    } else {
        token.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_quoting_a_phone_or_an_openid_is_masked() {
        let serde = r#"invalid type: string "13812345678", expected u8 at line 1 column 40"#;
        assert_eq!(mask_text(serde), r#"invalid type: string "138****5678", expected u8 at line 1 column 40"#);
        let openid = "unknown citizen oUpF8uMuAJO_M2pxb1Q9zNjWeS6o in 团岛";
        assert_eq!(mask_text(openid), "unknown citizen oUpF… in 团岛");
        // Ordinary words, codes and short numbers stay readable.
        assert_eq!(mask_text("missing field `request_id` at line 12"), "missing field `request_id` at line 12");
        assert_eq!(mask_text("petition 20261128-000001"), "petition 20261128-000001");
    }

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
