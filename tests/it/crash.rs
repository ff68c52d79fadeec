//! A crash between the store write and the ack must, on redelivery, neither
//! lose the petition nor create a second one, and must still emit the
//! `received` event and the receipt.

use std::collections::HashSet;
use std::process::Stdio;

use crate::common::{TestApp, app_petition, settings_env, wait_for, wait_up_to};
use lapin::options::{BasicGetOptions, QueueDeclareOptions};
use mongodb::bson::doc;
use nuannan::bus::{Exchange, Handler, Outcome, Publisher};
use nuannan_workers::{Normalizer, Role, topology};

/// Takes the next intake delivery without acknowledging it, as a worker
/// that is about to crash holds it.
async fn take_delivery(app: &TestApp) -> (lapin::Channel, lapin::message::Delivery) {
    let channel = app.conn.create_channel().await.unwrap();
    let queue = format!("{}.normalize", app.settings.namespace);
    let msg =
        wait_for("intake delivery", || async { channel.basic_get(queue.as_str().into(), BasicGetOptions::default()).await.unwrap() }).await;
    (channel, msg.delivery)
}

#[tokio::test]
async fn crash_after_the_store_write_before_publishing() {
    let mut app = TestApp::without_workers().await;
    let outbound = app.tap(Exchange::Outbound).await;
    let events = app.tap(Exchange::Events).await;
    app.publish_intake("app", app_petition("crash-1", "井盖缺失"), Some("crash-1")).await;
    let (channel, delivery) = take_delivery(&app).await;

    // A worker whose broker connection dies right after the store write.
    let dying = nuannan::bus::connect(&app.settings.amqp.url, "doomed").await.unwrap();
    let publisher = Publisher::open(&dying, topology(&app.settings)).await.unwrap();
    dying.close(200, "gone".into()).await.unwrap();
    let worker = Normalizer::new(&app.settings, app.store.clone(), publisher);
    assert!(matches!(worker.handle(&delivery).await, Outcome::Retry(_)));
    let stored = app.find_one("petitions", doc! { "source.message_id": "crash-1" }).await.unwrap();
    assert_eq!(stored.get_array("outbox").unwrap().len(), 2, "event and receipt still owed");
    channel.close(200, "crash".into()).await.unwrap(); // never acked

    app.start_workers(&[Role::Normalize]);
    let p = app.wait_for_petition("app", "crash-1").await;
    let id = p.get_str("_id").unwrap();
    assert_eq!(stored.get_str("_id").unwrap(), id, "the redelivery finished the same petition");
    assert_eq!(app.count("petitions", doc! {}).await, 1);
    assert_eq!(app.count("events", doc! { "petition_id": id, "type": "received" }).await, 1);
    events.wait_for("received event", |m| m.body["petition_id"] == id).await;
    outbound.wait_for("receipt", |m| m.body["petition_id"] == id).await;
    app.cleanup().await;
}

#[tokio::test]
async fn crash_after_publishing_before_the_ack() {
    let mut app = TestApp::without_workers().await;
    let outbound = app.tap(Exchange::Outbound).await;
    app.publish_intake("app", app_petition("crash-2", "垃圾满溢"), Some("crash-2")).await;
    app.publish_intake("app", app_petition("after-crash", "后续诉求"), Some("after-crash")).await;
    let (channel, delivery) = take_delivery(&app).await;

    let worker = Normalizer::new(&app.settings, app.store.clone(), app.publisher.clone());
    assert!(matches!(worker.handle(&delivery).await, Outcome::Ack));
    channel.close(200, "crash".into()).await.unwrap(); // the ack never went out

    app.start_workers(&[Role::Normalize]);
    app.wait_for_petition("app", "after-crash").await;
    wait_for("redelivery settled", || async {
        let ch = app.conn.create_channel().await.unwrap();
        let queue = format!("{}.normalize", app.settings.namespace);
        let q = ch
            .queue_declare(queue.as_str().into(), QueueDeclareOptions { passive: true, ..Default::default() }, Default::default())
            .await
            .unwrap();
        (q.message_count() == 0).then_some(())
    })
    .await;
    let p = app.wait_for_petition("app", "crash-2").await;
    let id = p.get_str("_id").unwrap();
    assert_eq!(app.count("petitions", doc! { "source.message_id": "crash-2" }).await, 1);
    assert_eq!(app.count("events", doc! { "petition_id": id, "type": "received" }).await, 1);
    let receipts: Vec<_> = outbound.messages().await.into_iter().filter(|m| m.body["petition_id"] == id).collect();
    assert_eq!(receipts.len(), 1, "the outbox was already empty: nothing re-sent");
    app.cleanup().await;
}

#[tokio::test]
async fn kill_9_mid_stream_loses_nothing_and_duplicates_nothing() {
    const N: usize = 300;
    let app = TestApp::without_workers().await;
    let outbound = app.tap(Exchange::Outbound).await;
    let spawn_worker = || {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_nuannan"))
            .args(["worker", "normalize"])
            .envs(settings_env(&app.settings))
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("starting nuannan worker normalize")
    };
    // Half the stream before the kill, half after: however fast the worker
    // is, the kill cannot come after the whole stream was stored.
    for i in 0..N / 2 {
        app.publish_intake("app", app_petition(&format!("k-{i}"), "批量诉求"), None).await;
    }
    let mut first = spawn_worker();
    wait_for("the first worker to be mid-stream", || async { (app.count("petitions", doc! {}).await >= 20).then_some(()) }).await;
    first.start_kill().unwrap(); // SIGKILL
    first.wait().await.unwrap();
    let at_kill = app.count("petitions", doc! {}).await;
    for i in N / 2..N {
        app.publish_intake("app", app_petition(&format!("k-{i}"), "批量诉求"), None).await;
    }

    let mut second = spawn_worker();
    wait_up_to("every petition stored and announced", std::time::Duration::from_secs(120), || async {
        let done = app.count("petitions", doc! { "outbox": { "$size": 0 } }).await;
        (done as usize == N).then_some(())
    })
    .await;
    second.start_kill().unwrap();
    second.wait().await.unwrap();

    let petitions = app.count("petitions", doc! {}).await as usize;
    let events = app.count("events", doc! { "type": "received" }).await as usize;
    let receipts: HashSet<_> = wait_for("all receipts", || async {
        let ids: HashSet<String> = outbound.messages().await.into_iter().filter_map(|m| m.message_id).collect();
        (ids.len() >= N).then_some(ids)
    })
    .await;
    eprintln!("kill -9 after {at_kill} of {N}: petitions {petitions}, received events {events}, distinct receipts {}", receipts.len());
    assert!((at_kill as usize) < N, "the kill landed mid-stream");
    assert_eq!(petitions, N, "lost or duplicated petitions");
    assert_eq!(events, N);
    assert_eq!(receipts.len(), N);
    app.cleanup().await;
}
