//! Open311 GeoReport v2 on the gateway (`docs/contract.md` §14), driven by
//! real clients nobody here wrote: `georeport` (PyPI) reads services and
//! requests in JSON and XML, and requests are posted form-encoded exactly as
//! `three` posts them (`tests/peers/open311_client.py`). Every JSON answer
//! is checked against `schemas/open311/`.

use mongodb::bson::doc;
use nuannan::bus::Exchange;
use nuannan::gateway::client::request;
use nuannan::identity::api_key_digest;
use nuannan_workers::Role;
use serde_json::{Value, json};

use crate::common::commands::{Commander, handler, principal, reviewer};
use crate::common::{ROOT, TestApp, test_settings, wait_for};
use crate::ops::free_addr;

const API_KEY: &str = "open311-key-for-tests";

async fn gateway() -> (TestApp, String) {
    let mut settings = test_settings().await;
    settings.gateway.http_addr = free_addr();
    settings.gateway.rate_limit_per_s = 0;
    let mut app = TestApp::with_settings(settings).await;
    let adapter =
        format!("user = \"open311-client\"\nkind = \"adapter\"\nchannel = \"open311\"\napi_key_sha256 = \"{}\"", api_key_digest(API_KEY));
    app.store.replace_principals(&nuannan::identity::Principals::from_list([principal(&adapter)])).await.unwrap();
    app.start_workers(&[Role::Normalize, Role::Route, Role::Lifecycle, Role::Notify, Role::Gateway]);
    let addr = app.settings.gateway.http_addr.clone();
    wait_for("the gateway and its broker session", || async {
        (request(&addr, "GET", "/healthz", &[], b"").await?.0 == 200).then_some(())
    })
    .await;
    let base = format!("http://{addr}/open311/v2/");
    (app, base)
}

