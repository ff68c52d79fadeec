//! Principals (`docs/contract.md` §13): who a broker user (or an HTTP key)
//! is, and the scope they act in. Parsed once from the principals file;
//! what each kind may do is decided in [`crate::lifecycle`] (commands) and
//! [`super::grants`] (broker permissions).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::{Channel, UnitPath};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Street, community or grid staff: work on petitions held in `unit`'s subtree.
    Handler,
    /// District review: approve or return results.
    Reviewer,
    /// The platform's dispatcher: transfer petitions within `unit`'s subtree.
    Dispatcher,
    /// A channel's adapter (WeChat, App, 12345): intake and the citizen's rating.
    Adapter,
    /// Reads escalations and reports for `unit`'s subtree; sends no commands.
    Supervisor,
    /// The pipeline's own roles (one shared broker user).
    Pipeline,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Handler => "handler",
            Kind::Reviewer => "reviewer",
            Kind::Dispatcher => "dispatcher",
            Kind::Adapter => "adapter",
            Kind::Supervisor => "supervisor",
            Kind::Pipeline => "pipeline",
        }
    }

    /// Whether the principal's scope is a unit subtree (`unit` required).
    fn has_unit(self) -> bool {
        matches!(self, Kind::Handler | Kind::Dispatcher | Kind::Supervisor)
    }

    /// Whether HTTP (gateway or console) can authenticate this kind by key.
    fn takes_api_key(self) -> bool {
        !matches!(self, Kind::Pipeline)
    }

    /// Whether the console lets this kind log in with a password.
    fn takes_password(self) -> bool {
        matches!(self, Kind::Handler | Kind::Reviewer | Kind::Dispatcher | Kind::Supervisor)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A broker user name: 1–64 of `A-Z a-z 0-9 _ -`. No dots, so the user's
/// reply queues `{ns}.reply.<user>.…` never overlap another user's, and no
/// regex metacharacters, so it goes into permission patterns as it is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserName(String);

#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a user name (1–64 of A-Z, a-z, 0-9, `_`, `-`)")]
pub struct BadUserName(String);

impl UserName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for UserName {
    type Err = BadUserName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok { Ok(UserName(s.to_owned())) } else { Err(BadUserName(s.to_owned())) }
    }
}

impl TryFrom<String> for UserName {
    type Error = BadUserName;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<UserName> for String {
    fn from(u: UserName) -> String {
        u.0
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One principal, as stored in the `principals` collection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    #[serde(rename = "_id")]
    pub user: UserName,
    pub kind: Kind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<UnitPath>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    /// Lowercase hex SHA-256 of the HTTP bearer key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_sha256: Option<String>,
    /// Argon2id PHC string for the console login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
}

impl Principal {
    /// Whether this principal acts on `unit`: it is in the principal's
    /// subtree. Kinds without a unit scope (reviewer) act on every unit.
    pub fn covers(&self, unit: &UnitPath) -> bool {
        match &self.unit {
            Some(scope) => unit.is_within(scope),
            None => !self.kind.has_unit(),
        }
    }
}

/// The lowercase hex SHA-256 of an HTTP key, as principals store it.
pub fn api_key_digest(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A principals file that cannot be used; loading it changes nothing.
#[derive(Debug, thiserror::Error)]
pub enum PrincipalsError {
    #[error("the principals file is not valid TOML: {0}")]
    Syntax(String),
    #[error("principal #{index}: {problem}")]
    Principal { index: usize, problem: String },
    #[error("user `{0}` appears more than once")]
    Duplicate(String),
}

/// The validated set: every user once, every principal complete for its kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Principals {
    by_user: BTreeMap<UserName, Principal>,
}

/// A parsed file, with the keys that were ignored because they do not apply
/// to their principal's kind.
#[derive(Debug)]
pub struct Parsed {
    pub principals: Principals,
    pub warnings: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    principal: Vec<Entry>,
}

/// One `[[principal]]` as written: everything optional, so each missing or
/// misplaced key gets its own message.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    user: Option<String>,
    kind: Option<String>,
    unit: Option<String>,
    channel: Option<String>,
    api_key_sha256: Option<String>,
    password_hash: Option<String>,
}

impl Principals {
    /// Parses the principals file (TOML, `[[principal]]` tables).
    pub fn parse(text: &str) -> Result<Parsed, PrincipalsError> {
        let file: File = toml::from_str(text).map_err(|e| PrincipalsError::Syntax(e.message().to_owned()))?;
        let mut principals = Principals::default();
        let mut warnings = Vec::new();
        for (n, entry) in file.principal.into_iter().enumerate() {
            let index = n + 1;
            let p = entry
                .into_principal(&mut |w| warnings.push(format!("principal #{index}: {w}")))
                .map_err(|problem| PrincipalsError::Principal { index, problem })?;
            if principals.by_user.contains_key(&p.user) {
                return Err(PrincipalsError::Duplicate(p.user.to_string()));
            }
            principals.by_user.insert(p.user.clone(), p);
        }
        Ok(Parsed { principals, warnings })
    }

    pub fn from_list(list: impl IntoIterator<Item = Principal>) -> Principals {
        Principals { by_user: list.into_iter().map(|p| (p.user.clone(), p)).collect() }
    }

    pub fn get(&self, user: &str) -> Option<&Principal> {
        let user: UserName = user.parse().ok()?;
        self.by_user.get(&user)
    }

