//! The supervisors' console (`docs/contract.md` §15) against the real broker
//! and store: logins, every page and API route refused to a principal who
//! must not see it, commands sent as the logged-in principal, the rates
//! agreeing with `nuannan report`, and the whole flow in a real browser
//! (Debian's chromium driven by Playwright: `tests/browser/console_flow.py`).

use std::sync::OnceLock;

use mongodb::bson::doc;
use nuannan::gateway::client::{exchange, request};
use nuannan_workers::Role;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::common::commands::{Commander, handler, principal};
use crate::common::{ROOT, TestApp, test_settings, wait_for};
use crate::ops::free_addr;

const PASSWORD: &str = "暖南-console-2026";

/// One argon2 hash for every principal (hashing is slow on purpose).
fn password_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| nuannan::console::hash_password(PASSWORD))
}

async fn console(roles: &[Role]) -> (TestApp, String) {
    let mut settings = test_settings().await;
    settings.console.http_addr = free_addr();
    settings.console.session_secret = "console-test-secret".into();
    settings.deadline.scan_interval_ms = 200;
    let mut app = TestApp::with_settings(settings).await;
    let hash = password_hash();
    let principals = [
        format!("user = \"district-review\"\nkind = \"reviewer\"\npassword_hash = \"{hash}\""),
        format!("user = \"district-dispatch\"\nkind = \"dispatcher\"\nunit = \"shinan\"\npassword_hash = \"{hash}\""),
        format!("user = \"badaxia-sup\"\nkind = \"supervisor\"\nunit = \"shinan.badaxia\"\npassword_hash = \"{hash}\""),
        format!("user = \"tuandao-app\"\nkind = \"handler\"\nunit = \"shinan.badaxia.tuandao\"\npassword_hash = \"{hash}\""),
    ];
    let principals = nuannan::identity::Principals::from_list(principals.iter().map(|p| principal(p)));
    app.store.replace_principals(&principals).await.unwrap();
    let mut all = vec![Role::Console];
    all.extend_from_slice(roles);
    app.start_workers(&all);
    let addr = app.settings.console.http_addr.clone();
    wait_for("the console", || async { (request(&addr, "GET", "/healthz", &[], b"").await?.0 == 200).then_some(()) }).await;
    (app, addr)
}

async fn token(addr: &str, user: &str) -> String {
    let body = json!({ "user": user, "password": PASSWORD }).to_string();
    let (status, answer) =
        request(addr, "POST", "/api/login", &[("content-type", "application/json".into())], body.as_bytes()).await.unwrap();
    assert_eq!(status, 200, "{user}: {}", String::from_utf8_lossy(&answer));
    serde_json::from_slice::<Value>(&answer).unwrap()["token"].as_str().unwrap().to_owned()
}

