//! A local stand-in for the remotes the `deliver` role talks to, following
//! their documented behaviour — WeChat's server API (`/cgi-bin/token`,
//! customer-service and template messages, with token expiry, the 48-hour
//! window and error codes), the 12345 platform's callback and the App
//! backend's webhook (both checking the signature) — for the demo and the
//! tests, where the real ones are out of reach. Faults can be injected:
//! bursts of errors, slow answers, revoked tokens, citizens outside the window.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use nuannan::gateway::signed;

/// The paths the stand-in serves, relative to its base URL.
pub const HOTLINE_PATH: &str = "/hotline/callback";
pub const APP_PATH: &str = "/app/webhook";

/// Credentials the stand-in expects.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub app_id: String,
    pub app_secret: String,
    pub hotline_secret: String,
    pub webhook_secret: String,
}

/// A request the stand-in accepted.
#[derive(Debug, Clone)]
pub struct Received {
    /// `wechat`, `wechat_template`, `hotline` or `app`.
    pub remote: &'static str,
    /// `X-Nuannan-Message-Id` of a webhook; WeChat has none.
    pub message_id: Option<String>,
    pub body: Value,
}

#[derive(Default)]
struct Faults {
    /// Per remote (`wechat`, `hotline`, `app`): answers to give before behaving.
    next: HashMap<&'static str, VecDeque<Fault>>,
    delay: HashMap<&'static str, Duration>,
    /// Openids whose 48-hour window has closed.
    outside_window: HashSet<String>,
}

/// One injected answer.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// An HTTP status (webhooks, or WeChat's gateway failing).
    Status(u16),
    /// A WeChat `errcode` with HTTP 200.
    Errcode(i64),
    /// Takes the request (it counts as received), then answers only after this long.
    Slow(Duration),
}

struct Shared {
    credentials: Credentials,
    /// Valid tokens; a revoked one answers 42001.
    tokens: Mutex<(u32, HashSet<String>)>,
    token_requests: Mutex<u32>,
    received: Mutex<Vec<Received>>,
    faults: Mutex<Faults>,
    changed: Notify,
}

pub struct StandIn {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
}

impl StandIn {
    /// Listens on `addr` (port 0: any free port).
    pub async fn start(addr: &str, credentials: Credentials) -> anyhow::Result<StandIn> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let shared = Arc::new(Shared {
            credentials,
            tokens: Mutex::default(),
            token_requests: Mutex::default(),
            received: Mutex::default(),
            faults: Mutex::default(),
            changed: Notify::new(),
        });
        let router = Router::new()
            .route("/cgi-bin/token", get(token))
            .route("/cgi-bin/message/custom/send", post(custom_send))
            .route("/cgi-bin/message/template/send", post(template_send))
            .route(HOTLINE_PATH, post(hotline))
            .route(APP_PATH, post(app))
            .with_state(shared.clone());
        let stop = CancellationToken::new();
        let addr = listener.local_addr()?;
        let until = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).with_graceful_shutdown(async move { until.cancelled().await }).await;
        });
        Ok(StandIn { addr, shared, stop })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().expect("stand-in").clone()
    }

    pub fn token_requests(&self) -> u32 {
        *self.shared.token_requests.lock().expect("stand-in")
    }

    /// Every token issued so far expires now: sends with them get 42001.
    pub fn expire_tokens(&self) {
        self.shared.tokens.lock().expect("stand-in").1.clear();
    }

    /// The next answers of `remote` (`wechat`, `hotline`, `app`).
    pub fn inject(&self, remote: &'static str, faults: &[Fault]) {
        self.shared.faults.lock().expect("stand-in").next.entry(remote).or_default().extend(faults);
    }

    /// Every answer of `remote` takes this long.
    pub fn slow(&self, remote: &'static str, delay: Duration) {
        self.shared.faults.lock().expect("stand-in").delay.insert(remote, delay);
    }

    /// This citizen has not written to the account for 48 hours.
    pub fn close_window(&self, openid: &str) {
        self.shared.faults.lock().expect("stand-in").outside_window.insert(openid.to_owned());
    }

    /// Waits until `done` holds for what was received, or `timeout` passes.
    pub async fn wait_until(&self, timeout: Duration, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let received = self.received();
            if done(&received) {
                return received;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return self.received();
            }
        }
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Shared {
    /// The injected answer for this request, if any, after the configured delay.
    async fn fault(&self, remote: &'static str) -> Option<Fault> {
        let (fault, delay) = {
            let mut f = self.faults.lock().expect("stand-in");
            let fault = f.next.get_mut(remote).and_then(VecDeque::pop_front);
            (fault, f.delay.get(remote).copied())
        };
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        fault
    }

    fn record(&self, remote: &'static str, message_id: Option<String>, body: Value) {
        self.received.lock().expect("stand-in").push(Received { remote, message_id, body });
        self.changed.notify_waiters();
    }
}

