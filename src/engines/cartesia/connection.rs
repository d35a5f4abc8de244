//! A call's Cartesia socket, run as a task on the call's arbiter (awc is `!Send`): clauses and
//! cancellations come in as commands; answers go to the clause waiting for its context. Word
//! timestamps count from the context's first audio; they are handed on relative to the start of
//! the waiting clause's audio (the audio of the context's earlier clauses is counted here).
//!
//! Faults (the connection cannot be opened, the upgrade is refused, the socket closes or breaks,
//! nothing arrives for the stall timeout while a clause waits, an `error` answer, a malformed
//! message) fail the waiting clause at once with an [`EngineError`] (the call's failover answers
//! it), are logged once and counted; the socket is dropped and reopened for a later clause after a
//! jittered, capped backoff. Clauses that arrive while the backoff runs fail at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_codec::Framed;
use awc::ws::{Codec, Frame, Message};
use awc::BoxedSocket;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use futures_util::{SinkExt as _, StreamExt as _};
use phone_agent_actors::audio::TELEPHONY_SAMPLE_RATE_HZ;
use phone_agent_actors::engines::{EngineError, Synthesized};
use phone_agent_actors::runtime::metrics::CallMetrics;
use ring::rand::SystemRandom;
use tokio::sync::mpsc;

use super::protocol::{Answer, Cancel, Generate, Voice, TWILIO_FORMAT};
use super::{CartesiaSettings, ENGINE};
use crate::engines::reconnect::Reconnect;
use crate::outbound;

/// Largest message accepted from Cartesia (a chunk is a few KiB of base64).
const MAX_FRAME_BYTES: usize = 1 << 20;

/// What a session asks of its connection.
#[derive(Debug)]
pub enum Command {
    /// Synthesize a clause of `context`; its audio goes to `audio`, which closes at its end.
    Clause {
        /// The utterance's context.
        context: Arc<str>,
        /// The clause.
        text: String,
        /// Where its audio (and word timings) go.
        audio: Sender,
    },
    /// The utterance is over: close its context.
    Close {
        /// The context.
        context: Arc<str>,
    },
    /// Barge-in: stop the utterance.
    Cancel {
        /// The context.
        context: Arc<str>,
    },
}

/// A fault, named for logs and metrics; never carries the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum Fault {
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("upgrade refused: HTTP {0}")]
    Refused(u16),
    #[error("connection closed")]
    Closed,
    #[error("no data while waiting for audio")]
    Stalled,
    #[error("error answer: {0}")]
    Answered(String),
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("reconnecting after a fault")]
    BackingOff,
}

impl Fault {
    fn kind(&self) -> &'static str {
        match self {
            Self::Connect(_) => "connect",
            Self::Refused(401 | 403) => "auth",
            Self::Refused(429) => "rate_limited",
            Self::Refused(status) if *status >= 500 => "server_error",
            Self::Refused(_) => "refused",
            Self::Closed => "lost",
            Self::Stalled => "stall",
            Self::Answered(_) => "error",
            Self::Malformed(_) => "malformed",
            Self::BackingOff => "backing_off",
        }
    }

    fn engine_error(&self) -> EngineError {
        match self {
            // Not a new fault: the clause is for the fallback while the backoff runs.
            Self::BackingOff => EngineError::Unavailable {
                engine: ENGINE,
                message: self.to_string(),
            },
            Self::Malformed(_) | Self::Answered(_) => EngineError::Protocol {
                engine: ENGINE,
                message: self.to_string(),
            },
            _ => EngineError::Connection {
                engine: ENGINE,
                message: self.to_string(),
            },
        }
    }
}

/// Starts the call's connection task on the current arbiter; it ends when the session drops its
/// command sender.
pub fn start(
    settings: Arc<CartesiaSettings>,
    metrics: Arc<CallMetrics>,
    call_sid: Arc<str>,
) -> mpsc::UnboundedSender<Command> {
    let (commands, received) = mpsc::unbounded_channel();
    let reconnect = Reconnect::new(settings.reconnect_backoff, settings.reconnect_max_backoff);
    let connection = Connection {
        settings,
        metrics,
        call_sid,
        socket: None,
        waiting: None,
        spoken: None,
        reconnect,
        random: SystemRandom::new(),
    };
    actix_rt::spawn(connection.run(received));
    commands
}

type Socket = Framed<BoxedSocket, Codec>;

/// Where a clause's synthesis goes.
pub type Sender = mpsc::Sender<Result<Synthesized, EngineError>>;

/// The clause waiting for audio.
struct Waiting {
    context: Arc<str>,
    audio: Sender,
    /// Bytes of its context's audio before it.
    starts_at: u64,
}

impl Waiting {
    fn is(&self, context: &str) -> bool {
        *self.context == *context
    }
}

