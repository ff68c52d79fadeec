//! The `gateway` role (`docs/contract.md` §12): the HTTP edge WeChat, the
//! 12345 platform and the App backend call. Each accepted request becomes
//! one intake message, answered only after the broker confirmed it; bad
//! input never reaches the broker and is recorded in `rejections`.
//!
//! The HTTP server lives as long as the process; the broker session
//! (supervised like every role's) fills the publisher slot, and while it is
//! empty requests get 503 so the channel retries.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use chrono::Utc;
use futures::StreamExt;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use nuannan::bus::{Exchange, Outgoing, Publisher};
use nuannan::config::Settings;
use nuannan::gateway::{self as edge, WechatAccount, WechatQuery, WechatRefusal, signed};
use nuannan::intake::{IntakePolicy, RejectReason, Rejection};
use nuannan::store::{RawRetention, RejectionRecord, Store};

use crate::Shared;
use crate::identity::Directory;

mod open311;

/// Every route answers within this, or 503 (WeChat waits 5 s).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(4);

/// The publisher of the current broker session, if any.
#[derive(Clone, Default)]
pub struct Slot(Arc<RwLock<Option<Publisher>>>);

impl Slot {
    pub fn set(&self, publisher: Option<Publisher>) {
        *self.0.write().expect("publisher slot") = publisher;
    }

    fn get(&self) -> Option<Publisher> {
        self.0.read().expect("publisher slot").clone()
    }
}

struct Gateway {
    slot: Slot,
    store: Store,
    principals: Arc<Directory>,
    registry: Arc<nuannan::routing::Registry>,
    policy: IntakePolicy,
    retention: RawRetention,
    wechat: WechatAccount,
    hotline_secret: String,
    open311: nuannan::config::Open311Settings,
    limiter: Limiter,
}

/// Serves until `shutdown`, then finishes the requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    settings: Settings,
    store: Store,
    shared: Shared,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let crypto = (!settings.wechat.encoding_aes_key.is_empty())
        .then(|| edge::wechat::MessageCrypto::new(&settings.wechat.encoding_aes_key, &settings.wechat.app_id))
        .transpose()?;
    let state = Arc::new(Gateway {
        slot: shared.gateway.clone(),
        store,
        principals: shared.principals.clone(),
        registry: shared.registry.clone(),
        policy: settings.intake_policy(),
        retention: RawRetention { days: settings.retention.days, too_large_bytes: settings.retention.raw_max_bytes },
        wechat: WechatAccount {
            token: settings.wechat.token.clone(),
            crypto,
            account: Some(settings.wechat.account.clone()).filter(|a| !a.is_empty()),
        },
        hotline_secret: settings.hotline.secret.clone(),
        open311: settings.open311.clone(),
        limiter: Limiter::new(settings.gateway.rate_limit_per_s),
    });
    let app = router(state);
    tracing::info!(addr = %listener.local_addr()?, "gateway listening");
    // Small answers go out at once, not after a delayed ACK (Nagle).
    let listener = listener.tap_io(|stream| {
        let _ = stream.set_nodelay(true);
    });
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}

fn router(state: Arc<Gateway>) -> Router {
    Router::new()
        .route("/wechat/callback", get(wechat_verify).post(wechat_push))
        .route("/hotline/orders", post(hotline_order))
        .route("/app/petitions", post(app_petition))
        .route("/app/petitions/{petition_id}", get(app_view))
        .route("/app/notifications", get(app_notifications))
        .route("/open311/v2/requests.json", get(open311::get_top).post(open311::post_request))
        .route("/open311/v2/requests.xml", get(open311::get_top).post(open311::post_request))
        .route("/open311/v2/{file}", get(open311::get_top))
        .route("/open311/v2/{kind}/{file}", get(open311::get_one))
        .route("/openapi.json", get(openapi))
        .route("/healthz", get(healthz))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// Rate limit, timeout and per-route metrics around every route.
async fn guard(State(gw): State<Arc<Gateway>>, ConnectInfo(peer): ConnectInfo<SocketAddr>, request: Request, next: Next) -> Response {
    let route = route_name(request.uri().path());
    let started = Instant::now();
    let who =
        bearer(request.headers()).map_or_else(|| peer.ip().to_string(), |key| format!("key:{}", nuannan::identity::api_key_digest(key)));
    let response = if !gw.limiter.allow(&who) {
        let mut r = error(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "over the request rate; retry after a second").into_response();
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        r
    } else {
        match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
            Ok(r) => r,
            Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "timeout", "not answered in time; retry").into_response(),
        }
    };
    nuannan::ops::metrics().http(route).observe(response.status().as_u16(), started.elapsed());
    response
}

