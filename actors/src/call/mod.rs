//! CallActor: the supervisor of one call, which carries out what its conversation decides.
//!
//! ```text
//!            ┌──────────── CallActor ─────────────┐
//!  socket ⇄ MediaStream   Transcriber   Responder   Synthesizer
//! ```
//! MediaStream --InboundAudio--> CallActor --InboundAudio--> Transcriber --TranscriptReceived-->
//! CallActor --UserTurn--> Responder --Speak--> Synthesizer --PlayAudio--> MediaStream
//! (a speculative reply: CallActor --HoldSpeech/ReleaseSpeech--> Synthesizer, and
//! --SpeculateTurn/CommitTurn/DiscardTurn--> Responder);
//! Synthesizer --ChunkSent--> CallActor; MediaStream --MarkPlayed--> CallActor (what was heard).
//!
//! The CallActor registers in [`LiveCalls`] for its whole life, starts the MediaStream at once and
//! the three engine children once the `start` is admitted. Children run under actix supervisors with
//! the [`RestartPolicy`]; a child that spends its budget ends the call with a logged reason. When the
//! call ends, for whatever reason, every child is stopped and the registration dropped.
//!
//! It is the only module that names every actor. The conversation's logic is sans-I/O, in floors
//! below it: [`barge_in`] and [`playback`] (plain types), the caller's side in `turns` (end of
//! turn, late finals, keypad, the soft stage) and the agent's in `agent` (what is playing and was
//! heard, hang-ups, transfers, check-ins, the maximum duration, the latency clock), joined by
//! [`conversation::Conversation`], which takes events and `now` and returns
//! [`conversation::Action`]s. The actor passes it every event with the time, carries out its
//! actions in order, and keeps one timer armed at its next deadline.

mod agent;
pub mod barge_in;
pub mod conversation;
pub mod playback;
pub mod settings;
mod turns;

use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use tokio::sync::mpsc;

use crate::engines::{CallContext, CallControl, EngineSet};
use crate::events::{
    AgentAction, ChildGaveUp, ChildKind, ChunkSent, EndCall, EndReason, ExtractionUpdated,
    InboundAudio, KeyPressed, MarkPlayed, PlaybackStarted, ReplyStarted, StreamEnded,
    StreamStarted, TranscriptReceived, UtteranceSent, WordsTimed,
};
use crate::media::admission::{Admission, StreamAuthorizer};
use crate::media::{
    ClearAudio, CloseStream, MediaReports, MediaSettings, MediaStream, PausePlayback,
    ResumePlayback, SocketCommand,
};
use crate::responder::{CommitTurn, DiscardTurn, Responder, ResponderReports, SpeculateTurn};
use crate::runtime::journal::{CallEvent, CallJournal};
use crate::runtime::latency::{Stage, TurnClock};
use crate::runtime::metrics::{BargeInOutcome, CallMetrics};
use crate::runtime::registry::{LiveCallGuard, LiveCalls};
use crate::runtime::supervision::{ChildSupervision, RestartPolicy, StopChild};
use crate::synthesizer::{
    CancelSpeech, HoldSpeech, ReleaseSpeech, Synthesizer, SynthesizerReports,
};
use crate::transcriber::Transcriber;
pub use conversation::PlaybackStatus;
use conversation::{Action, Conversation};
use settings::ConversationSettings;

/// Query: what the caller has heard so far.
#[derive(Debug, Message)]
#[rtype(result = "PlaybackStatus")]
pub struct GetPlayback;

/// Mailbox capacity of a CallActor and its Transcriber: about 1.3 s of 20 ms frames. Inbound audio
/// is `try_send`; a full mailbox means the actor stalled, and frames are dropped rather than queued.
pub const AUDIO_MAILBOX_CAPACITY: usize = 64;

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
    /// Where calls record their story (transcript, barge-ins, latencies, extraction, end);
    /// `None`: nowhere.
    pub journal: Option<Arc<dyn CallJournal>>,
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
    conversation: Conversation,
    /// The timer armed at the conversation's next deadline.
    timer: Option<(Instant, SpawnHandle)>,
    /// The conversation's actions, carried out as soon as it returns them (kept for its buffer).
    actions: Vec<Action>,
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
            let conversation = Conversation::new(settings.conversation.clone(), span.clone());
            CallActor {
                settings,
                media: stream,
                children: None,
                call: None,
                conversation,
                timer: None,
                actions: Vec::new(),
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
        if let Some(clock) = self.conversation.ended() {
            self.report(&clock);
        }
        self.settings.metrics.call_ended(reason.as_str());
        self.journal(CallEvent::Ended(reason.clone()));
        self.ended = Some(reason);
        ctx.stop();
    }
}

