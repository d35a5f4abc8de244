//! MediaStream: the Twilio Media Streams protocol for one call, over an abstract socket.
//!
//! ```text
//! socket reader --SocketEvent--> MediaStream --StreamStarted/InboundAudio/MarkPlayed/KeyPressed/StreamEnded--> call
//! Synthesizer --PlayAudio--> MediaStream --SocketCommand (paced media, mark, clear, close)--> socket writer
//! MediaStream --PlaybackStarted--> call
//! CallActor --PausePlayback/ResumePlayback/ClearAudio/CloseStream--> MediaStream
//! ```
//!
//! It reports to whoever holds the [`MediaReports`] it was given (the CallActor, or a test's stub).
//!
//! It owns the protocol state (before `start`, streaming, ended), admits the `start`, decodes
//! inbound audio once into 20 ms [`AudioFrame`]s, and paces outbound audio with a [`Pacer`]. Every
//! protocol violation ends here as one WebSocket close with a code and a reason. It never sees HTTP:
//! the server pumps socket frames in as [`SocketEvent`]s and writes [`SocketCommand`]s out.

pub mod admission;
pub mod pacer;
pub mod wire;

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use actix::prelude::*;
use tokio::sync::mpsc;

use crate::audio::{AudioFrame, Framer, FRAME_BYTES};
use crate::drops::DropCounter;
use crate::engines::CallContext;
use crate::events::{
    CloseFrame, EndReason, InboundAudio, KeyPressed, MarkPlayed, PlaybackStarted, StreamEnded,
    StreamStarted,
};
use crate::ids::{MarkName, StreamSid, UtteranceId};
use crate::runtime::lateness::StreamClock;
use crate::runtime::registry::LiveActorGuard;
use admission::{Admission, AdmissionError, STREAM_TOKEN_PARAMETER};
use pacer::{Outgoing, Pacer};
use wire::Inbound;

/// A protocol violation by the peer; the stream is closed with [`ProtocolError::close_frame`].
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The text frame is not JSON.
    #[error("invalid JSON")]
    InvalidJson(#[source] serde_json::Error),
    /// JSON, but not the shape of the event it names.
    #[error("malformed {event:?} message")]
    Malformed {
        /// The `event` it named, if any.
        event: String,
        /// What serde found wrong.
        #[source]
        source: serde_json::Error,
    },
    /// An `event` Twilio does not send.
    #[error("unknown event {0:?}")]
    UnknownEvent(String),
    /// A binary frame; Twilio sends text only.
    #[error("binary frames are not supported")]
    BinaryFrame,
    /// A frame larger than the configured limit.
    #[error("message larger than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A `media` payload that is not base64.
    #[error("media payload is not base64")]
    InvalidPayload,
    /// `start.mediaFormat` other than 8 kHz mono mu-law.
    #[error("unsupported media format")]
    UnsupportedFormat,
    /// `media` before `start`.
    #[error("media before start")]
    MediaBeforeStart,
    /// A second `start` on the same socket.
    #[error("duplicate start")]
    DuplicateStart,
    /// A message naming another stream.
    #[error("streamSid does not match the stream")]
    StreamSidMismatch,
    /// No `start` within the start timeout.
    #[error("no start in time")]
    StartTimeout,
    /// `start` refused by admission.
    #[error("stream rejected: {0}")]
    Rejected(#[from] AdmissionError),
}

impl ProtocolError {
    /// The close frame this violation earns; reasons are fixed strings, never peer data.
    pub fn close_frame(&self) -> CloseFrame {
        let (code, reason) = match self {
            Self::InvalidJson(_) => (CloseFrame::INVALID_DATA, "invalid JSON"),
            Self::InvalidPayload => (CloseFrame::INVALID_DATA, "media payload is not base64"),
            Self::Malformed { .. } => (CloseFrame::POLICY, "malformed message"),
            Self::UnknownEvent(_) => (CloseFrame::POLICY, "unknown event"),
            Self::BinaryFrame => (CloseFrame::UNSUPPORTED, "binary frames are not supported"),
            Self::TooLarge { .. } => (CloseFrame::TOO_BIG, "message too large"),
            Self::UnsupportedFormat => (CloseFrame::POLICY, "unsupported media format"),
            Self::MediaBeforeStart => (CloseFrame::POLICY, "media before start"),
            Self::DuplicateStart => (CloseFrame::POLICY, "duplicate start"),
            Self::StreamSidMismatch => (CloseFrame::POLICY, "streamSid mismatch"),
            Self::StartTimeout => (CloseFrame::POLICY, "no start in time"),
            Self::Rejected(_) => (CloseFrame::POLICY, "stream rejected"),
        };
        CloseFrame::new(code, reason)
    }
}

/// What the socket reader saw; sent with `send().await` so reading waits for processing.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub enum SocketEvent {
    /// A text frame.
    Text(String),
    /// A binary frame (a violation).
    Binary,
    /// A frame over the size limit (a violation).
    TooLarge,
    /// The peer closed the socket or it failed.
    Closed,
}

