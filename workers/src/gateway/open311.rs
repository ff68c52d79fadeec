//! Open311 GeoReport v2 on the gateway (`docs/contract.md` §14): the
//! routes, in JSON and XML, with GeoReport's error shape. Reads are public,
//! as GeoReport has them; posting needs the api_key of an `open311` adapter.
//! Each accepted request is published as an `open311` intake message whose
//! dedup key is the token handed back.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::json;

use nuannan::domain::{Channel, PetitionId};
use nuannan::identity::Kind;
use nuannan::intake::{RejectReason, Rejection};
use nuannan::open311::{self as geo, Document, Format, Open311Error, RequestQuery};
use nuannan::store::{PetitionRecord, StoreError};

use super::{ApiError, Gateway, body_of};

const CHANNEL: &str = "open311";

/// A GeoReport answer or error in the format the path asked for.
pub struct Answer {
    format: Format,
    status: StatusCode,
    document: Document,
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        (self.status, [(header::CONTENT_TYPE, self.format.content_type())], self.document.render(self.format)).into_response()
    }
}

type Result<T> = std::result::Result<T, Answer>;

fn ok(format: Format, document: Document) -> Answer {
    Answer { format, status: StatusCode::OK, document }
}

fn fail(format: Format, e: Open311Error) -> Answer {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    Answer { format, status, document: e.document() }
}

/// The gateway's own refusals (413, 503…) in GeoReport's shape.
fn from_api(format: Format, e: ApiError) -> Answer {
    fail(format, Open311Error::new(e.status.as_u16(), e.detail))
}

fn unavailable(format: Format, e: StoreError) -> Answer {
    tracing::error!(error = %e, "reading petitions for Open311 failed");
    fail(format, Open311Error::new(503, "the store is unavailable; retry"))
}

/// `"requests.json"` → `("requests", Json)`; an unknown suffix is 404 (in JSON).
fn file(name: &str) -> Result<(&str, Format)> {
    Format::split(name).ok_or_else(|| fail(Format::Json, Open311Error::not_found(format!("`{name}` (ask for .json or .xml)"))))
}

/// `/open311/v2/requests.json` → `requests.json` (top-level names need no decoding).
fn last_segment(uri: &Uri) -> &str {
    uri.path().rsplit('/').next().unwrap_or_default()
}

fn params(query: &Option<String>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_deref().unwrap_or_default().as_bytes()).into_owned().collect()
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// `GET discovery|services|requests.{fmt}`.
pub async fn get_top(State(gw): State<Arc<Gateway>>, uri: Uri, RawQuery(query): RawQuery, headers: HeaderMap) -> Result<Answer> {
    let (name, format) = file(last_segment(&uri))?;
    let params = params(&query);
    geo::check_jurisdiction(param(&params, "jurisdiction_id"), &gw.open311.jurisdiction_id).map_err(|e| fail(format, e))?;
    match name {
        "discovery" => {
            let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
            let url = format!("http://{host}/open311/v2");
            Ok(ok(format, geo::discovery(&url, &gw.open311.contact, &gw.open311.key_service)))
        }
        "services" => Ok(ok(format, geo::services())),
        "requests" => {
            let q = RequestQuery::parse(params.iter().map(|(k, v)| (k.as_str(), v.as_str())), Utc::now()).map_err(|e| fail(format, e))?;
            let found = gw.store.petitions_matching(&q.filter()).await.map_err(|e| unavailable(format, e))?;
            let items = found.iter().map(|p| gw.service_request(p)).collect();
            Ok(ok(format, Document::list("service_requests", "request", items)))
        }
        other => Err(fail(format, Open311Error::not_found(format!("`{other}`")))),
    }
}

