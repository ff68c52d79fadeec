//! The JSON twin of every page (`/api/…`, bearer token from `POST
//! /api/login`): the same data, for scripts and other front ends. 401
//! without a valid token; 404 for anything outside the principal's subtree.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use nuannan::console::Scope;
use nuannan::domain::{Status, UnitPath};
use nuannan::report::GroupBy;
use nuannan::store::{StoreError, parse_cursor};

use super::Console;
use super::auth::bearer;
use super::views::LIST_LIMIT;

pub struct ApiError(StatusCode, &'static str, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1, "detail": self.2 }))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "console: the store failed");
        ApiError(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the store is unavailable; retry".into())
    }
}

type Result<T> = std::result::Result<T, ApiError>;

fn not_found() -> ApiError {
    ApiError(StatusCode::NOT_FOUND, "not_found", "no such thing in your unit's subtree".into())
}

fn malformed(detail: impl ToString) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, "malformed", detail.to_string())
}

async fn scope(console: &Console, headers: &HeaderMap) -> Result<Scope> {
    console.scope_of(bearer(headers)).await.map_err(|_| {
        ApiError(StatusCode::UNAUTHORIZED, "unauthenticated", "a token from POST /api/login is required (Authorization: Bearer …)".into())
    })
}

#[derive(Deserialize)]
pub struct Login {
    user: String,
    password: String,
}

pub async fn login(State(console): State<Arc<Console>>, body: std::result::Result<Json<Login>, JsonRejection>) -> Result<Json<Value>> {
    let Json(login) = body.map_err(|e| malformed(e.body_text()))?;
    let token = console
        .log_in(&login.user, &login.password)
        .await
        .ok_or_else(|| ApiError(StatusCode::UNAUTHORIZED, "unauthenticated", "unknown user or wrong password".into()))?;
    Ok(Json(json!({ "token": token })))
}

#[derive(Deserialize)]
pub struct After {
    after: Option<String>,
}

pub async fn escalations(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    q: std::result::Result<Query<After>, QueryRejection>,
) -> Result<Json<Value>> {
    let scope = scope(&console, &headers).await?;
    let Query(q) = q.map_err(|e| malformed(e.body_text()))?;
    let after = match q.after.as_deref().filter(|a| !a.is_empty()) {
        Some(a) => Some(parse_cursor(a).ok_or_else(|| malformed("`after` is a cursor from an earlier answer"))?),
        None => None,
    };
    // Oldest first after a cursor (to follow the feed); the newest first without one.
    let items = console.feed(&scope, after.as_ref(), LIST_LIMIT).await?;
    let next = match &after {
        Some(_) => items.last().map(|i| i.cursor.clone()).or(q.after),
        None => items.first().map(|i| i.cursor.clone()),
    };
    Ok(Json(json!({ "items": items, "next": next })))
}

fn unit(path: &str) -> Result<UnitPath> {
    path.parse().map_err(|_| not_found())
}

pub async fn units(State(console): State<Arc<Console>>, headers: HeaderMap, Path(path): Path<String>) -> Result<Json<Value>> {
    let scope = scope(&console, &headers).await?;
    let view = console.unit_view(&scope, &unit(&path)?).await?.ok_or_else(not_found)?;
    Ok(Json(json!(view)))
}

#[derive(Deserialize)]
pub struct Period {
    pub from: Option<String>,
    pub to: Option<String>,
    pub by: Option<String>,
}

impl Period {
    /// `[from, to]` as whole days in Beijing time (default: the last 30
    /// days), grouped by street (default) or category.
    pub fn read(&self) -> std::result::Result<(chrono::DateTime<Utc>, chrono::DateTime<Utc>, GroupBy), String> {
        let day =
            |s: &Option<String>, end: bool| s.as_deref().filter(|s| !s.is_empty()).map(|s| nuannan::report::instant(s, end)).transpose();
        let to = day(&self.to, true).map_err(|e| format!("`to`: {e}"))?.unwrap_or_else(Utc::now);
        let from = day(&self.from, false).map_err(|e| format!("`from`: {e}"))?.unwrap_or(to - chrono::Duration::days(30));
        let by = match self.by.as_deref() {
            None | Some("") | Some("street") => GroupBy::Street,
            Some("category") => GroupBy::Category,
            Some(other) => return Err(format!("`by` is street or category, not `{other}`")),
        };
        Ok((from, to, by))
    }
}

