//! The `deliver` role against local stand-ins of WeChat's API, the 12345
//! callback and the App webhook that follow their documented behaviour
//! (`nuannan_workers::standin`): every message once, in order per petition;
//! one token refresh for all senders; undeliverable and failed messages
//! recorded with their reason; a broken remote holding up only its channel.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use mongodb::bson::{Document, doc};
use nuannan::config::Settings;
use nuannan::domain::{Channel, Outbound, OutboundKind, PetitionId, Recipient};
use nuannan::store::OutboxMessage;
use nuannan_workers::Role;
use nuannan_workers::standin::{APP_PATH, Credentials, Fault, HOTLINE_PATH, Received, StandIn};
use serde_json::Value;

use crate::common::{TestApp, settings_env, test_settings, wait_for, wait_up_to};

const KINDS: [OutboundKind; 4] = [OutboundKind::Receipt, OutboundKind::Progress, OutboundKind::Result, OutboundKind::RatingRequest];

fn credentials() -> Credentials {
    Credentials {
        app_id: "wx-deliver-test".into(),
        app_secret: "app-secret".into(),
        hotline_secret: "hotline-secret".into(),
        webhook_secret: "webhook-secret".into(),
    }
}

/// Settings whose three channels point at the stand-in, with a short retry schedule.
pub async fn delivering_to(standin: &StandIn) -> Settings {
    let c = credentials();
    let base = standin.base_url();
    let mut s = test_settings().await;
    s.wechat.api_base = base.clone();
    s.wechat.app_id = c.app_id;
    s.wechat.app_secret = c.app_secret;
    s.hotline.secret = c.hotline_secret;
    s.hotline.callback_url = format!("{base}{HOTLINE_PATH}");
    s.app.webhook_url = format!("{base}{APP_PATH}");
    s.app.webhook_secret = c.webhook_secret;
    s.deliver.retry_ms = vec![50, 100, 200];
    s.deliver.timeout_ms = 2000;
    s.deliver.rate_limit_per_s = 0;
    s.deliver.concurrency = 4;
    s
}

async fn standin() -> StandIn {
    StandIn::start("127.0.0.1:0", credentials()).await.expect("starting the stand-in")
}

fn petition(n: u32) -> PetitionId {
    PetitionId::new(NaiveDate::from_ymd_opt(2026, 11, 28).unwrap(), n)
}

fn message(channel: Channel, petition: &PetitionId, kind: OutboundKind, recipient: &str) -> Outbound {
    let order_no = (channel == Channel::Hotline).then(|| format!("QD{petition}"));
    Outbound {
        petition_id: petition.clone(),
        channel,
        recipient: Recipient { id: recipient.to_owned(), order_no },
        kind,
        text: format!("{petition} {}", kind.as_str()),
        at: Utc::now(),
    }
}

/// Publishes as the notify role does: on `{ns}.outbound`, message id `<petition>/<kind>/1`.
async fn send(app: &TestApp, messages: &[Outbound]) -> Vec<String> {
    let mut ids = Vec::new();
    for m in messages {
        let out = OutboxMessage::outbound(m.clone(), 1);
        app.publisher.publish(&out.to_outgoing()).await.expect("outbound publish confirmed");
        ids.push(out.id().to_owned());
    }
    ids
}

async fn deliveries(app: &TestApp, filter: Document) -> Vec<Document> {
    use futures::TryStreamExt;
    app.collection("deliveries").find(filter).await.unwrap().try_collect().await.unwrap()
}

/// Waits until every listed message's record is final.
async fn settled(app: &TestApp, ids: &[String]) -> HashMap<String, Document> {
    let filter = doc! { "_id": { "$in": ids }, "status": { "$ne": "retrying" } };
    wait_up_to("every message settled", Duration::from_secs(60), || async {
        let found = deliveries(app, filter.clone()).await;
        (found.len() == ids.len()).then(|| found.into_iter().map(|d| (d.get_str("_id").unwrap().to_owned(), d)).collect())
    })
    .await
}

