//! The lifecycle, notify and deadline roles through the real broker and
//! store: handler commands, district review, feedback on the origin channel,
//! ratings.

use crate::common::commands::{Commander, citizen, dispatcher, handler, reviewer};
use crate::common::schemas::{assert_all_valid, assert_valid};
use crate::common::{TestApp, wait_for};
use mongodb::bson::{Document, doc};
use nuannan::bus::Exchange;
use nuannan_workers::Role;
use serde_json::{Value, json};

const COMMUNITY: &str = "shinan.badaxia.tuandao";
const STREET: &str = "shinan.badaxia";

/// A livelihood App petition in 团岛社区 from App user `user`.
fn petition(request_id: &str, user: &str) -> String {
    json!({
        "request_id": request_id, "submitted_at": chrono::Utc::now().to_rfc3339(),
        "user": { "id": user }, "content": "楼道灯坏了", "category": "livelihood", "address": "团岛",
    })
    .to_string()
}

async fn app() -> (TestApp, Commander) {
    let app = TestApp::spawn_roles(&[Role::Normalize, Role::Route, Role::Lifecycle, Role::Notify, Role::Deadline]).await;
    let commander = Commander::open(&app).await;
    (app, commander)
}

/// Files a petition and waits until it is assigned; returns its id.
async fn assigned(app: &TestApp, request_id: &str, user: &str) -> String {
    app.publish_intake("app", petition(request_id, user), None).await;
    let p = wait_for("assigned", || {
        app.find_one("petitions", doc! { "source.message_id": request_id, "status": "assigned", "outbox": { "$size": 0 } })
    })
    .await;
    assert_eq!(p.get_str("unit").unwrap(), COMMUNITY);
    p.get_str("_id").unwrap().to_owned()
}

async fn petition_doc(app: &TestApp, id: &str) -> Document {
    app.find_one("petitions", doc! { "_id": id }).await.unwrap()
}

fn ok(status: &str) -> Value {
    json!({ "ok": true, "status": status })
}

fn refused(code: &str) -> Value {
    json!({ "ok": false, "error": code })
}

async fn event_types(app: &TestApp, id: &str) -> Vec<String> {
    use futures::TryStreamExt;
    let events: Vec<Document> = app
        .collection("events")
        .find(doc! { "petition_id": id })
        .sort(doc! { "at": 1, "_id": 1 })
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    events.iter().map(|e| e.get_str("type").unwrap().to_owned()).collect()
}

/// Drives a petition from accept to approval; the result goes out.
async fn resolve_and_approve(c: &Commander, id: &str, unit: &str, tag: &str) {
    assert_eq!(c.send("accept", &format!("{tag}-accept"), id, handler(unit), json!({})).await, ok("accepted"));
    assert_eq!(c.send("resolve", &format!("{tag}-resolve"), id, handler(unit), json!({ "result": "已更换灯泡" })).await, ok("resolved"));
    assert_eq!(c.send("approve", &format!("{tag}-approve"), id, reviewer(), json!({})).await, ok("approved"));
}

