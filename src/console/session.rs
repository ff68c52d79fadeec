//! Console logins: argon2id passwords (the principals file's
//! `password_hash`), session tokens and CSRF tokens signed with HMAC-SHA256.
//! A token is `user.expiry.signature`: stateless, so console replicas that
//! share `console.session_secret` share sessions.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    #[error("unknown user or wrong password")]
    Refused,
    #[error("the stored password hash is not a PHC string: {0}")]
    BadHash(String),
}

/// Checks `password` against a PHC string (argon2id as `hash_password` writes it).
pub fn verify_password(password: &str, phc: &str) -> Result<(), LoginError> {
    let hash = PasswordHash::new(phc).map_err(|e| LoginError::BadHash(e.to_string()))?;
    Argon2::default().verify_password(password.as_bytes(), &hash).map_err(|_| LoginError::Refused)
}

/// The PHC string to put in the principals file as `password_hash`.
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default().hash_password(password.as_bytes(), &salt).expect("argon2 with default parameters").to_string()
}

/// The signing key of sessions and CSRF tokens.
#[derive(Clone)]
pub struct Keys {
    secret: Vec<u8>,
}

impl Keys {
    /// From `console.session_secret`, or random when it is empty.
    pub fn new(secret: &str) -> Keys {
        let secret = if secret.is_empty() { uuid::Uuid::new_v4().as_bytes().repeat(2) } else { secret.as_bytes().to_vec() };
        Keys { secret }
    }

    fn sign(&self, text: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes any key length");
        mac.update(text.as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// A session for `user` until `until`.
    pub fn session(&self, user: &str, until: DateTime<Utc>) -> String {
        let body = format!("{user}.{}", until.timestamp());
        format!("{body}.{}", self.sign(&body))
    }

    /// The user of a genuine, unexpired session token.
    pub fn user_of<'t>(&self, token: &'t str, now: DateTime<Utc>) -> Option<&'t str> {
        let (body, signature) = token.rsplit_once('.')?;
        let (user, expiry) = body.split_once('.')?;
        let genuine: bool = crate::gateway::wechat::same(signature, &self.sign(body));
        (genuine && expiry.parse::<i64>().ok()? > now.timestamp()).then_some(user)
    }

    /// The CSRF token of a session: bound to it, so a form from another
    /// session (or another site) does not pass.
    pub fn csrf(&self, session: &str) -> String {
        self.sign(&format!("csrf:{session}"))
    }

    pub fn csrf_ok(&self, session: &str, given: &str) -> bool {
        crate::gateway::wechat::same(given, &self.csrf(session))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn passwords_verify_against_their_argon2id_hash() {
        let phc = hash_password("暖南-2026");
        assert!(phc.starts_with("$argon2id$"));
        assert_eq!(verify_password("暖南-2026", &phc), Ok(()));
        assert_eq!(verify_password("wrong", &phc), Err(LoginError::Refused));
        assert!(matches!(verify_password("x", "not-a-hash"), Err(LoginError::BadHash(_))));
    }

    #[test]
    fn sessions_are_signed_and_expire() {
        let now = Utc::now();
        let keys = Keys::new("secret");
        let token = keys.session("badaxia-sup", now + Duration::hours(1));
        assert_eq!(keys.user_of(&token, now), Some("badaxia-sup"));
        assert_eq!(keys.user_of(&token, now + Duration::hours(2)), None, "expired");
        assert_eq!(Keys::new("other").user_of(&token, now), None, "another key");
        let forged = token.replacen("badaxia-sup", "district-review", 1);
        assert_eq!(keys.user_of(&forged, now), None, "the user is signed");
        assert!(keys.csrf_ok(&token, &keys.csrf(&token)));
        assert!(!keys.csrf_ok(&token, &keys.csrf("another session")));
    }
}
