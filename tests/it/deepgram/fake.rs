//! A fake of Deepgram's live-streaming endpoint on 127.0.0.1, as strict as Deepgram about what it
//! is sent and answering in Deepgram's documented shapes.
//!
//! The upgrade: only `GET /v1/listen`; `Authorization: Token KEY` with [`API_KEY`] (otherwise 401
//! with Deepgram's error body); exactly the query parameters of [`EXPECTED_QUERY`] (otherwise
//! 400). Every upgrade is recorded, refused or not; a test may queue refusals (429, 503) for the
//! next ones. On an open stream, binary messages are recorded byte for byte as audio, text
//! messages must be one of Deepgram's controls (`KeepAlive`, `Finalize`, `CloseStream`); anything
//! else (an empty binary message, which Deepgram takes as the end of audio, other text) is
//! recorded as rejected and the stream closed, as a strict server would. `CloseStream` is answered
//! as Deepgram answers it: `Metadata`, then a normal close.
//!
//! What the stream says is scripted by the test ([`Stream::say`] with [`results`],
//! [`speech_started`], [`utterance_end`], [`metadata`], or raw text); saying nothing is how it goes
//! silent, and [`Stream::close`] closes it mid-call.

use std::collections::VecDeque;
use std::net::TcpListener;
use std::sync::Mutex;

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use actix_ws::{CloseCode, CloseReason, Message};
use futures_util::StreamExt as _;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::support::within;

/// The key the fake accepts.
pub const API_KEY: &str = "dg-test-key-4c9e1a7b3f5d2e8c0a6b";

/// The query Deepgram must be asked with (any order), for Twilio's audio and the adapter's
/// defaults.
pub const EXPECTED_QUERY: [(&str, &str); 9] = [
    ("encoding", "mulaw"),
    ("sample_rate", "8000"),
    ("channels", "1"),
    ("model", "nova-3"),
    ("interim_results", "true"),
    ("endpointing", "300"),
    ("utterance_end_ms", "1000"),
    ("vad_events", "true"),
    ("smart_format", "true"),
];

/// The request id the fake gives every stream.
const REQUEST_ID: &str = "5e1f4b2c-8a3d-4c6e-9b7f-0d2a4c6e8f10";

/// An upgrade request as the fake received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgrade {
    /// Its method.
    pub method: String,
    /// Its path.
    pub path: String,
    /// Its query pairs, in order, decoded.
    pub query: Vec<(String, String)>,
    /// Its `Authorization` header.
    pub authorization: Option<String>,
}

/// What a client sent on an open stream, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A binary message: audio, byte for byte.
    Audio(Vec<u8>),
    /// `{"type":"KeepAlive"}`.
    KeepAlive,
    /// `{"type":"Finalize"}`.
    Finalize,
    /// `{"type":"CloseStream"}`.
    CloseStream,
    /// The client's close frame, or the connection ended.
    Closed,
    /// Something Deepgram does not accept; the fake closed the stream.
    Rejected(String),
}

/// What the test tells a stream to do.
enum Command {
    Say(String),
    Close(u16, String),
}

struct State {
    refusals: Mutex<VecDeque<u16>>,
    upgrades: Mutex<Vec<Upgrade>>,
    accepted: mpsc::UnboundedSender<Stream>,
}

/// The fake, listening until dropped.
pub struct FakeDeepgram {
    /// `ws://127.0.0.1:PORT`, for the adapter's base URL.
    pub base: String,
    state: web::Data<State>,
    accepted: mpsc::UnboundedReceiver<Stream>,
    handle: ServerHandle,
}

impl FakeDeepgram {
    /// Starts on an unused port.
    pub fn start() -> Self {
        let (accepted, streams) = mpsc::unbounded_channel();
        let state = web::Data::new(State {
            refusals: Mutex::new(VecDeque::new()),
            upgrades: Mutex::new(Vec::new()),
            accepted,
        });
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let base = format!("ws://{}", listener.local_addr().expect("bound"));
        let app_state = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .default_service(web::to(listen))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("listens")
        .run();
        let handle = server.handle();
        actix_rt::spawn(server);
        Self {
            base,
            state,
            accepted: streams,
            handle,
        }
    }

    /// Answers the next upgrade with `status` (429, 503, …) and Deepgram's error body instead
    /// of opening a stream (in the order queued).
    pub fn refuse_next(&self, status: u16) {
        self.state.refusals.lock().unwrap().push_back(status);
    }

    /// Every upgrade request so far.
    pub fn upgrades(&self) -> Vec<Upgrade> {
        self.state.upgrades.lock().unwrap().clone()
    }

