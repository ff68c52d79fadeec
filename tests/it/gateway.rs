//! The HTTP edge against the real broker and store (`docs/contract.md`
//! §12): WeChat pushes sealed by wechatpy (a peer nobody here wrote),
//! signed 12345 orders, App petitions with an adapter key, and bad input
//! that never reaches the broker.

use mongodb::bson::doc;
use nuannan::bus::Exchange;
use nuannan::gateway::signed;
use nuannan::identity::api_key_digest;
use nuannan_workers::Role;
use serde_json::{Value, json};

use crate::common::{ROOT, TestApp, hotline_order, test_settings, wait_for, wechat_text};
use crate::ops::free_addr;
use nuannan::gateway::client::request;

const TOKEN: &str = "nuannan-token";
/// Tencent's sample key: non-canonical base64, as most real keys are.
const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const APP_ID: &str = "wx2c2769f8efd9abc2";
const ACCOUNT: &str = "gh_test";
const SECRET: &str = "hotline-secret";
const APP_KEY: &str = "app-key-for-tests";

async fn gateway(safe: bool, rate: u32) -> TestApp {
    let mut settings = test_settings().await;
    settings.gateway.http_addr = free_addr();
    settings.gateway.rate_limit_per_s = rate;
    settings.wechat.token = TOKEN.into();
    settings.wechat.app_id = APP_ID.into();
    settings.wechat.account = ACCOUNT.into();
    if safe {
        settings.wechat.encoding_aes_key = AES_KEY.into();
    }
    settings.hotline.secret = SECRET.into();
    let mut app = TestApp::with_settings(settings).await;
    let adapter =
        format!("user = \"app-adapter\"\nkind = \"adapter\"\nchannel = \"app\"\napi_key_sha256 = \"{}\"", api_key_digest(APP_KEY));
    app.store.replace_principals(&nuannan::identity::Principals::from_list([crate::common::commands::principal(&adapter)])).await.unwrap();
    app.start_workers(&[Role::Normalize, Role::Route, Role::Gateway]);
    let addr = app.settings.gateway.http_addr.clone();
    wait_for("the gateway and its broker session", || async {
        (request(&addr, "GET", "/healthz", &[], b"").await?.0 == 200).then_some(())
    })
    .await;
    app
}