/// What the socket writer must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketCommand {
    /// Send a text frame.
    Text(String),
    /// Send a ping (half-open detection).
    Ping,
    /// Answer the peer's ping.
    Pong(Vec<u8>),
    /// Close with this frame and stop writing.
    Close(CloseFrame),
}

/// Capacity of the channel to the socket writer: about 5 s of paced audio and its marks. Full means
/// the socket has stopped draining (a half-dead peer), and the call is closed.
pub const SOCKET_QUEUE_CAPACITY: usize = 512;

/// Most outbound audio queued for pacing: 2 minutes (about 1 MiB). Beyond it audio is dropped.
pub const MAX_QUEUED_FRAMES: usize = 6_000;

/// Timing and limits of a media stream.
#[derive(Debug, Clone, Copy)]
pub struct MediaSettings {
    /// Outbound audio is sent at most this far ahead of playback.
    pub playback_lead: Duration,
    /// The stream is closed after this long without an inbound message.
    pub idle_timeout: Duration,
    /// Pings go out this often.
    pub ping_interval: Duration,
    /// Largest inbound message accepted, in bytes.
    pub max_message_bytes: usize,
    /// A socket that has not sent an admissible `start` this long after opening is closed.
    pub start_timeout: Duration,
}

/// Audio for Twilio: whole frames followed by a mark naming the chunk.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct PlayAudio {
    /// Mark sent after the frames; echoed once they have played.
    pub mark: MarkName,
    /// The chunk's frames, in order.
    pub frames: Vec<[u8; FRAME_BYTES]>,
}

/// Barge-in, hard stage: send `clear` to Twilio and drop every queued outbound frame at once, and
/// any audio of utterances up to `through` that arrives later (a cancelled generation in flight).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ClearAudio {
    /// The newest utterance cleared.
    pub through: UtteranceId,
}

/// Barge-in, soft stage: send nothing more until [`ResumePlayback`] or [`ClearAudio`]; what Twilio
/// has buffered plays.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct PausePlayback;

/// The soft stage was not confirmed: go on sending from where playback paused.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ResumePlayback;

/// Close the socket with `frame`; sent by the CallActor when the call ends.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct CloseStream {
    /// Code and reason for the peer.
    pub frame: CloseFrame,
}

/// Where a MediaStream reports: one recipient per event it emits.
pub struct MediaReports {
    /// The `start` was admitted.
    pub started: Recipient<StreamStarted>,
    /// Caller audio, 20 ms at a time (`try_send`: dropped and counted when the mailbox is full).
    pub audio: Recipient<InboundAudio>,
    /// Twilio echoed a mark.
    pub marks: Recipient<MarkPlayed>,
    /// The caller pressed a key.
    pub keys: Recipient<KeyPressed>,
    /// The first frame of an utterance went to the socket.
    pub playback: Recipient<PlaybackStarted>,
    /// The stream is over.
    pub ended: Recipient<StreamEnded>,
}

impl MediaReports {
    /// Every report to `to`.
    pub fn to<A>(to: &Addr<A>) -> Self
    where
        A: Actor<Context = Context<A>>
            + Handler<StreamStarted>
            + Handler<InboundAudio>
            + Handler<MarkPlayed>
            + Handler<KeyPressed>
            + Handler<PlaybackStarted>
            + Handler<StreamEnded>,
    {
        Self {
            started: to.clone().recipient(),
            audio: to.clone().recipient(),
            marks: to.clone().recipient(),
            keys: to.clone().recipient(),
            playback: to.clone().recipient(),
            ended: to.clone().recipient(),
        }
    }
}

