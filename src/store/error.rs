//! What a failed store operation means to its caller: the consume loop holds
//! a delivery while the store is [`StoreError::Unavailable`] (no delivery
//! attempt spent) and retries, then dead-letters, on anything else.

use mongodb::error::ErrorKind;

use crate::bus::Failure;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// MongoDB could not be reached at all: no server selected, the
    /// connection broke, or the pool was cleared after a network error.
    #[error("the store is unreachable: {0}")]
    Unavailable(mongodb::error::Error),
    /// MongoDB answered and refused the operation.
    #[error("store operation failed: {0}")]
    Failed(mongodb::error::Error),
    /// The petition kept changing under every attempt to change it.
    #[error("petition {0} kept changing; giving up for now")]
    Contended(String),
    /// A document did not have the shape this code reads or writes.
    #[error("store document: {0}")]
    Shape(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

impl From<mongodb::error::Error> for StoreError {
    fn from(e: mongodb::error::Error) -> Self {
        match e.kind.as_ref() {
            ErrorKind::ServerSelection { .. } | ErrorKind::Io(_) | ErrorKind::ConnectionPoolCleared { .. } => StoreError::Unavailable(e),
            _ => StoreError::Failed(e),
        }
    }
}

impl From<bson::ser::Error> for StoreError {
    fn from(e: bson::ser::Error) -> Self {
        StoreError::Shape(e.to_string())
    }
}

impl From<bson::de::Error> for StoreError {
    fn from(e: bson::de::Error) -> Self {
        StoreError::Shape(e.to_string())
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        if e.is_unavailable() { Failure::unavailable(e) } else { Failure::error(e) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unreachable_servers_hold_deliveries() {
        let io = mongodb::error::Error::from(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset"));
        assert!(StoreError::from(io).is_unavailable());
        let refused = mongodb::error::Error::custom("write refused");
        assert!(!StoreError::from(refused).is_unavailable());
        assert!(matches!(Failure::from(StoreError::Shape("x".into())), Failure::Error(_)));
    }
}