/// The `(petition, kind)` of what a remote accepted, in arrival order.
fn accepted(received: &[Received], remote: &str) -> Vec<(String, String)> {
    received
        .iter()
        .filter(|r| r.remote == remote)
        .map(|r| {
            let text = match remote {
                "wechat" => r.body["text"]["content"].as_str(),
                "wechat_template" => r.body["data"]["content"]["value"].as_str(),
                _ => r.body["text"].as_str(),
            };
            let (p, k) = text.unwrap().split_once(' ').unwrap();
            (p.to_owned(), k.to_owned())
        })
        .collect()
}

#[tokio::test]
async fn every_message_reaches_its_channel_once_and_in_order_per_petition() {
    let standin = standin().await;
    // 5xx bursts, a busy WeChat and slow answers, before the remotes behave.
    standin.inject("hotline", &[Fault::Status(503), Fault::Status(503), Fault::Status(500)]);
    standin.inject("app", &[Fault::Status(502), Fault::Status(429)]);
    standin.inject("wechat", &[Fault::Errcode(-1), Fault::Status(502)]);
    standin.slow("hotline", Duration::from_millis(30));
    let mut app = TestApp::with_settings(delivering_to(&standin).await).await;
    app.start_workers(&[Role::Deliver]);

    // Kind by kind, petitions interleaved, as a busy day writes them.
    let mut messages = Vec::new();
    for kind in KINDS {
        for n in 1..=3 {
            for (i, channel) in Channel::PUSHED.into_iter().enumerate() {
                let p = petition(100 * i as u32 + n);
                messages.push(message(channel, &p, kind, &format!("citizen-{p}")));
            }
        }
    }
    let ids = send(&app, &messages).await;
    let records = settled(&app, &ids).await;
    assert!(records.values().all(|d| d.get_str("status").unwrap() == "delivered"), "{records:?}");

    let received = standin.received();
    for remote in ["wechat", "hotline", "app"] {
        let got = accepted(&received, remote);
        assert_eq!(got.len(), 12, "{remote}: each message once: {got:?}");
        let mut by_petition: HashMap<&str, Vec<&str>> = HashMap::new();
        for (p, k) in &got {
            by_petition.entry(p).or_default().push(k);
        }
        for (p, kinds) in by_petition {
            assert_eq!(kinds, ["receipt", "progress", "result", "rating_request"], "{remote} {p}: in the order written");
        }
    }
    // Webhooks carry the message id, and the body the contract gives.
    let hotline: Vec<&Received> = received.iter().filter(|r| r.remote == "hotline").collect();
    let mut hotline_ids: Vec<&str> = hotline.iter().map(|r| r.message_id.as_deref().unwrap()).collect();
    hotline_ids.sort();
    hotline_ids.dedup();
    assert_eq!(hotline_ids.len(), 12);
    let callback = &hotline[0].body;
    let mut keys: Vec<&str> = callback.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["at", "kind", "order_no", "petition_id", "text"]);
    assert!(callback["order_no"].as_str().unwrap().starts_with("QD"));
    assert_eq!(standin.token_requests(), 1, "one token for every WeChat send");

    // The failed attempts are on record, with the remote's code: each injected fault cost one attempt.
    let attempts: usize = records.values().map(|d| d.get_array("attempts").unwrap().len()).sum();
    assert_eq!(attempts, 36 + 3 + 2 + 2, "one attempt per message and one per injected fault");
    let codes: Vec<String> = records
        .values()
        .flat_map(|d| d.get_array("attempts").unwrap().iter().filter_map(|a| a.as_document()?.get_str("code").ok().map(str::to_owned)))
        .collect();
    for code in ["503", "500", "502", "429", "-1"] {
        assert!(codes.iter().any(|c| c == code), "attempt with code {code} recorded: {codes:?}");
    }
    // Announced right after the final state is written: wait for it, and for no more than one per message.
    wait_for("one delivered event per message", || async { (app.count("events", doc! { "type": "delivered" }).await == 36).then_some(()) })
        .await;
    app.cleanup().await;
}

