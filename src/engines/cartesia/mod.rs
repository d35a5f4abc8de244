//! Cartesia streaming synthesis: one WebSocket per call (`{base}/tts/websocket`, headers
//! `Cartesia-Version` and `X-API-Key`), raw 8 kHz mu-law out (Twilio's format: no transcoding; the
//! Synthesizer re-frames chunks into 160-byte frames).
//!
//! Each utterance is one context (`{call_sid}-u{n}`); each clause is sent as the reply streams,
//! with `continue: true` (the voice keeps its prosody across clauses) and `flush: true`, so the
//! clause's audio ends at its `flush_done`. The utterance's end closes the context
//! (`continue: false`); a clause dropped on barge-in cancels it (`cancel: true`). Word timestamps
//! (`add_timestamps`) go with the audio, so what the caller heard of a clause cut short is counted
//! in words. Cartesia expires
//! a context a second after its last audio: a clause that comes later (a slow reply) starts a new
//! context for the rest of the utterance (`{call_sid}-u{n}-{part}`).
//!
//! - [`protocol`]: the messages.
//! - [`connection`]: the call's socket task: connect (eagerly, at the call's start), route answers
//!   to the clause waiting for them, stall and fault detection, reconnection with backoff.

pub mod connection;
pub mod protocol;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream;
use phone_agent_actors::engines::{
    CallContext, EngineError, EngineStream, Synthesized, TextToSpeech, TtsSession,
};
use phone_agent_actors::ids::UtteranceId;
use phone_agent_actors::runtime::metrics::CallMetrics;
use tokio::sync::mpsc;

use crate::redact::Secret;
use connection::Command;

/// The engine's name in logs and metrics.
pub const ENGINE: &str = "cartesia";

/// Cartesia's API.
pub const DEFAULT_BASE_URL: &str = "wss://api.cartesia.ai";

/// The API version we speak (the `Cartesia-Version` header).
pub const DEFAULT_VERSION: &str = "2025-04-16";

/// The default model.
pub const DEFAULT_MODEL: &str = "sonic-2";

/// Where Cartesia is and how to use it (`CARTESIA_*`).
#[derive(Debug, Clone)]
pub struct CartesiaSettings {
    /// `wss://api.cartesia.ai`, or a test server (`CARTESIA_BASE_URL`).
    pub base_url: String,
    /// The key (`CARTESIA_API_KEY`).
    pub api_key: Secret,
    /// `Cartesia-Version` (`CARTESIA_VERSION`).
    pub version: String,
    /// The model (`CARTESIA_MODEL`).
    pub model: String,
    /// The voice's id (`CARTESIA_VOICE_ID`).
    pub voice_id: String,
    /// The language (`CARTESIA_LANGUAGE`).
    pub language: String,
    /// Connecting, the TLS handshake and the upgrade, together (`CARTESIA_CONNECT_TIMEOUT`).
    pub connect_timeout: Duration,
    /// Longest silence of the socket while a clause waits for audio (`CARTESIA_STALL_TIMEOUT`).
    pub stall_timeout: Duration,
    /// First wait before reconnecting; doubles per failure (`CARTESIA_RECONNECT_BACKOFF`).
    pub reconnect_backoff: Duration,
    /// Longest wait before reconnecting.
    pub reconnect_max_backoff: Duration,
    /// A context idle this long after its last audio gets no more clauses: Cartesia expires a
    /// context a second after its last audio, so a slow reply's next clause starts a new one.
    pub context_idle: Duration,
}

impl CartesiaSettings {
    /// Settings for `voice_id` with `api_key`, and the defaults.
    pub fn new(api_key: Secret, voice_id: &str) -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            api_key,
            version: DEFAULT_VERSION.to_owned(),
            model: DEFAULT_MODEL.to_owned(),
            voice_id: voice_id.to_owned(),
            language: "en".to_owned(),
            connect_timeout: Duration::from_secs(3),
            stall_timeout: Duration::from_secs(1),
            reconnect_backoff: Duration::from_millis(250),
            reconnect_max_backoff: Duration::from_secs(5),
            context_idle: Duration::from_millis(800),
        }
    }
}

/// Cartesia synthesis; one socket per call.
pub struct CartesiaTts {
    settings: Arc<CartesiaSettings>,
    metrics: Arc<CallMetrics>,
}

impl CartesiaTts {
    /// The engine; faults are counted in `metrics`.
    pub fn new(settings: CartesiaSettings, metrics: Arc<CallMetrics>) -> Self {
        Self {
            settings: Arc::new(settings),
            metrics,
        }
    }
}