/// `GET services/{code}|requests/{id}|tokens/{token}.{fmt}`.
pub async fn get_one(
    State(gw): State<Arc<Gateway>>,
    Path((kind, name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Answer> {
    let (id, format) = file(&name)?;
    geo::check_jurisdiction(param(&params(&query), "jurisdiction_id"), &gw.open311.jurisdiction_id).map_err(|e| fail(format, e))?;
    let not_found = |what: &str| fail(format, Open311Error::not_found(format!("{what} `{id}`")));
    match kind.as_str() {
        "services" => geo::service_definition(id).map(|d| ok(format, d)).ok_or_else(|| not_found("service_code")),
        "requests" => {
            let petition_id = id.parse::<PetitionId>().map_err(|_| not_found("service_request_id"))?;
            let p = gw
                .store
                .petition(&petition_id)
                .await
                .map_err(|e| unavailable(format, e))?
                .ok_or_else(|| not_found("service_request_id"))?;
            Ok(ok(format, Document::list("service_requests", "request", vec![gw.service_request(&p)])))
        }
        "tokens" => {
            // Tokens are ours (UUIDs): anything else was never issued.
            uuid::Uuid::parse_str(id).map_err(|_| not_found("token"))?;
            let p = gw.store.petition_by_source(Channel::Open311, id).await.map_err(|e| unavailable(format, e))?;
            // Until normalize stored the petition, the token alone.
            let item = match p {
                Some(p) => json!({ "token": id, "service_request_id": p.id.as_str() }),
                None => json!({ "token": id }),
            };
            Ok(ok(format, Document::list("service_requests", "request", vec![item])))
        }
        other => Err(fail(format, Open311Error::not_found(format!("`{other}`")))),
    }
}

/// `POST requests.{fmt}`: form-encoded, as GeoReport clients post.
pub async fn post_request(State(gw): State<Arc<Gateway>>, uri: Uri, RawQuery(query): RawQuery, body: Body) -> Result<Answer> {
    let (_, format) = file(last_segment(&uri))?;
    let body = body_of(&gw, CHANNEL, body).await.map_err(|e| from_api(format, e))?;
    let Ok(text) = std::str::from_utf8(&body) else {
        let rejection = Rejection::new(RejectReason::NotUtf8, "the form is not UTF-8");
        return Err(from_api(format, gw.reject(CHANNEL, &body, rejection).await));
    };
    // Some clients put api_key and jurisdiction_id in the query string.
    let mut form: Vec<(String, String)> = form_urlencoded::parse(text.as_bytes()).into_owned().collect();
    form.extend(params(&query));
    gw.open311_adapter(param(&form, "api_key")).map_err(|e| fail(format, e))?;
    let checked = geo::check_jurisdiction(param(&form, "jurisdiction_id"), &gw.open311.jurisdiction_id)
        .map_err(|error| geo::Refusal { error, reason: RejectReason::Invalid });
    let token = uuid::Uuid::now_v7().to_string();
    let payload = match checked.and_then(|()| geo::request_payload(&form, &token, Utc::now())) {
        Ok(payload) => payload,
        Err(refusal) => {
            // Recorded like every refused body; GeoReport's status and words for the client.
            let rejection = Rejection::new(refusal.reason, &refusal.error.description);
            if let Err(e) = gw.record(CHANNEL, &body, rejection).await {
                return Err(from_api(format, e));
            }
            return Err(fail(format, refusal.error));
        }
    };
    gw.intake(CHANNEL, payload.to_string().as_bytes(), "application/json").await.map_err(|e| from_api(format, e))?;
    Ok(ok(format, Document::list("service_requests", "request", vec![json!({ "token": token })])))
}

impl Gateway {
    /// The `open311` adapter whose api_key this is: 403 otherwise (logged,
    /// not recorded, like every authentication failure).
    fn open311_adapter(&self, key: Option<&str>) -> std::result::Result<(), Open311Error> {
        let principal = key.map(str::trim).filter(|k| !k.is_empty()).and_then(|k| self.principals.by_api_key(k));
        match principal {
            Some(p) if p.kind == Kind::Adapter && p.channel == Some(Channel::Open311) => Ok(()),
            _ => {
                tracing::warn!("Open311 request without a valid api_key refused");
                Err(Open311Error::new(403, "a valid api_key is required to post requests"))
            }
        }
    }

    fn service_request(&self, p: &PetitionRecord) -> serde_json::Value {
        let agency = p.unit.as_ref().and_then(|u| self.registry.unit(u)).map(|u| u.name.as_str());
        geo::service_request(p, agency)
    }
}
