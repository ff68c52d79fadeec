//! Identity (`docs/contract.md` §13): the principals every broker user and
//! HTTP key maps to, and the least-privilege broker grants of each kind.

mod definitions;
mod grants;
mod principal;

pub use definitions::{Definitions, MissingPassword, Plan, SHA256_HASHING, password_hash, plan};
pub use grants::{Grant, TopicGrant, grant, own_queues};
pub use principal::{BadUserName, Kind, Parsed, Principal, Principals, PrincipalsError, UserName, api_key_digest};

/// The environment variable that holds `user`'s broker password:
/// `NUANNAN_PASSWORD_<USER>`, upper case, `-` as `_`.
pub fn password_var(user: &str) -> String {
    format!("NUANNAN_PASSWORD_{}", user.to_ascii_uppercase().replace('-', "_"))
}
