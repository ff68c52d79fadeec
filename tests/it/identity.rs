//! Who may do what is decided by the broker's authenticated identity, not
//! by the message body (`docs/contract.md` §13) — with real RabbitMQ users
//! made by `nuannan principals apply` and removed afterwards.

use std::time::Duration;

use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection};
use mongodb::bson::doc;
use nuannan_workers::Role;
use serde_json::{Value, json};

use crate::common::commands::{Commander, body, citizen, handler, reviewer};
use crate::common::users::BrokerUsers;
use crate::common::{TestApp, wait_for, wait_up_to, wechat_text};

const TUANDAO: &str = "shinan.badaxia.tuandao";
const XIZHEN: &str = "shinan.badaxia.xizhen";

/// The test's broker users, `{ns}-<name>` so parallel tests never share one.
struct Users {
    pipeline: String,
    tuandao: String,
    xizhen: String,
    hotline: String,
    wechat: String,
    broker: BrokerUsers,
}

fn apply_users(app: &TestApp) -> Users {
    let ns = &app.settings.namespace;
    let [pipeline, tuandao, xizhen, hotline, wechat] = ["pipeline", "tuandao", "xizhen", "hotline", "wechat"].map(|r| format!("{ns}-{r}"));
    let file = format!(
        r#"
        [[principal]]
        user = "{pipeline}"
        kind = "pipeline"
        [[principal]]
        user = "{tuandao}"
        kind = "handler"
        unit = "{TUANDAO}"
        [[principal]]
        user = "{xizhen}"
        kind = "handler"
        unit = "{XIZHEN}"
        [[principal]]
        user = "{hotline}"
        kind = "adapter"
        channel = "hotline"
        [[principal]]
        user = "{wechat}"
        kind = "adapter"
        channel = "wechat"
        "#
    );
    let broker = BrokerUsers::apply(&app.settings, &[&pipeline, &tuandao, &xizhen, &hotline, &wechat], &file);
    Users { pipeline, tuandao, xizhen, hotline, wechat, broker }
}

fn ok(status: &str) -> Value {
    json!({ "ok": true, "status": status })
}

fn refused(code: &str) -> Value {
    json!({ "ok": false, "error": code })
}

/// Publishes on a fresh channel of `conn` and returns the broker's refusal.
async fn broker_refuses(conn: &Connection, exchange: &str, routing_key: &str, props: BasicProperties) -> String {
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    let outcome =
        async { ch.basic_publish(exchange.into(), routing_key.into(), BasicPublishOptions::default(), b"{}", props).await?.await }.await;
    match outcome {
        Err(e) => e.to_string(),
        // The refusal closes the channel; the confirm may come first.
        Ok(_) => {
            wait_for("the broker to close the channel", || async { (!ch.status().connected()).then(|| format!("{:?}", ch.status())) }).await
        }
    }
}

async fn version(app: &TestApp, id: &str) -> i64 {
    app.find_one("petitions", doc! { "_id": id }).await.unwrap().get_i64("version").unwrap()
}

