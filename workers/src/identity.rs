//! The principals as the running roles see them (`docs/contract.md` §13):
//! loaded before the roles start, reloaded every [`REFRESH`] so a
//! `principals load` takes effect within 5 s without a restart, and read
//! through to the store for a user not (yet) known.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use nuannan::identity::{Principal, Principals};
use nuannan::store::{Store, StoreError};
use tokio_util::sync::CancellationToken;

/// Well inside the contract's 5 s, with room for a slow read.
pub const REFRESH: Duration = Duration::from_secs(2);

pub struct Directory {
    store: Store,
    current: RwLock<Arc<Principals>>,
}

impl Directory {
    pub async fn load(store: Store) -> Result<Arc<Directory>, StoreError> {
        let principals = store.principals().await?;
        if principals.is_empty() {
            tracing::warn!("no principals are loaded: every command will be refused (`nuannan principals load FILE`)");
        }
        Ok(Arc::new(Directory { store, current: RwLock::new(Arc::new(principals)) }))
    }

    /// The principal of broker user `user`.
    pub async fn get(&self, user: &str) -> Result<Option<Principal>, StoreError> {
        if let Some(p) = self.current.read().expect("principals lock").get(user) {
            return Ok(Some(p.clone()));
        }
        // Only users RabbitMQ authenticated get here, so this read is not
        // something an outsider can make us repeat at will.
        self.store.principal(user).await
    }

    /// The principal whose HTTP key is `key` (from the last reload).
    pub fn by_api_key(&self, key: &str) -> Option<Principal> {
        self.current.read().expect("principals lock").by_api_key(key).cloned()
    }

    /// Reloads the whole set every [`REFRESH`] until shutdown.
    pub async fn refresh(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(REFRESH) => {}
            }
            match self.store.principals().await {
                Ok(principals) => *self.current.write().expect("principals lock") = Arc::new(principals),
                Err(e) => tracing::warn!(error = %e, "reloading the principals failed; keeping the last set"),
            }
        }
    }
}