#[tokio::test]
async fn an_expired_token_is_fetched_again_once_for_all_senders() {
    let standin = standin().await;
    let mut app = TestApp::with_settings(delivering_to(&standin).await).await;
    app.start_workers(&[Role::Deliver]);
    let round = |from: u32| -> Vec<Outbound> {
        (from..from + 8).map(|n| message(Channel::Wechat, &petition(n), OutboundKind::Progress, &format!("openid-{n}"))).collect()
    };
    let first = send(&app, &round(1)).await;
    settled(&app, &first).await;
    assert_eq!(standin.token_requests(), 1);

    // The token dies while eight messages go out four at a time: each sender
    // sees 42001, and one of them fetches the next token.
    standin.expire_tokens();
    let second = send(&app, &round(101)).await;
    let records = settled(&app, &second).await;
    assert!(records.values().all(|d| d.get_str("status").unwrap() == "delivered"), "{records:?}");
    assert_eq!(standin.token_requests(), 2, "one refresh under concurrency");
    assert_eq!(accepted(&standin.received(), "wechat").len(), 16);
    let token = app.find_one("tokens", doc! { "_id": "wechat:wx-deliver-test" }).await.unwrap();
    assert_eq!(token.get_str("value").unwrap(), "ACCESS_TOKEN_2", "shared through the store");
    app.cleanup().await;
}

#[tokio::test]
async fn outside_the_window_a_message_takes_the_template_or_is_undeliverable_with_the_reason() {
    let standin = standin().await;
    standin.close_window("away");
    let mut settings = delivering_to(&standin).await;
    settings.wechat.templates.result = "TEMPLATE-RESULT".into();
    let mut app = TestApp::with_settings(settings).await;
    app.start_workers(&[Role::Deliver]);

    let p = petition(7);
    let ids = send(
        &app,
        &[message(Channel::Wechat, &p, OutboundKind::Progress, "away"), message(Channel::Wechat, &p, OutboundKind::Result, "away")],
    )
    .await;
    let records = settled(&app, &ids).await;
    let progress = &records[&ids[0]];
    assert_eq!(progress.get_str("status").unwrap(), "undeliverable");
    assert!(progress.get_str("reason").unwrap().starts_with("outside_window"), "{progress}");
    assert_eq!(progress.get_array("attempts").unwrap().len(), 1, "never retried");
    assert_eq!(records[&ids[1]].get_str("status").unwrap(), "delivered", "the result's template went out");
    let templated = standin.received().into_iter().find(|r| r.remote == "wechat_template").unwrap();
    assert_eq!(templated.body["template_id"], "TEMPLATE-RESULT");
    assert_eq!(templated.body["touser"], "away");
    let event = doc! { "_id": format!("{}/delivery_failed", ids[0]) };
    let failed = wait_for("the delivery_failed event", || app.find_one("events", event.clone())).await;
    assert_eq!(failed.get_document("data").unwrap().get_str("status").unwrap(), "undeliverable");
    app.cleanup().await;
}