fn route_name(path: &str) -> &'static str {
    match path {
        "/wechat/callback" => "wechat",
        "/hotline/orders" => "hotline",
        "/app/petitions" => "app",
        "/openapi.json" => "openapi",
        "/healthz" => "healthz",
        "/app/notifications" => "app_notifications",
        p if p.starts_with("/app/petitions/") => "app_view",
        p if p.starts_with("/open311/") => "open311",
        _ => "other",
    }
}

/// A refusal: its status and `{"error": code, "detail": …}` (`docs/contract.md` §12).
struct ApiError {
    status: StatusCode,
    code: &'static str,
    detail: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.code, "detail": self.detail }))).into_response()
    }
}

fn error(status: StatusCode, code: &'static str, detail: impl std::fmt::Display) -> ApiError {
    ApiError { status, code, detail: detail.to_string() }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

/// The body, up to [`edge::MAX_BODY_BYTES`]; a longer one is cut there and
/// flagged, so it can be recorded (`too_large`) without being held whole.
async fn read_body(body: Body) -> Result<(Bytes, bool), ApiError> {
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| error(StatusCode::BAD_REQUEST, "malformed", format!("reading the body: {e}")))?;
        let room = edge::MAX_BODY_BYTES + 1 - buf.len();
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if buf.len() > edge::MAX_BODY_BYTES {
            return Ok((buf.into(), true));
        }
    }
    Ok((buf.into(), false))
}

impl Gateway {
    /// Records a body that will not be published, and answers with its status and reason.
    async fn reject(&self, channel: &str, raw: &[u8], rejection: Rejection) -> ApiError {
        let status = StatusCode::from_u16(edge::status(rejection.reason)).expect("a valid status");
        let refused = error(status, rejection.reason.as_str(), &rejection.detail);
        self.record(channel, raw, rejection).await.err().unwrap_or(refused)
    }

