//! Where a petition must go (pure): locate it on the grid, classify it,
//! apply the dispatch rule, and compute its deadlines.

mod classify;
mod locate;
mod registry;
mod rules;

pub use crate::domain::Person;
pub use classify::{Classified, ClassifiedBy, Classifier, MIN_CONFIDENCE, TAXONOMY_MAP as TAXONOMY_MAP_CSV};
pub use locate::{LocateQuery, LocatedBy, Location};
pub use registry::{BUNDLED as BUNDLED_REGISTRY, GridKind, Registry, RegistryError, Unit};
pub use rules::{RouteDecision, RouteInput, Router, TriageReason};
