//! A fake OpenAI-compatible chat completions API on 127.0.0.1, as strict as the real ones about
//! what we send: `POST /v1/chat/completions`, `Authorization: Bearer` with its key (401 and the
//! documented error body otherwise), a JSON body with `model`, `"stream": true` and `messages`
//! (anything else: 400). It answers with the documented event stream: `data: {chunk}` events of
//! `chat.completion.chunk` objects, then `data: [DONE]`, or with what a test scripts instead.
//!
//! Every request body is recorded; the fake also notes when a client goes away before a stream
//! ends (its body is dropped), which is how a cancelled reply shows.

use std::collections::VecDeque;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::web::{self, Bytes};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
use futures_util::Stream;
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// The key the fake accepts.
pub const KEY: &str = "gsk_fake_4c1d2e9b7a";

/// What the fake answers to the next request.
#[derive(Debug, Clone)]
pub enum Answer {
    /// These text fragments, one chunk each, then `stop`.
    Text(Vec<&'static str>),
    /// Tool calls, their arguments split into these fragments: (id, name, fragments).
    Tools(Vec<(&'static str, &'static str, Vec<&'static str>)>),
    /// These raw bytes as the body, in these pieces, then the end.
    Raw(Vec<&'static str>),
    /// An error status with the documented body (and `retry-after` seconds on 429).
    Error(u16),
    /// The head, a first fragment, then nothing: the stream stalls.
    StallAfter(&'static str),
    /// Text fragments fed by the test through [`Fake::feed`], one per call.
    Fed,
}

#[derive(Default)]
struct Shared {
    answers: VecDeque<Answer>,
    requests: Vec<Value>,
    dropped: usize,
    feed: Option<mpsc::UnboundedSender<&'static str>>,
}

/// The running fake.
pub struct Fake {
    /// `http://127.0.0.1:PORT/v1`.
    pub base_url: String,
    shared: Arc<Mutex<Shared>>,
    server: ServerHandle,
}

impl Fake {
    /// Starts the fake; it answers the queued answers in order, then plain text.
    pub async fn start(answers: Vec<Answer>) -> Self {
        let shared = Arc::new(Mutex::new(Shared {
            answers: answers.into(),
            ..Shared::default()
        }));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let data = web::Data::new(shared.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/v1/chat/completions", web::post().to(complete))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        actix_rt::spawn(server);
        Self {
            base_url: format!("http://127.0.0.1:{port}/v1"),
            shared,
            server: handle,
        }
    }

    /// The request bodies received, in order.
    pub fn requests(&self) -> Vec<Value> {
        self.shared.lock().unwrap().requests.clone()
    }

    /// Streams that clients dropped before their end.
    pub fn dropped(&self) -> usize {
        self.shared.lock().unwrap().dropped
    }

    /// Sends a fragment on the current [`Answer::Fed`] stream.
    pub fn feed(&self, fragment: &'static str) {
        let feed = self.shared.lock().unwrap().feed.clone();
        feed.expect("a fed stream is open").send(fragment).unwrap();
    }

    /// Stops the fake.
    pub async fn stop(self) {
        self.server.stop(false).await;
    }
}

fn error(status: u16, kind: &str, message: &str) -> HttpResponse {
    let mut response = HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap());
    if status == 429 {
        response.insert_header(("retry-after", "7"));
    }
    response.json(json!({"error": {"message": message, "type": kind, "code": kind}}))
}

async fn complete(
    request: HttpRequest,
    body: Bytes,
    shared: web::Data<Arc<Mutex<Shared>>>,
) -> HttpResponse {
    let authorized = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {KEY}"));
    if !authorized {
        return error(401, "invalid_api_key", "Invalid API Key");
    }
    let json_content = request
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(400, "invalid_request_error", "body is not JSON");
    };
    let well_formed = json_content
        && body["model"].is_string()
        && body["stream"] == true
        && body["messages"].as_array().is_some_and(|messages| {
            !messages.is_empty()
                && messages.iter().all(|m| {
                    ["system", "user", "assistant", "tool"]
                        .contains(&m["role"].as_str().unwrap_or(""))
                })
        });
    if !well_formed {
        return error(
            400,
            "invalid_request_error",
            "model, stream and messages are required",
        );
    }
    let (answer, fed) = {
        let mut shared = shared.lock().unwrap();
        shared.requests.push(body);
        let answer = shared
            .answers
            .pop_front()
            .unwrap_or(Answer::Text(vec!["Okay."]));
        // Open before the request is seen, so a test that saw it can feed at once.
        let (sender, receiver) = mpsc::unbounded_channel();
        if matches!(answer, Answer::Fed) {
            shared.feed = Some(sender);
        }
        (answer, receiver)
    };
    let events: Vec<String> = match answer {
        Answer::Error(status) => {
            let kind = match status {
                429 => "rate_limit_exceeded",
                500..=599 => "server_error",
                _ => "invalid_request_error",
            };
            return error(status, kind, "refused by the fake");
        }
        Answer::Text(fragments) => {
            let mut events: Vec<String> = fragments
                .iter()
                .map(|text| event(json!({"content": text}), None))
                .collect();
            events.push(event(json!({}), Some("stop")));
            events.push("data: [DONE]\n\n".into());
            events
        }
        Answer::Tools(calls) => {
            let mut events = Vec::new();
            for (index, (id, name, fragments)) in calls.iter().enumerate() {
                events.push(event(
                    json!({"tool_calls": [{"index": index, "id": id, "type": "function",
                        "function": {"name": name, "arguments": ""}}]}),
                    None,
                ));
                for fragment in fragments {
                    events.push(event(
                        json!({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}),
                        None,
                    ));
                }
            }
            events.push(event(json!({}), Some("tool_calls")));
            events.push("data: [DONE]\n\n".into());
            events
        }
        Answer::Raw(pieces) => pieces.iter().map(|p| (*p).to_owned()).collect(),
        Answer::StallAfter(text) => {
            let (_, receiver) = mpsc::unbounded_channel();
            return stream(
                &shared,
                vec![event(json!({"content": text}), None)],
                Some(receiver),
            );
        }
        Answer::Fed => return stream(&shared, Vec::new(), Some(fed)),
    };
    stream(&shared, events, None)
}

/// One `data:` event of a chunk with `delta` and `finish_reason`, as OpenAI and Groq send it.
fn event(delta: Value, finish_reason: Option<&str>) -> String {
    let chunk = json!({
        "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_735_689_600,
        "model": "llama-3.3-70b-versatile", "system_fingerprint": "fp_fake",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}]
    });
    format!("data: {chunk}\n\n")
}

/// The events, then more from `more` (fed one by one, as text content) until it closes; the end
/// of the body unless `more` stays open. Dropped early, it is counted.
fn stream(
    shared: &Arc<Mutex<Shared>>,
    events: Vec<String>,
    more: Option<mpsc::UnboundedReceiver<&'static str>>,
) -> HttpResponse {
    let body = Body {
        events: events.into(),
        more,
        shared: shared.clone(),
        ended: false,
    };
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("x-ratelimit-remaining-tokens", "5999"))
        .streaming(body)
}

struct Body {
    events: VecDeque<String>,
    more: Option<mpsc::UnboundedReceiver<&'static str>>,
    shared: Arc<Mutex<Shared>>,
    ended: bool,
}

impl Stream for Body {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        if let Some(event) = self.events.pop_front() {
            return Poll::Ready(Some(Ok(Bytes::from(event))));
        }
        match self.more.as_mut() {
            None => {
                self.ended = true;
                Poll::Ready(None)
            }
            Some(more) => match more.poll_recv(cx) {
                Poll::Ready(Some(text)) => {
                    Poll::Ready(Some(Ok(Bytes::from(event(json!({"content": text}), None)))))
                }
                Poll::Ready(None) => Poll::Pending,
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        if !self.ended {
            self.shared.lock().unwrap().dropped += 1;
        }
    }
}

/// How long a test waits for the fake to see something.
pub const WAIT: Duration = Duration::from_secs(5);
