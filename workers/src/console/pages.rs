//! The pages: HTML rendered here, in Chinese, readable on a phone. Forms
//! carry a CSRF token bound to the session; the session cookie is
//! `HttpOnly` and `SameSite=Strict`.

use std::fmt::Write;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::json;

use nuannan::console::{Scope, escape as e, rates_chart};
use nuannan::domain::{Level, Status, UnitPath};
use nuannan::report::GroupBy;

use super::Console;
use super::api::{Period, UnitQuery};
use super::auth::{LOGIN_COOKIE, SESSION_COOKIE, cookie, set_cookie};
use super::views::{Summary, status_name};

/// A logged-in page request: its scope, session and CSRF token.
struct Page {
    scope: Scope,
    session: String,
    csrf: String,
}

impl Console {
    async fn page(&self, headers: &HeaderMap) -> Result<Page, Response> {
        let session = cookie(headers, SESSION_COOKIE).unwrap_or_default().to_owned();
        match self.scope_of(Some(&session)).await {
            Ok(scope) => Ok(Page { csrf: self.keys.csrf(&session), scope, session }),
            Err(_) => Err(Redirect::to("/login").into_response()),
        }
    }
}

fn layout(title: &str, page: Option<&Page>, body: &str) -> Html<String> {
    let nav = match page {
        Some(p) => format!(
            r#"<nav><a id="nav-overview" href="/">总览</a><a id="nav-units" href="/units/{root}">单位</a><a id="nav-rates" href="/rates">三率</a><a id="nav-map" href="/map">网格地图</a><a id="nav-review" href="/review">审核</a><a id="nav-triage" href="/triage">派单</a></nav>
<form id="logout" method="post" action="/logout"><input type="hidden" name="csrf" value="{csrf}"><span>{user}</span> <button type="submit">退出</button></form>"#,
            root = e(p.scope.root.as_str()),
            csrf = e(&p.csrf),
            user = e(&p.scope.user),
        ),
        None => String::new(),
    };
    Html(format!(
        r#"<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · 暖南诉办</title><link rel="stylesheet" href="/console.css"></head>
<body><header><h1>暖南诉办 · 监督台</h1>{nav}</header><main>{body}</main><script src="/console.js"></script></body></html>"#,
        title = e(title),
    ))
}

fn count_cells(c: &nuannan::console::Counts) -> String {
    let late = if c.overdue > 0 { " late" } else { "" };
    format!(
        r#"<td class="num open">{}</td><td class="num due-soon">{}</td><td class="num overdue{late}">{}</td><td class="num escalated">{}</td>"#,
        c.open, c.due_soon, c.overdue, c.escalated
    )
}

const COUNT_HEADERS: &str =
    r#"<th class="num">在办</th><th class="num">4小时内到期</th><th class="num">已超时</th><th class="num">已升级</th>"#;

fn unavailable(err: nuannan::store::StoreError) -> Response {
    tracing::error!(error = %err, "console: the store failed");
    (StatusCode::SERVICE_UNAVAILABLE, layout("暂不可用", None, "<section><p>数据暂时无法读取，请稍后重试。</p></section>")).into_response()
}

fn not_found(page: &Page) -> Response {
    (StatusCode::NOT_FOUND, layout("未找到", Some(page), "<section><p>没有找到，或不在您的管辖范围内。</p></section>")).into_response()
}

// ---- login -----------------------------------------------------------------

pub async fn login_form(State(console): State<Arc<Console>>) -> Response {
    login_page(&console, StatusCode::OK, None)
}

