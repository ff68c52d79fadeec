//! The live feed (SSE): each escalation on the console's queue wakes every
//! stream, which reads what is new from `events` after its cursor. The
//! cursor is each event's SSE id, so a browser that reconnects (sending
//! `Last-Event-ID`) gets everything it missed. Events can be recorded a
//! moment after their time, so each read looks back a little and drops
//! what it already sent.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures::Stream;
use serde::Deserialize;

use nuannan::console::Scope;
use nuannan::store::parse_cursor;

use super::Console;
use super::auth::{SESSION_COOKIE, bearer, cookie};
use super::views::FeedView;

/// How far back each read looks for events recorded late.
const LOOK_BACK: chrono::Duration = chrono::Duration::seconds(30);
/// A read happens at least this often, woken or not.
const POLL: Duration = Duration::from_secs(5);

#[derive(Deserialize)]
pub struct After {
    after: Option<String>,
}

struct Follow {
    console: Arc<Console>,
    scope: Scope,
    cursor: (DateTime<Utc>, String),
    sent: HashMap<String, DateTime<Utc>>,
    pending: VecDeque<FeedView>,
    wake: tokio::sync::broadcast::Receiver<()>,
}

impl Follow {
    /// Entries since the cursor, looking back for late ones, each sent once
    /// on this stream (a page dedupes what it already shows by id).
    async fn read(&mut self) {
        let since = (self.cursor.0 - LOOK_BACK, String::new());
        let Ok(items) = self.console.feed(&self.scope, Some(&since), 500).await else { return };
        for item in items {
            let Some((at, id)) = parse_cursor(&item.cursor) else { continue };
            if self.sent.insert(id.clone(), at).is_some() {
                continue;
            }
            self.cursor = self.cursor.clone().max((at, id));
            self.pending.push_back(item);
        }
        let horizon = self.cursor.0 - LOOK_BACK * 2;
        self.sent.retain(|_, at| *at >= horizon);
    }
}

pub async fn stream(State(console): State<Arc<Console>>, headers: HeaderMap, Query(q): Query<After>) -> Response {
    let token = bearer(&headers).or_else(|| cookie(&headers, SESSION_COOKIE));
    let Ok(scope) = console.scope_of(token).await else {
        return (StatusCode::UNAUTHORIZED, "log in first").into_response();
    };
    let resume = headers.get("last-event-id").and_then(|v| v.to_str().ok()).map(str::to_owned).or(q.after);
    let cursor = resume.as_deref().and_then(parse_cursor).unwrap_or((Utc::now(), String::new()));
    let wake = console.shared.console.subscribe();
    let follow = Follow { console, scope, cursor, sent: HashMap::new(), pending: VecDeque::new(), wake };
    Sse::new(events(follow)).keep_alive(KeepAlive::default()).into_response()
}

fn events(follow: Follow) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold((follow, true), |(mut f, first)| async move {
        if first {
            f.read().await;
        }
        loop {
            if let Some(item) = f.pending.pop_front() {
                let event = Event::default().event("feed").id(item.cursor.clone()).json_data(&item).unwrap_or_default();
                return Some((Ok(event), (f, false)));
            }
            tokio::select! {
                woken = f.wake.recv() => {
                    if matches!(woken, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                        return None;
                    }
                    // The event may be recorded just after the message that woke us.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                _ = tokio::time::sleep(POLL) => {}
            }
            f.read().await;
        }
    })
}
