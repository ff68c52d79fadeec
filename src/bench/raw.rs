//! The baselines: what the broker and the store do with nothing of ours in
//! between.

use std::time::Instant;

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Connection};
use mongodb::bson::{Document, doc};
use mongodb::options::ReturnDocument;

use super::sample;
use crate::domain::EventType;
use crate::store::Store;

/// Confirms in flight at once: the publisher pipelines, as the pipeline's does.
const WINDOW: usize = 256;

/// Publish with confirms → one quorum queue → consume with manual acks at
/// `prefetch`; messages/s from the first publish to the last ack.
pub async fn broker(conn: &Connection, queue: &str, messages: usize, size: usize, prefetch: u16) -> anyhow::Result<f64> {
    let ch = conn.create_channel().await?;
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), AMQPValue::LongString(LongString::from("quorum")));
    ch.queue_declare(queue.into(), QueueDeclareOptions { durable: true, ..Default::default() }, args).await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;

    let consumer_ch = conn.create_channel().await?;
    consumer_ch.basic_qos(prefetch, BasicQosOptions::default()).await?;
    let mut consumer =
        consumer_ch.basic_consume(queue.into(), "raw-bench".into(), BasicConsumeOptions::default(), FieldTable::default()).await?;
    let consume = tokio::spawn(async move {
        let mut n = 0;
        while n < messages {
            let Some(Ok(d)) = consumer.next().await else { anyhow::bail!("raw consumer stopped") };
            d.ack(BasicAckOptions::default()).await?;
            n += 1;
        }
        anyhow::Ok(())
    });

    let body = vec![b'x'; size];
    let started = Instant::now();
    let mut pending = Vec::with_capacity(WINDOW);
    for i in 0..messages {
        let props = BasicProperties::default().with_delivery_mode(2).with_message_id(format!("raw-{i}").into());
        let confirm =
            ch.basic_publish("".into(), queue.into(), BasicPublishOptions { mandatory: true, ..Default::default() }, &body, props).await?;
        pending.push(confirm);
        if pending.len() == WINDOW {
            for c in pending.drain(..) {
                c.await?;
            }
        }
    }
    for c in pending {
        c.await?;
    }
    consume.await??;
    let rate = messages as f64 / started.elapsed().as_secs_f64();
    ch.queue_delete(queue.into(), Default::default()).await?;
    Ok(rate)
}

/// The writes the pipeline does per petition, one petition at a time per
/// task, `concurrency` tasks: petitions/s.
pub async fn store_unbatched(store: &Store, petitions: u32, concurrency: u32, first: u32) -> anyhow::Result<f64> {
    let started = Instant::now();
    let per_task = petitions / concurrency;
    let tasks = (0..concurrency).map(|t| {
        let store = store.clone();
        tokio::spawn(async move {
            for k in 0..per_task {
                one_petition(&store, first + t * per_task + k).await?;
            }
            anyhow::Ok(())
        })
    });
    for t in futures::future::join_all(tasks).await {
        t??;
    }
    Ok((per_task * concurrency) as f64 / started.elapsed().as_secs_f64())
}

/// Intake: number, insert (with outbox), event, clear outbox.
/// Routing: read, conditional update (with outbox), event, clear outbox.
async fn one_petition(store: &Store, n: u32) -> anyhow::Result<()> {
    let db = store.database();
    let (petitions, events, counters) =
        (db.collection::<Document>("petitions"), db.collection::<Document>("events"), db.collection::<Document>("counters"));
    counters
        .find_one_and_update(doc! { "_id": "petition:bench" }, doc! { "$inc": { "seq": 1_i64 } })
        .upsert(true)
        .return_document(ReturnDocument::After)
        .await?;
    let (record, document) = sample::petition("raw", n)?;
    let id = record.id.as_str();
    petitions.insert_one(document).await?;
    events.insert_one(sample::event_doc(&record.id, 1, EventType::Received)).await?;
    petitions
        .update_one(
            doc! { "_id": id },
            doc! { "$pull": { "outbox": { "id": { "$in": [format!("{id}/v1"), format!("{id}/receipt/1")] } } } },
        )
        .await?;
    petitions.find_one(doc! { "_id": id }).await?;
    petitions.update_one(doc! { "_id": id, "version": 1 }, route_update(id)).await?;
    events.insert_one(sample::event_doc(&record.id, 2, EventType::Assigned)).await?;
    petitions
        .update_one(
            doc! { "_id": id },
            doc! { "$pull": { "outbox": { "id": { "$in": [format!("{id}/v2"), format!("{id}/dispatch/1")] } } } },
        )
        .await?;
    Ok(())
}

fn route_update(id: &str) -> Document {
    let now = mongodb::bson::DateTime::now();
    doc! {
        "$set": {
            "unit": "shinan.badaxia.tuandao", "grid": "shinan.badaxia.tuandao.g001", "status": "assigned",
            "deadlines": { "respond_by": now, "resolve_by": now }, "clock": { "next_at": now }, "updated_at": now,
        },
        "$inc": { "version": 1, "dispatch_attempts": 1 },
        "$push": { "outbox": { "$each": [ { "kind": "dispatch", "id": format!("{id}/dispatch/1") }, { "kind": "event", "id": format!("{id}/v2") } ] } },
    }
}

/// The same documents with bulk operations of `batch`: the store's ceiling.
pub async fn store_batched(store: &Store, petitions: u32, batch: u32, first: u32) -> anyhow::Result<f64> {
    let db = store.database();
    let (coll, events, counters) =
        (db.collection::<Document>("petitions"), db.collection::<Document>("events"), db.collection::<Document>("counters"));
    let started = Instant::now();
    for start in (first..first + petitions).step_by(batch as usize) {
        let end = (start + batch).min(first + petitions);
        counters
            .find_one_and_update(doc! { "_id": "petition:bench" }, doc! { "$inc": { "seq": i64::from(end - start) } })
            .upsert(true)
            .await?;
        let records: Vec<_> = (start..end).map(|n| sample::petition("raw", n)).collect::<anyhow::Result<_>>()?;
        let ids: Vec<&str> = records.iter().map(|(r, _)| r.id.as_str()).collect();
        coll.insert_many(records.iter().map(|(_, d)| d.clone())).await?;
        events.insert_many(records.iter().map(|(r, _)| sample::event_doc(&r.id, 1, EventType::Received))).await?;
        coll.update_many(doc! { "_id": { "$in": &ids } }, doc! { "$set": { "outbox": [] } }).await?;
        let _: Vec<Document> = futures::TryStreamExt::try_collect(coll.find(doc! { "_id": { "$in": &ids } }).await?).await?;
        coll.update_many(doc! { "_id": { "$in": &ids }, "version": 1 }, route_update("batch")).await?;
        events.insert_many(records.iter().map(|(r, _)| sample::event_doc(&r.id, 2, EventType::Assigned))).await?;
        coll.update_many(doc! { "_id": { "$in": &ids } }, doc! { "$set": { "outbox": [] } }).await?;
    }
    Ok(petitions as f64 / started.elapsed().as_secs_f64())
}