fn login_page(console: &Console, status: StatusCode, error: Option<&str>) -> Response {
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let csrf = console.keys.csrf(&format!("login:{nonce}"));
    let error = error.map(|m| format!(r#"<p id="error">{}</p>"#, e(m))).unwrap_or_default();
    let body = format!(
        r#"<section class="login"><h2>登录</h2>{error}<form id="login-form" method="post" action="/login">
<input type="hidden" name="csrf" value="{csrf}">
<label>用户名<input name="user" autocomplete="username" required></label>
<label>密码<input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">登录</button></form></section>"#
    );
    let mut r = (status, layout("登录", None, &body)).into_response();
    r.headers_mut().append(header::SET_COOKIE, set_cookie(LOGIN_COOKIE, &nonce, 3600));
    r
}

#[derive(Deserialize)]
pub struct LoginForm {
    user: String,
    password: String,
    csrf: String,
}

pub async fn login(State(console): State<Arc<Console>>, headers: HeaderMap, Form(form): Form<LoginForm>) -> Response {
    let nonce = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if nonce.is_empty() || !console.keys.csrf_ok(&format!("login:{nonce}"), &form.csrf) {
        tracing::warn!("console login refused: bad CSRF token");
        return login_page(&console, StatusCode::FORBIDDEN, Some("页面已过期，请重新登录。"));
    }
    match console.log_in(form.user.trim(), &form.password).await {
        Some(token) => {
            let mut r = Redirect::to("/").into_response();
            r.headers_mut().append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, &token, console.session_secs()));
            r.headers_mut().append(header::SET_COOKIE, set_cookie(LOGIN_COOKIE, "", 0));
            r
        }
        None => login_page(&console, StatusCode::UNAUTHORIZED, Some("用户名或密码错误。")),
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

pub async fn logout(State(console): State<Arc<Console>>, headers: HeaderMap, Form(form): Form<CsrfForm>) -> Response {
    let session = cookie(&headers, SESSION_COOKIE).unwrap_or_default();
    if !console.keys.csrf_ok(session, &form.csrf) {
        return (StatusCode::FORBIDDEN, "bad CSRF token").into_response();
    }
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, "", 0));
    r
}

// ---- pages -----------------------------------------------------------------