pub async fn rates(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    q: std::result::Result<Query<Period>, QueryRejection>,
) -> Result<Json<Value>> {
    let scope = scope(&console, &headers).await?;
    let Query(q) = q.map_err(|e| malformed(e.body_text()))?;
    let (from, to, by) = q.read().map_err(malformed)?;
    let rows = console.rates(&scope, from, to, by).await?;
    Ok(Json(json!({ "from": from, "to": to, "by": q.by.unwrap_or_else(|| "street".into()), "rows": rows })))
}

pub async fn map(State(console): State<Arc<Console>>, headers: HeaderMap) -> Result<Json<Value>> {
    let scope = scope(&console, &headers).await?;
    let (grids, _) = console.map(&scope).await?;
    Ok(Json(json!({ "grids": grids })))
}

#[derive(Deserialize)]
pub struct UnitQuery {
    pub unit: Option<String>,
}

/// The open petitions of a unit (the drill-down from the tree).
pub async fn petitions(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    q: std::result::Result<Query<UnitQuery>, QueryRejection>,
) -> Result<Json<Value>> {
    let scope = scope(&console, &headers).await?;
    let Query(q) = q.map_err(|e| malformed(e.body_text()))?;
    let root = match q.unit {
        Some(u) => unit(&u)?,
        None => scope.root.clone(),
    };
    if !scope.sees(&root) {
        return Err(not_found());
    }
    Ok(Json(json!({ "items": console.queue(&scope, &root, &[]).await? })))
}

pub async fn petition(State(console): State<Arc<Console>>, headers: HeaderMap, Path(id): Path<String>) -> Result<Json<Value>> {
    let scope = scope(&console, &headers).await?;
    console.petition_view(&scope, &id).await?.map(Json).ok_or_else(not_found)
}

pub async fn review(State(console): State<Arc<Console>>, headers: HeaderMap) -> Result<Json<Value>> {
    let scope = scope(&console, &headers).await?;
    Ok(Json(json!({ "items": console.queue(&scope, &scope.root, &[Status::Resolved]).await? })))
}

pub async fn triage(State(console): State<Arc<Console>>, headers: HeaderMap) -> Result<Json<Value>> {
    let scope = scope(&console, &headers).await?;
    Ok(Json(json!({ "items": console.queue(&scope, &scope.root, &[Status::Triage]).await? })))
}

/// `approve` / `return` (reviewers) and `transfer` (dispatchers), sent as
/// the principal; the lifecycle's reply is the answer.
pub async fn command(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path((id, command)): Path<(String, String)>,
    body: std::result::Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>> {
    let scope = scope(&console, &headers).await?;
    let data = match body {
        Ok(Json(data)) if data.is_object() => data,
        Ok(_) => return Err(malformed("the body is the command's data object, e.g. {} or {\"reason\": \"…\"}")),
        Err(JsonRejection::MissingJsonContentType(_)) => json!({}),
        Err(e) => return Err(malformed(e.body_text())),
    };
    Ok(Json(send(&console, &scope, &id, &command, data).await?))
}

/// Checks and sends a console command; shared with the pages' forms.
pub async fn send(console: &Console, scope: &Scope, id: &str, command: &str, data: Value) -> Result<Value> {
    if console.visible_petition(scope, id).await?.is_none() {
        return Err(not_found());
    }
    if !scope.may(command) {
        tracing::warn!(user = scope.user, command, "a console command the principal may not send");
        return Err(ApiError(StatusCode::FORBIDDEN, "forbidden", format!("a {} does not send `{command}`", scope.kind.as_str())));
    }
    let actor = json!({ "id": scope.user, "role": scope.kind.as_str(), "unit": scope.root });
    console.send(&scope.user, command, id, actor, data).await.map_err(|e| {
        tracing::error!(error = format!("{e:#}"), "console command not answered");
        ApiError(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the command was not answered; retry".into())
    })
}