fn errcode(code: i64, msg: &str) -> Response {
    Json(json!({ "errcode": code, "errmsg": msg })).into_response()
}

async fn token(State(s): State<Arc<Shared>>, Query(q): Query<HashMap<String, String>>) -> Response {
    *s.token_requests.lock().expect("stand-in") += 1;
    let c = &s.credentials;
    if q.get("grant_type").map(String::as_str) != Some("client_credential") {
        return errcode(40002, "invalid grant_type");
    }
    if q.get("appid") != Some(&c.app_id) {
        return errcode(40013, "invalid appid");
    }
    if q.get("secret") != Some(&c.app_secret) {
        return errcode(40125, "invalid appsecret");
    }
    let mut tokens = s.tokens.lock().expect("stand-in");
    tokens.0 += 1;
    let token = format!("ACCESS_TOKEN_{}", tokens.0);
    tokens.1.insert(token.clone());
    Json(json!({ "access_token": token, "expires_in": 7200 })).into_response()
}

async fn custom_send(state: State<Arc<Shared>>, q: Query<HashMap<String, String>>, body: Bytes) -> Response {
    wechat_send(state, q, body, "wechat").await
}

async fn template_send(state: State<Arc<Shared>>, q: Query<HashMap<String, String>>, body: Bytes) -> Response {
    wechat_send(state, q, body, "wechat_template").await
}

/// WeChat's order: the token, then the request, then the window.
async fn wechat_send(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
    remote: &'static str,
) -> Response {
    let fault = s.fault("wechat").await;
    let token_ok = q.get("access_token").is_some_and(|t| s.tokens.lock().expect("stand-in").1.contains(t));
    if !token_ok {
        return errcode(42001, "access_token expired");
    }
    match fault {
        Some(Fault::Status(status)) => return StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY).into_response(),
        Some(Fault::Errcode(code)) => return errcode(code, "injected"),
        Some(Fault::Slow(_)) | None => {}
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else { return errcode(47001, "data format error") };
    let Some(openid) = body["touser"].as_str() else { return errcode(40003, "invalid openid") };
    // Template messages are not bound to the 48-hour window.
    if remote == "wechat" && s.faults.lock().expect("stand-in").outside_window.contains(openid) {
        return errcode(45015, "response out of time limit or subscription is canceled");
    }
    s.record(remote, None, body);
    if let Some(Fault::Slow(delay)) = fault {
        tokio::time::sleep(delay).await;
    }
    errcode(0, "ok")
}

async fn hotline(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let secret = s.credentials.hotline_secret.clone();
    webhook(&s, "hotline", &secret, &headers, &body).await
}

async fn app(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let secret = s.credentials.webhook_secret.clone();
    webhook(&s, "app", &secret, &headers, &body).await
}

async fn webhook(s: &Shared, remote: &'static str, secret: &str, headers: &HeaderMap, body: &[u8]) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Err(e) =
        signed::verify(secret, header("x-nuannan-timestamp"), header("x-nuannan-signature"), body, chrono::Utc::now().timestamp())
    {
        return (StatusCode::UNAUTHORIZED, e.to_string()).into_response();
    }
    let fault = s.fault(remote).await;
    if let Some(Fault::Status(status)) = fault {
        return StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY).into_response();
    }
    let Ok(body) = serde_json::from_slice::<Value>(body) else { return StatusCode::BAD_REQUEST.into_response() };
    s.record(remote, header("x-nuannan-message-id").map(str::to_owned), body);
    if let Some(Fault::Slow(delay)) = fault {
        tokio::time::sleep(delay).await;
    }
    StatusCode::NO_CONTENT.into_response()
}
