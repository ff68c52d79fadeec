//! The receipt-time rule (`docs/contract.md` §4): every clock starts at the channel's own
//! timestamp unless it is missing or implausible.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// Why the channel's timestamp was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptTimeNote {
    Missing,
    InFuture,
    TooOld,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiptTime {
    pub at: DateTime<Utc>,
    pub note: Option<ReceiptTimeNote>,
}

/// The tolerances of the rule, from configuration.
#[derive(Debug, Clone, Copy)]
pub struct ReceiptClock {
    pub future_tolerance: Duration,
    pub max_age: Duration,
}

impl ReceiptClock {
    pub fn decide(&self, channel_time: Option<DateTime<Utc>>, first_seen: DateTime<Utc>) -> ReceiptTime {
        let fallback = |note| ReceiptTime { at: first_seen, note: Some(note) };
        match channel_time {
            None => fallback(ReceiptTimeNote::Missing),
            Some(t) if t > first_seen + self.future_tolerance => fallback(ReceiptTimeNote::InFuture),
            Some(t) if t < first_seen - self.max_age => fallback(ReceiptTimeNote::TooOld),
            Some(t) => ReceiptTime { at: t, note: None },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock() -> ReceiptClock {
        ReceiptClock { future_tolerance: Duration::minutes(5), max_age: Duration::days(30) }
    }

    #[test]
    fn plausible_channel_time_is_kept() {
        let now = Utc::now();
        let t = now - Duration::hours(3);
        assert_eq!(clock().decide(Some(t), now), ReceiptTime { at: t, note: None });
        let slightly_ahead = now + Duration::minutes(4);
        assert_eq!(clock().decide(Some(slightly_ahead), now).at, slightly_ahead);
    }

    #[test]
    fn implausible_or_missing_time_falls_back_with_reason() {
        let now = Utc::now();
        let cases = [
            (None, ReceiptTimeNote::Missing),
            (Some(now + Duration::minutes(6)), ReceiptTimeNote::InFuture),
            (Some(now - Duration::days(31)), ReceiptTimeNote::TooOld),
        ];
        for (t, note) in cases {
            assert_eq!(clock().decide(t, now), ReceiptTime { at: now, note: Some(note) });
        }
    }
}