enum State {
    AwaitingStart,
    /// The `start` was admitted here; its claim among all servers is on its way, and what the
    /// peer sends meanwhile waits (up to [`MAX_HELD_MESSAGES`]).
    Claiming {
        call: CallContext,
        held: Vec<String>,
    },
    Streaming {
        stream_sid: StreamSid,
    },
    Ended,
}

/// Messages held while a stream's claim is on its way: 5 s of media, far more than a database
/// takes to answer; beyond it, caller audio from before the call began is dropped and counted.
const MAX_HELD_MESSAGES: usize = 250;

/// The media stream actor of one call.
pub struct MediaStream {
    reports: MediaReports,
    socket: mpsc::Sender<SocketCommand>,
    admission: Admission,
    settings: MediaSettings,
    state: State,
    inbound: Framer,
    inbound_frames: Vec<AudioFrame>,
    pacer: Pacer,
    outgoing: Vec<Outgoing>,
    pacer_timer: Option<SpawnHandle>,
    /// The utterance of each chunk queued in the pacer (a chunk leaves with its mark).
    queued_chunks: VecDeque<UtteranceId>,
    /// The utterance whose first frame was sent last ([`PlaybackStarted`] goes out once each).
    on_air: Option<UtteranceId>,
    /// Audio of utterances up to this one was cleared; late arrivals are dropped.
    cleared_through: Option<UtteranceId>,
    inbound_dropped: DropCounter,
    outbound_dropped: DropCounter,
    /// Twilio's timestamps against when frames are handled (the server's lateness).
    clock: StreamClock,
    /// Handling the messages held while the stream was claimed.
    replaying: bool,
    last_message: Instant,
    span: tracing::Span,
    _alive: LiveActorGuard,
}

impl MediaStream {
    /// A stream reporting to `reports`, writing to `socket`; `alive` counts it as a live actor of
    /// its call.
    pub(crate) fn new(
        reports: MediaReports,
        socket: mpsc::Sender<SocketCommand>,
        admission: Admission,
        settings: MediaSettings,
        span: tracing::Span,
        alive: LiveActorGuard,
    ) -> Self {
        Self {
            _alive: alive,
            reports,
            socket,
            admission,
            settings,
            state: State::AwaitingStart,
            inbound: Framer::new(),
            inbound_frames: Vec::new(),
            pacer: Pacer::new(settings.playback_lead),
            outgoing: Vec::new(),
            pacer_timer: None,
            queued_chunks: VecDeque::new(),
            on_air: None,
            cleared_through: None,
            inbound_dropped: DropCounter::default(),
            outbound_dropped: DropCounter::default(),
            clock: StreamClock::default(),
            replaying: false,
            last_message: Instant::now(),
            span,
        }
    }