struct Connection {
    settings: Arc<CartesiaSettings>,
    metrics: Arc<CallMetrics>,
    call_sid: Arc<str>,
    socket: Option<Socket>,
    waiting: Option<Waiting>,
    /// The latest context with clauses, and the bytes of audio it has given.
    spoken: Option<(Arc<str>, u64)>,
    reconnect: Reconnect,
    random: SystemRandom,
}

impl Connection {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        // Open before the first clause: the caller should not wait for the handshake.
        if let Err(fault) = self.connect().await {
            self.fault(&fault);
        }
        let mut last_heard = Instant::now();
        loop {
            let stall_at = last_heard + self.settings.stall_timeout;
            let waiting = self.waiting.is_some();
            tokio::select! {
                command = commands.recv() => {
                    let Some(command) = command else { break };
                    if self.command(command).await {
                        last_heard = Instant::now();
                    }
                }
                frame = next_frame(&mut self.socket), if self.socket.is_some() => {
                    last_heard = Instant::now();
                    if let Err(fault) = self.frame(frame).await {
                        self.fault(&fault);
                    }
                }
                () = actix_rt::time::sleep_until(stall_at.into()), if waiting => {
                    self.fault(&Fault::Stalled);
                }
            }
        }
        if let Some(mut socket) = self.socket.take() {
            let _ = socket.close().await;
        }
    }

    /// Carries out `command`; `true` when a clause now waits for audio.
    async fn command(&mut self, command: Command) -> bool {
        match command {
            Command::Clause {
                context,
                text,
                audio,
            } => {
                if self.socket.is_none() {
                    if !self.reconnect.may_try(Instant::now()) {
                        let _ = audio.send(Err(Fault::BackingOff.engine_error())).await;
                        return false;
                    }
                    if let Err(fault) = self.connect().await {
                        let _ = audio.send(Err(fault.engine_error())).await;
                        self.fault(&fault);
                        return false;
                    }
                }
                let starts_at = match &self.spoken {
                    Some((spoken, bytes)) if *spoken == context => *bytes,
                    _ => {
                        self.spoken = Some((context.clone(), 0));
                        0
                    }
                };
                self.waiting = Some(Waiting {
                    context: context.clone(),
                    audio,
                    starts_at,
                });
                let sent = self.send(&self.generate(&context, &text, true)).await;
                if let Err(fault) = sent {
                    self.fault(&fault);
                    return false;
                }
                true
            }
            Command::Close { context } => {
                let _ = self.send(&self.generate(&context, "", false)).await;
                false
            }
            Command::Cancel { context } => {
                if self.waiting.as_ref().is_some_and(|w| w.is(&context)) {
                    self.waiting = None;
                }
                let cancel = Cancel {
                    context_id: &context,
                    cancel: true,
                };
                let _ = self
                    .send(&serde_json::to_string(&cancel).unwrap_or_default())
                    .await;
                false
            }
        }
    }

    /// The request for a clause of `context` (`continues`: more follows), or its close.
    fn generate(&self, context: &str, text: &str, continues: bool) -> String {
        let settings = &self.settings;
        let request = Generate {
            model_id: &settings.model,
            transcript: text,
            voice: Voice {
                mode: "id",
                id: &settings.voice_id,
            },
            language: &settings.language,
            context_id: context,
            continues,
            flush: continues,
            output_format: TWILIO_FORMAT,
            add_timestamps: true,
        };
        serde_json::to_string(&request).expect("a request is JSON")
    }

    async fn connect(&mut self) -> Result<(), Fault> {
        let settings = &self.settings;
        let connecting = outbound::client(settings.connect_timeout)
            .ws(format!("{}/tts/websocket", settings.base_url))
            .header("Cartesia-Version", settings.version.as_str())
            .header("X-API-Key", settings.api_key.expose())
            .max_frame_size(MAX_FRAME_BYTES)
            .connect();
        let connected = tokio::time::timeout(settings.connect_timeout, connecting)
            .await
            .map_err(|_| Fault::Connect("timed out".into()))?;
        match connected {
            Ok((_, socket)) => {
                self.socket = Some(socket.into_map_codec(|codec| codec.max_size(MAX_FRAME_BYTES)));
                self.reconnect.succeeded();
                Ok(())
            }
            Err(awc::error::WsClientError::InvalidResponseStatus(status)) => {
                Err(Fault::Refused(status.as_u16()))
            }
            Err(error) => Err(Fault::Connect(error.to_string())),
        }
    }

    async fn send(&mut self, text: &str) -> Result<(), Fault> {
        let socket = self.socket.as_mut().ok_or(Fault::Closed)?;
        socket
            .send(Message::Text(text.to_owned().into()))
            .await
            .map_err(|_| Fault::Closed)
    }

    /// Handles what the socket gave.
    async fn frame(
        &mut self,
        frame: Option<Result<Frame, awc::error::WsProtocolError>>,
    ) -> Result<(), Fault> {
        let text = match frame {
            Some(Ok(Frame::Text(text))) => text,
            Some(Ok(Frame::Ping(payload))) => {
                if let Some(socket) = self.socket.as_mut() {
                    let _ = socket.send(Message::Pong(payload)).await;
                }
                return Ok(());
            }
            Some(Ok(Frame::Pong(_))) => return Ok(()),
            Some(Ok(Frame::Binary(_) | Frame::Continuation(_))) => {
                return Err(Fault::Malformed("a binary frame".into()))
            }
            Some(Ok(Frame::Close(_))) | None => return Err(Fault::Closed),
            Some(Err(error)) => return Err(Fault::Malformed(error.to_string())),
        };
        let answer: Answer = serde_json::from_slice(&text)
            .map_err(|error| Fault::Malformed(format!("not a known answer: {error}")))?;
        match answer {
            Answer::Chunk { context_id, data } => {
                let audio = STANDARD
                    .decode(data.as_bytes())
                    .map_err(|_| Fault::Malformed("chunk data is not base64".into()))?;
                if let Some((spoken, bytes)) = &mut self.spoken {
                    if **spoken == *context_id {
                        *bytes += audio.len() as u64;
                    }
                }
                if let Some(waiting) = self.waiting.as_ref().filter(|w| w.is(&context_id)) {
                    let _ = waiting.audio.send(Ok(Synthesized::Audio(audio))).await;
                }
            }
            Answer::Timestamps {
                context_id,
                word_timestamps,
            } => {
                if let Some(waiting) = self.waiting.as_ref().filter(|w| w.is(&context_id)) {
                    let ends = clause_word_ends(&word_timestamps.end, waiting.starts_at);
                    if !ends.is_empty() {
                        let _ = waiting.audio.send(Ok(Synthesized::WordEnds(ends))).await;
                    }
                }
            }
            Answer::FlushDone { context_id } | Answer::Done { context_id } => {
                if self.waiting.as_ref().is_some_and(|w| w.is(&context_id)) {
                    self.waiting = None;
                }
            }
            Answer::Error {
                context_id,
                title,
                error_code,
                status_code,
            } => {
                let concerns_waiting = match (&context_id, &self.waiting) {
                    (Some(id), Some(waiting)) => waiting.is(id),
                    (None, Some(_)) => true,
                    _ => false,
                };
                if concerns_waiting {
                    let what = error_code.or(title).unwrap_or_default();
                    let status = status_code.map(|s| format!(" ({s})")).unwrap_or_default();
                    return Err(Fault::Answered(format!("{what}{status}")));
                }
            }
            Answer::Other => {}
        }
        Ok(())
    }

    /// Fails the waiting clause, logs and counts the fault, and drops the socket (except for an
    /// error answer about one clause, after which the socket still serves others).
    fn fault(&mut self, fault: &Fault) {
        if *fault == Fault::Closed && self.waiting.is_none() {
            // An idle socket closed by Cartesia (it does after minutes without use): reopened for
            // the next clause, no fault.
            tracing::debug!(engine = ENGINE, call_sid = %self.call_sid, "idle socket closed");
            self.socket = None;
            return;
        }
        if let Some(waiting) = self.waiting.take() {
            let _ = waiting.audio.try_send(Err(fault.engine_error()));
        }
        if !matches!(fault, Fault::Answered(_)) {
            self.socket = None;
            self.reconnect.failed(Instant::now(), &self.random);
        }
        self.metrics.engine_fault(ENGINE, fault.kind());
        tracing::warn!(
            engine = ENGINE,
            call_sid = %self.call_sid,
            kind = fault.kind(),
            %fault,
            failures = self.reconnect.failures(),
            "speech synthesis provider fault"
        );
    }
}

/// Word ends on the context's timeline (seconds), as offsets into the clause whose audio starts
/// `starts_at` bytes into the context; the words of earlier clauses are left out.
fn clause_word_ends(ends: &[f64], starts_at: u64) -> Vec<Duration> {
    let start = starts_at as f64 / f64::from(TELEPHONY_SAMPLE_RATE_HZ);
    ends.iter()
        .map(|end| end - start)
        .filter(|end| end.is_finite() && *end >= 0.0)
        .map(Duration::from_secs_f64)
        .collect()
}

async fn next_frame(
    socket: &mut Option<Socket>,
) -> Option<Result<Frame, awc::error::WsProtocolError>> {
    match socket {
        Some(socket) => socket.next().await,
        None => std::future::pending().await,
    }
}