#[tokio::test]
async fn the_whole_loop_from_intake_to_closed() {
    let (app, c) = app().await;
    let outbound = app.tap(Exchange::Outbound).await;
    let events = app.tap(Exchange::Events).await;
    let id = assigned(&app, "loop", "u-loop").await;

    assert_eq!(c.send("accept", "l-1", &id, handler(COMMUNITY), json!({})).await, ok("accepted"));
    let accepted = outbound.wait_for("accepted notice", |m| m.body["petition_id"] == id.as_str() && m.body["kind"] == "progress").await;
    assert!(accepted.body["text"].as_str().unwrap().contains("团岛社区"), "{}", accepted.body);
    assert_eq!(accepted.routing_key, "app");
    assert_eq!(accepted.body["recipient"]["id"], "u-loop");

    assert_eq!(c.send("progress", "l-2", &id, handler(COMMUNITY), json!({ "note": "已联系物业" })).await, ok("accepted"));
    assert_eq!(c.send("resolve", "l-3", &id, handler(COMMUNITY), json!({ "result": "已更换灯泡" })).await, ok("resolved"));
    // Nothing reaches the citizen before the district approves.
    assert!(outbound.messages().await.iter().all(|m| m.body["kind"] != "result"));
    assert_eq!(c.send("approve", "l-4", &id, reviewer(), json!({})).await, ok("approved"));

    let result = outbound.wait_for("result", |m| m.body["petition_id"] == id.as_str() && m.body["kind"] == "result").await;
    assert!(result.body["text"].as_str().unwrap().contains("已更换灯泡"));
    outbound.wait_for("rating request", |m| m.body["petition_id"] == id.as_str() && m.body["kind"] == "rating_request").await;
    wait_for("feedback recorded", || app.find_one("petitions", doc! { "_id": &id, "feedback_sent_at": { "$exists": true } })).await;

    assert_eq!(c.send("rate", "l-5", &id, citizen("u-loop"), json!({ "rating": "satisfied" })).await, ok("closed"));
    let p = petition_doc(&app, &id).await;
    assert_eq!(p.get_str("status").unwrap(), "closed");
    assert_eq!(p.get_str("closure").unwrap(), "rated");
    assert_eq!(p.get_document("rating").unwrap().get_str("value").unwrap(), "satisfied");
    assert!(p.get_document("kpi").unwrap().get_bool("responded_on_time").unwrap(), "accepted within 4 hours");
    assert!(p.get_document("clock").unwrap().get("next_at").is_none_or(|v| v.as_null().is_some()), "all clocks stopped");

    events.wait_for("closed event", |m| m.body["petition_id"] == id.as_str() && m.routing_key == "petition.closed").await;
    assert_eq!(
        event_types(&app, &id).await,
        ["received", "assigned", "accepted", "progressed", "resolved", "approved", "feedback_sent", "rated", "closed"]
    );
    let accepted_event = app.find_one("events", doc! { "petition_id": &id, "type": "accepted" }).await.unwrap();
    assert_eq!(accepted_event.get_document("actor").unwrap().get_str("unit").unwrap(), COMMUNITY, "the audit names the actor");
    for kind in ["rated", "closed"] {
        let rated = app.find_one("events", doc! { "petition_id": &id, "type": kind }).await.unwrap();
        assert_eq!(rated.get_document("actor").unwrap(), &doc! { "role": "citizen" }, "no citizen identifier in `{kind}`: {rated}");
        assert!(!rated.to_string().contains("u-loop"), "{rated}");
    }
    assert_eq!(
        outbound.messages().await.iter().filter(|m| m.body["petition_id"] == id.as_str()).count(),
        4,
        "receipt, accepted, result, rating request"
    );
    assert_all_valid(&outbound, "messages/outbound.schema.json").await;
    assert_all_valid(&events, "messages/event.schema.json").await;
    app.cleanup().await;
}

#[tokio::test]
async fn wrong_actors_and_illegal_steps_are_refused_and_change_nothing() {
    let (app, c) = app().await;
    let id = assigned(&app, "guarded", "u-owner").await;
    let before = petition_doc(&app, &id).await;

    let attempts = [
        ("accept", handler("shinan.badaxia.tuandao.g001"), json!({}), "wrong_unit"),
        ("accept", handler("shinan.zhongshanlu"), json!({}), "wrong_unit"),
        ("accept", citizen("u-owner"), json!({}), "forbidden"),
        ("resolve", handler(COMMUNITY), json!({ "result": "done" }), "illegal_transition"),
        ("approve", handler(COMMUNITY), json!({}), "forbidden"),
        ("approve", reviewer(), json!({}), "illegal_transition"),
        ("rate", citizen("u-owner"), json!({ "rating": "satisfied" }), "illegal_transition"),
        ("transfer", handler(COMMUNITY), json!({ "unit": STREET }), "forbidden"),
        ("transfer", dispatcher(), json!({ "unit": "shinan.nowhere" }), "unknown_unit"),
        ("resolve", handler(COMMUNITY), json!({}), "invalid_command"),
        ("delete", handler(COMMUNITY), json!({}), "unknown_command"),
    ];
    for (n, (command, actor, data, code)) in attempts.into_iter().enumerate() {
        let reply = c.send(command, &format!("bad-{n}"), &id, actor.clone(), data).await;
        assert_eq!(reply, refused(code), "{command} by {actor}");
        assert_valid("commands/command-reply.schema.json", &reply);
    }
    let missing = c.send("accept", "bad-missing", "20990101-000001", handler(COMMUNITY), json!({})).await;
    assert_eq!(missing, refused("not_found"));
    assert_eq!(c.send_raw("petition.accept", b"{not json".to_vec()).await, refused("invalid_command"));

    let after = petition_doc(&app, &id).await;
    assert_eq!(after.get_i64("version").unwrap(), before.get_i64("version").unwrap(), "nothing changed");
    assert_eq!(after.get_str("status").unwrap(), "assigned");

    // A stranger may not rate someone else's petition.
    resolve_and_approve(&c, &id, COMMUNITY, "g").await;
    let reply = c.send("rate", "bad-stranger", &id, citizen("u-stranger"), json!({ "rating": "unsatisfied" })).await;
    assert_eq!(reply, refused("not_citizen"));
    assert_eq!(petition_doc(&app, &id).await.get_str("status").unwrap(), "approved");
    app.cleanup().await;
}