    /// The next stream opened; fails the test if none opens in time.
    pub async fn next_stream(&mut self) -> Stream {
        within(self.accepted.recv()).await.expect("the fake runs")
    }
}

impl Drop for FakeDeepgram {
    fn drop(&mut self) {
        // Sends the stop at once; nothing waits for it to finish.
        drop(self.handle.stop(false));
    }
}

/// One open stream, as the test sees it.
pub struct Stream {
    received: mpsc::UnboundedReceiver<Received>,
    commands: mpsc::UnboundedSender<Command>,
}

impl Stream {
    /// The next thing the client sent; fails the test if nothing comes in time.
    pub async fn next(&mut self) -> Received {
        within(self.received.recv())
            .await
            .unwrap_or(Received::Closed)
    }

    /// Sends `message` (one of the builders below) as a text message.
    pub fn say(&self, message: &Value) {
        self.say_raw(&message.to_string());
    }

    /// Sends `text` as it is.
    pub fn say_raw(&self, text: &str) {
        let _ = self.commands.send(Command::Say(text.to_owned()));
    }

    /// Closes the stream with `code` and `reason`, as Deepgram does on an error.
    pub fn close(&self, code: u16, reason: &str) {
        let _ = self.commands.send(Command::Close(code, reason.to_owned()));
    }
}

/// Every request: recorded, then refused or upgraded.
async fn listen(
    request: HttpRequest,
    body: web::Payload,
    state: web::Data<State>,
) -> Result<HttpResponse, actix_web::Error> {
    let query: Vec<(String, String)> = form_urlencoded::parse(request.query_string().as_bytes())
        .into_owned()
        .collect();
    let authorization = request
        .headers()
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    state.upgrades.lock().unwrap().push(Upgrade {
        method: request.method().to_string(),
        path: request.path().to_owned(),
        query: query.clone(),
        authorization: authorization.clone(),
    });
    if request.path() != "/v1/listen" || request.method() != actix_web::http::Method::GET {
        return Ok(refusal(404, "NOT_FOUND", "Not found."));
    }
    if let Some(status) = state.refusals.lock().unwrap().pop_front() {
        return Ok(match status {
            429 => refusal(
                429,
                "TOO_MANY_REQUESTS",
                "Too many requests. Please try again later.",
            ),
            status => refusal(status, "INTERNAL_SERVER_ERROR", "Service unavailable."),
        });
    }
    if authorization.as_deref() != Some(&format!("Token {API_KEY}")) {
        return Ok(refusal(
            401,
            "INVALID_AUTH",
            "Invalid credentials. Could not authenticate.",
        ));
    }
    if let Some(problem) = query_problem(&query) {
        return Ok(refusal(400, "Bad Request", &problem));
    }
    let (mut response, session, messages) = actix_ws::handle(&request, body)?;
    response.headers_mut().insert(
        "dg-request-id".parse().unwrap(),
        REQUEST_ID.parse().unwrap(),
    );
    let (recorded, received) = mpsc::unbounded_channel();
    let (commands, scripted) = mpsc::unbounded_channel();
    let _ = state.accepted.send(Stream { received, commands });
    actix_rt::spawn(serve(session, messages, recorded, scripted));
    Ok(response)
}

/// What is wrong with the query, if anything: a parameter missing, repeated, with another
/// value, or one that is not asked for.
fn query_problem(query: &[(String, String)]) -> Option<String> {
    for (name, value) in EXPECTED_QUERY {
        let given: Vec<&str> = query
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .collect();
        if given != [value] {
            return Some(format!("{name} must be {value}, got {given:?}"));
        }
    }
    query
        .iter()
        .find(|(key, _)| !EXPECTED_QUERY.iter().any(|(name, _)| name == key))
        .map(|(key, _)| format!("unexpected parameter {key}"))
}

/// Deepgram's refusal of an upgrade: the status, its error headers and JSON body.
fn refusal(status: u16, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).expect("a valid status"))
        .insert_header(("dg-error", message))
        .insert_header(("dg-request-id", REQUEST_ID))
        .json(json!({"err_code": code, "err_msg": message, "request_id": REQUEST_ID}))
}

