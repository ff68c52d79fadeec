//! `principals apply` as a pure plan over RabbitMQ definitions: from what
//! the broker exports (users, permissions, topic permissions) and the
//! principals, the definitions to import and the stale topic permissions
//! to clear. The I/O (`rabbitmqctl export_definitions` / `import_definitions`)
//! is the caller's.

use std::collections::BTreeMap;

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Principals, grant};

/// RabbitMQ's default password hashing: base64(salt ‖ SHA-256(salt ‖ password)), 4-byte salt.
pub const SHA256_HASHING: &str = "rabbit_password_hashing_sha256";

pub fn password_hash(password: &str, salt: [u8; 4]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(salt);
    hasher.update(password.as_bytes());
    let mut out = salt.to_vec();
    out.extend_from_slice(&hasher.finalize());
    base64::engine::general_purpose::STANDARD.encode(out)
}

/// The parts of `rabbitmqctl export_definitions` that apply reads and writes.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Definitions {
    #[serde(default)]
    pub users: Vec<User>,
    #[serde(default)]
    pub permissions: Vec<Permission>,
    #[serde(default)]
    pub topic_permissions: Vec<TopicPermission>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub password_hash: String,
    pub hashing_algorithm: String,
    #[serde(deserialize_with = "tags")]
    pub tags: Vec<String>,
    #[serde(default)]
    pub limits: serde_json::Map<String, serde_json::Value>,
}

/// Tags are a list since RabbitMQ 3.9 and a comma-separated string before.
fn tags<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Tags {
        List(Vec<String>),
        Text(String),
    }
    Ok(match Tags::deserialize(d)? {
        Tags::List(list) => list,
        Tags::Text(text) => text.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect(),
    })
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Permission {
    pub user: String,
    pub vhost: String,
    pub configure: String,
    pub write: String,
    pub read: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicPermission {
    pub user: String,
    pub vhost: String,
    pub exchange: String,
    pub write: String,
    pub read: String,
}

/// What to do on the broker.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Definitions to import: every principal's user, permission and topic permissions.
    pub import: Definitions,
    /// `(user, exchange)` topic permissions on the vhost that no longer apply.
    pub clear_topics: Vec<(String, String)>,
    /// Users that do not exist yet.
    pub created: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("no password for the new broker user `{0}`")]
pub struct MissingPassword(pub String);

/// The plan for `principals` on `vhost` of namespace `namespace`, given what
/// the broker has. A user keeps its password unless `passwords` has one for
/// it; a new user must have one there. Tags are set to exactly the grant's.
pub fn plan(
    current: &Definitions,
    principals: &Principals,
    namespace: &str,
    vhost: &str,
    passwords: &BTreeMap<String, String>,
    salt: &mut dyn FnMut() -> [u8; 4],
) -> Result<Plan, MissingPassword> {
    let mut out = Plan::default();
    for p in principals.iter() {
        let name = p.user.as_str();
        let g = grant(p, namespace);
        let existing = current.users.iter().find(|u| u.name == name);
        let (password_hash, hashing_algorithm) = match (passwords.get(name), existing) {
            (Some(password), _) => (password_hash(password, salt()), SHA256_HASHING.to_owned()),
            (None, Some(u)) => (u.password_hash.clone(), u.hashing_algorithm.clone()),
            (None, None) => return Err(MissingPassword(name.to_owned())),
        };
        if existing.is_none() {
            out.created.push(name.to_owned());
        }
        out.import.users.push(User {
            name: name.to_owned(),
            password_hash,
            hashing_algorithm,
            tags: g.tags.iter().map(|t| (*t).to_owned()).collect(),
            limits: existing.map(|u| u.limits.clone()).unwrap_or_default(),
        });
        out.import.permissions.push(Permission {
            user: name.to_owned(),
            vhost: vhost.to_owned(),
            configure: g.configure.clone(),
            write: g.write.clone(),
            read: g.read.clone(),
        });
        for t in &g.topics {
            out.import.topic_permissions.push(TopicPermission {
                user: name.to_owned(),
                vhost: vhost.to_owned(),
                exchange: t.exchange.clone(),
                write: t.write.clone(),
                read: t.read.clone(),
            });
        }
        for stale in current.topic_permissions.iter().filter(|t| t.user == name && t.vhost == vhost) {
            if !g.topics.iter().any(|t| t.exchange == stale.exchange) {
                out.clear_topics.push((name.to_owned(), stale.exchange.clone()));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRINCIPALS: &str = r#"
        [[principal]]
        user = "tuandao-app"
        kind = "handler"
        unit = "shinan.badaxia.tuandao"
        [[principal]]
        user = "nuannan"
        kind = "pipeline"
    "#;

    #[test]
    fn the_hash_is_rabbitmq_s_salted_sha256() {
        // salt 908D C60A, password "test1"; a hash of this form logs in (tests/it/identity.rs).
        assert_eq!(password_hash("test1", [0x90, 0x8d, 0xc6, 0x0a]), "kI3GCmhwhvKoVtpNeESka2ZhMpAoy03b7f3zxrb/PxaQR78j");
    }

    #[test]
    fn tags_read_as_a_list_or_as_rabbitmq_3_8_s_string() {
        let user = |tags: &str| -> User {
            serde_json::from_str(&format!(r#"{{"name":"a","password_hash":"h","hashing_algorithm":"x","tags":{tags}}}"#)).unwrap()
        };
        assert_eq!(user(r#"["administrator","impersonator"]"#).tags, ["administrator", "impersonator"]);
        assert_eq!(user(r#""administrator,impersonator""#).tags, ["administrator", "impersonator"]);
        assert!(user(r#""""#).tags.is_empty());
    }

    #[test]
    fn new_users_need_a_password_and_existing_ones_keep_theirs() {
        let principals = Principals::parse(PRINCIPALS).unwrap().principals;
        let current = Definitions {
            users: vec![User {
                name: "nuannan".into(),
                password_hash: "kept".into(),
                hashing_algorithm: SHA256_HASHING.into(),
                tags: vec!["administrator".into()],
                limits: Default::default(),
            }],
            permissions: vec![],
            topic_permissions: vec![TopicPermission {
                user: "nuannan".into(),
                vhost: "/".into(),
                exchange: "ns.commands".into(),
                write: ".*".into(),
                read: ".*".into(),
            }],
        };
        let mut salt = || [1, 2, 3, 4];
        let missing = plan(&current, &principals, "ns", "/", &BTreeMap::new(), &mut salt).unwrap_err();
        assert_eq!(missing.0, "tuandao-app");

        let passwords = BTreeMap::from([("tuandao-app".to_owned(), "pw".to_owned())]);
        let plan = plan(&current, &principals, "ns", "/", &passwords, &mut salt).unwrap();
        assert_eq!(plan.created, vec!["tuandao-app"]);
        let user = |n: &str| plan.import.users.iter().find(|u| u.name == n).unwrap().clone();
        assert_eq!(user("nuannan").password_hash, "kept");
        assert_eq!(user("nuannan").tags, vec!["impersonator"], "tags are exactly the grant's");
        assert_eq!(user("tuandao-app").password_hash, password_hash("pw", [1, 2, 3, 4]));
        assert_eq!(plan.import.permissions.len(), 2);
        assert_eq!(plan.import.topic_permissions.iter().filter(|t| t.user == "tuandao-app").count(), 2);
        assert_eq!(plan.clear_topics, vec![("nuannan".to_owned(), "ns.commands".to_owned())]);
    }
}
