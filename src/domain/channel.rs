use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A door a petition comes in (and its answer goes out) through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Wechat,
    App,
    Hotline,
    /// Open311 GeoReport v2 clients, through the gateway (`docs/contract.md` §14).
    Open311,
}

impl Channel {
    pub const ALL: [Channel; 4] = [Channel::Wechat, Channel::App, Channel::Hotline, Channel::Open311];
    /// The channels answers are pushed to (an `{ns}.outbound.<channel>`
    /// queue each); Open311 clients read theirs through the API.
    pub const PUSHED: [Channel; 3] = [Channel::Wechat, Channel::App, Channel::Hotline];

    /// Whether the pipeline pushes messages to this channel's citizens.
    pub fn pushes(self) -> bool {
        Channel::PUSHED.contains(&self)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Wechat => "wechat",
            Channel::App => "app",
            Channel::Hotline => "hotline",
            Channel::Open311 => "open311",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown channel `{0}`")]
pub struct UnknownChannel(pub String);

impl FromStr for Channel {
    type Err = UnknownChannel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Channel::ALL.into_iter().find(|c| c.as_str() == s).ok_or_else(|| UnknownChannel(s.to_owned()))
    }
}