impl Actor for CallActor {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Context<Self>) {
        let reason = self.ended.as_ref().map_or("stopped", EndReason::as_str);
        let status = self.conversation.status();
        tracing::info!(
            parent: &self.span,
            reason,
            frames_in = self.frames_in,
            frames_dropped = self.frames_dropped,
            turns = status.turns,
            marks_heard = status.marks_heard,
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
        self.journal(CallEvent::Started);
        self.conversation.started(Instant::now());
        self.rearm(ctx);
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
        // Before the stream started there is no agent to say it: such a call ends at once.
        if msg.after_goodbye && self.children.is_some() {
            self.step(ctx, |conversation, now, out| {
                conversation.wind_down(msg.reason, now, out);
            });
            return;
        }
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
        MessageResult(self.conversation.status())
    }
}

impl Handler<InboundAudio> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: InboundAudio, ctx: &mut Context<Self>) {
        self.frames_in += 1;
        if self.children.is_none() {
            return;
        }
        self.step(ctx, |conversation, now, out| {
            conversation.caller_audio(&msg.frame.payload, now, out);
        });
        let Some(children) = &self.children else {
            return;
        };
        if children.transcriber.try_send(msg).is_err() {
            self.frames_dropped += 1;
        }
    }
}

impl Handler<TranscriptReceived> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: TranscriptReceived, ctx: &mut Context<Self>) {
        self.step(ctx, |conversation, now, out| {
            conversation.transcript(msg.event, now, out);
        });
    }
}

impl Handler<KeyPressed> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: KeyPressed, ctx: &mut Context<Self>) {
        self.step(ctx, |conversation, now, out| {
            conversation.key(msg.key, now, out);
        });
    }
}

impl Handler<ChunkSent> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: ChunkSent, ctx: &mut Context<Self>) {
        self.step(ctx, |conversation, now, out| {
            conversation.chunk_sent(msg, now, out);
        });
    }
}

impl Handler<WordsTimed> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: WordsTimed, ctx: &mut Context<Self>) {
        self.step(ctx, |conversation, _, _| {
            conversation.words_timed(msg.utterance, msg.ends);
        });
    }
}

impl Handler<PlaybackStarted> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: PlaybackStarted, ctx: &mut Context<Self>) {
        self.step(ctx, |conversation, now, out| {
            conversation.playback_started(msg.utterance, now, out);
        });
    }
}

impl Handler<ReplyStarted> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: ReplyStarted, ctx: &mut Context<Self>) {
        self.step(ctx, |conversation, now, out| {
            conversation.reply_started(msg.utterance, now, out);
        });
    }
}

impl Handler<MarkPlayed> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: MarkPlayed, ctx: &mut Context<Self>) {
        self.step(ctx, |conversation, now, out| {
            conversation.mark_played(msg.mark, now, out);
        });
    }
}

impl Handler<UtteranceSent> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: UtteranceSent, ctx: &mut Context<Self>) {
        self.step(ctx, |conversation, now, out| {
            conversation.utterance_sent(msg, now, out);
        });
    }
}

impl Handler<AgentAction> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: AgentAction, ctx: &mut Context<Self>) {
        self.step(ctx, |conversation, now, out| {
            conversation.agent_action(msg, now, out);
        });
    }
}

impl Handler<ExtractionUpdated> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: ExtractionUpdated, _: &mut Context<Self>) {
        self.journal(CallEvent::Extraction(msg.extraction));
    }
}

impl CallActor {
    /// Tells the conversation something now, carries out what it decides, and re-arms the timer.
    fn step(
        &mut self,
        ctx: &mut Context<Self>,
        event: impl FnOnce(&mut Conversation, Instant, &mut Vec<Action>),
    ) {
        let mut actions = std::mem::take(&mut self.actions);
        event(&mut self.conversation, Instant::now(), &mut actions);
        for action in actions.drain(..) {
            self.carry_out(action, ctx);
        }
        self.actions = actions;
        self.rearm(ctx);
    }