#[tokio::test]
async fn a_refusal_fails_at_once_and_a_broken_remote_holds_up_only_its_own_channel() {
    let standin = standin().await;
    standin.inject("hotline", &[Fault::Status(422)]);
    // The App backend is down: slow 503s, more than the schedule allows.
    standin.inject("app", &[Fault::Status(503); 10]);
    standin.slow("app", Duration::from_millis(1000));
    let mut app = TestApp::with_settings(delivering_to(&standin).await).await;
    app.start_workers(&[Role::Deliver]);

    let ids = send(&app, &[message(Channel::App, &petition(1), OutboundKind::Result, "u1")]).await;
    let refused = send(&app, &[message(Channel::Hotline, &petition(2), OutboundKind::Result, "13800000000")]).await;
    // The App remote has failed once; three more slow failures (over 3 s) to go.
    let one_failure = doc! { "_id": &ids[0], "attempts.0": { "$exists": true } };
    wait_for("the App's first failed attempt", || app.find_one("deliveries", one_failure.clone())).await;
    let wechat = send(&app, &[message(Channel::Wechat, &petition(3), OutboundKind::Result, "openid-3")]).await;
    settled(&app, &wechat).await;
    let app_record = app.find_one("deliveries", doc! { "_id": &ids[0] }).await.unwrap();
    assert_eq!(app_record.get_str("status").unwrap(), "retrying", "WeChat went ahead while the App remote was failing");

    let records = settled(&app, &[ids.clone(), refused.clone()].concat()).await;
    let broken = &records[&ids[0]];
    assert_eq!(broken.get_str("status").unwrap(), "failed");
    assert_eq!(broken.get_str("reason").unwrap(), "retries exhausted: HTTP 503");
    assert_eq!(broken.get_array("attempts").unwrap().len(), 4, "the first attempt and one after each of three pauses");
    let refusal = &records[&refused[0]];
    assert_eq!((refusal.get_str("status").unwrap(), refusal.get_str("reason").unwrap()), ("failed", "HTTP 422"));
    assert_eq!(refusal.get_array("attempts").unwrap().len(), 1, "a 4xx is not retried");
    let metrics = nuannan::ops::render_metrics(true, true);
    assert!(metrics.lines().any(|l| l.starts_with("nuannan_delivery_outcomes_total{channel=\"app\",status=\"failed\"}")), "{metrics}");
    app.cleanup().await;
}

#[tokio::test]
async fn a_channel_without_settings_marks_its_messages_not_configured() {
    let mut app = TestApp::without_workers().await;
    app.start_workers(&[Role::Deliver]);
    let ids = send(
        &app,
        &[
            message(Channel::Wechat, &petition(9), OutboundKind::Receipt, "o1"),
            message(Channel::Hotline, &petition(10), OutboundKind::Receipt, "13800000000"),
        ],
    )
    .await;
    let records = settled(&app, &ids).await;
    for id in &ids {
        let d = &records[id];
        assert_eq!((d.get_str("status").unwrap(), d.get_str("reason").unwrap()), ("undeliverable", "not_configured"), "{d}");
    }
    wait_for("delivery_failed events", || async { (app.count("events", doc! { "type": "delivery_failed" }).await == 2).then_some(()) })
        .await;
    app.cleanup().await;
}

/// The App message as the webhook carried it, by message id.
fn webhook_items(received: &[Received]) -> HashMap<String, Value> {
    received.iter().filter(|r| r.remote == "app").map(|r| (r.message_id.clone().unwrap(), r.body.clone())).collect()
}

#[tokio::test]
async fn the_app_webhook_and_feed_carry_the_same_cursor() {
    let standin = standin().await;
    let mut app = TestApp::with_settings(delivering_to(&standin).await).await;
    app.start_workers(&[Role::Deliver]);
    let ids =
        send(&app, &(1..=5).map(|n| message(Channel::App, &petition(n), OutboundKind::Receipt, &format!("u{n}"))).collect::<Vec<_>>())
            .await;
    settled(&app, &ids).await;
    let feed = app.store.notifications_after(0, 100).await.unwrap();
    let hooks = webhook_items(&standin.received());
    assert_eq!(feed.len(), 5);
    for item in &feed {
        let hook = &hooks[&item.message_id];
        assert_eq!(hook["cursor"], item.cursor);
        assert_eq!(hook["user_id"], item.user_id.as_str());
    }
    let cursors: Vec<i64> = feed.iter().map(|i| i.cursor).collect();
    assert!(cursors.windows(2).all(|w| w[0] < w[1]), "{cursors:?}");
    app.cleanup().await;
}

