//! What the roles that move petitions (lifecycle, deadline) need from the
//! world: the registry, the deadline policy and the clock settings, put to
//! the lifecycle's pure functions the same way by both.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use nuannan::clock::DeadlinePolicy;
use nuannan::config::Settings;
use nuannan::domain::UnitPath;
use nuannan::lifecycle::{self, Env, Transition};
use nuannan::routing::Registry;
use nuannan::store::{PetitionChange, PetitionRecord};

/// What every role of a process shares, loaded once before the roles
/// start (so they never seed the registry side by side): the registry, the
/// deadline policy (whose calendar is kept current) and the principals.
#[derive(Clone)]
pub struct Shared {
    pub registry: Arc<Registry>,
    pub policy: DeadlinePolicy,
    pub principals: Arc<crate::identity::Directory>,
    /// The gateway's publisher, filled by its broker session.
    pub gateway: crate::gateway::Slot,
    /// Wakes the console's live feeds.
    pub console: crate::console::Wake,
}

pub struct Rules {
    registry: Arc<Registry>,
    pub policy: DeadlinePolicy,
    pub warn_ratio: f64,
    rating_period: chrono::Duration,
}

impl Rules {
    pub fn new(settings: &Settings, shared: &Shared) -> Rules {
        Rules {
            registry: shared.registry.clone(),
            policy: shared.policy.clone(),
            warn_ratio: settings.deadline.warn_ratio,
            rating_period: settings.rating_period(),
        }
    }

    /// Runs `f` with the machine's view of the world at `now`.
    pub fn at<T>(&self, now: DateTime<Utc>, f: impl FnOnce(&Env) -> T) -> T {
        let exists = |u: &UnitPath| self.registry.unit(u).is_some();
        f(&Env { now, policy: &self.policy, rating_period: self.rating_period, unit_exists: &exists })
    }

    /// The stored change a transition of `p` (held by `unit`) makes.
    pub fn change(
        &self,
        p: &PetitionRecord,
        unit: &UnitPath,
        now: DateTime<Utc>,
        t: &Transition,
        actor: Option<serde_json::Value>,
        command_id: Option<&str>,
    ) -> PetitionChange {
        let handler_of = |u: &UnitPath| self.registry.unit(u).and_then(|u| u.handler().cloned());
        let context = lifecycle::Context {
            petition: p,
            unit,
            now,
            warn_ratio: self.warn_ratio,
            policy: &self.policy,
            handler_of: &handler_of,
            actor,
            command_id,
        };
        lifecycle::change(&context, t)
    }
}