    fn carry_out(&mut self, action: Action, ctx: &mut Context<Self>) {
        match action {
            Action::Pause => {
                self.media.do_send(PausePlayback);
                self.barged_in(BargeInOutcome::Paused);
            }
            Action::Resume => {
                self.media.do_send(ResumePlayback);
                self.barged_in(BargeInOutcome::Resumed);
            }
            Action::Interrupt(cancel) => {
                // clear goes out before synthesis is cancelled: Twilio keeps playing what it has
                // buffered, and the caller is talking.
                let through = cancel.through;
                self.media.do_send(ClearAudio { through });
                self.children_do(|children| {
                    let speech = CancelSpeech { utterance: through };
                    children.synthesizer.do_send(speech);
                    children.responder.do_send(cancel);
                });
                self.barged_in(BargeInOutcome::Interrupted);
            }
            Action::Answer(turn) => self.children_do(|children| children.responder.do_send(turn)),
            // The hold reaches the Synthesizer before any clause of the reply can.
            Action::Speculate(turn) => self.children_do(|children| {
                let utterance = turn.utterance;
                children.synthesizer.do_send(HoldSpeech { utterance });
                children.responder.do_send(SpeculateTurn { turn });
            }),
            Action::Commit(utterance) => self.children_do(|children| {
                children.synthesizer.do_send(ReleaseSpeech { utterance });
                children.responder.do_send(CommitTurn { utterance });
            }),
            Action::Discard(utterance) => self.children_do(|children| {
                children.synthesizer.do_send(CancelSpeech { utterance });
                children.responder.do_send(DiscardTurn { utterance });
            }),
            Action::Amend(amend) => {
                self.children_do(|children| children.responder.do_send(amend));
            }
            Action::Say(line) => self.children_do(|children| children.responder.do_send(line)),
            Action::Transfer => self.transfer(ctx),
            Action::Report(clock) => self.report(&clock),
            Action::Transcript(turn) => self.journal(CallEvent::Turn(turn)),
            Action::End(reason) => self.end(reason, ctx),
        }
    }

    /// Counts a barge-in stage and records it.
    fn barged_in(&self, outcome: BargeInOutcome) {
        self.settings.metrics.barge_in(outcome);
        self.journal(CallEvent::BargeIn(outcome));
    }

    /// Records `event` in the journal, once the call is known (its stream started).
    fn journal(&self, event: CallEvent) {
        if let (Some(journal), Some(call)) = (&self.settings.journal, &self.call) {
            journal.record(call, event);
        }
    }

    fn children_do(&self, f: impl FnOnce(&Children)) {
        if let Some(children) = &self.children {
            f(children);
        }
    }

    /// Keeps one timer armed at the conversation's next deadline.
    fn rearm(&mut self, ctx: &mut Context<Self>) {
        let next = self
            .conversation
            .next_deadline()
            .filter(|_| self.ended.is_none());
        if self.timer.as_ref().map(|(at, _)| *at) == next {
            return;
        }
        if let Some((_, timer)) = self.timer.take() {
            ctx.cancel_future(timer);
        }
        if let Some(at) = next {
            let wait = at.saturating_duration_since(Instant::now());
            let timer = ctx.run_later(wait, |call, ctx| {
                call.timer = None;
                call.step(ctx, Conversation::timeout);
            });
            self.timer = Some((at, timer));
        }
    }

    /// Transfers the call through the configured call control; if there is none, or it fails,
    /// the conversation hears of it (and the agent says it cannot).
    fn transfer(&mut self, ctx: &mut Context<Self>) {
        let (Some(control), Some(call)) = (self.settings.call_control.clone(), self.call.as_ref())
        else {
            tracing::info!(parent: &self.span, "transfer requested: no call control configured");
            self.step(ctx, Conversation::transfer_failed);
            return;
        };
        tracing::info!(parent: &self.span, "transferring the call");
        let transfer = control.transfer(&call.call_sid).into_actor(self);
        ctx.spawn(transfer.map(|result, call, ctx| {
            if let Err(error) = result {
                tracing::warn!(parent: &call.span, %error, "transfer failed");
                call.step(ctx, Conversation::transfer_failed);
            }
        }));
    }

    /// Logs and records a turn's latencies.
    fn report(&self, clock: &TurnClock) {
        self.settings.metrics.turn(clock);
        self.journal(CallEvent::Latency(clock.latencies()));
        let mut ms = [None; Stage::ALL.len()];
        for (stage, latency) in clock.latencies() {
            ms[stage as usize] = Some(latency.as_millis() as u64);
        }
        tracing::info!(
            parent: &self.span,
            utterance = %clock.utterance(),
            stt_final_ms = ms[Stage::SttFinal as usize],
            end_of_turn_ms = ms[Stage::EndOfTurn as usize],
            first_text_ms = ms[Stage::FirstText as usize],
            first_audio_ms = ms[Stage::FirstAudio as usize],
            first_sent_ms = ms[Stage::FirstSent as usize],
            first_heard_ms = ms[Stage::FirstHeard as usize],
            "turn latency"
        );
    }
}