#[tokio::test]
async fn kill_9_of_the_deliver_role_loses_nothing_and_repeats_only_what_was_in_flight() {
    const PETITIONS: u32 = 10;
    let standin = standin().await;
    for remote in ["wechat", "hotline", "app"] {
        standin.slow(remote, Duration::from_millis(50));
    }
    let settings = delivering_to(&standin).await;
    let app = TestApp::with_settings(settings.clone()).await;
    let spawn_worker = || {
        let retry: Vec<String> = settings.deliver.retry_ms.iter().map(u64::to_string).collect();
        tokio::process::Command::new(env!("CARGO_BIN_EXE_nuannan"))
            .args(["worker", "deliver"])
            .envs(settings_env(&settings))
            .env("NUANNAN__WECHAT__API_BASE", &settings.wechat.api_base)
            .env("NUANNAN__WECHAT__APP_ID", &settings.wechat.app_id)
            .env("NUANNAN__WECHAT__APP_SECRET", &settings.wechat.app_secret)
            .env("NUANNAN__HOTLINE__SECRET", &settings.hotline.secret)
            .env("NUANNAN__HOTLINE__CALLBACK_URL", &settings.hotline.callback_url)
            .env("NUANNAN__APP__WEBHOOK_URL", &settings.app.webhook_url)
            .env("NUANNAN__APP__WEBHOOK_SECRET", &settings.app.webhook_secret)
            .env("NUANNAN__DELIVER__RETRY_MS", retry.join(","))
            .env("NUANNAN__DELIVER__CONCURRENCY", settings.deliver.concurrency.to_string())
            .env("NUANNAN__DELIVER__RATE_LIMIT_PER_S", "0")
            .env("RUST_LOG", "error")
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("starting nuannan worker deliver")
    };
    let mut messages = Vec::new();
    for kind in KINDS {
        for n in 1..=PETITIONS {
            for (i, channel) in Channel::PUSHED.into_iter().enumerate() {
                messages.push(message(channel, &petition(100 * i as u32 + n), kind, &format!("citizen-{i}-{n}")));
            }
        }
    }
    let ids = send(&app, &messages).await;
    let total = ids.len();

    let mut first = spawn_worker();
    standin.wait_until(Duration::from_secs(30), |r| r.len() >= total / 4).await;
    first.start_kill().unwrap(); // SIGKILL
    first.wait().await.unwrap();
    let at_kill = standin.received().len();
    let mut second = spawn_worker();
    let records = settled(&app, &ids).await;
    second.start_kill().unwrap();
    second.wait().await.unwrap();

    eprintln!("kill -9 after {at_kill} of {total} accepted");
    assert!(at_kill < total, "the kill landed mid-stream");
    assert!(records.values().all(|d| d.get_str("status").unwrap() == "delivered"), "nothing lost: {records:?}");
    let received = standin.received();
    for remote in ["wechat", "hotline", "app"] {
        let got = accepted(&received, remote);
        let mut first_seen: Vec<&(String, String)> = Vec::new();
        for m in &got {
            if !first_seen.contains(&m) {
                first_seen.push(m);
            }
        }
        assert_eq!(first_seen.len(), 4 * PETITIONS as usize, "{remote}: every message arrived");
        // Only what was in flight at the kill (at most `concurrency` requests) can come again.
        let repeats = got.len() - first_seen.len();
        assert!(repeats <= usize::from(settings.deliver.concurrency), "{remote}: {repeats} repeats");
        for p in first_seen.iter().map(|(p, _)| p) {
            let kinds: Vec<&str> = first_seen.iter().filter(|(q, _)| q == p).map(|(_, k)| k.as_str()).collect();
            assert_eq!(kinds, ["receipt", "progress", "result", "rating_request"], "{remote} {p}: in order across the restart");
        }
    }
    // A repeated webhook carries the message id the receiver dedupes on.
    assert!(
        received.iter().filter(|r| r.remote != "wechat").all(|r| r.message_id.as_deref().is_some_and(|id| ids.iter().any(|i| i == id)))
    );
    app.cleanup().await;
}

