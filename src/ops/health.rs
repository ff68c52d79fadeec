//! Is this process connected to what it needs? Roles report their broker
//! sessions; a background probe pings the store.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::Store;

#[derive(Debug, Default)]
pub struct Health {
    roles: AtomicUsize,
    sessions: AtomicUsize,
    store: AtomicBool,
    /// Set when the working-day calendar runs out soon: reported, not fatal.
    calendar_degraded: AtomicBool,
}

pub fn health() -> &'static Health {
    static HEALTH: OnceLock<Health> = OnceLock::new();
    HEALTH.get_or_init(Health::default)
}

impl Health {
    /// How many roles this process runs: each must hold a broker session.
    pub fn expect_roles(&self, n: usize) {
        self.roles.fetch_add(n, Ordering::SeqCst);
    }

    pub fn session_up(&self) {
        self.sessions.fetch_add(1, Ordering::SeqCst);
    }

    pub fn session_down(&self) {
        self.sessions.fetch_sub(1, Ordering::SeqCst);
    }

    pub fn broker_connected(&self) -> bool {
        let roles = self.roles.load(Ordering::SeqCst);
        roles > 0 && self.sessions.load(Ordering::SeqCst) >= roles
    }

    pub fn set_calendar(&self, ok: bool) {
        self.calendar_degraded.store(!ok, Ordering::SeqCst);
    }

    pub fn calendar_ok(&self) -> bool {
        !self.calendar_degraded.load(Ordering::SeqCst)
    }

    pub fn store_connected(&self) -> bool {
        self.store.load(Ordering::SeqCst)
    }

    pub fn set_store(&self, up: bool) {
        let was = self.store.swap(up, Ordering::SeqCst);
        if was != up {
            if up {
                tracing::info!("store reachable");
            } else {
                tracing::warn!("store unreachable");
            }
        }
    }

    /// Pings the store until shutdown: every 5 s while it answers, every
    /// 500 ms while it does not, so paused workers resume promptly.
    pub async fn probe_store(&self, store: Store, shutdown: CancellationToken) {
        loop {
            let up = matches!(tokio::time::timeout(Duration::from_secs(2), store.ping()).await, Ok(Ok(())));
            self.set_store(up);
            let pause = if up { Duration::from_secs(5) } else { Duration::from_millis(500) };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }
}
