//! One Deepgram stream: the task that owns the WebSocket for one recognition session.
//!
//! The task runs on the call's arbiter (awc's socket is not `Send`) and talks to the
//! Transcriber over two channels, so the session it hands out is `Send`:
//!
//! ```text
//! audio  (mpsc, AudioFrame) --> task --> binary messages, KeepAlive     --> Deepgram
//! events (mpsc, Result<TranscriptEvent, EngineError>) <-- task <-- text messages <-- Deepgram
//! ```
//!
//! The task ends when the Transcriber drops either end (`CloseStream`, then the socket closes) or
//! on a fault, which it reports as the last item of the event stream. It never writes the API key
//! anywhere but the `Authorization` header, marked sensitive.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_codec::Framed;
use actix_web::web::Bytes;
use awc::error::{SendRequestError, WsClientError, WsProtocolError};
use awc::http::header::{HeaderValue, AUTHORIZATION};
use awc::ws::{CloseCode, CloseReason, Codec, Frame, Message};
use awc::BoxedSocket;
use futures_util::{stream, SinkExt as _, StreamExt as _};
use phone_agent_actors::audio::AudioFrame;
use phone_agent_actors::engines::{CallContext, EngineError, SttSession, TranscriptEvent};
use tokio::sync::mpsc;
use tracing::Instrument as _;

use super::liveness::{Due, Liveness};
use super::protocol::{self, ServerMessage, CLOSE_STREAM, KEEP_ALIVE};
use super::turns::Turns;
use super::{DeepgramSettings, NAME};
use crate::outbound;

/// Frames buffered between the Transcriber and the socket (1 s). While the stream connects they
/// wait here; when it is full, the Transcriber holds further frames itself, in order.
const AUDIO_BUFFER_FRAMES: usize = 50;

/// Events buffered for the Transcriber. Deepgram sends a few a second; when full, the task stops
/// reading the socket until the Transcriber catches up.
const EVENT_BUFFER: usize = 32;

/// How long the goodbye (`CloseStream`, Deepgram's close) may take before the socket is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

type Socket = Framed<BoxedSocket, Codec>;
type EventSender = mpsc::Sender<Result<TranscriptEvent, EngineError>>;

/// Starts a session for `call`: the task connects in the background.
pub(super) fn open(
    settings: &Arc<DeepgramSettings>,
    call: &CallContext,
) -> Result<SttSession, EngineError> {
    let token = format!("Token {}", settings.api_key.expose());
    let unusable = |_| EngineError::Unavailable {
        engine: NAME,
        message: "the API key is not a valid header value".into(),
    };
    let mut authorization = HeaderValue::try_from(token).map_err(unusable)?;
    authorization.set_sensitive(true);
    let (audio, frames) = mpsc::channel(AUDIO_BUFFER_FRAMES);
    let (events, received) = mpsc::channel(EVENT_BUFFER);
    let span = tracing::debug_span!(
        "deepgram",
        call_sid = %call.call_sid,
        stream_sid = %call.stream_sid,
    );
    actix_rt::spawn(run(settings.clone(), authorization, frames, events).instrument(span));
    let events = stream::unfold(received, |mut received| async move {
        let item = received.recv().await?;
        Some((item, received))
    });
    Ok(SttSession {
        audio,
        events: Box::pin(events),
    })
}

/// The session task: connect, stream, and report how it ended.
async fn run(
    settings: Arc<DeepgramSettings>,
    authorization: HeaderValue,
    frames: mpsc::Receiver<AudioFrame>,
    events: EventSender,
) {
    let socket = tokio::select! {
        socket = connect(&settings, authorization) => socket,
        // The Transcriber is gone before the stream opened: nothing to say goodbye to.
        () = events.closed() => return,
    };
    let outcome = match socket {
        Ok(socket) => {
            let liveness = Liveness::new(
                settings.keepalive_interval,
                settings.stall_timeout,
                Instant::now(),
            );
            let session = Session {
                socket,
                frames,
                events: events.clone(),
                liveness,
                turns: Turns::default(),
                stall_timeout: settings.stall_timeout,
            };
            session.stream().await
        }
        Err(error) => Err(error),
    };
    match outcome {
        Ok(()) => tracing::debug!("stream closed"),
        Err(error) => {
            tracing::debug!(%error, "stream failed");
            // Nobody may be listening any more; then the error matters to nobody.
            let _ = events.send(Err(error)).await;
        }
    }
}

