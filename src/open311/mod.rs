//! Open311 GeoReport v2 (`docs/contract.md` §14), pure: the services, what
//! a form-encoded request becomes, the filters of `GET requests`, how a
//! petition reads as a service request, and GeoReport's two formats and
//! error shape. The routes are in the gateway role.

mod query;
mod request;
mod service;
mod view;
pub mod xml;

pub use query::{MAX_PAGE_SIZE, RequestQuery, WINDOW_DAYS, parse_w3c, w3c};
pub use request::{Refusal, request_payload};
pub use service::{discovery, service_definition, services};
pub use view::{is_closed, service_request};

use serde_json::{Value, json};

/// The response format, from the path's suffix (`.json` / `.xml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Xml,
}

impl Format {
    /// `"requests.json"` → `("requests", Json)`; `None` without a known suffix.
    pub fn split(file: &str) -> Option<(&str, Format)> {
        let (name, ext) = file.rsplit_once('.')?;
        let format = match ext {
            "json" => Format::Json,
            "xml" => Format::Xml,
            _ => return None,
        };
        (!name.is_empty()).then_some((name, format))
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json; charset=utf-8",
            Format::Xml => "text/xml; charset=utf-8",
        }
    }
}

/// A GeoReport answer: its root element (XML) and its JSON value. A JSON
/// list is a list of `item` elements under `root` in XML.
pub struct Document {
    pub root: &'static str,
    pub item: &'static str,
    pub value: Value,
}

impl Document {
    pub fn list(root: &'static str, item: &'static str, items: Vec<Value>) -> Self {
        Document { root, item, value: Value::Array(items) }
    }

    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Json => self.value.to_string(),
            Format::Xml => xml::document(self.root, self.item, &self.value),
        }
    }
}

/// A GeoReport error: its HTTP status and `[{"code", "description"}]`
/// (`<errors><error>…` in XML).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {description}")]
pub struct Open311Error {
    pub status: u16,
    pub description: String,
}

impl Open311Error {
    pub fn new(status: u16, description: impl Into<String>) -> Self {
        Open311Error { status, description: description.into() }
    }

    pub fn not_found(what: impl std::fmt::Display) -> Self {
        Open311Error::new(404, format!("{what} not found"))
    }

    pub fn document(&self) -> Document {
        Document::list("errors", "error", vec![json!({ "code": self.status, "description": self.description })])
    }
}

/// `jurisdiction_id` is optional (one jurisdiction is served), but when
/// given it must be ours: another one is 404, as GeoReport says.
pub fn check_jurisdiction(given: Option<&str>, ours: &str) -> Result<(), Open311Error> {
    match given.map(str::trim).filter(|j| !j.is_empty()) {
        Some(j) if j != ours => Err(Open311Error::not_found(format!("jurisdiction `{j}`"))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_suffix_picks_the_format() {
        assert_eq!(Format::split("requests.json"), Some(("requests", Format::Json)));
        assert_eq!(Format::split("20261128-000001.xml"), Some(("20261128-000001", Format::Xml)));
        assert_eq!(Format::split("requests"), None);
        assert_eq!(Format::split("requests.html"), None);
        assert_eq!(Format::split(".json"), None);
    }

    #[test]
    fn errors_render_in_both_formats() {
        let e = Open311Error::new(403, "bad api_key");
        assert_eq!(e.document().render(Format::Json), r#"[{"code":403,"description":"bad api_key"}]"#);
        assert_eq!(
            e.document().render(Format::Xml),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><errors><error><code>403</code><description>bad api_key</description></error></errors>"
        );
    }

    #[test]
    fn only_our_jurisdiction_or_none() {
        assert!(check_jurisdiction(None, "qdsn.gov.cn").is_ok());
        assert!(check_jurisdiction(Some(""), "qdsn.gov.cn").is_ok());
        assert!(check_jurisdiction(Some("qdsn.gov.cn"), "qdsn.gov.cn").is_ok());
        assert_eq!(check_jurisdiction(Some("nyc.gov"), "qdsn.gov.cn").unwrap_err().status, 404);
    }
}
