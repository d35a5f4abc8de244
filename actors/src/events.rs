//! The events that travel up a call's tree to its CallActor, and the types they carry.
//!
//! ```text
//! MediaStream  --StreamStarted/InboundAudio/MarkPlayed/KeyPressed/PlaybackStarted/StreamEnded-->
//! Transcriber  --TranscriptReceived-->
//! Responder    --ReplyStarted/AgentAction/ExtractionUpdated-->                        CallActor
//! Synthesizer  --ChunkSent/WordsTimed/UtteranceSent-->
//! any child    --ChildGaveUp-->  (through its supervision)
//! the server   --EndCall-->      (through the registry of live calls)
//! ```
//!
//! They live below every actor, so a child names the events it emits, never its parent: it is given
//! a `Recipient` per event and can be run alone against stub receivers. Commands (`Speak`,
//! `PlayAudio`, `CancelReply`, …) live beside the actor that receives them. Nothing here imports an
//! actor.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use crate::audio::AudioFrame;
use crate::engines::{CallContext, DialogueAction, EngineError, Extraction, TranscriptEvent};
use crate::ids::{MarkName, UtteranceId};

/// MediaStream admitted a `start`: the call's engines can start.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct StreamStarted {
    /// Who the call is.
    pub call: CallContext,
}

/// 20 ms of caller audio, decoded once by the MediaStream; the CallActor passes it on to the
/// Transcriber.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct InboundAudio {
    /// The frame.
    pub frame: AudioFrame,
}

/// Twilio echoed a mark: the caller has heard the audio up to it (or it was cleared).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct MarkPlayed {
    /// The echoed mark.
    pub mark: MarkName,
}

/// The caller pressed a key (a DTMF digit: `0`–`9`, `*`, `#`, `A`–`D`).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct KeyPressed {
    /// The key.
    pub key: char,
}

/// The media stream is over; the call ends.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct StreamEnded {
    /// Why.
    pub reason: EndReason,
}

/// The Transcriber heard something.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct TranscriptReceived {
    /// What it heard.
    pub event: TranscriptEvent,
}

/// Ask the call to end (server shutdown, API hang-up).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct EndCall {
    /// Why.
    pub reason: EndReason,
    /// End once the agent's closing goodbye is heard (the server winding calls down), instead of
    /// at once.
    pub after_goodbye: bool,
}

/// Which child of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildKind {
    /// The Transcriber.
    Transcriber,
    /// The Responder.
    Responder,
    /// The Synthesizer.
    Synthesizer,
}

/// A child's engine failed beyond its restart budget; the call cannot go on with it.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ChildGaveUp {
    /// Which child.
    pub child: ChildKind,
    /// The last error.
    pub error: EngineError,
}

/// Why a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// Twilio sent `stop`.
    TwilioStop,
    /// The peer closed the socket.
    SocketClosed,
    /// The peer violated the protocol; closed with this frame.
    Protocol(CloseFrame),
    /// No inbound message within the idle timeout.
    IdleTimeout,
    /// The socket stopped draining outbound messages.
    SocketStalled,
    /// The server is shutting down.
    Shutdown,
    /// An engine failed beyond its restart budget.
    EngineFailure,
    /// The agent ended the call (its goodbye played).
    AgentEnded,
    /// The call reached its maximum duration (the goodbye played).
    MaxDuration,
    /// Hung up through the call-management API.
    HungUp,
}

impl EndReason {
    /// The close frame the peer gets for this reason.
    pub fn close_frame(&self) -> CloseFrame {
        match self {
            Self::TwilioStop
            | Self::SocketClosed
            | Self::AgentEnded
            | Self::MaxDuration
            | Self::HungUp => CloseFrame::new(CloseFrame::NORMAL, "call ended"),
            Self::Protocol(frame) => frame.clone(),
            Self::IdleTimeout => CloseFrame::new(CloseFrame::GOING_AWAY, "idle timeout"),
            Self::SocketStalled => CloseFrame::new(CloseFrame::GOING_AWAY, "socket not draining"),
            Self::Shutdown => CloseFrame::new(CloseFrame::GOING_AWAY, "server shutting down"),
            Self::EngineFailure => CloseFrame::new(CloseFrame::INTERNAL, "engine failure"),
        }
    }

    /// Short name for logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::TwilioStop => "twilio_stop",
            Self::SocketClosed => "socket_closed",
            Self::Protocol(_) => "protocol_violation",
            Self::IdleTimeout => "idle_timeout",
            Self::SocketStalled => "socket_stalled",
            Self::Shutdown => "shutdown",
            Self::EngineFailure => "engine_failure",
            Self::AgentEnded => "agent_ended",
            Self::MaxDuration => "max_duration",
            Self::HungUp => "hung_up",
        }
    }
}

/// The Responder's reply `utterance` asked for `action` once heard.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct AgentAction {
    /// The reply.
    pub utterance: UtteranceId,
    /// What to do after it.
    pub action: DialogueAction,
}

/// The Synthesizer sent the last audio of `utterance`, followed by `last_mark` (`None`: the
/// utterance had no audio).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct UtteranceSent {
    /// The utterance.
    pub utterance: UtteranceId,
    /// The mark after its last chunk.
    pub last_mark: Option<MarkName>,
}

/// The Synthesizer sent a chunk of `frames` frames followed by `mark` (the CallActor learns what
/// the caller will hear, clause by clause).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ChunkSent {
    /// The mark after the chunk.
    pub mark: MarkName,
    /// Frames in the chunk.
    pub frames: u32,
    /// The text of the clause this chunk starts; `None` when it continues the previous clause.
    pub clause: Option<Arc<str>>,
}

/// The engine said where more words of the clause being sent end (its word timestamps), after the
/// clause's first chunk was reported: what the caller heard of it is then counted in words.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct WordsTimed {
    /// The utterance; the words belong to its latest clause with audio sent.
    pub utterance: UtteranceId,
    /// Where each next word of the clause ends, from the start of the clause's audio.
    pub ends: Vec<Duration>,
}

/// The MediaStream wrote the first frame of `utterance` to the socket.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct PlaybackStarted {
    /// The utterance.
    pub utterance: UtteranceId,
}

/// The reply `utterance` changed what the call has yielded.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ExtractionUpdated {
    /// The reply after which it changed.
    pub utterance: UtteranceId,
    /// Everything extracted so far.
    pub extraction: Extraction,
}

/// The Responder received the first text of the reply `utterance`.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ReplyStarted {
    /// The reply.
    pub utterance: UtteranceId,
}

/// A WebSocket close code and reason: how a call's media stream ends for the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// RFC 6455 close code.
    pub code: u16,
    /// Short, fixed, human-readable reason.
    pub reason: &'static str,
}

impl CloseFrame {
    /// 1000: the call ended normally.
    pub const NORMAL: u16 = 1000;
    /// 1001: we are going away (idle timeout, shutdown).
    pub const GOING_AWAY: u16 = 1001;
    /// 1003: a data type we do not accept (binary).
    pub const UNSUPPORTED: u16 = 1003;
    /// 1007: data inconsistent with the message type (bad JSON, bad base64).
    pub const INVALID_DATA: u16 = 1007;
    /// 1008: a message that violates the protocol.
    pub const POLICY: u16 = 1008;
    /// 1009: a message too big to process.
    pub const TOO_BIG: u16 = 1009;
    /// 1011: we failed (an engine gave up).
    pub const INTERNAL: u16 = 1011;

    /// A close frame.
    pub const fn new(code: u16, reason: &'static str) -> Self {
        Self { code, reason }
    }
}
