//! A fake Cartesia TTS WebSocket on 127.0.0.1, as strict as the real one about what we send:
//! `GET /tts/websocket` with a `Cartesia-Version` header (400 without) and the key in `X-API-Key`
//! (401 otherwise); text messages only, each a generation request of the documented shape (model,
//! transcript, voice by id, language, context id, `continue`, output format) or a cancel.
//!
//! It answers a clause with its audio, in two `chunk` messages of base64 (with a `timestamps`
//! message between them when the request asks for timestamps: word ends in seconds on the
//! context's timeline, which runs on across the context's clauses), then `flush_done` when the
//! request flushes and `done` when it closes its context; a test may script it to refuse, stay
//! silent, close, answer an error, or send garbage instead.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use actix_web::dev::ServerHandle;
use actix_web::web;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
use actix_ws::Message;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use futures_util::StreamExt as _;
use serde_json::{json, Value};

/// The key the fake accepts.
pub const KEY: &str = "sk_car_fake_7e21a0";

/// How the fake behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Answers every clause.
    Normal,
    /// Refuses the upgrade with this status.
    Refuse(u16),
    /// Sends the first chunk of a clause, then nothing more.
    OneChunkThenSilence,
    /// Never answers a clause.
    Silent,
    /// Closes the socket when a clause arrives.
    CloseOnClause,
    /// Answers a clause with an `error` message.
    ErrorAnswer,
    /// Answers a clause with text that is not JSON.
    Garbage,
}

/// What the fake saw.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// Upgrades accepted.
    pub connections: usize,
    /// The headers of the last upgrade: (version, key).
    pub headers: Option<(String, String)>,
    /// Every message received, parsed.
    pub messages: Vec<Value>,
}

/// The running fake.
pub struct Fake {
    /// `ws://127.0.0.1:PORT`.
    pub base_url: String,
    seen: Arc<Mutex<Seen>>,
    mode: Arc<Mutex<Mode>>,
    server: ServerHandle,
}

/// Bytes of audio per word: 30 ms, a frame and a half.
pub const WORD_BYTES: usize = 240;

/// The audio the fake makes of `text`: [`WORD_BYTES`] per word, each word's bytes its length.
pub fn audio_of(text: &str) -> Vec<u8> {
    text.split_whitespace()
        .flat_map(|word| std::iter::repeat_n(word.len() as u8, WORD_BYTES))
        .collect()
}

impl Fake {
    /// Starts the fake in `mode`.
    pub async fn start(mode: Mode) -> Self {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let mode = Arc::new(Mutex::new(mode));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = web::Data::new((seen.clone(), mode.clone()));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .route("/tts/websocket", web::get().to(upgrade))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        actix_rt::spawn(server);
        Self {
            base_url: format!("ws://127.0.0.1:{port}"),
            seen,
            mode,
            server: handle,
        }
    }

    /// What it saw so far.
    pub fn seen(&self) -> Seen {
        self.seen.lock().unwrap().clone()
    }

    /// Changes how it behaves from now on.
    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// Stops the fake.
    pub async fn stop(self) {
        self.server.stop(false).await;
    }
}

type State = web::Data<(Arc<Mutex<Seen>>, Arc<Mutex<Mode>>)>;