    /// Handles one message read at `now` (wall-clock time, against which stream tokens expire).
    fn handle_text(
        &mut self,
        text: &str,
        now: SystemTime,
        ctx: &mut Context<Self>,
    ) -> Result<(), ProtocolError> {
        if text.len() > self.settings.max_message_bytes {
            return Err(ProtocolError::TooLarge {
                limit: self.settings.max_message_bytes,
            });
        }
        if let State::Claiming { held, .. } = &mut self.state {
            if held.len() < MAX_HELD_MESSAGES {
                held.push(text.to_owned());
            } else if let Some(dropped) = self.inbound_dropped.add(1) {
                tracing::warn!(parent: &self.span, dropped, "stream claim slow: inbound message dropped");
            }
            return Ok(());
        }
        match (wire::parse_inbound(text)?, &self.state) {
            (_, State::Ended | State::Claiming { .. }) => {}
            (Inbound::Connected, _) => {
                tracing::debug!(parent: &self.span, "media socket connected");
            }
            (Inbound::Start(start), State::AwaitingStart) => {
                let token = start
                    .custom_parameters
                    .get(STREAM_TOKEN_PARAMETER)
                    .map(String::as_str);
                let call_sid = self.admission.admit(&start.call_sid, token, now)?;
                self.span.record("call_sid", call_sid.as_str());
                self.span.record("stream_sid", start.stream_sid.as_str());
                let mut custom_parameters = start.custom_parameters;
                custom_parameters.remove(STREAM_TOKEN_PARAMETER);
                let claim = self.admission.claim(&call_sid);
                self.state = State::Claiming {
                    call: CallContext {
                        call_sid,
                        stream_sid: start.stream_sid,
                        custom_parameters,
                    },
                    held: Vec::new(),
                };
                ctx.spawn(claim.into_actor(self).map(|claimed, stream, ctx| {
                    stream.claimed(claimed, ctx);
                }));
            }
            (Inbound::Start(_), State::Streaming { .. }) => {
                return Err(ProtocolError::DuplicateStart)
            }
            (_, State::AwaitingStart) => return Err(ProtocolError::MediaBeforeStart),
            (
                Inbound::Media {
                    stream_sid,
                    payload,
                    timestamp_ms,
                },
                State::Streaming { stream_sid: ours },
            ) => {
                if stream_sid.is_some_and(|sid| sid != ours.as_str()) {
                    return Err(ProtocolError::StreamSidMismatch);
                }
                if let Some(timestamp_ms) = timestamp_ms {
                    let now = Instant::now();
                    let behind = self.clock.behind(now, timestamp_ms);
                    self.admission.live_calls().lateness().record(now, behind);
                }
                self.inbound.push(&payload, &mut self.inbound_frames);
                let (audio, span, drops) =
                    (&self.reports.audio, &self.span, &mut self.inbound_dropped);
                for frame in self.inbound_frames.drain(..) {
                    if self.replaying {
                        audio.do_send(InboundAudio { frame });
                        continue;
                    }
                    // The CallActor runs on this thread; its mailbox fills only if it stalls, and then
                    // dropping audio beats queueing it behind a stall.
                    if audio.try_send(InboundAudio { frame }).is_err() {
                        if let Some(dropped) = drops.add(1) {
                            tracing::warn!(parent: span, dropped, "call actor busy: inbound audio dropped");
                        }
                    }
                }
            }
            (Inbound::Mark { name }, State::Streaming { .. }) => match MarkName::parse(&name) {
                Some(mark) => self.reports.marks.do_send(MarkPlayed { mark }),
                None => tracing::debug!(parent: &self.span, "echo of a mark we did not send"),
            },
            (Inbound::Dtmf { digit }, State::Streaming { .. }) => {
                // Digits can be PINs or card numbers: never logged.
                match digit.chars().next().filter(|_| digit.len() == 1) {
                    Some(key) if "0123456789*#ABCD".contains(key) => {
                        self.reports.keys.do_send(KeyPressed { key });
                    }
                    _ => tracing::debug!(parent: &self.span, "dtmf event without a keypad digit"),
                }
            }
            (Inbound::Stop, State::Streaming { .. }) => {
                tracing::info!(parent: &self.span, "twilio stopped the stream");
                self.end(EndReason::TwilioStop, ctx);
            }
        }
        Ok(())
    }

    /// The claim of the stream among all servers came back: the call starts, and the messages
    /// held meanwhile are handled in order; or the stream is refused as at admission.
    fn claimed(&mut self, claimed: Result<(), AdmissionError>, ctx: &mut Context<Self>) {
        let State::Claiming { call, held } = &mut self.state else {
            return; // ended meanwhile
        };
        let (call, held) = (call.clone(), std::mem::take(held));
        if let Err(error) = claimed {
            self.violation(error.into(), ctx);
            return;
        }
        tracing::info!(parent: &self.span, "media stream started");
        self.state = State::Streaming {
            stream_sid: call.stream_sid.clone(),
        };
        self.reports.started.do_send(StreamStarted { call });
        // Held audio arrives at once: it is delivered whole (at most MAX_HELD_MESSAGES frames),
        // not dropped as a burst past the CallActor's mailbox would be.
        self.replaying = true;
        for text in held {
            if let Err(error) = self.handle_text(&text, SystemTime::now(), ctx) {
                self.violation(error, ctx);
                break;
            }
        }
        self.replaying = false;
    }

