//! A per-channel rate limit (`deliver.rate_limit_per_s`): requests to one
//! remote are spaced evenly, whoever sends them.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

pub struct Pace {
    interval: Option<Duration>,
    next: Mutex<Option<Instant>>,
}

impl Pace {
    /// `per_s` = 0: no limit.
    pub fn new(per_s: u32) -> Self {
        Pace { interval: (per_s > 0).then(|| Duration::from_secs(1) / per_s), next: Mutex::new(None) }
    }

    /// Waits for the next free slot.
    pub async fn wait(&self) {
        let Some(interval) = self.interval else { return };
        let slot = {
            let mut next = self.next.lock().await;
            let (slot, following) = claim(*next, Instant::now(), interval);
            *next = Some(following);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

/// The slot a request gets, and the one after it.
fn claim(next: Option<Instant>, now: Instant, interval: Duration) -> (Instant, Instant) {
    let slot = next.map_or(now, |n| n.max(now));
    (slot, slot + interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_spaced_by_the_interval_and_idle_time_is_not_saved_up() {
        let now = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(claim(None, now, ms(50)), (now, now + ms(50)));
        assert_eq!(claim(Some(now + ms(50)), now, ms(50)), (now + ms(50), now + ms(100)));
        // After a quiet second the next request goes at once, and only one does.
        assert_eq!(claim(Some(now), now + ms(1000), ms(50)), (now + ms(1000), now + ms(1050)));
    }
}
