//! The HMAC scheme of the 12345 platform and the App webhook
//! (`docs/contract.md` §12): `X-Nuannan-Timestamp` (Unix seconds) and
//! `X-Nuannan-Signature` = lowercase hex HMAC-SHA256 over
//! `timestamp + "." + body` with the shared secret, within 300 s of now.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How far a timestamp may be from now, either way.
pub const WINDOW_SECS: i64 = 300;

pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the timestamp header is missing or not a number")]
    NoTimestamp,
    #[error("the timestamp is more than 300 s from now")]
    Stale,
    #[error("the signature does not match")]
    Mismatch,
}

/// Checks a signed request at `now` (Unix seconds). An empty secret never verifies.
pub fn verify(secret: &str, timestamp: Option<&str>, signature: Option<&str>, body: &[u8], now: i64) -> Result<(), SignatureError> {
    let timestamp: i64 = timestamp.and_then(|t| t.trim().parse().ok()).ok_or(SignatureError::NoTimestamp)?;
    if (now - timestamp).abs() > WINDOW_SECS {
        return Err(SignatureError::Stale);
    }
    let given = signature.map(str::trim).unwrap_or_default().to_ascii_lowercase();
    if secret.is_empty() || !super::wechat::same(&given, &sign(secret, timestamp, body)) {
        return Err(SignatureError::Mismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_within_the_window_only() {
        let body = br#"{"order_no":"QD1"}"#;
        let sig = sign("s3cret", 1_700_000_000, body);
        // Independently: printf '1700000000.{"order_no":"QD1"}' | openssl dgst -sha256 -hmac s3cret
        assert_eq!(sig, "1048d63b75dd61b19dc1e18062463bd349ac01fd9b68df554d3451cebb87e3f5");
        assert_eq!(verify("s3cret", Some("1700000000"), Some(&sig), body, 1_700_000_100), Ok(()));
        assert_eq!(verify("s3cret", Some("1700000000"), Some(&sig.to_uppercase()), body, 1_700_000_000), Ok(()));
        assert_eq!(verify("s3cret", Some("1700000000"), Some(&sig), body, 1_700_000_301), Err(SignatureError::Stale));
        assert_eq!(verify("s3cret", Some("1700000000"), Some(&sig), b"{}", 1_700_000_000), Err(SignatureError::Mismatch));
        assert_eq!(verify("other", Some("1700000000"), Some(&sig), body, 1_700_000_000), Err(SignatureError::Mismatch));
        assert_eq!(
            verify("", Some("1700000000"), Some(&sign("", 1_700_000_000, body)), body, 1_700_000_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(verify("s3cret", None, Some(&sig), body, 1_700_000_000), Err(SignatureError::NoTimestamp));
        assert_eq!(verify("s3cret", Some("1700000000"), None, body, 1_700_000_000), Err(SignatureError::Mismatch));
    }
}
