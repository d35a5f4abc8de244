//! CallActor: the supervisor of one call and the owner of its turn-taking.
//!
//! ```text
//!            ┌──────────── CallActor ─────────────┐
//!  socket ⇄ MediaStream   Transcriber   Responder   Synthesizer
//! ```
//! MediaStream --InboundAudio--> CallActor --InboundAudio--> Transcriber --TranscriptReceived-->
//! CallActor --UserTurn--> Responder --Speak--> Synthesizer --PlayAudio--> MediaStream;
//! Synthesizer --ChunkSent--> CallActor; MediaStream --MarkPlayed--> CallActor (what was heard).
//!
//! The CallActor registers in [`LiveCalls`] for its whole life, starts the MediaStream at once and
//! the three engine children once the `start` is admitted. Children run under actix supervisors with
//! the [`RestartPolicy`]; a child that spends its budget ends the call with a logged reason. When the
//! call ends, for whatever reason, every child is stopped and the registration dropped.
//!
//! It owns the conversation's timing: the caller's side in [`turns`] (end of turn, late finals,
//! keypad, two-stage barge-in) and the agent's side in [`agent`] (what is playing and was heard,
//! check-ins, maximum duration, hanging up and transfers), with per-turn [`latency`].

mod agent;
pub mod barge_in;
pub mod conversation;
pub mod playback;
mod turns;

use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::mpsc;

use crate::engines::{CallContext, CallControl, EngineSet};
use crate::events::{ChildGaveUp, ChildKind, EndCall, EndReason, StreamEnded, StreamStarted};
use crate::ids::MarkName;
use crate::media::admission::{Admission, StreamAuthorizer};
use crate::media::{CloseStream, MediaReports, MediaSettings, MediaStream, SocketCommand};
use crate::responder::{Responder, ResponderReports};
use crate::runtime::metrics::CallMetrics;
use crate::runtime::registry::{LiveCallGuard, LiveCalls};
use crate::runtime::supervision::{ChildSupervision, RestartPolicy, StopChild};
use crate::synthesizer::{Synthesizer, SynthesizerReports};
use crate::transcriber::Transcriber;
use agent::AgentSide;
use conversation::ConversationSettings;
use turns::CallerSide;

pub use turns::KEYPAD_PAUSE;

/// Mailbox capacity of a CallActor and its Transcriber: about 1.3 s of 20 ms frames. Inbound audio
/// is `try_send`; a full mailbox means the actor stalled, and frames are dropped rather than queued.
pub const AUDIO_MAILBOX_CAPACITY: usize = 64;

/// Query: what the caller has heard so far.
#[derive(Debug, Message)]
#[rtype(result = "PlaybackStatus")]
pub struct GetPlayback;

/// Answer to [`GetPlayback`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PlaybackStatus {
    /// Marks Twilio has echoed.
    pub marks_heard: u64,
    /// The latest echoed mark.
    pub last_heard: Option<MarkName>,
    /// Utterances handed to the Responder.
    pub turns: u64,
}

/// What every call of the process shares.
#[derive(Clone)]
pub struct CallSettings {
    /// The engines calls use.
    pub engines: EngineSet,
    /// Media timing and limits.
    pub media: MediaSettings,
    /// How children are restarted.
    pub restart: RestartPolicy,
    /// The registry of live calls.
    pub live_calls: LiveCalls,
    /// Checks the stream tokens of `start` messages.
    pub authorizer: Arc<dyn StreamAuthorizer>,
    /// Turn-taking, barge-in and lifecycle.
    pub conversation: Arc<ConversationSettings>,
    /// Where calls report their latencies, barge-ins and ends.
    pub metrics: Arc<CallMetrics>,
    /// Transfers calls; `None`: the agent says it cannot.
    pub call_control: Option<Arc<dyn CallControl>>,
}

/// Addresses of a started call, for the server's socket pumps.
pub struct CallHandle {
    /// The call's supervisor.
    pub call: Addr<CallActor>,
    /// Where the socket reader sends what it reads.
    pub media: Addr<MediaStream>,
}

struct Children {
    transcriber: Addr<Transcriber>,
    responder: Addr<Responder>,
    synthesizer: Addr<Synthesizer>,
}

/// The supervisor of one call.
pub struct CallActor {
    settings: CallSettings,
    media: Addr<MediaStream>,
    children: Option<Children>,
    /// Who the call is, once the stream started.
    call: Option<CallContext>,
    caller: CallerSide,
    agent: AgentSide,
    playback: PlaybackStatus,
    frames_in: u64,
    frames_dropped: u64,
    ended: Option<EndReason>,
    span: tracing::Span,
    _registration: LiveCallGuard,
}