async fn signed_order(addr: &str, body: &[u8], ts: i64) -> Option<(u16, Value)> {
    let sig = signed::sign(SECRET, ts, body);
    let headers = [("x-nuannan-timestamp", ts.to_string()), ("x-nuannan-signature", sig), ("content-type", "application/json".into())];
    let (status, body) = request(addr, "POST", "/hotline/orders", &headers, body).await?;
    Some((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

/// `tests/peers/wechat_seal.py`: wechatpy seals `plain` as the WeChat server does.
fn sealed(plain: &str, to_user: &str, ts: i64) -> (String, String) {
    use std::io::Write;
    let python = format!("{ROOT}/.venv/bin/python");
    let mut child = std::process::Command::new(&python)
        .args([&format!("{ROOT}/tests/peers/wechat_seal.py"), TOKEN, AES_KEY, APP_ID, to_user, &ts.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{python} (./scripts/test installs wechatpy into .venv): {e}"));
    child.stdin.take().unwrap().write_all(plain.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "wechatpy failed");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    (v["query"].as_str().unwrap().to_owned(), v["body"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn wechat_pushes_sealed_by_wechatpy_become_petitions_and_forgeries_are_refused() {
    let app = gateway(true, 0).await;
    let addr = app.settings.gateway.http_addr.clone();
    let intake = app.tap(Exchange::Intake).await;
    let now = chrono::Utc::now().timestamp();

    // URL verification: the signed echo.
    let sig = nuannan::gateway::wechat::signature(&[TOKEN, &now.to_string(), "42"]);
    let (status, body) =
        request(&addr, "GET", &format!("/wechat/callback?signature={sig}&timestamp={now}&nonce=42&echostr=hello"), &[], b"").await.unwrap();
    assert_eq!((status, body.as_slice()), (200, &b"hello"[..]));

    let plain = wechat_text("o-gateway", "7100000001", "团岛二路路灯不亮，团岛", now);
    let (query, body) = sealed(&plain, ACCOUNT, now);
    let path = format!("/wechat/callback?{query}");
    let (status, answer) = request(&addr, "POST", &path, &[("content-type", "text/xml".into())], body.as_bytes()).await.unwrap();
    assert_eq!((status, answer.as_slice()), (200, &b"success"[..]));
    let published = intake.wait_for("the push on intake", |m| m.message_id.as_deref() == Some("7100000001")).await;
    assert_eq!(published.raw, plain.as_bytes(), "the decrypted XML is what is published");
    assert_eq!(published.routing_key, "wechat");
    app.wait_for_petition("wechat", "7100000001").await;
    // WeChat's retry of the same push: answered again, stored once.
    let (status, _) = request(&addr, "POST", &path, &[], body.as_bytes()).await.unwrap();
    assert_eq!(status, 200);

    // Forgeries and downgrades: 403, nothing published.
    let (other_query, other_body) = sealed(&wechat_text("o-gateway", "7100000002", "x", now), "gh_other", now);
    let (stale_query, stale_body) = sealed(&wechat_text("o-gateway", "7100000004", "x", now), ACCOUNT, now - 301);
    let plaintext = wechat_text("o-gateway", "7100000003", "降级", now);
    let plain_query = format!("signature={sig}&timestamp={now}&nonce=42");
    let tampered = query.replace("msg_signature=", "msg_signature=0");
    for (what, path, body) in [
        ("another account", format!("/wechat/callback?{other_query}"), other_body),
        ("a plaintext push in safe mode", format!("/wechat/callback?{plain_query}"), plaintext),
        ("a bad msg_signature", format!("/wechat/callback?{tampered}"), body.clone()),
        ("a stale timestamp", format!("/wechat/callback?{stale_query}"), stale_body),
    ] {
        let (status, answer) = request(&addr, "POST", &path, &[], body.as_bytes()).await.unwrap();
        assert_eq!(status, 403, "{what}: {}", String::from_utf8_lossy(&answer));
    }
    assert_eq!(app.count("rejections", doc! {}).await, 0, "authentication failures are not rejections");
    let ids: std::collections::BTreeSet<_> = intake.messages().await.into_iter().filter_map(|m| m.message_id).collect();
    assert_eq!(ids, ["7100000001".to_owned()].into(), "only the genuine push (and its retry) was published");
    assert_eq!(app.count("petitions", doc! { "source.message_id": "7100000001" }).await, 1);
    app.cleanup().await;
}

#[tokio::test]
async fn bad_input_never_reaches_the_broker_and_is_recorded_with_its_reason() {
    let app = gateway(false, 0).await;
    let addr = app.settings.gateway.http_addr.clone();
    let intake = app.tap(Exchange::Intake).await;
    let now = chrono::Utc::now().timestamp();
    let big = vec![b'x'; 300 * 1024];
    for (what, body, status, code) in [
        ("malformed JSON", b"{not json".to_vec(), 400, "malformed"),
        ("not UTF-8", b"\xff\xfe{}".to_vec(), 400, "not_utf8"),
        ("a schema break", br#"{"order_no":"QD-x"}"#.to_vec(), 422, "invalid"),
        ("an oversized body", big, 413, "too_large"),
    ] {
        let (got, answer) = signed_order(&addr, &body, now).await.unwrap();
        assert_eq!((got, answer["error"].as_str()), (status, Some(code)), "{what}: {answer}");
        app.wait_for_rejection(doc! { "channel": "hotline", "reason": code }).await;
    }
    // Authentication failures: 401, not recorded as rejections.
    let order = hotline_order("QD-gw-1", "楼道灯坏了");
    let stale = signed_order(&addr, order.as_bytes(), now - 301).await.unwrap();
    assert_eq!((stale.0, stale.1["error"].as_str()), (401, Some("unauthenticated")));
    let (unsigned, _) = request(&addr, "POST", "/hotline/orders", &[], order.as_bytes()).await.unwrap();
    assert_eq!(unsigned, 401);
    let (no_key, _) = request(&addr, "POST", "/app/petitions", &[], crate::common::app_petition("r-1", "x").as_bytes()).await.unwrap();
    assert_eq!(no_key, 401);
    let wrong_key = [("authorization", "Bearer nope".to_owned())];
    let (bad_key, _) =
        request(&addr, "POST", "/app/petitions", &wrong_key, crate::common::app_petition("r-1", "x").as_bytes()).await.unwrap();
    assert_eq!(bad_key, 401);
    // A WeChat body that is not XML: 400, recorded.
    let sig = nuannan::gateway::wechat::signature(&[TOKEN, &now.to_string(), "1"]);
    let (status, _) =
        request(&addr, "POST", &format!("/wechat/callback?signature={sig}&timestamp={now}&nonce=1"), &[], b"<xml><oops").await.unwrap();
    assert_eq!(status, 400);
    app.wait_for_rejection(doc! { "channel": "wechat", "reason": "malformed" }).await;
    assert_eq!(app.count("rejections", doc! {}).await, 5);

    // The one good order goes through: 202 after the confirm, and it is the only message published.
    let (status, answer) = signed_order(&addr, order.as_bytes(), now).await.unwrap();
    assert_eq!((status, answer), (202, json!({ "message_id": "QD-gw-1" })));
    intake.wait_for("the good order", |m| m.message_id.as_deref() == Some("QD-gw-1")).await;
    assert_eq!(intake.messages().await.len(), 1);
    app.cleanup().await;
}

#[tokio::test]
async fn the_app_backend_files_with_its_key_and_its_citizen_sees_only_their_own_petition() {
    let app = gateway(false, 0).await;
    let addr = app.settings.gateway.http_addr.clone();
    let key = [("authorization", format!("Bearer {APP_KEY}")), ("content-type", "application/json".into())];
    let body = json!({
        "request_id": "app-gw-1", "submitted_at": chrono::Utc::now().to_rfc3339(),
        "user": { "id": "u-gw" }, "content": "楼道灯坏了", "category": "livelihood", "address": "团岛",
    })
    .to_string();
    let (status, answer) = request(&addr, "POST", "/app/petitions", &key, body.as_bytes()).await.unwrap();
    assert_eq!((status, serde_json::from_slice::<Value>(&answer).unwrap()), (202, json!({ "message_id": "app-gw-1" })));
    let p = wait_for("routed", || app.find_one("petitions", doc! { "source.message_id": "app-gw-1", "status": "assigned" })).await;
    let id = p.get_str("_id").unwrap();
    // The assignment's event is appended after the petition's update (its
    // outbox, docs/contract.md §6), so the timeline may trail the status.
    let (status, view) = wait_for("the timeline to show the assignment", || async {
        let (status, view) = request(&addr, "GET", &format!("/app/petitions/{id}?user_id=u-gw"), &key, b"").await?;
        let view: Value = serde_json::from_slice(&view).ok()?;
        let assigned = view["timeline"].as_array()?.iter().any(|e| e["type"] == "assigned");
        (status != 200 || assigned).then_some((status, view))
    })
    .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(
        (view["petition_id"].as_str(), view["status"].as_str(), view["unit_name"].as_str()),
        (Some(id), Some("assigned"), Some("团岛社区"))
    );
    let types: Vec<&str> = view["timeline"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["received", "assigned"]);
    let (other, _) = request(&addr, "GET", &format!("/app/petitions/{id}?user_id=u-other"), &key, b"").await.unwrap();
    assert_eq!(other, 404, "another citizen's petition");
    let (no_key, _) = request(&addr, "GET", &format!("/app/petitions/{id}?user_id=u-gw"), &[], b"").await.unwrap();
    assert_eq!(no_key, 401);
    app.cleanup().await;
}

#[tokio::test]
async fn a_sender_over_its_rate_gets_429_with_retry_after() {
    let app = gateway(false, 2).await;
    let addr = app.settings.gateway.http_addr.clone();
    // Served once its bucket refills (readiness polling spent it) …
    wait_for("a request within the rate", || async { (request(&addr, "GET", "/openapi.json", &[], b"").await?.0 == 200).then_some(()) })
        .await;
    // … and refused in a burst over 2 per second.
    let mut statuses = vec![200];
    for _ in 0..6 {
        let (status, headers) = nuannan::gateway::client::request_headers(&addr, "GET", "/openapi.json").await.unwrap();
        statuses.push(status);
        if status == 429 {
            assert!(headers.to_ascii_lowercase().contains("retry-after: 1"), "{headers}");
        }
    }
    assert!(statuses.contains(&200) && statuses.contains(&429), "{statuses:?}");
    app.cleanup().await;
}