#[tokio::test]
async fn a_repeated_command_gets_the_same_reply_and_applies_once() {
    let (app, c) = app().await;
    let id = assigned(&app, "repeat", "u-r").await;

    // Refused now; still refused (the same answer) after the state would allow it.
    assert_eq!(c.send("resolve", "r-early", &id, handler(COMMUNITY), json!({ "result": "x" })).await, refused("illegal_transition"));
    assert_eq!(c.send("accept", "r-accept", &id, handler(COMMUNITY), json!({})).await, ok("accepted"));
    let version = petition_doc(&app, &id).await.get_i64("version").unwrap();
    assert_eq!(c.send("accept", "r-accept", &id, handler(COMMUNITY), json!({})).await, ok("accepted"));
    assert_eq!(c.send("resolve", "r-early", &id, handler(COMMUNITY), json!({ "result": "x" })).await, refused("illegal_transition"));

    assert_eq!(petition_doc(&app, &id).await.get_i64("version").unwrap(), version, "the repeat changed nothing");
    assert_eq!(app.count("events", doc! { "petition_id": &id, "type": "accepted" }).await, 1);
    assert_eq!(petition_doc(&app, &id).await.get_str("status").unwrap(), "accepted");
    app.cleanup().await;
}

#[tokio::test]
async fn an_unsatisfied_rating_reopens_one_level_up_and_a_second_closes() {
    let (app, c) = app().await;
    let escalations = app.tap(Exchange::Escalations).await;
    let dispatch = app.tap(Exchange::Dispatch).await;
    let id = assigned(&app, "unhappy", "u-u").await;

    resolve_and_approve(&c, &id, COMMUNITY, "first").await;
    let reply = c.send("rate", "u-rate-1", &id, citizen("u-u"), json!({ "rating": "unsatisfied", "comment": "灯还是不亮" })).await;
    assert_eq!(reply, ok("reopened"));
    let p = petition_doc(&app, &id).await;
    assert_eq!((p.get_str("unit").unwrap(), p.get_i32("escalation_level").unwrap()), (STREET, 1));
    let notice = escalations.wait_for("unsatisfied escalation", |m| m.body["petition_id"] == id.as_str()).await;
    assert_eq!(notice.routing_key, format!("street.{STREET}"));
    assert_eq!((notice.body["reason"].as_str(), notice.body["from_unit"].as_str()), (Some("unsatisfied"), Some(COMMUNITY)));
    let second = dispatch.wait_for("re-dispatch", |m| m.body["petition_id"] == id.as_str() && m.body["attempt"] == 2).await;
    assert_eq!(second.routing_key, format!("unit.{STREET}"));

    // The community may no longer act on it; the street does.
    assert_eq!(c.send("accept", "u-community", &id, handler(COMMUNITY), json!({})).await, refused("wrong_unit"));
    let outbound = app.tap(Exchange::Outbound).await;
    resolve_and_approve(&c, &id, STREET, "second").await;
    let second_result = outbound.wait_for("second result", |m| m.body["petition_id"] == id.as_str() && m.body["kind"] == "result").await;
    assert_eq!(second_result.message_id, Some(format!("{id}/result/2")), "a new result after the reopening");
    let reply = c.send("rate", "u-rate-2", &id, citizen("u-u"), json!({ "rating": "unsatisfied" })).await;
    assert_eq!(reply, ok("closed"));
    let p = petition_doc(&app, &id).await;
    assert_eq!((p.get_str("status").unwrap(), p.get_str("unit").unwrap()), ("closed", STREET), "closed as unsatisfied, not climbing again");
    assert_eq!(p.get_document("rating").unwrap().get_str("value").unwrap(), "unsatisfied");
    assert_all_valid(&escalations, "messages/escalation.schema.json").await;
    assert_all_valid(&dispatch, "messages/assignment.schema.json").await;
    app.cleanup().await;
}