impl CallActor {
    /// Starts a call on the current arbiter whose socket writer reads from `socket`.
    pub fn start(settings: CallSettings, socket: mpsc::Sender<SocketCommand>) -> CallHandle {
        let mut media = None;
        let call = CallActor::create(|ctx| {
            ctx.set_mailbox_capacity(AUDIO_MAILBOX_CAPACITY);
            let span = tracing::info_span!(
                "call",
                call_sid = tracing::field::Empty,
                stream_sid = tracing::field::Empty
            );
            let registration = settings.live_calls.register(ctx.address().recipient());
            let admission = Admission::new(
                settings.authorizer.clone(),
                settings.live_calls.clone(),
                registration.id(),
            );
            let stream = MediaStream::new(
                MediaReports::to(&ctx.address()),
                socket,
                admission,
                settings.media,
                span.clone(),
                settings.live_calls.track_actor(),
            )
            .start();
            media = Some(stream.clone());
            CallActor {
                settings,
                media: stream,
                children: None,
                call: None,
                caller: CallerSide::default(),
                agent: AgentSide::default(),
                playback: PlaybackStatus::default(),
                frames_in: 0,
                frames_dropped: 0,
                ended: None,
                span,
                _registration: registration,
            }
        });
        CallHandle {
            call,
            media: media.expect("create runs its closure"),
        }
    }

    fn start_children(&mut self, call: &CallContext, ctx: &mut Context<Self>) {
        let engines = &self.settings.engines;
        let supervision = |kind| {
            ChildSupervision::new(
                kind,
                self.settings.restart,
                ctx.address().recipient(),
                self.span.clone(),
                self.settings.live_calls.track_actor(),
            )
        };
        let transcriber = {
            let (engine, call, events) =
                (engines.stt.clone(), call.clone(), ctx.address().recipient());
            let supervision = supervision(ChildKind::Transcriber);
            Supervisor::start(move |ctx: &mut Context<Transcriber>| {
                ctx.set_mailbox_capacity(AUDIO_MAILBOX_CAPACITY);
                Transcriber::new(engine, call, events, supervision)
            })
        };
        let synthesizer = {
            let (engine, call) = (engines.tts.clone(), call.clone());
            let audio = self.media.clone().recipient();
            let supervision = supervision(ChildKind::Synthesizer);
            let reports = SynthesizerReports::to(&ctx.address());
            Supervisor::start(move |_| Synthesizer::new(engine, call, audio, reports, supervision))
        };
        let responder = {
            let (engine, call) = (engines.dialogue.clone(), call.clone());
            let speech = synthesizer.downgrade().recipient();
            let supervision = supervision(ChildKind::Responder);
            let reports = ResponderReports::to(&ctx.address());
            Supervisor::start(move |_| Responder::new(engine, call, speech, reports, supervision))
        };
        self.children = Some(Children {
            transcriber,
            responder,
            synthesizer,
        });
    }

    /// Ends the call once: closes the socket, stops every child, stops itself.
    fn end(&mut self, reason: EndReason, ctx: &mut Context<Self>) {
        if self.ended.is_some() {
            return;
        }
        self.media.do_send(CloseStream {
            frame: reason.close_frame(),
        });
        if let Some(children) = self.children.take() {
            // Their addresses drop at the end of this block, so the supervisors do not restart them.
            children.transcriber.do_send(StopChild);
            children.responder.do_send(StopChild);
            children.synthesizer.do_send(StopChild);
        }
        self.report_turn();
        self.settings.metrics.call_ended(reason.as_str());
        self.ended = Some(reason);
        ctx.stop();
    }
}

impl Actor for CallActor {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Context<Self>) {
        let reason = self.ended.as_ref().map_or("stopped", EndReason::as_str);
        tracing::info!(
            parent: &self.span,
            reason,
            frames_in = self.frames_in,
            frames_dropped = self.frames_dropped,
            turns = self.playback.turns,
            marks_heard = self.playback.marks_heard,
            "call ended"
        );
    }
}

impl Handler<StreamStarted> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: StreamStarted, ctx: &mut Context<Self>) {
        if self.ended.is_some() {
            return;
        }
        self.start_children(&msg.call, ctx);
        self.call = Some(msg.call);
        self.arm_call_timers(ctx);
    }
}

impl Handler<StreamEnded> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: StreamEnded, ctx: &mut Context<Self>) {
        self.end(msg.reason, ctx);
    }
}

impl Handler<EndCall> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: EndCall, ctx: &mut Context<Self>) {
        tracing::info!(parent: &self.span, reason = msg.reason.as_str(), "ending call");
        self.end(msg.reason, ctx);
    }
}

impl Handler<ChildGaveUp> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: ChildGaveUp, ctx: &mut Context<Self>) {
        tracing::error!(parent: &self.span, child = ?msg.child, error = %msg.error, "ending call: engine unavailable");
        self.end(EndReason::EngineFailure, ctx);
    }
}

impl Handler<GetPlayback> for CallActor {
    type Result = MessageResult<GetPlayback>;

    fn handle(&mut self, _: GetPlayback, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.playback)
    }
}