async fn upgrade(
    request: HttpRequest,
    body: web::Payload,
    state: State,
) -> Result<HttpResponse, actix_web::Error> {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (seen, mode) = (state.0.clone(), state.1.clone());
    if let Mode::Refuse(status) = *mode.lock().unwrap() {
        let status = actix_web::http::StatusCode::from_u16(status).unwrap();
        return Ok(HttpResponse::build(status).json(json!({"error": "refused by the fake"})));
    }
    let Some(version) = header("cartesia-version") else {
        return Ok(HttpResponse::BadRequest().json(json!({"error": "Cartesia-Version required"})));
    };
    if header("x-api-key").as_deref() != Some(KEY) {
        return Ok(HttpResponse::Unauthorized().json(json!({"error": "Invalid API key"})));
    }
    let (response, mut session, mut messages) = actix_ws::handle(&request, body)?;
    {
        let mut seen = seen.lock().unwrap();
        seen.connections += 1;
        seen.headers = Some((version, header("x-api-key").unwrap_or_default()));
    }
    actix_rt::spawn(async move {
        // Seconds of audio each context has given: its timestamps' timeline.
        let mut timelines: HashMap<String, f64> = HashMap::new();
        while let Some(Ok(message)) = messages.next().await {
            let text = match message {
                Message::Text(text) => text,
                Message::Close(_) => break,
                Message::Ping(bytes) => {
                    let _ = session.pong(&bytes).await;
                    continue;
                }
                _ => {
                    let _ = session.close(None).await;
                    return;
                }
            };
            let request: Value = serde_json::from_str(&text).expect("we send JSON");
            seen.lock().unwrap().messages.push(request.clone());
            if request.get("cancel").is_some() {
                assert_eq!(request["cancel"], true);
                assert!(request["context_id"].is_string());
                continue;
            }
            check_generation(&request);
            let context = request["context_id"].as_str().unwrap().to_owned();
            let transcript = request["transcript"].as_str().unwrap();
            let current = *mode.lock().unwrap();
            let answers: Vec<Value> = match current {
                Mode::Silent => continue,
                Mode::CloseOnClause => {
                    let _ = session.close(None).await;
                    return;
                }
                Mode::Garbage => {
                    let _ = session.text("<html>bad gateway</html>").await;
                    continue;
                }
                Mode::ErrorAnswer => vec![json!({
                    "type": "error", "done": true, "title": "Invalid voice",
                    "message": "The voice is not valid.", "error_code": "voice_not_found",
                    "status_code": 400, "context_id": context
                })],
                Mode::Normal | Mode::OneChunkThenSilence | Mode::Refuse(_) => {
                    let audio = audio_of(transcript);
                    let (first, second) = audio.split_at(audio.len() / 2);
                    let mut answers: Vec<Value> = [first, second]
                        .iter()
                        .filter(|part| !part.is_empty())
                        .map(|part| {
                            json!({"type": "chunk", "data": STANDARD.encode(part),
                            "done": false, "status_code": 206, "step_time": 12,
                            "context_id": context})
                        })
                        .collect();
                    let timeline = timelines.entry(context.clone()).or_default();
                    let words = transcript.split_whitespace().count();
                    let word_seconds = WORD_BYTES as f64 / 8_000.0;
                    let ends: Vec<f64> = (1..=words)
                        .map(|word| *timeline + word as f64 * word_seconds)
                        .collect();
                    *timeline += words as f64 * word_seconds;
                    if request["add_timestamps"] == true && !ends.is_empty() {
                        let starts: Vec<f64> = ends.iter().map(|end| end - word_seconds).collect();
                        let names: Vec<&str> = transcript.split_whitespace().collect();
                        answers.insert(
                            1,
                            json!({"type": "timestamps", "done": false,
                            "status_code": 206, "context_id": context,
                            "word_timestamps": {"words": names, "start": starts, "end": ends}}),
                        );
                    }
                    if current == Mode::OneChunkThenSilence {
                        answers.truncate(1);
                    } else {
                        if request["flush"] == true {
                            answers.push(json!({"type": "flush_done", "done": false,
                                "flush_done": true, "flush_id": 1, "status_code": 206,
                                "context_id": context}));
                        }
                        if request["continue"] == false {
                            answers.push(json!({"type": "done", "done": true,
                                "status_code": 206, "context_id": context}));
                        }
                    }
                    answers
                }
            };
            for answer in answers {
                if session.text(answer.to_string()).await.is_err() {
                    return;
                }
            }
        }
    });
    Ok(response)
}

/// A generation request as the API documents it; the test fails otherwise.
fn check_generation(request: &Value) {
    for field in ["model_id", "transcript", "language", "context_id"] {
        assert!(request[field].is_string(), "{field}: {request}");
    }
    assert_eq!(request["voice"]["mode"], "id", "{request}");
    assert!(request["voice"]["id"].is_string(), "{request}");
    assert!(request["continue"].is_boolean(), "{request}");
    assert!(request["add_timestamps"].is_boolean(), "{request}");
    assert_eq!(
        request["output_format"],
        json!({"container": "raw", "encoding": "pcm_mulaw", "sample_rate": 8000}),
        "Twilio's format, no transcoding"
    );
}
