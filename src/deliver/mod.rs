//! Delivery to the citizen, "one door in, one door out" (`docs/contract.md`
//! §12, Delivery): the rules, pure. The `deliver` role does the I/O.
//!
//! Every outbound message ends in exactly one of four states, recorded in
//! `deliveries` under its message id: `delivered`, `failed` (refused for good,
//! or the retry schedule ran out), `undeliverable` (the channel cannot carry
//! it: not configured, outside WeChat's 48-hour window, over quota), or —
//! while attempts remain — `retrying`.

pub mod wechat;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{Outbound, PetitionId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Delivered,
    Retrying,
    Failed,
    Undeliverable,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Delivered => "delivered",
            Status::Retrying => "retrying",
            Status::Failed => "failed",
            Status::Undeliverable => "undeliverable",
        }
    }

    /// Nothing more will be tried.
    pub fn is_final(self) -> bool {
        self != Status::Retrying
    }
}

/// What one answer of a remote means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// May pass (a network error, a 5xx, a slow answer, a busy remote): try
    /// again on the schedule.
    Retry(String),
    /// WeChat refused the access token: fetch a new one and send again at once.
    Refresh(String),
    /// The channel cannot carry this message (outside the window, over quota).
    Undeliverable(String),
    /// Refused for good (a 4xx): sending it again cannot help.
    Failed(String),
}

/// The remote's answer to one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub code: Option<String>,
    pub verdict: Verdict,
}

impl Answer {
    pub fn new(code: impl ToString, verdict: Verdict) -> Self {
        Answer { code: Some(code.to_string()), verdict }
    }

    /// No answer at all (connection refused, timed out).
    pub fn unreachable(error: impl std::fmt::Display) -> Self {
        Answer { code: None, verdict: Verdict::Retry(error.to_string()) }
    }

    /// The status an attempt leaves the message in, and its reason; `None`
    /// while the schedule still has a retry (`retry_left`).
    pub fn settles(&self, retry_left: bool) -> (Status, Option<String>) {
        match &self.verdict {
            Verdict::Delivered => (Status::Delivered, None),
            Verdict::Undeliverable(why) => (Status::Undeliverable, Some(why.clone())),
            Verdict::Failed(why) => (Status::Failed, Some(why.clone())),
            Verdict::Retry(_) | Verdict::Refresh(_) if retry_left => (Status::Retrying, None),
            Verdict::Retry(why) | Verdict::Refresh(why) => (Status::Failed, Some(format!("retries exhausted: {why}"))),
        }
    }

    pub fn error(&self) -> Option<String> {
        match &self.verdict {
            Verdict::Delivered => None,
            Verdict::Retry(e) | Verdict::Refresh(e) | Verdict::Undeliverable(e) | Verdict::Failed(e) => Some(e.clone()),
        }
    }
}

/// A webhook's HTTP status: 2xx delivered; 408, 425, 429 and 5xx may pass;
/// any other 4xx is the receiver refusing the message for good.
pub fn http_verdict(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Delivered,
        408 | 425 | 429 | 500..=599 => Verdict::Retry(format!("HTTP {status}")),
        _ => Verdict::Failed(format!("HTTP {status}")),
    }
}

/// The pauses between attempts (`deliver.retry_ms`): after the n-th failed
/// attempt the n-th pause, and after the last one the message fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule(Vec<Duration>);

impl RetrySchedule {
    pub fn from_millis(ms: &[u64]) -> Self {
        RetrySchedule(ms.iter().map(|&m| Duration::from_millis(m)).collect())
    }

    /// The pause after `failed` failed attempts; `None`: no attempt left.
    pub fn after(&self, failed: usize) -> Option<Duration> {
        failed.checked_sub(1).and_then(|i| self.0.get(i)).copied()
    }

    /// Attempts in all: the first and one after each pause.
    pub fn attempts(&self) -> usize {
        self.0.len() + 1
    }
}

/// What a 12345 callback carries (`hotline.callback_url`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HotlineCallback {
    pub order_no: String,
    pub petition_id: PetitionId,
    pub kind: String,
    pub text: String,
    pub at: DateTime<Utc>,
}

impl HotlineCallback {
    /// `None` without an order number: the answer has nowhere to go.
    pub fn of(m: &Outbound) -> Option<Self> {
        let order_no = m.recipient.order_no.clone()?;
        Some(HotlineCallback {
            order_no,
            petition_id: m.petition_id.clone(),
            kind: m.kind.as_str().to_owned(),
            text: m.text.clone(),
            at: m.at,
        })
    }
}

/// One of the App's citizens' messages: the webhook's body and an item of
/// `GET /app/notifications`. `cursor` orders them; it only grows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppNotification {
    pub cursor: i64,
    pub message_id: String,
    pub petition_id: String,
    pub user_id: String,
    pub kind: String,
    pub text: String,
    pub at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhooks_retry_only_what_may_pass() {
        assert_eq!(http_verdict(204), Verdict::Delivered);
        for s in [408, 429, 500, 502, 503] {
            assert!(matches!(http_verdict(s), Verdict::Retry(_)), "{s}");
        }
        for s in [400, 401, 403, 404, 413, 422] {
            assert!(matches!(http_verdict(s), Verdict::Failed(_)), "{s}");
        }
    }

    #[test]
    fn the_schedule_ends_in_failed_with_the_last_error() {
        let s = RetrySchedule::from_millis(&[10, 20]);
        assert_eq!(
            (s.after(0), s.after(1), s.after(2), s.after(3)),
            (None, Some(Duration::from_millis(10)), Some(Duration::from_millis(20)), None)
        );
        assert_eq!(s.attempts(), 3);
        let busy = Answer::new(503, http_verdict(503));
        assert_eq!(busy.settles(true), (Status::Retrying, None));
        assert_eq!(busy.settles(false), (Status::Failed, Some("retries exhausted: HTTP 503".into())));
        assert_eq!(Answer::new(400, http_verdict(400)).settles(true), (Status::Failed, Some("HTTP 400".into())));
        let window = Answer::new(45015, Verdict::Undeliverable("outside_window".into()));
        assert_eq!(window.settles(true), (Status::Undeliverable, Some("outside_window".into())));
        assert!(Status::Undeliverable.is_final() && !Status::Retrying.is_final());
    }
}