impl TextToSpeech for CartesiaTts {
    fn name(&self) -> &'static str {
        ENGINE
    }

    fn open(&self, call: &CallContext) -> Result<Box<dyn TtsSession>, EngineError> {
        let call_sid: Arc<str> = Arc::from(call.call_sid.as_str());
        let commands = connection::start(
            self.settings.clone(),
            self.metrics.clone(),
            call_sid.clone(),
        );
        Ok(Box::new(CartesiaSession {
            commands,
            call_sid,
            context_idle: self.settings.context_idle,
            current: None,
        }))
    }
}

/// One call's synthesis over its socket.
struct CartesiaSession {
    commands: mpsc::UnboundedSender<Command>,
    call_sid: Arc<str>,
    /// A context idle this long after its last audio is not continued (Cartesia expires them).
    context_idle: Duration,
    /// The context of the utterance being spoken.
    current: Option<Context>,
}

/// A Cartesia context: an utterance, or the part of it after its earlier context expired.
struct Context {
    utterance: UtteranceId,
    part: u32,
    id: Arc<str>,
    /// When its last audio arrived.
    last_audio: Arc<Mutex<Instant>>,
}

impl CartesiaSession {
    /// The context a clause of `utterance` goes to at `now`, and whether it continues it: the
    /// utterance's, unless it has been idle too long (then a new part of the utterance).
    fn context_for(&mut self, utterance: UtteranceId, now: Instant) -> (&Context, bool) {
        let part = match &self.current {
            Some(context) if context.utterance == utterance => {
                let idle = now.saturating_duration_since(*lock(&context.last_audio));
                if idle <= self.context_idle {
                    return (self.current.as_ref().expect("matched above"), true);
                }
                context.part + 1
            }
            _ => 0,
        };
        let id = match part {
            0 => format!("{}-u{}", self.call_sid, utterance.0),
            part => format!("{}-u{}-{part}", self.call_sid, utterance.0),
        };
        let context = self.current.insert(Context {
            utterance,
            part,
            id: Arc::from(id),
            last_audio: Arc::new(Mutex::new(now)),
        });
        (context, false)
    }
}

fn lock(at: &Mutex<Instant>) -> std::sync::MutexGuard<'_, Instant> {
    at.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl TtsSession for CartesiaSession {
    fn synthesize(&mut self, utterance: UtteranceId, text: &str) -> EngineStream<Synthesized> {
        let (current, continues) = self.context_for(utterance, Instant::now());
        let (context, last_audio) = (current.id.clone(), current.last_audio.clone());
        let (audio, chunks) = mpsc::channel(64);
        // Cartesia joins a context's transcripts as sent: clauses (trimmed at their boundaries)
        // need the space between them back.
        let text = if continues {
            format!(" {text}")
        } else {
            text.to_owned()
        };
        let sent = self.commands.send(Command::Clause {
            context: context.clone(),
            text,
            audio,
        });
        if sent.is_err() {
            return Box::pin(stream::once(async {
                Err(EngineError::Connection {
                    engine: ENGINE,
                    message: "the call's connection task has stopped".into(),
                })
            }));
        }
        let clause = Clause {
            chunks,
            cancel: Some((self.commands.clone(), context)),
        };
        Box::pin(stream::unfold(clause, move |mut clause| {
            let last_audio = last_audio.clone();
            async move {
                let piece = clause.chunks.recv().await;
                match &piece {
                    Some(Ok(Synthesized::Audio(_))) => *lock(&last_audio) = Instant::now(),
                    // The clause's audio is complete: nothing to cancel.
                    None => clause.cancel = None,
                    Some(_) => {}
                }
                piece.map(|piece| (piece, clause))
            }
        }))
    }

    fn finish(&mut self, utterance: UtteranceId) {
        if let Some(context) = self.current.take_if(|c| c.utterance == utterance) {
            let _ = self.commands.send(Command::Close {
                context: context.id,
            });
        }
    }
}

/// A clause's audio as it arrives; dropped before its end (barge-in), it cancels the context.
struct Clause {
    chunks: mpsc::Receiver<Result<Synthesized, EngineError>>,
    cancel: Option<(mpsc::UnboundedSender<Command>, Arc<str>)>,
}

impl Drop for Clause {
    fn drop(&mut self) {
        if let Some((commands, context)) = self.cancel.take() {
            let _ = commands.send(Command::Cancel { context });
        }
    }
}
