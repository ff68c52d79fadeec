//! The supervisors' console (`docs/contract.md` §15), pure: who may log in
//! and what they see, the session and CSRF tokens, the backlog counts of the
//! unit tree, and the SVG of the map and the rates chart. The web server is
//! the `console` role in the workers crate.

mod backlog;
mod chart;
mod map;
mod session;

pub use backlog::{Backlog, Counts, OpenPetition, backlog};
pub use chart::rates_chart;
pub use map::{GridShape, grid_map};
pub use session::{Keys, LoginError, hash_password, verify_password};

use crate::domain::UnitPath;
use crate::identity::{Kind, Principal};

/// What a logged-in principal may see: its `unit` subtree (reviewers and
/// the district's dispatchers and supervisors: everything).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub user: String,
    pub kind: Kind,
    pub root: UnitPath,
}

impl Scope {
    /// The console is for supervisors, reviewers and dispatchers; other
    /// principals (handler apps, adapters, the pipeline) cannot log in.
    pub fn of(p: &Principal, district: &UnitPath) -> Option<Scope> {
        let root = match p.kind {
            Kind::Reviewer => district.clone(),
            Kind::Supervisor | Kind::Dispatcher => p.unit.clone()?,
            _ => return None,
        };
        Some(Scope { user: p.user.as_str().to_owned(), kind: p.kind, root })
    }

    pub fn sees(&self, unit: &UnitPath) -> bool {
        unit.is_within(&self.root)
    }

    /// The commands this principal may send from the console (the same rule
    /// the lifecycle applies; the console only hides what would be refused).
    pub fn may(&self, command: &str) -> bool {
        match self.kind {
            Kind::Reviewer => matches!(command, "approve" | "return"),
            Kind::Dispatcher => command == "transfer",
            _ => false,
        }
    }
}

/// Text for HTML: every character with a meaning in markup escaped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Principals;

    fn principal(toml: &str) -> Principal {
        Principals::parse(&format!("[[principal]]\n{toml}")).unwrap().principals.iter().next().unwrap().clone()
    }

    #[test]
    fn only_supervisors_reviewers_and_dispatchers_log_in_and_each_sees_its_subtree() {
        let district: UnitPath = "shinan".parse().unwrap();
        let street = Scope::of(&principal("user = \"s\"\nkind = \"supervisor\"\nunit = \"shinan.badaxia\""), &district).unwrap();
        assert!(street.sees(&"shinan.badaxia.tuandao.g001".parse().unwrap()));
        assert!(!street.sees(&"shinan.zhongshanlu".parse().unwrap()));
        assert!(!street.sees(&district), "not the district above it");
        let reviewer = Scope::of(&principal("user = \"r\"\nkind = \"reviewer\""), &district).unwrap();
        assert!(reviewer.sees(&"shinan.zhongshanlu".parse().unwrap()));
        assert!(reviewer.may("approve") && !reviewer.may("transfer"));
        assert!(!street.may("approve"));
        assert!(Scope::of(&principal("user = \"h\"\nkind = \"handler\"\nunit = \"shinan.badaxia\""), &district).is_none());
        assert!(Scope::of(&principal("user = \"a\"\nkind = \"adapter\"\nchannel = \"app\""), &district).is_none());
    }

    #[test]
    fn markup_is_escaped() {
        assert_eq!(escape("<script>\"x\" & 'y'</script>"), "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;");
    }
}