/// `tests/peers/open311_client.py BASE ARGS…`: its one line of JSON. Run
/// without blocking: the gateway answering it shares this runtime.
async fn client(base: &str, args: &[&str]) -> Value {
    let python = format!("{ROOT}/.venv/bin/python");
    let out = tokio::process::Command::new(&python)
        .arg(format!("{ROOT}/tests/peers/open311_client.py"))
        .arg(base)
        .args(args)
        .output()
        .await
        .unwrap_or_else(|e| panic!("{python} (./scripts/test installs georeport into .venv): {e}"));
    assert!(out.status.success(), "open311_client {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("open311_client printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

#[tokio::test]
async fn a_geo_report_client_files_a_petition_and_follows_it_to_closed() {
    let (app, base) = gateway().await;
    let outbound = app.tap(Exchange::Outbound).await;
    // 120.30,36.06 lies in 八大峡 (synthetic geometry).
    let posted = client(&base, &["post", API_KEY, "livelihood", "36.06", "120.30", "八大峡路灯不亮，电话13812345678", "a@b.c"]).await;
    let id = posted["service_request_id"].as_str().unwrap().to_owned();
    let token = posted["token"].as_str().unwrap();

    let p =
        wait_for("the petition routed", || app.find_one("petitions", doc! { "_id": &id, "status": "assigned", "outbox": { "$size": 0 } }))
            .await;
    let source = p.get_document("source").unwrap();
    assert_eq!((source.get_str("channel").unwrap(), source.get_str("message_id").unwrap()), ("open311", token), "dedup on the token");
    assert_eq!(p.get_document("citizen").unwrap().get_str("id").unwrap(), "a@b.c", "email stands for the citizen without an account_id");
    let unit = p.get_str("unit").unwrap().to_owned();

    let open = client(&base, &["check", &id, "open"]).await;
    assert_eq!(open["service_code"], "livelihood");
    assert_eq!(open["status_notes"], "已派至承办单位");
    assert!(open["agency_responsible"].as_str().unwrap().ends_with("社区"), "the unit's Chinese name: {open}");
    assert!(open["expected_datetime"].as_str().unwrap().ends_with("+08:00"), "resolve_by in Beijing time: {open}");
    assert_eq!(open["description"], "八大峡路灯不亮，电话138****5678", "the public API masks phone numbers");
    assert_eq!((open["lat"].as_f64(), open["long"].as_f64()), (Some(36.06), Some(120.30)));

    let c = Commander::open(&app).await;
    for (command, actor, data, status) in [
        ("accept", handler(&unit), json!({}), "accepted"),
        ("resolve", handler(&unit), json!({ "result": "已更换灯泡" }), "resolved"),
        ("approve", reviewer(), json!({}), "approved"),
    ] {
        assert_eq!(c.send(command, &format!("o311-{command}"), &id, actor, data).await, json!({ "ok": true, "status": status }));
        if command == "accept" {
            let accepted = client(&base, &["check", &id, "open"]).await;
            assert_eq!(accepted["status_notes"], "承办单位已接单，正在办理");
        }
    }
    wait_for("the feedback step done", || app.find_one("petitions", doc! { "_id": &id, "feedback_sent_at": { "$exists": true } })).await;
    let closed = client(&base, &["check", &id, "closed"]).await;
    assert_eq!(closed["status_notes"], "办理结果：已更换灯泡", "after approval the note is the approved result");

    // Answers are read through the API: nothing is pushed to an Open311 citizen.
    assert!(outbound.messages().await.iter().all(|m| m.body["petition_id"] != id.as_str()), "no outbound message");
    app.cleanup().await;
}

#[tokio::test]
async fn bad_requests_get_geo_report_errors_and_bodies_are_recorded() {
    let (app, base) = gateway().await;
    let intake = app.tap(Exchange::Intake).await;
    assert_eq!(client(&base, &["errors", API_KEY]).await, json!({ "ok": true }));
    // The client's two refused bodies with a valid key (no location, unknown
    // service) are recorded; the bad api_key is logged only.
    wait_for("two rejections", || async { (app.count("rejections", doc! { "channel": "open311" }).await == 2).then_some(()) }).await;
    let reasons: Vec<String> = {
        use futures::TryStreamExt;
        let found: Vec<mongodb::bson::Document> = app.collection("rejections").find(doc! {}).await.unwrap().try_collect().await.unwrap();
        found.iter().map(|r| r.get_str("reason").unwrap().to_owned()).collect()
    };
    assert_eq!(reasons, ["invalid", "invalid"]);

    let addr = base.trim_start_matches("http://").split('/').next().unwrap().to_owned();
    let form = [("content-type", "application/x-www-form-urlencoded".to_owned())];
    let post = |body: String| {
        let addr = addr.clone();
        let form = form.clone();
        async move { request(&addr, "POST", "/open311/v2/requests.xml", &form, body.as_bytes()).await.unwrap() }
    };
    // Another jurisdiction: 404, in XML as asked.
    let (status, body) =
        post(format!("api_key={API_KEY}&jurisdiction_id=nyc.gov&service_code=livelihood&lat=36.06&long=120.3&description=x")).await;
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("<errors><error><code>404</code>"), "{}", String::from_utf8_lossy(&body));
    // api_key in the query string, as the `open311` client sends it.
    let (status, body) = request(
        &addr,
        "POST",
        &format!("/open311/v2/requests.json?api_key={API_KEY}&jurisdiction_id=qdsn.gov.cn"),
        &form,
        "service_code=enforcement&address_string=%E5%9B%A2%E5%B2%9B%E4%BA%8C%E8%B7%AF&description=%E5%8D%A0%E9%81%93%E7%BB%8F%E8%90%A5"
            .as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let token = serde_json::from_slice::<Value>(&body).unwrap()[0]["token"].as_str().unwrap().to_owned();
    let p = app.wait_for_petition("open311", &token).await;
    assert_eq!(p.get_str("category").unwrap(), "enforcement");
    assert_eq!(p.get_document("location").unwrap().get_str("address").unwrap(), "团岛二路");
    assert_eq!(p.get_document("citizen").unwrap().get_str("id").unwrap(), token, "anonymous: the token stands for the citizen");

    // Only the accepted request reached the broker.
    let published: Vec<_> = intake.messages().await.into_iter().filter_map(|m| m.message_id).collect();
    assert_eq!(published, [token]);
    app.cleanup().await;
}