pub async fn overview(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let page = match console.page(&headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let feed = match console.feed(&page.scope, None, 50).await {
        Ok(f) => f,
        Err(err) => return unavailable(err),
    };
    let unit = match console.unit_view(&page.scope, &page.scope.root).await {
        Ok(u) => u,
        Err(err) => return unavailable(err),
    };
    let after = feed.first().map(|i| i.cursor.clone()).unwrap_or_default();
    let mut items = String::new();
    for i in &feed {
        let _ = write!(
            items,
            r#"<li class="feed-item" data-id="{id}" data-type="{kind}" data-petition="{pid}"><span class="tag {kind}">{label}</span><a href="/petitions/{pid}">{pid}</a> {text} · {at}</li>"#,
            id = e(&i.id),
            kind = e(&i.kind),
            pid = e(&i.petition_id),
            label = i.label,
            text = e(&i.text),
            at = e(&i.at),
        );
    }
    if feed.is_empty() {
        items.push_str(r#"<li id="feed-empty">暂无升级、预警或热点。</li>"#);
    }
    let mut rows = String::new();
    if let Some(u) = &unit {
        for r in std::iter::once(&u.unit).chain(&u.children) {
            let _ = write!(
                rows,
                r#"<tr class="unit-row" data-unit="{p}"><td><a href="/units/{p}">{n}</a></td>{c}</tr>"#,
                p = e(r.unit.as_str()),
                n = e(&r.name),
                c = count_cells(&r.counts)
            );
        }
    }
    let body = format!(
        r#"<section><h2>实时升级与预警</h2><ul id="feed" data-after="{after}">{items}</ul></section>
<section><h2>{name} 积压</h2><table id="backlog"><tr><th>单位</th>{COUNT_HEADERS}</tr>{rows}</table></section>"#,
        after = e(&after),
        name = e(&console.name_of(&page.scope.root)),
    );
    layout("总览", Some(&page), &body).into_response()
}

pub async fn units(State(console): State<Arc<Console>>, headers: HeaderMap, Path(path): Path<String>) -> Response {
    let page = match console.page(&headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Ok(unit) = path.parse::<UnitPath>() else { return not_found(&page) };
    let view = match console.unit_view(&page.scope, &unit).await {
        Ok(Some(v)) => v,
        Ok(None) => return not_found(&page),
        Err(err) => return unavailable(err),
    };
    let mut rows = String::new();
    for r in std::iter::once(&view.unit).chain(&view.children) {
        let name = if r.unit.level() == Level::Grid || r.unit == view.unit.unit {
            e(&r.name)
        } else {
            format!(r#"<a href="/units/{}">{}</a>"#, e(r.unit.as_str()), e(&r.name))
        };
        let _ = write!(
            rows,
            r#"<tr class="unit-row" data-unit="{p}"><td>{name}</td>{c}<td><a href="/petitions?unit={p}">诉求</a></td></tr>"#,
            p = e(r.unit.as_str()),
            c = count_cells(&r.counts)
        );
    }
    let up = view
        .unit
        .unit
        .parent()
        .filter(|p| page.scope.sees(p))
        .map(|p| format!(r#"<p><a href="/units/{0}">上一级：{1}</a></p>"#, e(p.as_str()), e(&console.name_of(&p))))
        .unwrap_or_default();
    let body = format!(
        r#"<section><h2>{name}</h2>{up}<table id="units"><tr><th>单位</th>{COUNT_HEADERS}<th></th></tr>{rows}</table></section>"#,
        name = e(&view.unit.name)
    );
    layout(&view.unit.name, Some(&page), &body).into_response()
}

fn summary_rows(items: &[Summary], extra: impl Fn(&Summary) -> String) -> String {
    let mut rows = String::new();
    for s in items {
        let _ = write!(
            rows,
            r#"<tr class="petition" data-petition="{id}"><td><a href="/petitions/{id}">{id}</a></td><td>{status}</td><td>{unit}</td><td>{content}</td><td class="wide">{received}</td>{extra}</tr>"#,
            id = e(&s.petition_id),
            status = status_name(s.status),
            unit = e(s.unit_name.as_deref().unwrap_or("—")),
            content = e(&s.content),
            received = e(&s.received_at),
            extra = extra(s),
        );
    }
    rows
}

pub async fn petitions(State(console): State<Arc<Console>>, headers: HeaderMap, Query(q): Query<UnitQuery>) -> Response {
    let page = match console.page(&headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let root = match q.unit.as_deref().map(str::parse::<UnitPath>) {
        Some(Ok(u)) if page.scope.sees(&u) => u,
        None => page.scope.root.clone(),
        _ => return not_found(&page),
    };
    let items = match console.queue(&page.scope, &root, &[]).await {
        Ok(i) => i,
        Err(err) => return unavailable(err),
    };
    let body = format!(
        r#"<section><h2>{name} 在办诉求（{n}）</h2><table id="petitions"><tr><th>编号</th><th>状态</th><th>承办单位</th><th>内容</th><th class="wide">受理时间</th></tr>{rows}</table></section>"#,
        name = e(&console.name_of(&root)),
        n = items.len(),
        rows = summary_rows(&items, |_| String::new()),
    );
    layout("在办诉求", Some(&page), &body).into_response()
}

#[derive(Deserialize)]
pub struct ReplyQuery {
    reply: Option<String>,
}

pub async fn petition(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<ReplyQuery>,
) -> Response {
    let page = match console.page(&headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let view = match console.petition_view(&page.scope, &id).await {
        Ok(Some(v)) => v,
        Ok(None) => return not_found(&page),
        Err(err) => return unavailable(err),
    };
    let text = |v: &serde_json::Value| e(v.as_str().unwrap_or("—"));
    let reply = q.reply.map(|r| format!(r#"<p id="reply">指令回执：{}</p>"#, e(&r))).unwrap_or_default();
    let mut timeline = String::new();
    for t in view["timeline"].as_array().into_iter().flatten() {
        let kind = t["type"].as_str().unwrap_or_default();
        let _ = write!(timeline, r#"<li data-type="{}"><b>{}</b> {}</li>"#, e(kind), event_name(kind), text(&t["at"]));
    }
    let mut breaches = String::new();
    for b in view["breaches"].as_array().into_iter().flatten() {
        let who = b["responsible"]["name"].as_str().map(|n| format!("（责任人 {}）", e(n))).unwrap_or_default();
        let _ = write!(breaches, r#"<li>{} {} 超时 {}{who}</li>"#, text(&b["unit_name"]), text(&b["clock"]), text(&b["breached_at"]));
    }
    let mut deliveries = String::new();
    for d in view["deliveries"].as_array().into_iter().flatten() {
        let _ = write!(deliveries, r#"<li>{} {} {}：{}</li>"#, text(&d["at"]), text(&d["channel"]), text(&d["kind"]), text(&d["status"]));
    }
    let status: Status = serde_json::from_value(view["status"].clone()).unwrap_or(Status::Received);
    let actions = actions(&page, &console, &id, status);
    let body = format!(
        r#"{reply}<section id="petition"><h2>诉求 {id}</h2>
<p>状态：<span id="status">{status_code}</span>（{status_name}） · 承办：{unit} · 渠道：{channel}</p>
<p>{content}</p><p>地点：{address} · 网格：{grid}</p><p>受理：{received} · 响应时限：{respond} · 办结时限：{resolve}</p>
<p>办理结果：{result}</p>{actions}</section>
<section><h2>时间线</h2><ol id="timeline">{timeline}</ol></section>
<section><h2>超时记录</h2><ul id="breaches">{breaches}</ul></section>
<section><h2>回复送达</h2><ul id="deliveries">{deliveries}</ul></section>"#,
        id = e(&id),
        status_code = text(&view["status"]),
        status_name = status_name(status),
        unit = text(&view["unit_name"]),
        channel = text(&view["channel"]),
        content = text(&view["content"]),
        address = text(&view["address"]),
        grid = text(&view["grid"]),
        received = text(&view["received_at"]),
        respond = text(&view["respond_by"]),
        resolve = text(&view["resolve_by"]),
        result = text(&view["result"]),
    );
    layout(&format!("诉求 {id}"), Some(&page), &body).into_response()
}

/// The commands this principal may send on a petition in this state.
fn actions(page: &Page, console: &Console, id: &str, status: Status) -> String {
    let csrf = format!(r#"<input type="hidden" name="csrf" value="{}">"#, e(&page.csrf));
    let id = e(id);
    match status {
        Status::Resolved if page.scope.may("approve") => format!(
            r#"<form class="approve inline" method="post" action="/petitions/{id}/commands/approve">{csrf}<button class="approve" type="submit">审核通过</button></form>
<form class="return inline" method="post" action="/petitions/{id}/commands/return">{csrf}<input name="reason" placeholder="退回理由" required><button class="return" type="submit">退回</button></form>"#
        ),
        Status::Triage if page.scope.may("transfer") => format!(
            r#"<form class="transfer inline" method="post" action="/petitions/{id}/commands/transfer">{csrf}{select}<button class="transfer" type="submit">派单</button></form>"#,
            select = unit_select(console, &page.scope)
        ),
        _ => String::new(),
    }
}

/// The streets and communities a dispatcher may transfer to.
fn unit_select(console: &Console, scope: &Scope) -> String {
    let mut units: Vec<_> = console
        .shared
        .registry
        .units()
        .filter(|u| scope.sees(&u.path) && matches!(u.path.level(), Level::Street | Level::Community))
        .collect();
    units.sort_by(|a, b| a.path.as_str().cmp(b.path.as_str()));
    let mut out = String::from(r#"<select name="unit" required>"#);
    for u in units {
        let indent = if u.path.level() == Level::Community { "　" } else { "" };
        let _ = write!(out, r#"<option value="{}">{indent}{}</option>"#, e(u.path.as_str()), e(&u.name));
    }
    out.push_str("</select>");
    out
}

#[derive(Deserialize)]
pub struct CommandForm {
    csrf: String,
    reason: Option<String>,
    unit: Option<String>,
}

pub async fn command(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path((id, command)): Path<(String, String)>,
    Form(form): Form<CommandForm>,
) -> Response {
    let page = match console.page(&headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if !console.keys.csrf_ok(&page.session, &form.csrf) {
        tracing::warn!(user = page.scope.user, "console form refused: bad CSRF token");
        return (StatusCode::FORBIDDEN, layout("已拒绝", Some(&page), "<section><p>页面已过期，请刷新后重试。</p></section>"))
            .into_response();
    }
    let data = match command.as_str() {
        "return" => json!({ "reason": form.reason.unwrap_or_default() }),
        "transfer" => json!({ "unit": form.unit.unwrap_or_default() }),
        _ => json!({}),
    };
    let reply = match super::api::send(&console, &page.scope, &id, &command, data).await {
        Ok(reply) => reply.to_string(),
        Err(err) => err.into_response().status().to_string(),
    };
    let reply: String = form_urlencoded::byte_serialize(format!("{command}: {reply}").as_bytes()).collect();
    Redirect::to(&format!("/petitions/{}?reply={reply}", form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()))
        .into_response()
}

async fn queue_page(console: &Console, headers: &HeaderMap, status: Status, title: &str, table: &str) -> Response {
    let page = match console.page(headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let items = match console.queue(&page.scope, &page.scope.root, &[status]).await {
        Ok(i) => i,
        Err(err) => return unavailable(err),
    };
    let rows = summary_rows(&items, |s| format!("<td>{}</td>", actions(&page, console, &s.petition_id, s.status)));
    let body = format!(
        r#"<section><h2>{title}（{n}）</h2><table id="{table}"><tr><th>编号</th><th>状态</th><th>承办单位</th><th>内容</th><th class="wide">受理时间</th><th></th></tr>{rows}</table></section>"#,
        n = items.len()
    );
    layout(title, Some(&page), &body).into_response()
}

pub async fn review(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    queue_page(&console, &headers, Status::Resolved, "待审核", "review").await
}

pub async fn triage(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    queue_page(&console, &headers, Status::Triage, "待派单", "triage").await
}

pub async fn rates(State(console): State<Arc<Console>>, headers: HeaderMap, Query(q): Query<Period>) -> Response {
    let page = match console.page(&headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let (from, to, by) = match q.read() {
        Ok(p) => p,
        Err(msg) => {
            return (StatusCode::BAD_REQUEST, layout("三率", Some(&page), &format!("<section><p>{}</p></section>", e(&msg))))
                .into_response();
        }
    };
    let rows = match console.rates(&page.scope, from, to, by).await {
        Ok(r) => r,
        Err(err) => return unavailable(err),
    };
    let pct = |v: Option<f64>| v.map_or("—".to_owned(), |v| format!("{:.1}%", v * 100.0));
    let mut table = String::new();
    for r in &rows {
        let _ = write!(
            table,
            r#"<tr><td>{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td></tr>"#,
            e(&r.label),
            r.row.received,
            pct(r.row.on_time_response_rate),
            pct(r.row.on_time_resolution_rate),
            pct(r.row.satisfaction_rate)
        );
    }
    let chart = rates_chart(&rows.iter().map(|r| (r.label.clone(), &r.row)).collect::<Vec<_>>());
    let day = |t: chrono::DateTime<chrono::Utc>| t.with_timezone(&chrono_tz::Asia::Shanghai).format("%Y-%m-%d").to_string();
    let to_day = day(to - chrono::Duration::seconds(1));
    let selected = |b: GroupBy| if b == by { " selected" } else { "" };
    let body = format!(
        r#"<section><h2>三率（{from} 至 {to_day}）</h2>
<form method="get" action="/rates"><input type="date" name="from" value="{from}"> — <input type="date" name="to" value="{to_day}">
<select name="by"><option value="street"{s}>按街道</option><option value="category"{c}>按类别</option></select> <button type="submit">查看</button></form>
{chart}
<table id="rates"><tr><th>{group}</th><th class="num">受理</th><th class="num">响应及时率</th><th class="num">办结及时率</th><th class="num">满意率</th></tr>{table}</table></section>"#,
        from = day(from),
        s = selected(GroupBy::Street),
        c = selected(GroupBy::Category),
        group = if by == GroupBy::Street { "街道" } else { "类别" },
    );
    layout("三率", Some(&page), &body).into_response()
}

pub async fn map(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let page = match console.page(&headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let (grids, svg) = match console.map(&page.scope).await {
        Ok(m) => m,
        Err(err) => return unavailable(err),
    };
    let open: u64 = grids.iter().map(|g| g.open).sum();
    let body = format!(
        r#"<section><h2>网格地图（{n} 个网格，在办 {open} 件）</h2>{svg}<p>颜色越深，在办诉求越多；紫色虚线为专属网格（楼宇、园区）。</p></section>"#,
        n = grids.len()
    );
    layout("网格地图", Some(&page), &body).into_response()
}

/// An event type as staff read it.
fn event_name(kind: &str) -> &str {
    match kind {
        "received" => "受理",
        "assigned" => "派单",
        "triaged" => "待派单",
        "accepted" => "接单",
        "progressed" => "办理进展",
        "resolved" => "办结",
        "approved" => "审核通过",
        "returned" => "审核退回",
        "feedback_sent" => "反馈群众",
        "rated" => "群众评价",
        "closed" => "结案",
        "reopened" => "重新办理",
        "escalated" => "升级",
        "warned" => "超时预警",
        "transferred" => "转派",
        "refused" => "退单",
        "deadline_changed" => "时限调整",
        "located" => "补充位置",
        "delivered" => "回复送达",
        "delivery_failed" => "回复未送达",
        "hotspot" => "热点",
        other => other,
    }
}

pub async fn css() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], include_str!("assets/console.css"))
}

pub async fn js() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], include_str!("assets/console.js"))
}