    /// Sends what the pacer allows now and arms a timer for the rest.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        let State::Streaming { stream_sid } = &self.state else {
            return;
        };
        self.pacer.poll(Instant::now(), &mut self.outgoing);
        let (chunks, on_air, playback) = (
            &mut self.queued_chunks,
            &mut self.on_air,
            &self.reports.playback,
        );
        let sent = self.outgoing.drain(..).try_for_each(|item| {
            let text = match item {
                Outgoing::Frame(payload) => {
                    let starts = chunks.front().copied().filter(|u| Some(*u) != *on_air);
                    if let Some(utterance) = starts {
                        *on_air = Some(utterance);
                        playback.do_send(PlaybackStarted { utterance });
                    }
                    wire::media_message(stream_sid, &payload[..])
                }
                Outgoing::Mark(mark) => {
                    chunks.pop_front();
                    wire::mark_message(stream_sid, mark)
                }
            };
            self.socket.try_send(SocketCommand::Text(text))
        });
        if sent.is_err() {
            tracing::warn!(parent: &self.span, "socket not draining: closing the stream");
            self.end(EndReason::SocketStalled, ctx);
            return;
        }
        if let Some(handle) = self.pacer_timer.take() {
            ctx.cancel_future(handle);
        }
        if let Some(at) = self.pacer.next_send_at() {
            let wait = at.saturating_duration_since(Instant::now());
            self.pacer_timer = Some(ctx.run_later(wait, |act, ctx| {
                act.pacer_timer = None;
                act.flush(ctx);
            }));
        }
    }

    fn violation(&mut self, error: ProtocolError, ctx: &mut Context<Self>) {
        tracing::warn!(parent: &self.span, %error, "media protocol violation");
        let frame = error.close_frame();
        self.close(frame.clone(), ctx);
        self.reports.ended.do_send(StreamEnded {
            reason: EndReason::Protocol(frame),
        });
    }

    /// Ends the stream for `reason`, telling the CallActor.
    fn end(&mut self, reason: EndReason, ctx: &mut Context<Self>) {
        self.close(reason.close_frame(), ctx);
        self.reports.ended.do_send(StreamEnded { reason });
    }

    fn close(&mut self, frame: CloseFrame, ctx: &mut Context<Self>) {
        if matches!(self.state, State::Ended) {
            return;
        }
        self.state = State::Ended;
        self.pacer.clear();
        // A full queue means the writer is stuck; dropping the sender ends it all the same.
        let _ = self.socket.try_send(SocketCommand::Close(frame));
        ctx.stop();
    }
}

impl Actor for MediaStream {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Twilio sends `start` right after `connected`; a socket that does not is not Twilio, and
        // must not hold a live call by trickling other messages past the idle timeout.
        ctx.run_later(self.settings.start_timeout, |act, ctx| {
            if matches!(act.state, State::AwaitingStart | State::Claiming { .. }) {
                act.violation(ProtocolError::StartTimeout, ctx);
            }
        });
        ctx.run_interval(self.settings.ping_interval, |act, ctx| {
            if act.last_message.elapsed() >= act.settings.idle_timeout {
                tracing::warn!(parent: &act.span, "no message from twilio: closing idle stream");
                act.end(EndReason::IdleTimeout, ctx);
            } else if act.socket.try_send(SocketCommand::Ping).is_err() {
                act.end(EndReason::SocketStalled, ctx);
            }
        });
    }
}

impl Handler<SocketEvent> for MediaStream {
    type Result = ();

    fn handle(&mut self, event: SocketEvent, ctx: &mut Context<Self>) {
        let now = Instant::now();
        self.last_message = now;
        let result = match event {
            SocketEvent::Text(text) => self.handle_text(&text, SystemTime::now(), ctx),
            SocketEvent::Binary => Err(ProtocolError::BinaryFrame),
            SocketEvent::TooLarge => Err(ProtocolError::TooLarge {
                limit: self.settings.max_message_bytes,
            }),
            SocketEvent::Closed => {
                if !matches!(self.state, State::Ended) {
                    tracing::info!(parent: &self.span, "media socket closed by peer");
                    self.end(EndReason::SocketClosed, ctx);
                }
                Ok(())
            }
        };
        if let Err(error) = result {
            self.violation(error, ctx);
        }
    }
}

impl Handler<PlayAudio> for MediaStream {
    type Result = ();

