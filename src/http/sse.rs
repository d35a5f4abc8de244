//! Server-Sent Events: call events as `text/event-stream`, with keep-alive comments.
//!
//! A stream sends what the subscriber missed first (its backlog), then live events as they are
//! published. It ends when the subscriber falls too far behind (the client reconnects with
//! `Last-Event-ID` and resumes) or the server shuts down; a comment every [`KEEP_ALIVE`] keeps
//! proxies from closing an idle connection.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use actix_web::web::Bytes;
use actix_web::HttpResponse;
use futures_util::{stream, Stream, StreamExt as _};
use tokio::sync::broadcast;

use crate::calls::feed::FeedEvent;

/// How often an idle stream sends a comment.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// One record of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseRecord {
    /// Its id (what `Last-Event-ID` sends back).
    pub id: String,
    /// Its event type.
    pub event: String,
    /// One line of JSON.
    pub data: String,
}

impl SseRecord {
    /// The record in the wire format: `id`, `event` and `data` lines and a blank line.
    pub fn encode(&self) -> Bytes {
        // The data is JSON serialized on one line: no newline can split the field.
        Bytes::from(format!(
            "id: {}\nevent: {}\ndata: {}\n\n",
            self.id, self.event, self.data
        ))
    }
}

/// A `200 text/event-stream` response streaming `body`.
pub fn response(body: impl Stream<Item = Bytes> + 'static) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-store"))
        // Reverse proxies (nginx) must pass events on as they come, not buffer them.
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body.map(Ok::<_, Infallible>))
}

/// `backlog`, then the events of `live`, each turned into a record by `select` (`None`: not for
/// this stream), with keep-alive comments while idle.
pub fn records(
    backlog: Vec<SseRecord>,
    live: broadcast::Receiver<Arc<FeedEvent>>,
    select: impl Fn(&FeedEvent) -> Option<SseRecord> + 'static,
) -> impl Stream<Item = Bytes> {
    let backlog = stream::iter(backlog.into_iter().map(|record| record.encode()));
    let live = stream::unfold((live, select), |(mut live, select)| async move {
        loop {
            let next = tokio::time::timeout(KEEP_ALIVE, live.recv()).await;
            match next {
                Err(_) => return Some((Bytes::from_static(b": keep-alive\n\n"), (live, select))),
                Ok(Ok(event)) => {
                    if let Some(record) = select(&event) {
                        return Some((record.encode(), (live, select)));
                    }
                }
                // Lagged: the client resumes from its last id. Closed: the server is going away.
                Ok(Err(_)) => return None,
            }
        }
    });
    backlog.chain(live)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::calls::feed::CallFeed;

    #[test]
    fn records_are_encoded_as_the_event_stream_format() {
        let record = SseRecord {
            id: "7".into(),
            event: "turn".into(),
            data: r#"{"text":"hi"}"#.into(),
        };
        assert_eq!(
            &record.encode()[..],
            b"id: 7\nevent: turn\ndata: {\"text\":\"hi\"}\n\n"
        );
    }

    #[actix_rt::test]
    async fn the_backlog_comes_first_then_selected_live_events() {
        let feed = CallFeed::default();
        let subscription = feed.subscribe(None);
        let backlog = vec![SseRecord {
            id: "1".into(),
            event: "status".into(),
            data: "{}".into(),
        }];
        let body = records(backlog, subscription.live, |event| {
            (&*event.call_id == "call_a").then(|| SseRecord {
                id: event.seq.to_string(),
                event: event.kind.clone(),
                data: event.data.to_string(),
            })
        });
        feed.publish("call_b".into(), (1, 10), "status", json!({}));
        feed.publish("call_a".into(), (2, 20), "turn", json!({"n": 1}));
        drop(feed);
        let sent: Vec<Bytes> = body.collect().await;
        assert_eq!(
            sent,
            [
                Bytes::from_static(b"id: 1\nevent: status\ndata: {}\n\n"),
                Bytes::from_static(b"id: 2\nevent: turn\ndata: {\"n\":1}\n\n"),
            ]
        );
    }
}
