//! Per-petition lanes: one petition's messages are delivered one at a time,
//! in the order the broker handed them over, while other petitions' messages
//! go ahead concurrently.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

#[derive(Default)]
pub struct Lanes(Mutex<HashMap<String, Lane>>);

#[derive(Default)]
struct Lane {
    /// Delivery tags, first in line first.
    queue: VecDeque<u64>,
    turn: Arc<Notify>,
}

impl Lanes {
    /// Takes a place in the petition's lane now — so call it before the
    /// handler first awaits, when places still follow arrival order — and
    /// waits for its turn. A delivery that has a place keeps it (a handler
    /// called again for the same delivery).
    pub fn join(&self, petition: &str, tag: u64) -> impl Future<Output = ()> + '_ {
        let turn = {
            let mut lanes = self.0.lock().expect("lanes lock");
            let lane = lanes.entry(petition.to_owned()).or_default();
            if !lane.queue.contains(&tag) {
                lane.queue.push_back(tag);
            }
            lane.turn.clone()
        };
        let petition = petition.to_owned();
        async move {
            loop {
                let notified = turn.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.first(&petition) == Some(tag) {
                    return;
                }
                notified.await;
            }
        }
    }

    /// Gives the place up; the next in line goes.
    pub fn leave(&self, petition: &str, tag: u64) {
        let mut lanes = self.0.lock().expect("lanes lock");
        if let Some(lane) = lanes.get_mut(petition) {
            lane.queue.retain(|t| *t != tag);
            lane.turn.notify_waiters();
            if lane.queue.is_empty() {
                lanes.remove(petition);
            }
        }
    }

    fn first(&self, petition: &str) -> Option<u64> {
        self.0.lock().expect("lanes lock").get(petition).and_then(|l| l.queue.front().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_petitions_messages_go_in_arrival_order_and_others_do_not_wait() {
        let lanes = Lanes::default();
        let first = lanes.join("P1", 1);
        let second = lanes.join("P1", 2);
        let other = lanes.join("P2", 3);
        // Joined in order: the second waits even if polled first.
        tokio::pin!(second);
        assert!(tokio::time::timeout(Duration::from_millis(50), &mut second).await.is_err());
        other.await;
        first.await;
        // Joining again keeps the place.
        lanes.join("P1", 1).await;
        lanes.leave("P1", 1);
        second.await;
        lanes.leave("P1", 2);
        lanes.leave("P2", 3);
        assert!(lanes.0.lock().unwrap().is_empty());
    }
}