#[tokio::test]
async fn a_refused_order_returns_to_the_platform_which_transfers_it() {
    let (app, c) = app().await;
    let escalations = app.tap(Exchange::Escalations).await;
    let dispatch = app.tap(Exchange::Dispatch).await;
    let id = assigned(&app, "wrong", "u-w").await;

    let reply = c.send("refuse", "w-1", &id, handler(COMMUNITY), json!({ "reason": "wrong_function", "note": "属执法事项" })).await;
    assert_eq!(reply, ok("triage"));
    let p = petition_doc(&app, &id).await;
    assert_eq!((p.get_str("unit").unwrap(), p.get_i64("refusals").unwrap()), ("shinan", 1));
    let notice = escalations.wait_for("refusal notice", |m| m.body["petition_id"] == id.as_str()).await;
    assert_eq!((notice.routing_key.as_str(), notice.body["reason"].as_str()), ("district.shinan", Some("refused")));

    let reply = c.send("transfer", "w-2", &id, dispatcher(), json!({ "unit": "shinan.xianggangzhonglu" })).await;
    assert_eq!(reply, ok("assigned"));
    let assignment = dispatch.wait_for("transfer", |m| m.body["petition_id"] == id.as_str() && m.body["attempt"] == 2).await;
    assert_eq!(assignment.routing_key, "unit.shinan.xianggangzhonglu");
    let p = petition_doc(&app, &id).await;
    let respond_by = p.get_document("deadlines").unwrap().get_datetime("respond_by").unwrap().to_chrono();
    assert!(respond_by > chrono::Utc::now() + chrono::Duration::minutes(230), "the clock restarted at the new unit");
    assert_eq!(c.send("accept", "w-3", &id, handler("shinan.xianggangzhonglu"), json!({})).await, ok("accepted"));
    assert_eq!(event_types(&app, &id).await[2..], ["refused", "transferred", "accepted"]);
    app.cleanup().await;
}

#[tokio::test]
async fn an_unrated_result_closes_when_the_rating_period_ends() {
    let (app, c) = app().await;
    let id = assigned(&app, "silent", "u-s").await;
    resolve_and_approve(&c, &id, COMMUNITY, "s").await;
    wait_for("feedback sent", || {
        app.find_one("petitions", doc! { "_id": &id, "feedback_sent_at": { "$exists": true }, "outbox": { "$size": 0 } })
    })
    .await;
    let p = petition_doc(&app, &id).await;
    let rating_by = p.get_document("clock").unwrap().get_datetime("rating_by").unwrap().to_chrono();
    let days = (rating_by - chrono::Utc::now()).num_hours();
    assert!((71..=72).contains(&days), "3 days by default, got {days} h");

    // Three days pass.
    let past = mongodb::bson::DateTime::from(chrono::Utc::now() - chrono::Duration::seconds(1));
    app.collection("petitions")
        .update_one(doc! { "_id": &id }, doc! { "$set": { "clock.rating_by": past, "clock.next_at": past } })
        .await
        .unwrap();
    // An empty outbox: the closing was also appended and published.
    let closed =
        wait_for("closed unrated", || app.find_one("petitions", doc! { "_id": &id, "status": "closed", "outbox": { "$size": 0 } })).await;
    assert_eq!(closed.get_str("closure").unwrap(), "no_rating");
    assert!(closed.get("rating").is_none_or(|r| r.as_null().is_some()));
    assert_eq!(app.count("events", doc! { "petition_id": &id, "type": "closed" }).await, 1);
    app.cleanup().await;
}