    /// Records a refused body in `rejections`; 503 if the store cannot take it.
    async fn record(&self, channel: &str, raw: &[u8], rejection: Rejection) -> Result<(), ApiError> {
        let record =
            RejectionRecord { channel, message_id: None, received_at: Utc::now(), rejection: &rejection, raw, retention: self.retention };
        if let Err(e) = self.store.record_rejection(&record).await {
            tracing::error!(error = %e, "recording a rejection failed");
            return Err(error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the store is unavailable; retry"));
        }
        tracing::warn!(channel, reason = rejection.reason.as_str(), detail = %nuannan::telemetry::mask_text(&rejection.detail), "intake refused at the gateway");
        Ok(())
    }

    /// Checks `body` as normalize will, publishes it and waits for the confirm.
    async fn intake(&self, channel: &'static str, body: &[u8], content_type: &'static str) -> Result<String, ApiError> {
        let accepted = match edge::accept(channel, body, Utc::now(), &self.policy) {
            Ok(a) => a,
            Err(rejection) => return Err(self.reject(channel, body, rejection).await),
        };
        let publisher =
            self.slot.get().ok_or_else(|| error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the broker is unavailable; retry"))?;
        let mut msg = Outgoing::json(Exchange::Intake, channel, body.to_vec(), accepted.message_id.clone());
        msg.content_type = content_type;
        let started = Instant::now();
        let published = publisher.publish(&msg).await;
        nuannan::ops::metrics().http("confirm").observe(0, started.elapsed());
        match published {
            Ok(()) => Ok(accepted.message_id),
            Err(e) => {
                tracing::warn!(channel, error = %e, "intake not confirmed; answering 503");
                Err(error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the broker did not confirm in time; retry"))
            }
        }
    }

    async fn too_large(&self, channel: &str, raw: &[u8]) -> ApiError {
        let rejection = Rejection::new(RejectReason::TooLarge, format!("body is over {} bytes", edge::MAX_BODY_BYTES));
        self.reject(channel, raw, rejection).await
    }
}

/// A query string the route cannot read: 400 `malformed` in our error shape.
fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(q)| q).map_err(|e| error(StatusCode::BAD_REQUEST, "malformed", e.body_text()))
}

async fn wechat_verify(State(gw): State<Arc<Gateway>>, q: Result<Query<WechatQuery>, QueryRejection>) -> Result<String, ApiError> {
    gw.wechat.verify_url(&query(q)?, Utc::now()).map_err(wechat_refused)
}

fn wechat_refused(refusal: WechatRefusal) -> ApiError {
    tracing::warn!(reason = %refusal, "WeChat callback refused");
    error(StatusCode::FORBIDDEN, "forbidden", refusal)
}

/// The body, or a recorded `too_large` refusal.
async fn body_of(gw: &Gateway, channel: &str, body: Body) -> Result<Bytes, ApiError> {
    match read_body(body).await? {
        (body, false) => Ok(body),
        (cut, true) => Err(gw.too_large(channel, &cut).await),
    }
}

async fn wechat_push(
    State(gw): State<Arc<Gateway>>,
    q: Result<Query<WechatQuery>, QueryRejection>,
    body: Body,
) -> Result<&'static str, ApiError> {
    let q = query(q)?;
    let body = body_of(&gw, "wechat", body).await?;
    let plain = match gw.wechat.open(&q, &body, Utc::now()) {
        Ok(plain) => plain,
        Err(WechatRefusal::Malformed(detail)) => {
            return Err(gw.reject("wechat", &body, Rejection::new(RejectReason::Malformed, detail)).await);
        }
        Err(refusal) => return Err(wechat_refused(refusal)),
    };
    gw.intake("wechat", &plain, "application/xml").await?;
    Ok("success")
}

fn accepted(message_id: String) -> Response {
    (StatusCode::ACCEPTED, Json(json!({ "message_id": message_id }))).into_response()
}

async fn hotline_order(State(gw): State<Arc<Gateway>>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let body = body_of(&gw, "hotline", body).await?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    signed::verify(&gw.hotline_secret, header("x-nuannan-timestamp"), header("x-nuannan-signature"), &body, Utc::now().timestamp())
        .map_err(|e| {
            tracing::warn!(reason = %e, "12345 order refused");
            error(StatusCode::UNAUTHORIZED, "unauthenticated", e)
        })?;
    Ok(accepted(gw.intake("hotline", &body, "application/json").await?))
}

/// The App adapter's principal, from its bearer key.
fn app_adapter(gw: &Gateway, headers: &HeaderMap) -> Result<nuannan::identity::Principal, ApiError> {
    let unauthorized =
        || error(StatusCode::UNAUTHORIZED, "unauthenticated", "a valid App adapter key is required (Authorization: Bearer …)");
    let key = bearer(headers).ok_or_else(unauthorized)?;
    let principal = gw.principals.by_api_key(key).ok_or_else(unauthorized)?;
    let is_app = principal.kind == nuannan::identity::Kind::Adapter && principal.channel == Some(nuannan::domain::Channel::App);
    if !is_app {
        tracing::warn!(user = principal.user.as_str(), "a key of another principal on an App route");
        return Err(unauthorized());
    }
    Ok(principal)
}

async fn app_petition(State(gw): State<Arc<Gateway>>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    app_adapter(&gw, &headers)?;
    let body = body_of(&gw, "app", body).await?;
    Ok(accepted(gw.intake("app", &body, "application/json").await?))
}

#[derive(serde::Deserialize)]
struct ViewQuery {
    user_id: Option<String>,
}