/// One stream: records what the client sends, says what the test scripts.
async fn serve(
    mut session: actix_ws::Session,
    mut messages: actix_ws::MessageStream,
    recorded: mpsc::UnboundedSender<Received>,
    mut scripted: mpsc::UnboundedReceiver<Command>,
) {
    let record = |received: Received| {
        let _ = recorded.send(received);
    };
    loop {
        tokio::select! {
            message = messages.next() => match message {
                Some(Ok(Message::Binary(audio))) if !audio.is_empty() => {
                    record(Received::Audio(audio.to_vec()));
                }
                Some(Ok(Message::Text(text))) => match control(&text) {
                    Some(Received::CloseStream) => {
                        record(Received::CloseStream);
                        let _ = session.text(metadata().to_string()).await;
                        let _ = session.close(Some(CloseCode::Normal.into())).await;
                        return;
                    }
                    Some(control) => record(control),
                    None => return reject(session, &record, format!("text {text:?}")).await,
                },
                Some(Ok(Message::Ping(payload))) => {
                    let _ = session.pong(&payload).await;
                }
                Some(Ok(Message::Close(_))) | None => {
                    record(Received::Closed);
                    return;
                }
                Some(Ok(other)) => {
                    return reject(session, &record, format!("{other:?}")).await;
                }
                Some(Err(error)) => {
                    return reject(session, &record, format!("{error}")).await;
                }
            },
            command = scripted.recv() => match command {
                Some(Command::Say(text)) => {
                    let _ = session.text(text).await;
                }
                Some(Command::Close(code, reason)) => {
                    let reason = CloseReason {
                        code: CloseCode::from(code),
                        description: Some(reason),
                    };
                    let _ = session.close(Some(reason)).await;
                    return;
                }
                // The test is over.
                None => return,
            },
        }
    }
}

/// A control message, exactly as Deepgram documents it (`Finalize` may name a channel).
fn control(text: &str) -> Option<Received> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Control {
        #[serde(rename = "type")]
        kind: String,
        channel: Option<u32>,
    }
    let control: Control = serde_json::from_str(text).ok()?;
    match (control.kind.as_str(), control.channel) {
        ("KeepAlive", None) => Some(Received::KeepAlive),
        ("Finalize", _) => Some(Received::Finalize),
        ("CloseStream", None) => Some(Received::CloseStream),
        _ => None,
    }
}

async fn reject(session: actix_ws::Session, record: &impl Fn(Received), what: String) {
    record(Received::Rejected(what));
    let reason = CloseReason {
        code: CloseCode::Policy,
        description: Some("DATA-0000".into()),
    };
    let _ = session.close(Some(reason)).await;
}

/// How settled a `Results` message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finality {
    /// An interim hypothesis (`is_final: false`).
    Interim,
    /// A settled segment (`is_final: true`).
    Final,
    /// A settled segment after which endpointing heard silence (`speech_final: true`).
    SpeechFinal,
}

/// A `Results` message as Deepgram writes it, for `transcript` (words timed 0.3 s apart).
pub fn results(transcript: &str, finality: Finality) -> Value {
    let words: Vec<Value> = transcript
        .split_whitespace()
        .enumerate()
        .map(|(i, word)| {
            let start = 0.3 * i as f64;
            json!({
                "word": word.to_lowercase().trim_matches(|c: char| !c.is_alphanumeric()),
                "start": start,
                "end": start + 0.25,
                "confidence": 0.97,
                "punctuated_word": word,
            })
        })
        .collect();
    json!({
        "type": "Results",
        "channel_index": [0, 1],
        "duration": 0.3 * words.len() as f64,
        "start": 0.0,
        "is_final": finality != Finality::Interim,
        "speech_final": finality == Finality::SpeechFinal,
        "channel": {
            "alternatives": [{
                "transcript": transcript,
                "confidence": if transcript.is_empty() { 0.0 } else { 0.97 },
                "words": words,
            }]
        },
        "metadata": {
            "request_id": REQUEST_ID,
            "model_info": {"name": "general-nova-3", "version": "2024-12-20.0", "arch": "nova-3"},
            "model_uuid": "3b3aabe4-608a-46ac-9585-7960a25daf1a",
        },
        "from_finalize": false,
    })
}

/// `SpeechStarted`, as sent with `vad_events=true`.
pub fn speech_started() -> Value {
    json!({"type": "SpeechStarted", "channel": [0, 1], "timestamp": 0.42})
}

/// `UtteranceEnd`, as sent with `utterance_end_ms`.
pub fn utterance_end() -> Value {
    json!({"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": 2.16})
}

/// `Metadata`, as sent when a stream closes.
pub fn metadata() -> Value {
    json!({
        "type": "Metadata",
        "transaction_key": "deprecated",
        "request_id": REQUEST_ID,
        "sha256": "5324da68ede209a16ac69a38e8cd29cee4d754434a041166cda3a1f5e0b24566",
        "created": "2026-11-25T18:44:39.000Z",
        "duration": 2.4,
        "channels": 1,
        "models": ["3b3aabe4-608a-46ac-9585-7960a25daf1a"],
        "model_info": {
            "3b3aabe4-608a-46ac-9585-7960a25daf1a": {
                "name": "general-nova-3", "version": "2024-12-20.0", "arch": "nova-3"
            }
        },
    })
}