    /// The principal whose HTTP key is `key`.
    pub fn by_api_key(&self, key: &str) -> Option<&Principal> {
        let digest = api_key_digest(key);
        self.by_user.values().find(|p| p.api_key_sha256.as_deref() == Some(digest.as_str()))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Principal> {
        self.by_user.values()
    }

    pub fn len(&self) -> usize {
        self.by_user.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_user.is_empty()
    }
}

impl Entry {
    fn into_principal(self, warn: &mut dyn FnMut(String)) -> Result<Principal, String> {
        let user: UserName = self.user.ok_or("`user` is missing")?.parse().map_err(|e: BadUserName| e.to_string())?;
        let kind_text = self.kind.ok_or_else(|| format!("`kind` is missing for `{user}`"))?;
        let kind: Kind = serde_json::from_value(serde_json::Value::String(kind_text.clone())).map_err(|_| {
            format!("unknown kind `{kind_text}` for `{user}` (handler, reviewer, dispatcher, adapter, supervisor, pipeline)")
        })?;
        let mut unit = self.unit.map(|u| u.parse::<UnitPath>().map_err(|e| format!("`{user}`: {e}"))).transpose()?;
        let mut channel = self.channel.map(|c| c.parse::<Channel>().map_err(|e| format!("`{user}`: {e}"))).transpose()?;
        if kind.has_unit() && unit.is_none() {
            return Err(format!("`{user}` is a {kind} and needs `unit`"));
        }
        if !kind.has_unit() && unit.take().is_some() {
            warn(format!("`unit` does not apply to a {kind}; ignored"));
        }
        if kind == Kind::Adapter && channel.is_none() {
            return Err(format!("`{user}` is an adapter and needs `channel`"));
        }
        if kind != Kind::Adapter && channel.take().is_some() {
            warn(format!("`channel` does not apply to a {kind}; ignored"));
        }
        let mut api_key_sha256 = self.api_key_sha256;
        if let Some(digest) = &api_key_sha256
            && !(digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        {
            return Err(format!("`{user}`: `api_key_sha256` must be 64 lowercase hex digits"));
        }
        if !kind.takes_api_key() && api_key_sha256.take().is_some() {
            warn(format!("`api_key_sha256` does not apply to a {kind}; ignored"));
        }
        let mut password_hash = self.password_hash;
        if let Some(hash) = &password_hash
            && !hash.starts_with("$argon2id$")
        {
            return Err(format!("`{user}`: `password_hash` must be an Argon2id PHC string (`$argon2id$…`)"));
        }
        if !kind.takes_password() && password_hash.take().is_some() {
            warn(format!("`password_hash` does not apply to a {kind}; ignored"));
        }
        Ok(Principal { user, kind, unit, channel, api_key_sha256, password_hash })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
        [[principal]]
        user = "tuandao-app"
        kind = "handler"
        unit = "shinan.badaxia.tuandao"

        [[principal]]
        user = "wechat-adapter"
        kind = "adapter"
        channel = "wechat"
        unit = "shinan"
        api_key_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

        [[principal]]
        user = "nuannan"
        kind = "pipeline"
        password_hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"
    "#;

    #[test]
    fn a_file_parses_with_warnings_for_keys_that_do_not_apply() {
        let parsed = Principals::parse(FILE).unwrap();
        assert_eq!(parsed.principals.len(), 3);
        let handler = parsed.principals.get("tuandao-app").unwrap();
        assert_eq!(handler.kind, Kind::Handler);
        assert!(handler.covers(&"shinan.badaxia.tuandao.g001".parse().unwrap()));
        assert!(!handler.covers(&"shinan.badaxia".parse().unwrap()));
        let adapter = parsed.principals.get("wechat-adapter").unwrap();
        assert_eq!((adapter.channel, adapter.unit.as_ref()), (Some(Channel::Wechat), None));
        assert_eq!(parsed.principals.by_api_key("test").map(|p| p.user.as_str()), Some("wechat-adapter"));
        assert!(parsed.principals.by_api_key("other").is_none());
        assert!(parsed.principals.get("nuannan").unwrap().password_hash.is_none());
        assert_eq!(parsed.warnings.len(), 2, "{:?}", parsed.warnings);
    }

    #[test]
    fn a_wrong_file_is_an_error_naming_the_problem() {
        let cases = [
            ("[[principal]]\nuser = \"a\"\nkind = \"boss\"", "unknown kind `boss`"),
            ("[[principal]]\nuser = \"a\"\nkind = \"handler\"", "needs `unit`"),
            ("[[principal]]\nuser = \"a\"\nkind = \"adapter\"", "needs `channel`"),
            ("[[principal]]\nuser = \"a\"\nkind = \"adapter\"\nchannel = \"fax\"", "unknown channel"),
            ("[[principal]]\nuser = \"a.b\"\nkind = \"reviewer\"", "not a user name"),
            ("[[principal]]\nuser = \"a\"\nkind = \"handler\"\nunit = \"Shinan\"", "not a unit path"),
            ("[[principal]]\nuser = \"a\"\nkind = \"reviewer\"\napi_key_sha256 = \"XYZ\"", "64 lowercase hex"),
            ("[[principal]]\nuser = \"a\"\nkind = \"reviewer\"\npassword_hash = \"plain\"", "Argon2id"),
            ("[[principal]]\nuser = \"a\"\nkind = \"reviewer\"\nrole = \"x\"", "not valid TOML"),
            ("[[principal]]\nuser = \"a\"\nkind = \"reviewer\"\n[[principal]]\nuser = \"a\"\nkind = \"reviewer\"", "more than once"),
            ("principal = 3", "not valid TOML"),
        ];
        for (text, expected) in cases {
            let err = Principals::parse(text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text:?} gave {err}");
        }
    }

    #[test]
    fn stored_principals_round_trip() {
        let parsed = Principals::parse(FILE).unwrap();
        for p in parsed.principals.iter() {
            let doc = bson::to_document(p).unwrap();
            assert_eq!(&bson::from_document::<Principal>(doc).unwrap(), p);
        }
    }
}