#[tokio::test]
async fn commands_are_judged_by_the_broker_login_not_by_their_body() {
    let mut app = TestApp::without_workers().await;
    let users = apply_users(&app);
    assert!(users.broker.stdout.contains("\"created\""), "{}", users.broker.stdout);
    // The pipeline itself runs with its least-privilege user.
    app.start_workers_as(&users.broker.url(&app.settings, &users.pipeline), &[Role::Normalize, Role::Route, Role::Lifecycle, Role::Notify]);
    let ns = app.settings.namespace.clone();
    let commands = format!("{ns}.commands");

    let openid = "o-identity";
    app.publish_intake("wechat", wechat_text(openid, "8800001", "团岛二路路灯不亮，团岛", chrono::Utc::now().timestamp()), None).await;
    let p = wait_for("assigned", || {
        app.find_one("petitions", doc! { "source.message_id": "8800001", "status": "assigned", "outbox": { "$size": 0 } })
    })
    .await;
    let id = p.get_str("_id").unwrap().to_owned();
    assert!(p.get_str("unit").unwrap().starts_with(TUANDAO), "{p}");
    let before = version(&app, &id).await;

    let tuandao_conn = users.broker.connect(&app.settings, &users.tuandao).await;
    let xizhen_conn = users.broker.connect(&app.settings, &users.xizhen).await;
    let tuandao = Commander::on(&tuandao_conn, app.store.clone(), &ns).await;
    let xizhen = Commander::on(&xizhen_conn, app.store.clone(), &ns).await;

    // Another community's handler, whatever its body claims.
    let claim = body("x-1", &id, handler(TUANDAO), json!({}));
    assert_eq!(xizhen.send_as(Some(&users.xizhen), "petition.accept", claim).await, refused("wrong_unit"));
    // No user_id at all.
    let anonymous = body("t-0", &id, handler(TUANDAO), json!({}));
    assert_eq!(tuandao.send_as(None, "petition.accept", anonymous).await, refused("unauthenticated"));
    // A handler may not approve: the broker refuses the routing key …
    let refusal = broker_refuses(&tuandao_conn, &commands, "petition.approve", BasicProperties::default()).await;
    assert!(refusal.contains("ACCESS_REFUSED") || refusal.contains("403"), "{refusal}");
    // … and the pipeline refuses it from an impersonator acting for the handler.
    let harness = Commander::open(&app).await;
    let approve = body("t-approve", &id, reviewer(), json!({}));
    assert_eq!(harness.send_as(Some(&users.tuandao), "petition.approve", approve).await, refused("forbidden"));
    // A spoofed user_id: the broker refuses it, and the pipeline keeps running.
    let spoofed = BasicProperties::default().with_user_id(users.xizhen.as_str().into());
    let refusal = broker_refuses(&tuandao_conn, &commands, "petition.accept", spoofed).await;
    assert!(refusal.contains("PRECONDITION_FAILED") || refusal.contains("406"), "{refusal}");
    assert_eq!(version(&app, &id).await, before, "nothing changed");

    let tuandao = Commander::on(&tuandao_conn, app.store.clone(), &ns).await;
    let accept = body("t-1", &id, handler(TUANDAO), json!({}));
    assert_eq!(tuandao.send_as(Some(&users.tuandao), "petition.accept", accept).await, ok("accepted"));
    let resolve = body("t-2", &id, handler(TUANDAO), json!({ "result": "已更换灯泡" }));
    assert_eq!(tuandao.send_as(Some(&users.tuandao), "petition.resolve", resolve).await, ok("resolved"));
    assert_eq!(harness.send("approve", "r-1", &id, reviewer(), json!({})).await, ok("approved"));

    // Only the adapter of the petition's own channel rates it.
    let hotline_conn = users.broker.connect(&app.settings, &users.hotline).await;
    let wechat_conn = users.broker.connect(&app.settings, &users.wechat).await;
    let hotline = Commander::on(&hotline_conn, app.store.clone(), &ns).await;
    let wechat = Commander::on(&wechat_conn, app.store.clone(), &ns).await;
    let rate = || body("rate-1", &id, citizen(openid), json!({ "rating": "satisfied" }));
    assert_eq!(hotline.send_as(Some(&users.hotline), "petition.rate", rate()).await, refused("forbidden"));
    assert_eq!(wechat.send_as(Some(&users.wechat), "petition.rate", rate()).await, ok("closed"), "the same command id, judged afresh");

    // Every refusal is on record with its sender and reason.
    for (user, code) in [(&users.xizhen, "wrong_unit"), (&users.tuandao, "forbidden"), (&users.hotline, "forbidden")] {
        let record = app.find_one("commands", doc! { "petition_id": &id, "user_id": user.as_str() }).await;
        assert_eq!(record.map(|r| r.get_document("reply").unwrap().get_str("error").unwrap().to_owned()), Some(code.to_owned()), "{user}");
    }
    assert_eq!(app.count("commands", doc! { "petition_id": &id, "user_id": null, "reply.error": "unauthenticated" }).await, 1);
    let accepted = app.find_one("events", doc! { "petition_id": &id, "type": "accepted" }).await.unwrap();
    assert_eq!(accepted.get_document("actor").unwrap().get_str("user").unwrap(), users.tuandao, "the audit names the sender");
    for conn in [tuandao_conn, xizhen_conn, hotline_conn, wechat_conn] {
        let _ = conn.close(200, "bye".into()).await;
    }
    app.cleanup().await;
}

