//! The broker topology (`docs/contract.md` §3) behaves as the contract says.

use crate::common::{TestApp, teardown, test_settings, wait_for};
use lapin::options::{BasicGetOptions, BasicNackOptions};
use nuannan::bus::{Exchange, Outgoing, Publisher};
use nuannan_workers::{declare_topology, topology};

#[tokio::test]
async fn declaring_twice_is_harmless() {
    let settings = test_settings().await;
    declare_topology(&settings).await.unwrap();
    declare_topology(&settings).await.unwrap();
    teardown(&settings, &[]).await;
}

/// A deployment that predates `amqp.quorum_group_size` (queues declared
/// without a replica count) starts with it: the count is read at creation
/// only, so declaring again is not a conflicting redeclaration.
#[tokio::test]
async fn the_replica_count_does_not_conflict_with_queues_declared_without_it() {
    // TestApp removes its namespace when dropped, even if an assertion fails.
    let mut settings = test_settings().await;
    settings.amqp.quorum_group_size = 0;
    let app = TestApp::with_settings(settings).await;
    let mut settings = app.settings.clone();
    for n in [3, 5] {
        settings.amqp.quorum_group_size = n;
        declare_topology(&settings).await.unwrap();
    }
    app.cleanup().await;

    // Created with a count, started later with another.
    let mut settings = test_settings().await;
    settings.amqp.quorum_group_size = 5;
    let app = TestApp::with_settings(settings).await;
    let mut settings = app.settings.clone();
    settings.amqp.quorum_group_size = 3;
    declare_topology(&settings).await.unwrap();
    // Any other difference is still refused.
    settings.amqp.delivery_limit += 1;
    let refused = declare_topology(&settings).await.unwrap_err();
    assert!(format!("{refused:#}").contains("x-delivery-limit"), "{refused:#}");
    app.cleanup().await;
}

#[tokio::test]
async fn a_message_that_keeps_failing_is_dead_lettered_after_the_delivery_limit() {
    let mut settings = test_settings().await;
    settings.amqp.delivery_limit = 2;
    declare_topology(&settings).await.unwrap();
    let conn = nuannan::bus::connect(&settings.amqp.url, "test").await.unwrap();
    let publisher = Publisher::open(&conn, topology(&settings)).await.unwrap();
    publisher.publish(&Outgoing::json(Exchange::Intake, "app", b"{}".to_vec(), "poison-1")).await.unwrap();

    let ch = conn.create_channel().await.unwrap();
    let work = format!("{}.normalize", settings.namespace);
    let dead = format!("{}.dead", settings.namespace);
    let mut deliveries = 0;
    while let Some(msg) = ch.basic_get(work.as_str().into(), BasicGetOptions::default()).await.unwrap() {
        deliveries += 1;
        msg.delivery.nack(BasicNackOptions { requeue: true, ..Default::default() }).await.unwrap();
        assert!(deliveries <= 10, "delivery limit not enforced");
    }
    let dead_msg =
        wait_for("dead-lettered message", || async { ch.basic_get(dead.as_str().into(), BasicGetOptions::default()).await.unwrap() }).await;
    assert_eq!(deliveries, 3, "delivered limit + 1 times, then dead-lettered");
    assert_eq!(dead_msg.delivery.routing_key.as_str(), "app", "keeps its original routing key");
    assert_eq!(dead_msg.delivery.properties.message_id().as_ref().unwrap().as_str(), "poison-1");
    let headers = dead_msg.delivery.properties.headers().as_ref().expect("x-death headers");
    assert!(headers.inner().contains_key("x-death") || headers.inner().contains_key("x-first-death-reason"));
    teardown(&settings, &[]).await;
}

#[tokio::test]
async fn a_message_no_consumer_has_bound_for_is_kept_not_lost() {
    let app = TestApp::without_workers().await;
    let msg = Outgoing::json(Exchange::Dispatch, "unit.shinan.nowhere", b"{\"x\":1}".to_vec(), "a-1");
    app.publisher.publish(&msg).await.expect("confirmed, not returned");
    let ch = app.conn.create_channel().await.unwrap();
    let unrouted = format!("{}.unrouted", app.settings.namespace);
    let kept = ch.basic_get(unrouted.as_str().into(), BasicGetOptions::default()).await.unwrap().expect("kept in unrouted");
    assert_eq!(kept.delivery.routing_key.as_str(), "unit.shinan.nowhere");
    app.cleanup().await;
}

#[tokio::test]
async fn publishing_to_a_missing_exchange_is_an_error_not_a_silent_loss() {
    let mut settings = test_settings().await;
    let conn = nuannan::bus::connect(&settings.amqp.url, "test").await.unwrap();
    settings.namespace = format!("{}-undeclared", settings.namespace);
    let publisher = Publisher::open(&conn, topology(&settings)).await.unwrap();
    let msg = Outgoing::json(Exchange::Events, "petition.received", b"{}".to_vec(), "e-1");
    assert!(publisher.publish(&msg).await.is_err());
}
