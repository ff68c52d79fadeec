//! WeChat's access token, shared by every deliver worker through the store:
//! cached until shortly before it expires, fetched by one worker at a time
//! (a lease in `tokens`), and retired when WeChat refuses it (40001, 40014,
//! 42001) so that exactly one worker fetches the next.

use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use tokio::sync::Mutex;

use nuannan::deliver::wechat::{self, TokenAnswer};
use nuannan::store::{Store, StoredToken};

/// How long a worker may take to fetch a token before another may try.
const LEASE: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(100);

pub struct Tokens {
    store: Store,
    http: reqwest::Client,
    /// `wechat:<app id>`.
    key: String,
    /// Identifies this worker's lease.
    owner: String,
    base: String,
    app_id: String,
    /// Never logged.
    secret: String,
    /// Also serializes this process's readers: one store round-trip or fetch at a time.
    cached: Mutex<Option<StoredToken>>,
}

impl Tokens {
    pub fn new(store: Store, http: reqwest::Client, base: &str, app_id: &str, secret: &str) -> Self {
        Tokens {
            store,
            http,
            key: format!("wechat:{app_id}"),
            owner: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()),
            base: base.trim_end_matches('/').to_owned(),
            app_id: app_id.to_owned(),
            secret: secret.to_owned(),
            cached: Mutex::new(None),
        }
    }

    /// A token to send with now.
    pub async fn get(&self) -> anyhow::Result<String> {
        let mut cached = self.cached.lock().await;
        if let Some(t) = cached.as_ref().filter(|t| t.refresh_at > Utc::now()) {
            return Ok(t.value.clone());
        }
        let deadline = tokio::time::Instant::now() + LEASE;
        loop {
            let now = Utc::now();
            if let Some(t) = self.store.token(&self.key).await?.filter(|t| t.refresh_at > now) {
                let value = t.value.clone();
                *cached = Some(t);
                return Ok(value);
            }
            if self.store.lease_token(&self.key, &self.owner, now, now + LEASE).await? {
                let token = match self.fetch().await {
                    Ok(token) => token,
                    Err(e) => {
                        self.store.release_token(&self.key, &self.owner).await?;
                        return Err(e);
                    }
                };
                self.store.save_token(&self.key, &self.owner, &token).await?;
                tracing::info!(refresh_at = %token.refresh_at, "fetched a WeChat access token");
                let value = token.value.clone();
                *cached = Some(token);
                return Ok(value);
            }
            anyhow::ensure!(tokio::time::Instant::now() < deadline, "another worker's token refresh did not finish in {LEASE:?}");
            tokio::time::sleep(POLL).await;
        }
    }

    /// WeChat refused `value`: the next `get` fetches a new token, once for
    /// all the workers that saw the refusal.
    pub async fn retire(&self, value: &str) -> anyhow::Result<()> {
        let mut cached = self.cached.lock().await;
        if cached.as_ref().is_some_and(|t| t.value == value) {
            *cached = None;
        }
        self.store.retire_token(&self.key, value).await?;
        Ok(())
    }

    async fn fetch(&self) -> anyhow::Result<StoredToken> {
        let url = format!("{}{}", self.base, wechat::token_path(&self.app_id, &self.secret));
        // Errors without the URL: it carries the secret.
        let answer: TokenAnswer = async { self.http.get(&url).send().await?.error_for_status()?.json().await }
            .await
            .map_err(|e: reqwest::Error| e.without_url())
            .context("asking WeChat for an access token")?;
        let token = answer.token(Utc::now()).map_err(anyhow::Error::msg)?;
        Ok(StoredToken { value: token.value, refresh_at: token.refresh_at })
    }
}
