//! Server-Sent Events of calls (`calls:read`): one call's events, resumable from its log with
//! `Last-Event-ID` (its event `seq`), and every call's, for dashboards. The all-calls stream's ids
//! are `<server>-<position>`: a position in the feed of this server, as it runs now. A reconnect
//! to it within the last [`FEED_CAPACITY`] events misses nothing; an older one gets a `gap` event
//! first, and so does one with an id of another server (behind a load balancer) or of this one
//! before a restart: the client learns to read what it missed from the calls themselves.
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

/// Follows every call (dashboards): the events this server still keeps after `Last-Event-ID` (an
/// id of this stream; a `gap` event first when older ones were dropped, or when the id is another
/// server's), then each as it happens, as Server-Sent Events.
#[utoipa::path(
    get,
    path = "/events",
    operation_id = "follow_all_calls",
    tag = "events",
    params(
        ("Last-Event-ID" = Option<String>, Header,
            description = "Resume after this event id (`<server>-<position>`)"),
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
    let server: std::sync::Arc<str> = state.records.store().instance().into();
    let resume = resume_point(last_event_id(&request), &server)?;
    let after = match resume {
        Resume::After(position) => Some(position),
        Resume::New | Resume::Elsewhere => None,
    };
    let subscription = state.records.feed().subscribe(after);
    let missed = match resume {
        Resume::Elsewhere => Some((
            subscription.last,
            "events of another server's stream, or from before a restart",
        )),
        Resume::After(after) if subscription.gap => {
            Some((after, "events older than this server keeps"))
        }
        _ => None,
    };
    let mut backlog: Vec<SseRecord> = Vec::new();
    if let Some((position, missed)) = missed {
        backlog.push(SseRecord {
            id: feed_id(&server, position),
            event: "gap".into(),
            data: json!({ "missed": missed }).to_string(),
        });
    }
    backlog.extend(
        subscription
            .backlog
            .iter()
            .map(|event| published(event, feed_id(&server, event.position))),
    );
    let body = sse::records(backlog, subscription.live, move |event| {
        Some(published(event, feed_id(&server, event.position)))
    });
    Ok(sse::response(body))
}

/// Where an all-calls stream starts.
#[derive(Debug, PartialEq, Eq)]
enum Resume {
    /// With the next event (no `Last-Event-ID`).
    New,
    /// After this position of this server's feed.
    After(u64),
    /// An id of another server's feed, or of this one before a restart (or a bare position, from
    /// a server before ids named it): what came since cannot be told.
    Elsewhere,
}

/// The id of the event at `position` of `server`'s feed.
fn feed_id(server: &str, position: u64) -> String {
    format!("{server}-{position}")
}

/// Reads `Last-Event-ID` for the all-calls stream of `server`.
fn resume_point(last_event_id: Option<&str>, server: &str) -> Result<Resume, HttpError> {
    let Some(id) = last_event_id else {
        return Ok(Resume::New);
    };
    let (feed, position) = id
        .rsplit_once('-')
        .map_or((None, id), |(f, p)| (Some(f), p));
    let position = position
        .parse::<u64>()
        .map_err(|_| HttpError::bad_request("Last-Event-ID: an event id of this stream"))?;
    Ok(if feed == Some(server) {
        Resume::After(position)
    } else {
        Resume::Elsewhere
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_all_calls_stream_resumes_only_from_its_own_servers_ids() {
        let ours = "3f2a9c1b0e4d7a65";
        assert_eq!(resume_point(None, ours).unwrap(), Resume::New);
        let id = feed_id(ours, 42);
        assert_eq!(resume_point(Some(&id), ours).unwrap(), Resume::After(42));
        for elsewhere in ["0123456789abcdef-42", "42"] {
            assert_eq!(
                resume_point(Some(elsewhere), ours).unwrap(),
                Resume::Elsewhere
            );
        }
        for bad in ["", "x", "3f2a9c1b0e4d7a65-", "3f2a9c1b0e4d7a65-x"] {
            assert!(resume_point(Some(bad), ours).is_err(), "{bad:?}");
        }
    }
}