#[tokio::test]
async fn broker_permissions_keep_each_user_to_its_own_keys_and_queues() {
    let app = TestApp::without_workers().await;
    let users = apply_users(&app);
    let ns = app.settings.namespace.clone();
    let conn = users.broker.connect(&app.settings, &users.tuandao).await;
    let ch = conn.create_channel().await.unwrap();
    let own = format!("{ns}.client.{}.orders", users.tuandao);
    let exclusive = QueueDeclareOptions { exclusive: true, ..Default::default() };
    ch.queue_declare(own.as_str().into(), exclusive, FieldTable::default()).await.expect("its own queue");
    let dispatch = format!("{ns}.dispatch");
    let bind = |key: &'static str| {
        let (ch, own, dispatch) = (ch.clone(), own.clone(), dispatch.clone());
        async move {
            ch.queue_bind(own.as_str().into(), dispatch.as_str().into(), key.into(), QueueBindOptions::default(), FieldTable::default())
                .await
        }
    };
    bind("unit.shinan.badaxia.tuandao.#").await.expect("binds its own subtree");
    let err = bind("unit.shinan.badaxia.xizhen.#").await.unwrap_err().to_string();
    assert!(err.contains("ACCESS_REFUSED") || err.contains("403"), "another community's orders: {err}");
    for (what, key) in [("its street's", "unit.shinan.badaxia.#"), ("everything", "#")] {
        let ch = conn.create_channel().await.unwrap();
        let err = ch
            .queue_bind(own.as_str().into(), dispatch.as_str().into(), key.into(), QueueBindOptions::default(), FieldTable::default())
            .await;
        assert!(err.is_err(), "{what} orders: bound {key}");
    }
    // Not the operators' dead letters, not the pipeline's queues.
    for queue in [format!("{ns}.dead"), format!("{ns}.lifecycle")] {
        let ch = conn.create_channel().await.unwrap();
        let err = ch.basic_consume(queue.as_str().into(), "x".into(), BasicConsumeOptions::default(), FieldTable::default()).await;
        assert!(err.is_err(), "consumed {queue}");
    }
    // Writes only commands: no intake, no events.
    for exchange in ["intake", "events"] {
        let refusal = broker_refuses(&conn, &format!("{ns}.{exchange}"), "wechat", BasicProperties::default()).await;
        assert!(refusal.contains("ACCESS_REFUSED") || refusal.contains("403"), "{exchange}: {refusal}");
    }
    // An adapter writes intake only under its own channel's key.
    let hotline = users.broker.connect(&app.settings, &users.hotline).await;
    let refusal = broker_refuses(&hotline, &format!("{ns}.intake"), "wechat", BasicProperties::default()).await;
    assert!(refusal.contains("ACCESS_REFUSED") || refusal.contains("403"), "{refusal}");
    let _ = conn.close(200, "bye".into()).await;
    let _ = hotline.close(200, "bye".into()).await;
    app.cleanup().await;
}

/// `principals load` replaces the set, running roles apply it within 5 s,
/// and a wrong file changes nothing.
#[tokio::test]
async fn a_reloaded_principals_set_applies_within_five_seconds() {
    let app = TestApp::spawn_roles(&[Role::Normalize, Role::Route, Role::Lifecycle]).await;
    let dir = tempfile::tempdir().unwrap();
    let load = |name: &str, text: &str| {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_nuannan"))
            .args(["principals", "load", file.to_str().unwrap()])
            .envs(crate::common::settings_env(&app.settings))
            .output()
            .unwrap()
    };
    let staff = "user = \"h-shinan_badaxia_tuandao\"\nkind = \"handler\"\nunit = \"shinan.badaxia.tuandao\"";
    let out = load("one.toml", &format!("[[principal]]\n{staff}\n[[principal]]\nuser = \"reviewer\"\nkind = \"reviewer\"\n"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let harness = Commander::open(&app).await;
    app.publish_intake("wechat", wechat_text("o-reload", "8800002", "团岛二路路灯不亮，团岛", chrono::Utc::now().timestamp()), None).await;
    let p = wait_for("assigned", || {
        app.find_one("petitions", doc! { "source.message_id": "8800002", "status": "assigned", "outbox": { "$size": 0 } })
    })
    .await;
    let id = p.get_str("_id").unwrap().to_owned();
    let user = "h-shinan_badaxia_tuandao";
    let accept = body("reload-accept", &id, handler(TUANDAO), json!({}));
    assert_eq!(harness.send_as(Some(user), "petition.accept", accept).await, ok("accepted"));

    for (name, text, error) in [
        ("bad.toml", "[[principal]]\nuser = \"x\"\nkind = \"boss\"\n", "unknown kind"),
        ("unit.toml", "[[principal]]\nuser = \"x\"\nkind = \"handler\"\nunit = \"shinan.nowhere\"\n", "not in the registry"),
    ] {
        let out = load(name, text);
        assert!(
            !out.status.success() && String::from_utf8_lossy(&out.stderr).contains(error),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(app.count("principals", doc! {}).await, 2, "a wrong file changes nothing");

    let out = load("two.toml", "[[principal]]\nuser = \"reviewer\"\nkind = \"reviewer\"\n");
    assert!(out.status.success());
    let mut n = 0;
    wait_up_to("the handler's removal to apply", Duration::from_secs(5), || {
        n += 1;
        let progress = body(&format!("reload-progress-{n}"), &id, handler(TUANDAO), json!({ "note": "在处理" }));
        let harness = &harness;
        async move { (harness.send_as(Some(user), "petition.progress", progress).await == refused("forbidden")).then_some(()) }
    })
    .await;
    app.cleanup().await;
}