    fn handle(&mut self, audio: PlayAudio, ctx: &mut Context<Self>) {
        if self
            .cleared_through
            .is_some_and(|cleared| audio.mark.utterance <= cleared)
        {
            return;
        }
        let room = MAX_QUEUED_FRAMES.saturating_sub(self.pacer.queued_frames());
        if audio.frames.len() > room {
            // Only a peer feeding audio faster than real time into an echoing engine gets here;
            // a reply is never minutes long. Memory stays bounded; the excess is not played.
            if let Some(dropped) = self
                .outbound_dropped
                .add((audio.frames.len() - room) as u64)
            {
                tracing::warn!(parent: &self.span, dropped, "outbound queue full: audio dropped");
            }
        }
        for frame in audio.frames.into_iter().take(room) {
            self.pacer.push_frame(frame);
        }
        self.pacer.push_mark(audio.mark);
        self.queued_chunks.push_back(audio.mark.utterance);
        self.flush(ctx);
    }
}

impl Handler<ClearAudio> for MediaStream {
    type Result = ();

    fn handle(&mut self, msg: ClearAudio, ctx: &mut Context<Self>) {
        self.cleared_through = self.cleared_through.max(Some(msg.through));
        let State::Streaming { stream_sid } = &self.state else {
            return;
        };
        // clear goes out before anything else: Twilio keeps playing what it has buffered.
        let clear = wire::clear_message(stream_sid);
        let dropped = self.pacer.clear();
        self.queued_chunks.clear();
        self.on_air = None;
        if let Some(handle) = self.pacer_timer.take() {
            ctx.cancel_future(handle);
        }
        tracing::debug!(parent: &self.span, dropped, "outbound audio cleared");
        if self.socket.try_send(SocketCommand::Text(clear)).is_err() {
            self.end(EndReason::SocketStalled, ctx);
        }
    }
}

impl Handler<PausePlayback> for MediaStream {
    type Result = ();

    fn handle(&mut self, _: PausePlayback, ctx: &mut Context<Self>) {
        self.pacer.pause();
        if let Some(handle) = self.pacer_timer.take() {
            ctx.cancel_future(handle);
        }
    }
}

impl Handler<ResumePlayback> for MediaStream {
    type Result = ();

    fn handle(&mut self, _: ResumePlayback, ctx: &mut Context<Self>) {
        self.pacer.resume();
        self.flush(ctx);
    }
}

impl Handler<CloseStream> for MediaStream {
    type Result = ();