#[tokio::test]
async fn the_app_backend_polls_the_feed_page_by_page_and_sees_each_message_once() {
    use nuannan::gateway::client::request;
    const KEY: &str = "feed-key";
    let mut settings = test_settings().await;
    settings.gateway.http_addr = crate::ops::free_addr();
    settings.gateway.rate_limit_per_s = 0;
    let mut app = TestApp::with_settings(settings).await;
    let adapter = format!(
        "user = \"app-adapter\"\nkind = \"adapter\"\nchannel = \"app\"\napi_key_sha256 = \"{}\"",
        nuannan::identity::api_key_digest(KEY)
    );
    app.store.replace_principals(&nuannan::identity::Principals::from_list([crate::common::commands::principal(&adapter)])).await.unwrap();
    app.start_workers(&[Role::Deliver, Role::Gateway]);
    let addr = app.settings.gateway.http_addr.clone();
    let auth = [("authorization", format!("Bearer {KEY}"))];
    let get = |after: &str| {
        let (addr, auth) = (addr.clone(), auth.clone());
        let path = format!("/app/notifications?after={after}");
        async move {
            let (status, body) = request(&addr, "GET", &path, &auth, b"").await?;
            Some((status, serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null)))
        }
    };
    wait_for("the gateway", || async { get("0").await.filter(|(s, _)| *s == 200) }).await;

    // With no webhook set, a message is delivered once it is in the feed.
    let messages: Vec<Outbound> = (1..=150).map(|n| message(Channel::App, &petition(n), OutboundKind::Receipt, &format!("u{n}"))).collect();
    let ids = send(&app, &messages).await;
    let records = settled(&app, &ids).await;
    assert!(records.values().all(|d| d.get_str("status").unwrap() == "delivered"));

    let mut seen = Vec::new();
    let mut after = "0".to_owned();
    loop {
        let (status, page) = get(&after).await.unwrap();
        assert_eq!(status, 200, "{page}");
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 100);
        if items.is_empty() {
            assert_eq!(page["next"].to_string(), after, "an empty page keeps the cursor");
            break;
        }
        seen.extend(items.iter().map(|i| i["message_id"].as_str().unwrap().to_owned()));
        after = page["next"].to_string();
    }
    let mut expected = ids.clone();
    expected.sort();
    let mut got = seen.clone();
    got.sort();
    got.dedup();
    assert_eq!((seen.len(), got), (150, expected), "each message once");

    assert_eq!(request(&addr, "GET", "/app/notifications?after=0", &[], b"").await.unwrap().0, 401);
    assert_eq!(get("-1").await.unwrap().0, 400);
    assert_eq!(get("x").await.unwrap().0, 400);
    app.cleanup().await;
}

#[tokio::test]
async fn an_answer_slower_than_the_timeout_is_retried_with_the_same_message_id() {
    let standin = standin().await;
    // The 12345 platform takes the callback, then answers too late.
    standin.inject("hotline", &[Fault::Slow(Duration::from_millis(2000))]);
    let mut settings = delivering_to(&standin).await;
    settings.deliver.timeout_ms = 500;
    let mut app = TestApp::with_settings(settings).await;
    app.start_workers(&[Role::Deliver]);
    let ids = send(&app, &[message(Channel::Hotline, &petition(5), OutboundKind::Result, "13800000000")]).await;
    let record = &settled(&app, &ids).await[&ids[0]];
    assert_eq!(record.get_str("status").unwrap(), "delivered");
    let attempts = record.get_array("attempts").unwrap();
    assert_eq!(attempts.len(), 2, "{record}");
    assert!(attempts[0].as_document().unwrap().get("code").is_some_and(|c| c.as_null().is_some()), "no answer in time: {record}");
    // The platform saw it twice, both times with the id it dedupes on.
    let seen: Vec<Option<String>> = standin.received().into_iter().filter(|r| r.remote == "hotline").map(|r| r.message_id).collect();
    assert_eq!(seen, [Some(ids[0].clone()), Some(ids[0].clone())]);
    app.cleanup().await;
}