/// A resolution breach of an accepted petition hands it to the street,
/// which must be able to accept it, and once resolved and approved it is
/// never escalated again.
#[tokio::test]
async fn a_resolution_breach_hands_over_once_and_the_street_finishes_the_job() {
    let mut app = TestApp::spawn_roles(&[Role::Normalize, Role::Route, Role::Lifecycle, Role::Notify]).await;
    let c = Commander::open(&app).await;
    let escalations = app.tap(Exchange::Escalations).await;
    // Filed ten days ago: both deadlines are long past.
    let mut body: Value = serde_json::from_str(&petition("overdue", "u-o")).unwrap();
    body["submitted_at"] = json!((chrono::Utc::now() - chrono::Duration::days(10)).to_rfc3339());
    app.publish_intake("app", body.to_string(), None).await;
    let routed = wait_for("assigned", || {
        app.find_one("petitions", doc! { "source.message_id": "overdue", "status": "assigned", "outbox": { "$size": 0 } })
    })
    .await;
    let id = routed.get_str("_id").unwrap().to_owned();
    // The community accepts (late) before any deadline scan: only the resolution clock runs.
    assert_eq!(c.send("accept", "o-accept", &id, handler(COMMUNITY), json!({})).await, ok("accepted"));

    app.start_workers(&[Role::Deadline]);
    let breached =
        wait_for("resolution breach", || app.find_one("petitions", doc! { "_id": &id, "unit": STREET, "outbox": { "$size": 0 } })).await;
    assert_eq!(breached.get_str("status").unwrap(), "assigned", "handed over to be accepted afresh");
    assert_eq!(c.send("accept", "o-street-accept", &id, handler(STREET), json!({})).await, ok("accepted"));
    assert_eq!(c.send("resolve", "o-street-resolve", &id, handler(STREET), json!({ "result": "已修复" })).await, ok("resolved"));
    assert_eq!(c.send("approve", "o-approve", &id, reviewer(), json!({})).await, ok("approved"));

    // Make the deadline role look at it again now, as a stale index entry would.
    let past = mongodb::bson::DateTime::from(chrono::Utc::now() - chrono::Duration::seconds(1));
    app.collection("petitions").update_one(doc! { "_id": &id }, doc! { "$set": { "clock.next_at": past } }).await.unwrap();
    let p = wait_for("re-indexed on the rating clock", || async {
        let p = app.find_one("petitions", doc! { "_id": &id }).await?;
        let clock = p.get_document("clock").ok()?;
        (clock.get_datetime("next_at").ok() == clock.get_datetime("rating_by").ok()).then_some(p)
    })
    .await;
    let clock = p.get_document("clock").unwrap();
    assert!(clock.get("respond").is_some_and(|v| v.as_null().is_some()), "no response clock after approval: {clock}");
    assert!(clock.get("resolve").is_some_and(|v| v.as_null().is_some()), "no resolution clock after approval: {clock}");
    let breaches = p.get_array("breaches").unwrap();
    assert_eq!(breaches.len(), 1, "exactly one breach: {breaches:?}");
    let breach = breaches[0].as_document().unwrap();
    assert_eq!((breach.get_str("clock").unwrap(), breach.get_str("unit").unwrap()), ("resolve", COMMUNITY));
    assert_eq!(p.get_i64("escalations").unwrap(), 1);
    assert!(!p.get_document("kpi").unwrap().get_bool("resolved_on_time").unwrap(), "resolved late");
    let notices: Vec<_> = escalations.messages().await.into_iter().filter(|m| m.body["petition_id"] == id.as_str()).collect();
    assert_eq!(notices.len(), 1, "one escalation notice: {notices:?}");
    assert_eq!(notices[0].body["reason"], "resolution_overdue");
    assert_eq!(app.count("events", doc! { "petition_id": &id, "type": "escalated" }).await, 1);
    app.cleanup().await;
}

/// A `command_id` is unique per sender, not worldwide: one refused on one
/// petition says nothing about the same id on another.
#[tokio::test]
async fn a_command_id_refused_on_one_petition_is_judged_afresh_on_another() {
    let (app, c) = app().await;
    let a = assigned(&app, "reuse-a", "u-ra").await;
    let b = assigned(&app, "reuse-b", "u-rb").await;
    assert_eq!(c.send("approve", "same-id", &a, reviewer(), json!({})).await, refused("illegal_transition"));
    assert_eq!(c.send("accept", "same-id", &b, handler(COMMUNITY), json!({})).await, ok("accepted"));
    // And a repeat on the first petition still gets its first answer.
    assert_eq!(c.send("approve", "same-id", &a, reviewer(), json!({})).await, refused("illegal_transition"));
    app.cleanup().await;
}