async fn api(addr: &str, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let mut headers = vec![("content-type", "application/json".to_owned())];
    if let Some(t) = token {
        headers.push(("authorization", format!("Bearer {t}")));
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let (status, answer) = request(addr, method, path, &headers, body.as_bytes()).await.unwrap();
    (status, serde_json::from_slice(&answer).unwrap_or(Value::Null))
}

/// Logs in through the form, as a browser does: the session cookie.
async fn session_cookie(addr: &str, user: &str) -> String {
    let (_, headers, page) = exchange(addr, "GET", "/login", &[], b"").await.unwrap();
    let nonce = set_cookie(&headers, "nuannan_login").expect("a login cookie");
    let page = String::from_utf8(page).unwrap();
    let csrf = page.split(r#"name="csrf" value=""#).nth(1).and_then(|r| r.split('"').next()).expect("a CSRF field").to_owned();
    let form = format!("user={user}&password={}&csrf={csrf}", form_urlencoded::byte_serialize(PASSWORD.as_bytes()).collect::<String>());
    let headers_in = [("content-type", "application/x-www-form-urlencoded".to_owned()), ("cookie", format!("nuannan_login={nonce}"))];
    let (status, headers, _) = exchange(addr, "POST", "/login", &headers_in, form.as_bytes()).await.unwrap();
    assert_eq!(status, 303, "{user} logs in");
    let lower = headers.to_ascii_lowercase();
    assert!(lower.contains("httponly") && lower.contains("samesite=strict"), "{headers}");
    format!("nuannan_session={}", set_cookie(&headers, "nuannan_session").expect("a session cookie"))
}

fn set_cookie(headers: &str, name: &str) -> Option<String> {
    headers
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .filter_map(|l| l.split_once(':').map(|(_, v)| v.trim()))
        .find_map(|v| v.strip_prefix(&format!("{name}=")).map(|v| v.split(';').next().unwrap_or_default().to_owned()))
        .filter(|v| !v.is_empty())
}

async fn page(addr: &str, path: &str, cookie: &str) -> (u16, String) {
    let (status, headers, body) = exchange(addr, "GET", path, &[("cookie", cookie.to_owned())], b"").await.unwrap();
    (status, format!("{headers}\n{}", String::from_utf8_lossy(&body)))
}

/// An App petition placed by `location` or `address`; its id once routed.
async fn petition(app: &TestApp, request_id: &str, place: Value) -> String {
    let mut body = json!({ "request_id": request_id, "submitted_at": chrono::Utc::now().to_rfc3339(), "user": { "id": "u-console" }, "content": "楼道灯坏了", "category": "livelihood" });
    body.as_object_mut().unwrap().extend(place.as_object().unwrap().clone());
    app.publish_intake("app", body.to_string(), None).await;
    let p = wait_for("routed", || {
        app.find_one("petitions", doc! { "source.message_id": request_id, "status": "assigned", "outbox": { "$size": 0 } })
    })
    .await;
    p.get_str("_id").unwrap().to_owned()
}

/// Accepted and resolved by the unit holding it: waiting for review.
async fn resolved(app: &TestApp, c: &Commander, id: &str) {
    let unit = app.find_one("petitions", doc! { "_id": id }).await.unwrap().get_str("unit").unwrap().to_owned();
    assert_eq!(c.send("accept", &format!("{id}-a"), id, handler(&unit), json!({})).await["ok"], true);
    assert_eq!(c.send("resolve", &format!("{id}-r"), id, handler(&unit), json!({ "result": "已更换灯泡" })).await["ok"], true);
}

#[tokio::test]
async fn each_principal_sees_its_subtree_and_nothing_else() {
    let (app, addr) = console(&[Role::Normalize, Role::Route, Role::Lifecycle]).await;
    let c = Commander::open(&app).await;
    // 120.30,36.06 is in 八大峡 (synthetic geometry); 东海西路 is 香港中路街道's.
    let inside = petition(&app, "console-in", json!({ "location": { "lng": 120.30, "lat": 36.06 } })).await;
    let outside = petition(&app, "console-out", json!({ "address": "东海西路" })).await;
    resolved(&app, &c, &inside).await;
    resolved(&app, &c, &outside).await;

    // No token, a wrong password, a principal the console is not for: 401.
    let reads =
        ["/api/escalations", "/api/units/shinan", "/api/rates", "/api/map", "/api/petitions", "/api/queues/review", "/api/queues/triage"];
    for path in reads.iter().copied().chain([format!("/api/petitions/{inside}").as_str()]) {
        assert_eq!(api(&addr, "GET", path, None, None).await.0, 401, "{path} without a token");
        assert_eq!(api(&addr, "GET", path, Some("forged.1.x"), None).await.0, 401, "{path} with a forged token");
    }
    assert_eq!(api(&addr, "POST", &format!("/api/petitions/{inside}/commands/approve"), None, Some(json!({}))).await.0, 401);
    let wrong = json!({ "user": "district-review", "password": "guess" });
    assert_eq!(api(&addr, "POST", "/api/login", None, Some(wrong)).await.0, 401);
    let handler_login = json!({ "user": "tuandao-app", "password": PASSWORD });
    assert_eq!(api(&addr, "POST", "/api/login", None, Some(handler_login)).await.0, 401, "handler apps do not use the console");

    // A street supervisor: its street, nothing above or beside it.
    let street = token(&addr, "badaxia-sup").await;
    let (status, unit) = api(&addr, "GET", "/api/units/shinan.badaxia", Some(&street), None).await;
    assert_eq!(status, 200);
    assert_eq!(unit["open"], 1, "{unit}");
    assert!(!unit["children"].as_array().unwrap().is_empty());
    for path in
        ["/api/units/shinan", "/api/units/shinan.xianggangzhonglu", &format!("/api/petitions/{outside}"), "/api/petitions?unit=shinan"]
    {
        assert_eq!(api(&addr, "GET", path, Some(&street), None).await.0, 404, "{path} is outside 八大峡");
    }
    assert_eq!(api(&addr, "GET", &format!("/api/petitions/{inside}"), Some(&street), None).await.0, 200);
    let (_, review) = api(&addr, "GET", "/api/queues/review", Some(&street), None).await;
    let ids: Vec<&str> = review["items"].as_array().unwrap().iter().map(|p| p["petition_id"].as_str().unwrap()).collect();
    assert_eq!(ids, [inside.as_str()], "only its street's petitions");
    let (_, map) = api(&addr, "GET", "/api/map", Some(&street), None).await;
    assert!(map["grids"].as_array().unwrap().iter().all(|g| g["grid"].as_str().unwrap().starts_with("shinan.badaxia.")));
    let (status, refused) = api(&addr, "POST", &format!("/api/petitions/{inside}/commands/approve"), Some(&street), Some(json!({}))).await;
    assert_eq!((status, refused["error"].as_str()), (403, Some("forbidden")), "a supervisor sends no command");

    // The same for the pages: a login redirect without a session, 404 outside.
    let (status, answer) = page(&addr, "/", "").await;
    assert_eq!(status, 303, "{answer}");
    assert!(answer.to_ascii_lowercase().contains("location: /login"));
    let cookie = session_cookie(&addr, "badaxia-sup").await;
    for path in ["/", "/units/shinan.badaxia", "/rates", "/map", "/review", "/triage", &format!("/petitions/{inside}"), "/petitions"] {
        assert_eq!(page(&addr, path, &cookie).await.0, 200, "{path}");
        assert_eq!(page(&addr, path, "nuannan_session=forged.1.x").await.0, 303, "{path} with a forged session");
    }
    for path in ["/units/shinan", &format!("/petitions/{outside}"), "/petitions?unit=shinan.xianggangzhonglu"] {
        assert_eq!(page(&addr, path, &cookie).await.0, 404, "{path} is outside 八大峡");
    }
    // Forms need the session's CSRF token.
    let reviewer_cookie = session_cookie(&addr, "district-review").await;
    let form = [("cookie", reviewer_cookie.clone()), ("content-type", "application/x-www-form-urlencoded".to_owned())];
    let (status, _) = request(&addr, "POST", &format!("/petitions/{inside}/commands/approve"), &form, b"csrf=not-the-token").await.unwrap();
    assert_eq!(status, 403, "a form without the session's CSRF token");
    assert_eq!(app.find_one("petitions", doc! { "_id": &inside }).await.unwrap().get_str("status").unwrap(), "resolved");

    // The reviewer sees the district and approves as itself.
    let reviewer = token(&addr, "district-review").await;
    let (_, review) = api(&addr, "GET", "/api/queues/review", Some(&reviewer), None).await;
    assert_eq!(review["items"].as_array().unwrap().len(), 2);
    let (status, reply) = api(&addr, "POST", &format!("/api/petitions/{outside}/commands/approve"), Some(&reviewer), Some(json!({}))).await;
    assert_eq!((status, reply), (200, json!({ "ok": true, "status": "approved" })));
    let approved = app.find_one("events", doc! { "petition_id": &outside, "type": "approved" }).await.unwrap();
    assert_eq!(approved.get_document("actor").unwrap().get_str("id").unwrap(), "district-review", "the audit names the principal");
    let (status, returned) =
        api(&addr, "POST", &format!("/api/petitions/{inside}/commands/return"), Some(&reviewer), Some(json!({ "reason": "照片不清楚" })))
            .await;
    assert_eq!((status, returned["status"].as_str()), (200, Some("accepted")), "{returned}");
    let (_, view) = api(&addr, "GET", &format!("/api/petitions/{inside}"), Some(&reviewer), None).await;
    let types: Vec<&str> = view["timeline"].as_array().unwrap().iter().map(|t| t["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["received", "assigned", "accepted", "resolved", "returned"]);

    // The district's dispatcher transfers a petition nobody could place; a reviewer may not.
    app.publish_intake(
        "app",
        json!({ "request_id": "console-nowhere", "user": { "id": "u-console" }, "content": "有个问题想反映", "category": "livelihood" })
            .to_string(),
        None,
    )
    .await;
    let p = wait_for("triaged", || {
        app.find_one("petitions", doc! { "source.message_id": "console-nowhere", "status": "triage", "outbox": { "$size": 0 } })
    })
    .await;
    let nowhere = p.get_str("_id").unwrap().to_owned();
    let dispatcher = token(&addr, "district-dispatch").await;
    let (_, triage) = api(&addr, "GET", "/api/queues/triage", Some(&dispatcher), None).await;
    assert_eq!(triage["items"][0]["petition_id"], nowhere.as_str());
    let to_tuandao = json!({ "unit": "shinan.badaxia.tuandao" });
    assert_eq!(
        api(&addr, "POST", &format!("/api/petitions/{nowhere}/commands/transfer"), Some(&reviewer), Some(to_tuandao.clone())).await.0,
        403
    );
    let (status, reply) =
        api(&addr, "POST", &format!("/api/petitions/{nowhere}/commands/transfer"), Some(&dispatcher), Some(to_tuandao)).await;
    assert_eq!((status, reply), (200, json!({ "ok": true, "status": "assigned" })));
    assert_eq!(app.find_one("petitions", doc! { "_id": &nowhere }).await.unwrap().get_str("unit").unwrap(), "shinan.badaxia.tuandao");
    app.cleanup().await;
}

#[tokio::test]
async fn the_rates_are_nuannan_reports() {
    let (app, addr) = console(&[]).await;
    let data = vec![
        crate::report::petition(
            1,
            crate::report::day(2),
            Some("shinan.badaxia"),
            "livelihood",
            "wechat",
            "closed",
            doc! { "kpi": { "responded_on_time": true, "resolved_on_time": true }, "closure": "rated", "rating": { "value": "satisfied" } },
        ),
        crate::report::petition(
            2,
            crate::report::day(3),
            Some("shinan.badaxia"),
            "enforcement",
            "app",
            "closed",
            doc! { "kpi": { "responded_on_time": false, "resolved_on_time": true }, "closure": "rated", "rating": { "value": "unsatisfied" } },
        ),
        crate::report::petition(
            3,
            crate::report::day(5),
            Some("shinan.zhongshanlu"),
            "development",
            "hotline",
            "accepted",
            doc! { "kpi": { "responded_on_time": true } },
        ),
    ];
    app.collection("petitions").insert_many(data).await.unwrap();
    let reviewer = token(&addr, "district-review").await;
    for by in ["street", "category"] {
        let cli = crate::report::report(&app, &["--from", "2026-11-01", "--to", "2026-11-30", "--by", by]);
        let (status, api_rows) =
            api(&addr, "GET", &format!("/api/rates?from=2026-11-01&to=2026-11-30&by={by}"), Some(&reviewer), None).await;
        assert_eq!(status, 200);
        let mut rows: Vec<Value> = api_rows["rows"].as_array().unwrap().clone();
        for r in &mut rows {
            r.as_object_mut().unwrap().remove("label");
        }
        assert_eq!(Value::Array(rows), cli, "the console's rates by {by} are the report's");
    }
    // A street supervisor: its street's rows only.
    let street = token(&addr, "badaxia-sup").await;
    let (_, rows) = api(&addr, "GET", "/api/rates?from=2026-11-01&to=2026-11-30&by=street", Some(&street), None).await;
    let groups: Vec<&str> = rows["rows"].as_array().unwrap().iter().map(|r| r["group"].as_str().unwrap_or("")).collect();
    assert_eq!(groups, ["shinan.badaxia"]);
    let (status, _) = api(&addr, "GET", "/api/rates?by=unit", Some(&street), None).await;
    assert_eq!(status, 400);
    app.cleanup().await;
}

/// A line from the browser driver, or its failure with what it printed.
async fn expect_line(lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>, want: &str) {
    let line = tokio::time::timeout(std::time::Duration::from_secs(120), lines.next_line()).await;
    match line {
        Ok(Ok(Some(l))) if l.starts_with(want) => {}
        other => panic!("the browser driver did not say {want}: {other:?} (its stderr is above)"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_works_in_a_real_browser() {
    let chromium = std::env::var("NUANNAN_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(std::path::Path::new(&chromium).exists(), "{chromium} (./scripts/test installs Debian's chromium)");
    let (app, addr) = console(&[Role::Normalize, Role::Route, Role::Lifecycle, Role::Notify, Role::Deadline]).await;
    let c = Commander::open(&app).await;
    let for_review = petition(&app, "browser-review", json!({ "location": { "lng": 120.30, "lat": 36.06 } })).await;
    resolved(&app, &c, &for_review).await;

    let shots = format!("{ROOT}/target/console-screenshots");
    let grids = nuannan::routing::Registry::bundled().grid_shapes().count().to_string();
    let mut driver = tokio::process::Command::new(format!("{ROOT}/.venv/bin/python"))
        .arg(format!("{ROOT}/tests/browser/console_flow.py"))
        .args([&format!("http://{addr}"), "district-review", PASSWORD, &for_review, &shots, &grids])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the browser driver (./scripts/test installs playwright into .venv)");
    let mut stdin = driver.stdin.take().unwrap();
    let mut lines = BufReader::new(driver.stdout.take().unwrap()).lines();
    expect_line(&mut lines, "READY").await;

    // Received five hours ago: its response window is breached as it is routed.
    let late = json!({
        "request_id": "browser-late", "submitted_at": (chrono::Utc::now() - chrono::Duration::hours(5)).to_rfc3339(),
        "user": { "id": "u-late" }, "content": "楼道灯坏了", "category": "livelihood", "location": { "lng": 120.30, "lat": 36.06 },
    });
    app.publish_intake("app", late.to_string(), None).await;
    let p = wait_for("the late petition escalated", || {
        app.find_one("petitions", doc! { "source.message_id": "browser-late", "escalation_level": 1 })
    })
    .await;
    let late_id = p.get_str("_id").unwrap().to_owned();
    stdin.write_all(format!("BREACH {late_id}\n").as_bytes()).await.unwrap();
    stdin.flush().await.unwrap();
    expect_line(&mut lines, &format!("SEEN {late_id}")).await;
    expect_line(&mut lines, "DONE").await;
    assert!(driver.wait().await.unwrap().success(), "the browser flow failed (screenshots in {shots})");
    assert_eq!(app.find_one("petitions", doc! { "_id": &for_review }).await.unwrap().get_str("status").unwrap(), "approved");
    // The map colours the late petition's grid, though a street holds it now.
    let reviewer = token(&addr, "district-review").await;
    let (_, map) = api(&addr, "GET", "/api/map", Some(&reviewer), None).await;
    let open: Vec<(&str, u64)> = map["grids"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["open"] != 0)
        .map(|g| (g["grid"].as_str().unwrap(), g["open"].as_u64().unwrap()))
        .collect();
    assert_eq!(open, [("shinan.badaxia.badaxia.g006", 1)]);
    app.cleanup().await;
}
