//! Group commit across in-flight deliveries. Each delivery submits its
//! unit of work and waits for the answer; a single task takes everything
//! that queued up while the previous batch ran and does it with bulk
//! operations. Nothing waits on purpose: under light load a batch is one
//! item, under heavy load it grows, and the store sees a handful of
//! operations per batch instead of a handful per petition. Acks still
//! follow durable writes, because each delivery is acked only after its
//! answer arrives.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use std::sync::Arc;

use nuannan::bus::Failure;
use tokio::sync::{mpsc, oneshot};

pub struct Batcher<I, O> {
    tx: mpsc::UnboundedSender<(I, oneshot::Sender<O>)>,
}

impl<I: Send + 'static, O: Send + 'static> Batcher<I, O> {
    /// Runs `work` on batches of at most `max` items. `work` returns one
    /// answer per item, in order.
    pub fn spawn<W, F>(max: usize, work: W) -> Self
    where
        W: Fn(Vec<I>) -> F + Send + Sync + 'static,
        F: Future<Output = Vec<O>> + Send,
    {
        let (tx, mut rx) = mpsc::unbounded_channel::<(I, oneshot::Sender<O>)>();
        let work = Arc::new(work);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while batch.len() < max {
                    match rx.try_recv() {
                        Ok(item) => batch.push(item),
                        Err(_) => break,
                    }
                }
                let (items, replies): (Vec<I>, Vec<oneshot::Sender<O>>) = batch.into_iter().unzip();
                // A panic in one batch's work must not take the batcher down
                // with it: that batch's callers get no answer (and retry), the
                // next batch is served as usual.
                match AssertUnwindSafe(work(items)).catch_unwind().await {
                    Ok(answers) => {
                        for (reply, answer) in replies.into_iter().zip(answers) {
                            let _ = reply.send(answer);
                        }
                    }
                    Err(_) => {
                        nuannan::ops::metrics().batch_panics.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tracing::error!(items = replies.len(), "a batch panicked; its deliveries will be retried");
                    }
                }
            }
        });
        Batcher { tx }
    }

    /// Submits one item and waits for its answer; `None` if its batch
    /// panicked or the batch task is gone (the worker is shutting down).
    pub async fn submit(&self, item: I) -> Option<O> {
        let (reply, answer) = oneshot::channel();
        self.tx.send((item, reply)).ok()?;
        answer.await.ok()
    }
}

/// A batch done with bulk operations where it can and item by item where it
/// must: `bulk` answers, per item, whether it still needs `single`
/// (redeliveries, races, repeats within the batch). A batch of one goes
/// straight to `single`; a bulk failure answers every item with it.
pub async fn bulk_or_single<'a, I, B, FB, S, FS>(items: &'a [I], bulk: B, single: S) -> Vec<Result<(), Failure>>
where
    B: FnOnce(&'a [I]) -> FB,
    FB: Future<Output = Result<Vec<bool>, Failure>>,
    S: Fn(&'a I) -> FS,
    FS: Future<Output = Result<(), Failure>>,
{
    if let [one] = items {
        return vec![single(one).await];
    }
    match bulk(items).await {
        Ok(slow) => {
            let mut results = Vec::with_capacity(items.len());
            for (item, slow) in items.iter().zip(slow) {
                results.push(if slow { single(item).await } else { Ok(()) });
            }
            results
        }
        Err(failure) => items.iter().map(|_| Err(failure.clone())).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_batch_is_counted_and_the_next_one_is_served() {
        let batcher = Batcher::spawn(10, |items: Vec<u32>| async move {
            assert!(!items.contains(&13), "unlucky item");
            items.into_iter().map(|i| i * 2).collect::<Vec<_>>()
        });
        let before = nuannan::ops::metrics().batch_panics.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(batcher.submit(13).await, None);
        assert_eq!(batcher.submit(21).await, Some(42));
        assert!(nuannan::ops::metrics().batch_panics.load(std::sync::atomic::Ordering::Relaxed) > before);
    }
}