/// Opens the WebSocket, the whole upgrade bounded by the connect timeout.
async fn connect(
    settings: &DeepgramSettings,
    authorization: HeaderValue,
) -> Result<Socket, EngineError> {
    let upgrade = outbound::client(settings.connect_timeout)
        .ws(settings.listen_url())
        .set_header(AUTHORIZATION, authorization)
        .connect();
    let (response, socket) = actix_rt::time::timeout(settings.connect_timeout, upgrade)
        .await
        .map_err(|_| {
            connection(format!(
                "no answer to the upgrade within {} ms",
                settings.connect_timeout.as_millis()
            ))
        })?
        .map_err(refused)?;
    let request_id = response
        .headers()
        .get("dg-request-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    tracing::debug!(request_id, "stream open");
    Ok(socket)
}

/// Why the upgrade failed, in words without the request (its header holds the key).
fn refused(error: WsClientError) -> EngineError {
    let message = match error {
        WsClientError::InvalidResponseStatus(status) => {
            let hint = match status.as_u16() {
                401 | 403 => " (the API key was refused)",
                429 => " (too many requests or streams)",
                _ => "",
            };
            format!("the upgrade was refused: HTTP {status}{hint}")
        }
        WsClientError::SendRequest(SendRequestError::Connect(error)) => {
            format!("could not connect: {error}")
        }
        other => format!("the upgrade failed: {other}"),
    };
    connection(message)
}

fn connection(message: String) -> EngineError {
    EngineError::Connection {
        engine: NAME,
        message,
    }
}

fn protocol_error(message: String) -> EngineError {
    EngineError::Protocol {
        engine: NAME,
        message,
    }
}

/// What woke the session.
enum Woke {
    Frame(Option<AudioFrame>),
    Message(Option<Result<Frame, WsProtocolError>>),
    Timer,
    Dropped,
}

/// An open stream.
struct Session {
    socket: Socket,
    frames: mpsc::Receiver<AudioFrame>,
    events: EventSender,
    liveness: Liveness,
    turns: Turns,
    stall_timeout: Duration,
}

impl Session {
    /// Streams until the Transcriber lets go (`Ok`) or the stream fails.
    async fn stream(mut self) -> Result<(), EngineError> {
        let mut heard = Vec::new();
        loop {
            let deadline = tokio::time::Instant::from_std(self.liveness.next_deadline());
            let woke = tokio::select! {
                frame = self.frames.recv() => Woke::Frame(frame),
                message = self.socket.next() => Woke::Message(message),
                () = actix_rt::time::sleep_until(deadline) => Woke::Timer,
                () = self.events.closed() => Woke::Dropped,
            };
            match woke {
                Woke::Frame(Some(frame)) => {
                    let audio = Bytes::copy_from_slice(&frame.payload);
                    self.send(Message::Binary(audio)).await?;
                    self.liveness.audio_sent(Instant::now());
                }
                Woke::Frame(None) | Woke::Dropped => {
                    self.close().await;
                    return Ok(());
                }
                Woke::Message(message) => {
                    self.receive(message, &mut heard).await?;
                    for event in heard.drain(..) {
                        if self.events.send(Ok(event)).await.is_err() {
                            self.close().await;
                            return Ok(());
                        }
                    }
                }
                Woke::Timer => match self.liveness.due(Instant::now()) {
                    Some(Due::Stalled) => {
                        return Err(connection(format!(
                            "no message for {} ms while audio flowed",
                            self.stall_timeout.as_millis()
                        )));
                    }
                    Some(Due::KeepAlive) => {
                        self.send(Message::Text(KEEP_ALIVE.into())).await?;
                        self.liveness.keepalive_sent(Instant::now());
                    }
                    None => {}
                },
            }
        }
    }

    /// One message from Deepgram: its events onto `heard`, or why the stream is over.
    async fn receive(
        &mut self,
        message: Option<Result<Frame, WsProtocolError>>,
        heard: &mut Vec<TranscriptEvent>,
    ) -> Result<(), EngineError> {
        match message {
            Some(Ok(Frame::Text(text))) => {
                self.liveness.message_received();
                let message =
                    protocol::parse(&text).map_err(|error| protocol_error(error.to_string()))?;
                match &message {
                    ServerMessage::Other(kind) => {
                        tracing::debug!(message_type = %kind, "unknown message ignored");
                    }
                    message => self.turns.on(message, heard),
                }
                Ok(())
            }
            Some(Ok(Frame::Ping(payload))) => self.send(Message::Pong(payload)).await,
            Some(Ok(Frame::Pong(_))) => Ok(()),
            Some(Ok(Frame::Binary(_))) => Err(protocol_error("a binary message".into())),
            Some(Ok(Frame::Continuation(_))) => Err(protocol_error("a fragmented message".into())),
            Some(Ok(Frame::Close(reason))) => Err(connection(format!(
                "Deepgram closed the stream mid-call{}",
                close_detail(reason.as_ref())
            ))),
            Some(Err(error)) => Err(connection(format!("the stream broke: {error}"))),
            None => Err(connection("the connection closed mid-call".into())),
        }
    }

    async fn send(&mut self, message: Message) -> Result<(), EngineError> {
        self.socket
            .send(message)
            .await
            .map_err(|error| connection(format!("the stream broke while sending: {error}")))
    }

    /// Says goodbye as Deepgram asks: `CloseStream`; Deepgram flushes its last results (no
    /// longer wanted) and closes, and its close frame is answered, as the WebSocket protocol
    /// asks. Best effort and bounded: the session is over whatever the socket does.
    async fn close(mut self) {
        let goodbye = async {
            self.socket.send(Message::Text(CLOSE_STREAM.into())).await?;
            while let Some(frame) = self.socket.next().await {
                if let Frame::Close(_) = frame? {
                    let reply = Message::Close(Some(CloseCode::Normal.into()));
                    return self.socket.send(reply).await;
                }
            }
            Ok::<_, WsProtocolError>(())
        };
        let _ = actix_rt::time::timeout(CLOSE_TIMEOUT, goodbye).await;
    }
}

/// ` (1011 NET-0001)`: the close code, and the reason when it has the shape of one of Deepgram's
/// error codes (`NET-0001`, `DATA-0000`); other text is left out rather than echoed.
fn close_detail(reason: Option<&CloseReason>) -> String {
    let Some(reason) = reason else {
        return String::new();
    };
    let code = u16::from(reason.code);
    let is_error_code = |text: &str| {
        text.split_once('-').is_some_and(|(kind, number)| {
            (1..=8).contains(&kind.len())
                && kind.bytes().all(|b| b.is_ascii_uppercase())
                && (1..=8).contains(&number.len())
                && number.bytes().all(|b| b.is_ascii_digit())
        })
    };
    match reason
        .description
        .as_deref()
        .filter(|text| is_error_code(text))
    {
        Some(text) => format!(" ({code} {text})"),
        None => format!(" ({code})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(code: CloseCode, description: Option<&str>) -> CloseReason {
        CloseReason {
            code,
            description: description.map(str::to_owned),
        }
    }

    #[test]
    fn a_deepgram_close_names_its_code_and_only_error_codes_as_reasons() {
        assert_eq!(
            close_detail(Some(&reason(CloseCode::Error, Some("NET-0001")))),
            " (1011 NET-0001)"
        );
        assert_eq!(
            close_detail(Some(&reason(CloseCode::Protocol, Some("DATA-0000")))),
            " (1002 DATA-0000)"
        );
        assert_eq!(
            close_detail(Some(&reason(CloseCode::Policy, Some("Token abc-123")))),
            " (1008)"
        );
        assert_eq!(
            close_detail(Some(&reason(CloseCode::Normal, None))),
            " (1000)"
        );
        assert_eq!(close_detail(None), "");
    }
}
