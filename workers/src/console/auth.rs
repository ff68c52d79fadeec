//! Who is asking: the session cookie (pages) or the bearer token (`/api/`),
//! both the same signed token; the principal behind it is read afresh on
//! every request, so a principal removed or changed in the principals file
//! loses or changes its access within the reload interval.

use axum::http::{HeaderMap, HeaderValue, header};
use chrono::Utc;

use nuannan::console::Scope;

use super::Console;

pub const SESSION_COOKIE: &str = "nuannan_session";
pub const LOGIN_COOKIE: &str = "nuannan_login";

/// Why a request has no scope: no or a bad token, or a principal that may
/// not use the console (any more).
#[derive(Debug)]
pub struct Unauthenticated;

pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

/// `HttpOnly` (no script reads it), `SameSite=Strict` (no other site sends
/// it), for the whole console.
pub fn set_cookie(name: &str, value: &str, max_age_secs: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("{name}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_secs}"))
        .expect("a cookie value of token characters")
}

impl Console {
    /// The scope of a session or API token.
    pub async fn scope_of(&self, token: Option<&str>) -> Result<Scope, Unauthenticated> {
        let user = token.and_then(|t| self.keys.user_of(t, Utc::now())).ok_or(Unauthenticated)?;
        let principal = self.shared.principals.get(user).await.ok().flatten().ok_or(Unauthenticated)?;
        Scope::of(&principal, self.shared.registry.district()).ok_or(Unauthenticated)
    }

    /// Logs `user` in with `password`: the token, or why not (logged without the password).
    pub async fn log_in(&self, user: &str, password: &str) -> Option<String> {
        let principal = self.shared.principals.get(user).await.ok().flatten();
        let allowed = principal.as_ref().and_then(|p| Scope::of(p, self.shared.registry.district())).is_some();
        let verified = match principal.as_ref().and_then(|p| p.password_hash.as_deref()) {
            Some(phc) => nuannan::console::verify_password(password, phc).is_ok(),
            None => false,
        };
        if !(allowed && verified) {
            tracing::warn!(user = %nuannan::telemetry::mask_id(user), allowed, "console login refused");
            return None;
        }
        let until = Utc::now() + chrono::Duration::hours(i64::from(self.settings.console.session_hours));
        tracing::info!(user, "console login");
        Some(self.keys.session(user, until))
    }

    pub fn session_secs(&self) -> i64 {
        i64::from(self.settings.console.session_hours) * 3600
    }
}