/// Replies go only to the sender's own reply queues: a command naming
/// someone else's queue is applied but not answered there.
#[tokio::test]
async fn a_reply_to_a_foreign_queue_is_not_sent() {
    let (app, c) = app().await;
    let id = assigned(&app, "foreign", "u-f").await;
    let ch = app.conn.create_channel().await.unwrap();
    let foreign = format!("{}.reply.someone-else.q", app.settings.namespace);
    ch.queue_declare(
        foreign.as_str().into(),
        lapin::options::QueueDeclareOptions { exclusive: true, ..Default::default() },
        Default::default(),
    )
    .await
    .unwrap();
    let body = json!({
        "command_id": "foreign-1", "petition_id": &id, "actor": handler(COMMUNITY),
        "at": chrono::Utc::now().to_rfc3339(), "data": {},
    });
    let user = c.principal_for(&handler(COMMUNITY), &id).await;
    let props = lapin::BasicProperties::default().with_reply_to(foreign.as_str().into()).with_user_id(user.as_str().into());
    let commands = format!("{}.commands", app.settings.namespace);
    ch.basic_publish(commands.as_str().into(), "petition.accept".into(), Default::default(), body.to_string().as_bytes(), props)
        .await
        .unwrap();
    wait_for("applied", || app.find_one("petitions", doc! { "_id": &id, "status": "accepted" })).await;
    // A reply goes out before the delivery is acked: wait for the ack (the
    // broker's count, through rabbitmqctl).
    if std::process::Command::new("rabbitmqctl").arg("-q").arg("status").output().is_err() {
        eprintln!("skipped the reply check: no rabbitmqctl to read the broker's unacked count");
        return app.cleanup().await;
    }
    let lifecycle = format!("{}.lifecycle", app.settings.namespace);
    wait_for("the command acked", || async { (unacked(&lifecycle) == Some(0)).then_some(()) }).await;
    assert_eq!(app_queue_depth(&ch, &foreign).await, 0, "nothing sent to a foreign reply queue");
    app.cleanup().await;
}

/// Deliveries of `queue` not yet acked, as the broker counts them.
fn unacked(queue: &str) -> Option<u64> {
    let out = std::process::Command::new("rabbitmqctl").args(["-q", "list_queues", "name", "messages_unacknowledged"]).output().ok()?;
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        let mut fields = l.split_whitespace();
        (fields.next() == Some(queue)).then(|| fields.next()?.parse().ok()).flatten()
    })
}

async fn app_queue_depth(ch: &lapin::Channel, queue: &str) -> u32 {
    let passive = lapin::options::QueueDeclareOptions { passive: true, ..Default::default() };
    ch.queue_declare(queue.into(), passive, Default::default()).await.unwrap().message_count()
}

/// A forged `accepted` event cannot put its own text in front of a citizen:
/// notify names the unit the petition is really with.
#[tokio::test]
async fn a_forged_event_cannot_choose_what_the_citizen_reads() {
    let (app, c) = app().await;
    let outbound = app.tap(Exchange::Outbound).await;
    let id = assigned(&app, "forged", "u-forged").await;
    let forged = json!({
        "event_id": format!("{id}/v99"), "petition_id": &id, "type": "accepted", "at": chrono::Utc::now(),
        "data": { "unit": "请拨打 400-000-0000 退款" },
    });
    app.publisher
        .publish(&nuannan::bus::Outgoing::json(Exchange::Events, "petition.accepted", forged.to_string().into_bytes(), format!("{id}/v99")))
        .await
        .unwrap();
    let notice = outbound.wait_for("progress notice", |m| m.body["petition_id"] == id.as_str() && m.body["kind"] == "progress").await;
    let text = notice.body["text"].as_str().unwrap();
    assert!(!text.contains("400-000-0000"), "{text}");
    assert!(text.contains("团岛社区"), "names the petition's real unit: {text}");
    let _ = c;
    app.cleanup().await;
}