/// The citizen's view of their App petition.
async fn app_view(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    q: Result<Query<ViewQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    app_adapter(&gw, &headers)?;
    let Path(id) = id.map_err(|e| error(StatusCode::BAD_REQUEST, "malformed", e.body_text()))?;
    let q = query(q)?;
    let not_found = || error(StatusCode::NOT_FOUND, "not_found", "no such petition for this user");
    let user = q.user_id.ok_or_else(not_found)?;
    let petition_id = id.parse::<nuannan::domain::PetitionId>().map_err(|_| not_found())?;
    let read = async {
        let Some(p) = gw.store.petition(&petition_id).await? else { return Ok(None) };
        let events = gw.store.events_of(petition_id.as_str()).await?;
        let unit_name = p.unit.as_ref().and_then(|u| gw.registry.unit(u)).map(|u| u.name.clone());
        Ok::<_, nuannan::store::StoreError>(edge::citizen_view(&p, nuannan::domain::Channel::App, &user, unit_name.as_deref(), &events))
    };
    let view = read.await.map_err(|e| {
        tracing::error!(error = %e, "reading a petition failed");
        error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the store is unavailable; retry")
    })?;
    view.map(Json).ok_or_else(not_found)
}

#[derive(serde::Deserialize)]
struct FeedQuery {
    #[serde(default)]
    after: i64,
}

/// Items of `GET /app/notifications` per page.
const FEED_PAGE: i64 = 100;

/// The App's citizens' messages after a cursor, oldest first.
async fn app_notifications(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    q: Result<Query<FeedQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    app_adapter(&gw, &headers)?;
    let after = query(q)?.after;
    if after < 0 {
        return Err(error(StatusCode::BAD_REQUEST, "malformed", "`after` is a cursor: 0 or a cursor from an earlier answer"));
    }
    let items = gw.store.notifications_after(after, FEED_PAGE).await.map_err(|e| {
        tracing::error!(error = %e, "reading the App feed failed");
        error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the store is unavailable; retry")
    })?;
    let next = items.last().map_or(after, |i| i.cursor);
    Ok(Json(json!({ "items": items, "next": next })))
}

/// 200 while a broker session can confirm publishes, else 503.
async fn healthz(State(gw): State<Arc<Gateway>>) -> Response {
    let up = gw.slot.get().is_some();
    let status = if up { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(json!({ "broker": up }))).into_response()
}

/// The OpenAPI document, `schemas/openapi.yaml` with the intake schemas, as JSON.
async fn openapi() -> Json<serde_json::Value> {
    static DOC: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    let doc = DOC.get_or_init(|| {
        let mut doc: serde_json::Value = serde_yaml_ng::from_str(include_str!("../../../schemas/openapi.yaml")).expect("valid YAML");
        // The intake payloads are described once, by their JSON Schemas (OpenAPI 3.1 takes them as they are).
        for (name, schema) in [
            ("AppPetition", include_str!("../../../schemas/intake/app.schema.json")),
            ("HotlineOrder", include_str!("../../../schemas/intake/hotline.schema.json")),
            ("Open311Discovery", include_str!("../../../schemas/open311/discovery.schema.json")),
            ("Open311Services", include_str!("../../../schemas/open311/services.schema.json")),
            ("Open311Requests", include_str!("../../../schemas/open311/requests.schema.json")),
            ("Open311Errors", include_str!("../../../schemas/open311/errors.schema.json")),
        ] {
            // Without its `$id`, a schema's own `#/$defs/…` would point into this document's root.
            let schema = schema.replace("\"#/$defs/", &format!("\"#/components/schemas/{name}/$defs/"));
            let mut schema: serde_json::Value = serde_json::from_str(&schema).expect("valid JSON Schema");
            schema.as_object_mut().expect("an object").retain(|k, _| k != "$schema" && k != "$id");
            doc["components"]["schemas"][name] = schema;
        }
        doc
    });
    Json(doc.clone())
}

/// A token bucket per principal or client address: `rate` requests per
/// second, bursts up to `rate`.
struct Limiter {
    rate: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Limiter {
    fn new(rate: u32) -> Self {
        Limiter { rate: f64::from(rate), buckets: Mutex::new(HashMap::new()) }
    }

    fn allow(&self, who: &str) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("limiter lock");
        if buckets.len() > 100_000 {
            // Forget idle clients rather than grow without bound.
            buckets.retain(|_, (_, at)| now.duration_since(*at) < Duration::from_secs(60));
        }
        let (tokens, at) = buckets.entry(who.to_owned()).or_insert((self.rate, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(self.rate);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}
