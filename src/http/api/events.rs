//! Server-Sent Events of calls (`calls:read`): one call's events, resumable from its log with
//! `Last-Event-ID` (its event `seq`), and every call's, for dashboards (ids are positions in this
//! server's feed; a reconnect within the last [`FEED_CAPACITY`] events misses nothing, an older one
//! gets a `gap` event first).
//!
//! Each event's data: `{"call_id", "seq", "at", "kind", "data"}`; `kind` is `status`,
//! `answered_by`, `turn`, `barge_in` or `end`.
//!
//! [`FEED_CAPACITY`]: crate::calls::feed::FEED_CAPACITY

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::calls::CallId;
use super::views::CallEventView;
use super::{Authorized, CallsRead};
use crate::calls::feed::FeedEvent;
use crate::http::error::{ErrorBody, HttpError};
use crate::http::sse::{self, SseRecord};
use crate::http::AppState;
use crate::store::call_events::CallEvent;

/// Most logged events sent as a reconnecting client's backlog.
const MAX_BACKLOG: i64 = 10_000;

/// Follows one call: its logged events since `Last-Event-ID` (a `seq`), then each as it
/// happens, as Server-Sent Events.
#[utoipa::path(
    get,
    path = "/calls/{id}/events",
    operation_id = "follow_call",
    tag = "events",
    params(
        CallId,
        ("Last-Event-ID" = Option<i64>, Header,
            description = "Resume after this event (its `seq`)"),
    ),
    responses(
        (status = 200, description = "A stream of the call's events, each record's data one \
            event", content_type = "text/event-stream", body = CallEventView),
        (status = 400, description = "A bad Last-Event-ID", body = ErrorBody),
        (status = 404, description = "No such call", body = ErrorBody),
    ),
    security(("bearer" = ["calls:read"])),
)]
pub async fn of_call(
    _: Authorized<CallsRead>,
    state: web::Data<AppState>,
    request: HttpRequest,
    id: web::Path<CallId>,
) -> Result<HttpResponse, HttpError> {
    let store = state.records.store();
    let call = store.call(&id.0).await?.ok_or(HttpError::NotFound)?;
    let after = last_event_id(&request)
        .map(|id| {
            id.parse::<i64>()
                .map_err(|_| HttpError::bad_request("Last-Event-ID: an event seq"))
        })
        .transpose()?
        .unwrap_or(0);
    // Subscribed before the log is read: an event logged in between is in both, sent once.
    let live = state.records.feed().subscribe(None).live;
    let backlog = store.events_after(&call.id, after, MAX_BACKLOG).await?;
    let sent = backlog.last().map_or(after, |event| event.seq);
    let backlog = backlog.iter().map(logged).collect();
    let call_id = call.id;
    let body = sse::records(backlog, live, move |event| {
        (*event.call_id == *call_id && event.seq > sent)
            .then(|| published(event, event.seq.to_string()))
    });
    Ok(sse::response(body))
}

/// Follows every call (dashboards): the events this server still keeps after `Last-Event-ID` (a
/// position in its feed; a `gap` event first when older ones were dropped), then each as it
/// happens, as Server-Sent Events.
#[utoipa::path(
    get,
    path = "/events",
    operation_id = "follow_all_calls",
    tag = "events",
    params(
        ("Last-Event-ID" = Option<u64>, Header,
            description = "Resume after this feed position"),
    ),
    responses(
        (status = 200, description = "A stream of every call's events, each record's data one \
            event", content_type = "text/event-stream", body = CallEventView),
        (status = 400, description = "A bad Last-Event-ID", body = ErrorBody),
    ),
    security(("bearer" = ["calls:read"])),
)]
pub async fn all(
    _: Authorized<CallsRead>,
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, HttpError> {
    let after = last_event_id(&request)
        .map(|id| {
            id.parse::<u64>()
                .map_err(|_| HttpError::bad_request("Last-Event-ID: a feed position"))
        })
        .transpose()?;
    let subscription = state.records.feed().subscribe(after);
    let mut backlog: Vec<SseRecord> = Vec::new();
    if subscription.gap {
        backlog.push(SseRecord {
            id: after.unwrap_or_default().to_string(),
            event: "gap".into(),
            data: json!({ "missed": "events older than this server keeps" }).to_string(),
        });
    }
    backlog.extend(
        subscription
            .backlog
            .iter()
            .map(|event| published(event, event.position.to_string())),
    );
    let body = sse::records(backlog, subscription.live, |event| {
        Some(published(event, event.position.to_string()))
    });
    Ok(sse::response(body))
}

fn last_event_id(request: &HttpRequest) -> Option<&str> {
    request
        .headers()
        .get("Last-Event-ID")
        .and_then(|value| value.to_str().ok())
}

/// An event read back from a call's log.
fn logged(event: &CallEvent) -> SseRecord {
    let data = event.data.clone().unwrap_or(Value::Null);
    let kind = event.kind.as_str();
    record(
        event.seq.to_string(),
        &event.call_id,
        (event.seq, event.at),
        kind,
        data,
    )
}

/// An event from the live feed, with the stream's own id.
fn published(event: &FeedEvent, id: String) -> SseRecord {
    let position = (event.seq, event.at);
    record(
        id,
        &event.call_id,
        position,
        &event.kind,
        event.data.clone(),
    )
}

/// The record of an event of `call_id`, logged as `seq` `at` (Unix ms).
fn record(id: String, call_id: &str, (seq, at): (i64, i64), kind: &str, data: Value) -> SseRecord {
    let view = CallEventView {
        call_id,
        seq,
        at,
        kind,
        data,
    };
    SseRecord {
        id,
        event: kind.to_owned(),
        data: serde_json::to_string(&view).unwrap_or_default(),
    }
}