    fn handle(&mut self, msg: CloseStream, ctx: &mut Context<Self>) {
        self.close(msg.frame, ctx);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use base64::engine::general_purpose::STANDARD as BASE64;
    use base64::Engine as _;

    use super::admission::{AdmissionError, StreamAuthorizer};
    use super::*;
    use crate::events::EndCall;
    use crate::ids::CallSid;
    use crate::runtime::registry::{LiveCallGuard, LiveCalls};
    use crate::testing::{recorder, Recorded};
    use tokio::sync::oneshot;

    /// Admits the token `good`, once per call, for any CallSid.
    struct GoodToken;

    impl StreamAuthorizer for GoodToken {
        fn redeem(&self, _: &CallSid, token: &str, _: SystemTime) -> Result<(), AdmissionError> {
            (token == "good")
                .then_some(())
                .ok_or(AdmissionError::InvalidToken)
        }
    }

    const CALL_SID: &str = "CA00000000000000000000000000000001";

    fn start_message(token: &str) -> String {
        format!(
            r#"{{"event":"start","sequenceNumber":"1","start":{{"accountSid":"AC1","streamSid":"MZ1","callSid":"{CALL_SID}","tracks":["inbound"],"customParameters":{{"token":"{token}","lang":"en"}},"mediaFormat":{{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}},"streamSid":"MZ1"}}"#
        )
    }

    /// A MediaStream reporting to stub receivers, and what they and its socket get.
    struct Alone {
        stream: Addr<MediaStream>,
        socket: mpsc::Receiver<SocketCommand>,
        started: Recorded<StreamStarted>,
        audio: Recorded<InboundAudio>,
        marks: Recorded<MarkPlayed>,
        keys: Recorded<KeyPressed>,
        playback: Recorded<PlaybackStarted>,
        ended: Recorded<StreamEnded>,
        /// The registry the stream's call is in.
        live_calls: LiveCalls,
        /// The call stays registered for the stream's life, as its CallActor keeps it.
        _registration: LiveCallGuard,
        _ends: Recorded<EndCall>,
    }

    /// Admits the token `good`, and claims the stream when the test says how the claim went.
    struct ClaimedLater(std::sync::Mutex<Option<oneshot::Receiver<Result<(), AdmissionError>>>>);

    impl StreamAuthorizer for ClaimedLater {
        fn redeem(
            &self,
            sid: &CallSid,
            token: &str,
            now: SystemTime,
        ) -> Result<(), AdmissionError> {
            GoodToken.redeem(sid, token, now)
        }

        fn claim(&self, _: &CallSid) -> super::admission::ClaimFuture {
            let answer = self.0.lock().unwrap().take().expect("one claim");
            Box::pin(async move { answer.await.expect("the test answers") })
        }
    }

    /// A stream whose claim resolves with what the returned sender sends.
    fn claimed_later() -> (Alone, oneshot::Sender<Result<(), AdmissionError>>) {
        let (answer, claim) = oneshot::channel();
        let authorizer = ClaimedLater(std::sync::Mutex::new(Some(claim)));
        (alone_with(Arc::new(authorizer)), answer)
    }

    fn media_message(byte: u8) -> String {
        let payload = BASE64.encode([byte; FRAME_BYTES]);
        format!(r#"{{"event":"media","media":{{"payload":"{payload}"}},"streamSid":"MZ1"}}"#)
    }

    fn alone() -> Alone {
        alone_with(Arc::new(GoodToken))
    }

    fn alone_with(authorizer: Arc<dyn StreamAuthorizer>) -> Alone {
        let (started, started_log) = recorder();
        let (audio, audio_log) = recorder();
        let (marks, marks_log) = recorder();
        let (keys, keys_log) = recorder();
        let (playback, playback_log) = recorder();
        let (ended, ended_log) = recorder();
        let (end, ends) = recorder::<EndCall>();
        let live_calls = LiveCalls::new();
        let registration = live_calls.register(end);
        let admission = Admission::new(authorizer, live_calls.clone(), registration.id());
        let settings = MediaSettings {
            playback_lead: Duration::from_millis(100),
            idle_timeout: Duration::from_secs(15),
            ping_interval: Duration::from_secs(5),
            max_message_bytes: 65_536,
            start_timeout: Duration::from_secs(5),
        };
        let (commands, socket) = mpsc::channel(SOCKET_QUEUE_CAPACITY);
        let reports = MediaReports {
            started,
            audio,
            marks,
            keys,
            playback,
            ended,
        };
        let stream = MediaStream::new(
            reports,
            commands,
            admission,
            settings,
            tracing::Span::none(),
            live_calls.track_actor(),
        )
        .start();
        Alone {
            stream,
            socket,
            started: started_log,
            audio: audio_log,
            marks: marks_log,
            keys: keys_log,
            playback: playback_log,
            ended: ended_log,
            live_calls,
            _registration: registration,
            _ends: ends,
        }
    }

    impl Alone {
        async fn read(&mut self, text: &str) {
            let event = SocketEvent::Text(text.to_owned());
            self.stream.send(event).await.expect("stream alive");
        }

        async fn written(&mut self) -> SocketCommand {
            tokio::time::timeout(Duration::from_secs(5), self.socket.recv())
                .await
                .expect("written in time")
                .expect("socket open")
        }
    }

    #[actix::test]
    async fn a_stream_reports_start_audio_echoes_keys_and_stop_and_plays_what_it_is_given() {
        let mut media = alone();
        media
            .read(r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#)
            .await;
        media.read(&start_message("good")).await;
        let call = media.started.next().await.call;
        assert_eq!(call.call_sid.as_str(), CALL_SID);
        assert_eq!(call.stream_sid.as_str(), "MZ1");
        assert_eq!(
            call.custom_parameters.into_iter().collect::<Vec<_>>(),
            [("lang".to_owned(), "en".to_owned())],
            "the stream token is not passed on"
        );

        media.read(&media_message(0x7F)).await;
        let frame = media.audio.next().await.frame;
        assert_eq!((frame.sequence, frame.payload), (0, [0x7F; FRAME_BYTES]));

        let mark = MarkName::parse("u1c0").expect("a mark");
        media.stream.do_send(PlayAudio {
            mark,
            frames: vec![[0x01; FRAME_BYTES]; 2],
        });
        let media_message = wire::media_message(&StreamSid::new("MZ1"), &[0x01; FRAME_BYTES]);
        assert_eq!(
            media.written().await,
            SocketCommand::Text(media_message.clone())
        );
        assert_eq!(media.written().await, SocketCommand::Text(media_message));
        let mark_message = wire::mark_message(&StreamSid::new("MZ1"), mark);
        assert_eq!(media.written().await, SocketCommand::Text(mark_message));
        assert_eq!(media.playback.next().await.utterance, UtteranceId(1));

        media
            .read(r#"{"event":"mark","streamSid":"MZ1","mark":{"name":"u1c0"}}"#)
            .await;
        assert_eq!(media.marks.next().await.mark, mark);
        media
            .read(r#"{"event":"dtmf","streamSid":"MZ1","dtmf":{"track":"inbound_track","digit":"5"}}"#)
            .await;
        assert_eq!(media.keys.next().await.key, '5');

        media
            .read(
                r#"{"event":"stop","streamSid":"MZ1","stop":{"accountSid":"AC1","callSid":"CA1"}}"#,
            )
            .await;
        assert_eq!(media.ended.next().await.reason, EndReason::TwilioStop);
        assert_eq!(
            media.written().await,
            SocketCommand::Close(CloseFrame::new(CloseFrame::NORMAL, "call ended"))
        );
    }

    #[actix::test]
    async fn what_comes_while_the_claim_is_on_its_way_is_handled_in_order_once_granted() {
        // Two seconds of audio while the database is slow: more than a mailbox holds at once.
        const HELD: u8 = 100;
        let (mut media, answer) = claimed_later();
        media.read(&start_message("good")).await;
        for n in 0..HELD {
            media.read(&media_message(n)).await;
        }
        assert!(media.started.try_next().is_none(), "not before the claim");
        assert!(media.audio.try_next().is_none());

        answer.send(Ok(())).unwrap();
        assert_eq!(media.started.next().await.call.call_sid.as_str(), CALL_SID);
        for n in 0..HELD {
            assert_eq!(
                media.audio.next().await.frame.payload,
                [n; FRAME_BYTES],
                "frame {n}"
            );
        }
        media.read(&media_message(0xAA)).await;
        assert_eq!(media.audio.next().await.frame.payload, [0xAA; FRAME_BYTES]);
    }

    #[actix::test]
    async fn a_stream_claimed_elsewhere_is_closed_as_a_bad_token_is() {
        let (mut media, answer) = claimed_later();
        media.read(&start_message("good")).await;
        media.read(&media_message(0x11)).await;
        answer.send(Err(AdmissionError::AlreadyStreaming)).unwrap();
        let frame = CloseFrame::new(CloseFrame::POLICY, "stream rejected");
        assert_eq!(
            media.ended.next().await.reason,
            EndReason::Protocol(frame.clone())
        );
        assert_eq!(media.written().await, SocketCommand::Close(frame));
        assert!(media.started.try_next().is_none());
        assert!(media.audio.try_next().is_none());
    }

    #[actix::test]
    async fn a_socket_accepted_before_the_drain_began_streams_its_call_during_it() {
        let mut media = alone();
        media.live_calls.start_draining();
        media.read(&start_message("good")).await;
        assert_eq!(media.started.next().await.call.call_sid.as_str(), CALL_SID);
        assert_eq!(media.live_calls.streaming(), 1);
    }

    #[actix::test]
    async fn a_start_with_a_bad_token_closes_the_stream_and_reports_nothing_started() {
        let mut media = alone();
        media.read(&start_message("forged")).await;
        let reason = media.ended.next().await.reason;
        let frame = CloseFrame::new(CloseFrame::POLICY, "stream rejected");
        assert_eq!(reason, EndReason::Protocol(frame.clone()));
        assert_eq!(media.written().await, SocketCommand::Close(frame));
        assert!(media.started.try_next().is_none());
    }
}
