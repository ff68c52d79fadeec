//! Identity (`docs/contract.md` §13): the principals every broker user and
//! HTTP key maps to, and the least-privilege broker grants of each kind.

mod definitions;
mod grants;
mod principal;

pub use definitions::{Definitions, MissingPassword, Plan, SHA256_HASHING, password_hash, plan};
pub use grants::{Grant, TopicGrant, grant, own_queues};
pub use principal::{BadUserName, Kind, Parsed, Principal, Principals, PrincipalsError, UserName, api_key_digest};
