//! `/api/events`: the alert stream as server-sent events, for the live board. Each event's
//! `id` is its `seq`; a reconnecting `EventSource` sends the last one back in
//! `Last-Event-ID` and the stream resumes after it, with no gap and no duplicate. When the
//! events after that position are no longer retained, a `reset` event tells the page to
//! reload the board first. A board too slow to read is cut off and reconnects the same
//! way. Each stream holds one of `[server] max_subscribers` places and ends at shutdown.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Extension;
use futures_util::stream::{self, Stream};
use futures_util::StreamExt;
use serde::Deserialize;

use super::access::Access;
use super::alerts::{event_json, query};
use super::error::{HttpError, HttpResult};
use super::Console;
use crate::auth::role::Service;

/// How long a browser waits before reconnecting a dropped stream.
const RETRY: Duration = Duration::from_secs(1);

#[derive(Deserialize, Default)]
pub struct StreamQuery {
    /// Resume after this seq (a reconnect's `Last-Event-ID` wins over it).
    after: Option<u64>,
    care_team: Option<String>,
    severity: Option<String>,
}

pub async fn stream(
    State(console): State<Arc<Console>>,
    Extension(access): Extension<Access>,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> HttpResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    access.require(&console, Service::Alerts)?;
    let last_event_id = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| HttpError::bad_request("Last-Event-ID must be an event's seq"))?,
        ),
    };
    let after = last_event_id.or(q.after);
    let query = query(q.care_team, q.severity.as_deref())?;
    let subscribed = console.app.subscribe(&access.caller, query, after)?;
    let reset = match (after, subscribed.feed.oldest_retained()) {
        (Some(after), Some(oldest)) => after + 1 < oldest,
        _ => false,
    };
    let shutdown = console.shutdown.clone();
    let first = reset.then(|| {
        Event::default()
            .event("reset")
            .data("events after the board's position are no longer retained: reload")
    });
    let start = first.into_iter().map(Ok);
    let live = stream::unfold(
        (subscribed, shutdown),
        |(mut subscribed, shutdown)| async move {
            let event = tokio::select! {
                _ = shutdown.cancelled() => return None,
                next = subscribed.feed.next() => next.ok()?,
            };
            let sse = Event::default()
                .id(event.seq.to_string())
                .event("alert")
                .json_data(event_json(&event))
                .unwrap_or_else(|_| Event::default().comment("unencodable event"));
            Some((Ok(sse), (subscribed, shutdown)))
        },
    );
    let retry = stream::iter([Ok(Event::default().retry(RETRY))]);
    Ok(Sse::new(retry.chain(stream::iter(start)).chain(live))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
