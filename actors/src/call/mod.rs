//! CallActor: the supervisor of one call and the owner of its turn-taking.
//!
//! ```text
//!            ┌──────────── CallActor ─────────────┐
//!  socket ⇄ MediaStream   Transcriber   Responder   Synthesizer
//! ```
//! MediaStream --InboundAudio--> CallActor --InboundAudio--> Transcriber --TranscriptReceived-->
//! CallActor --UserTurn--> Responder --Speak--> Synthesizer --PlayAudio--> MediaStream;
//! MediaStream --MarkPlayed--> CallActor (what the caller heard).
//!
//! The CallActor registers in [`LiveCalls`] for its whole life, starts the MediaStream at once and
//! the three engine children once the `start` is admitted. Children run under actix supervisors with
//! the [`RestartPolicy`]; a child that spends its budget ends the call with a logged reason. When the
//! call ends, for whatever reason, every child is stopped and the registration dropped.

pub mod messages;
pub mod registry;
pub mod supervision;

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::mpsc;

use crate::engines::{CallContext, DialogueAction, EngineSet, TranscriptEvent};
use crate::ids::{MarkName, UtteranceId};
use crate::media::admission::{Admission, StreamAuthorizer};
use crate::media::{CloseStream, MediaSettings, MediaStream, SocketCommand};
use crate::responder::{Responder, UserTurn};
use crate::synthesizer::Synthesizer;
use crate::transcriber::Transcriber;
use messages::{
    AgentAction, ChildGaveUp, ChildKind, EndCall, EndReason, GetPlayback, InboundAudio, KeyPressed,
    MarkPlayed, PlaybackStatus, StreamEnded, StreamStarted, TranscriptReceived, UtteranceSent,
};
use registry::{LiveCallGuard, LiveCalls};
use supervision::{ChildSupervision, RestartPolicy, StopChild};

/// Mailbox capacity of a CallActor and its Transcriber: about 1.3 s of 20 ms frames. Inbound audio
/// is `try_send`; a full mailbox means the actor stalled, and frames are dropped rather than queued.
pub const AUDIO_MAILBOX_CAPACITY: usize = 64;

/// A pause after the last key that ends a keypad turn (as IVRs wait for more digits).
pub const KEYPAD_PAUSE: Duration = Duration::from_millis(1500);

/// Keys kept per keypad turn; more are ignored (no phone number or account id is longer).
const MAX_KEYS: usize = 32;

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
    /// Final transcript text of the caller's current turn.
    turn_text: String,
    /// Keys pressed since the last keypad turn; `#` or a pause of [`KEYPAD_PAUSE`] ends it.
    keys: String,
    /// Bumped per key, so only the latest key's pause timer ends the keypad turn.
    keys_generation: u64,
    next_utterance: u64,
    playback: PlaybackStatus,
    frames_in: u64,
    frames_dropped: u64,
    /// The agent hangs up once this utterance has played.
    hang_up_after: Option<UtteranceId>,
    /// The mark after the last chunk of that utterance, once sent (`Some(None)`: it had no audio).
    hang_up_mark: Option<Option<MarkName>>,
    /// The latest utterance fully sent, and the mark after its last chunk (the Synthesizer may
    /// finish before the Responder reports the action).
    last_sent: Option<(UtteranceId, Option<MarkName>)>,
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
                ctx.address(),
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
                turn_text: String::new(),
                keys: String::new(),
                keys_generation: 0,
                next_utterance: 1,
                playback: PlaybackStatus::default(),
                frames_in: 0,
                frames_dropped: 0,
                hang_up_after: None,
                hang_up_mark: None,
                last_sent: None,
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
            let (engine, call, media) = (engines.tts.clone(), call.clone(), self.media.clone());
            let supervision = supervision(ChildKind::Synthesizer);
            let sent = ctx.address().recipient();
            Supervisor::start(move |_| Synthesizer::new(engine, call, media, sent, supervision))
        };
        let responder = {
            let (engine, call, synth) = (
                engines.dialogue.clone(),
                call.clone(),
                synthesizer.downgrade(),
            );
            let supervision = supervision(ChildKind::Responder);
            let actions = ctx.address().recipient();
            Supervisor::start(move |_| Responder::new(engine, call, synth, actions, supervision))
        };
        self.children = Some(Children {
            transcriber,
            responder,
            synthesizer,
        });
    }

    fn on_transcript(&mut self, event: TranscriptEvent) {
        match event {
            TranscriptEvent::SpeechStarted | TranscriptEvent::Partial { .. } => {}
            TranscriptEvent::Final { text } => {
                if !self.turn_text.is_empty() {
                    self.turn_text.push(' ');
                }
                self.turn_text.push_str(&text);
            }
            TranscriptEvent::EndOfTurn => {
                let text = std::mem::take(&mut self.turn_text);
                self.user_turn(text);
            }
        }
    }

    /// Hands a finished caller turn (speech or keys) to the Responder.
    fn user_turn(&mut self, text: String) {
        if text.is_empty() {
            return;
        }
        let utterance = UtteranceId(self.next_utterance);
        self.next_utterance += 1;
        self.playback.turns += 1;
        if let Some(children) = &self.children {
            children.responder.do_send(UserTurn { utterance, text });
        }
    }

    /// A key: `#` ends the keypad turn at once; any other key is collected, and the turn ends
    /// after a pause.
    fn on_key(&mut self, key: char, ctx: &mut Context<Self>) {
        if key == '#' {
            let keys = std::mem::take(&mut self.keys);
            self.user_turn(keys);
            return;
        }
        if self.keys.len() < MAX_KEYS {
            self.keys.push(key);
        }
        self.keys_generation += 1;
        let generation = self.keys_generation;
        ctx.run_later(KEYPAD_PAUSE, move |call, _| {
            if call.keys_generation == generation {
                let keys = std::mem::take(&mut call.keys);
                call.user_turn(keys);
            }
        });
    }

    /// Hangs up when the utterance the agent ended the call with has played: its last mark came
    /// back from Twilio (or it had no audio at all).
    fn hang_up_if_heard(&mut self, ctx: &mut Context<Self>) {
        let heard = match self.hang_up_mark {
            Some(None) => true,
            Some(Some(mark)) => self.playback.last_heard == Some(mark),
            None => false,
        };
        if heard {
            tracing::info!(parent: &self.span, "agent ended the call");
            self.end(EndReason::AgentEnded, ctx);
        }
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
    }
}

impl Handler<InboundAudio> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: InboundAudio, _: &mut Context<Self>) {
        self.frames_in += 1;
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

    fn handle(&mut self, msg: TranscriptReceived, _: &mut Context<Self>) {
        self.on_transcript(msg.event);
    }
}

impl Handler<MarkPlayed> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: MarkPlayed, ctx: &mut Context<Self>) {
        self.playback.marks_heard += 1;
        self.playback.last_heard = Some(msg.mark);
        self.hang_up_if_heard(ctx);
    }
}

impl Handler<KeyPressed> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: KeyPressed, ctx: &mut Context<Self>) {
        self.on_key(msg.key, ctx);
    }
}

impl Handler<AgentAction> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: AgentAction, ctx: &mut Context<Self>) {
        match msg.action {
            DialogueAction::EndCall => {
                self.hang_up_after = Some(msg.utterance);
                self.hang_up_mark = self
                    .last_sent
                    .filter(|(sent, _)| *sent == msg.utterance)
                    .map(|(_, mark)| mark);
                self.hang_up_if_heard(ctx);
            }
        }
    }
}

impl Handler<UtteranceSent> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: UtteranceSent, ctx: &mut Context<Self>) {
        self.last_sent = Some((msg.utterance, msg.last_mark));
        if self.hang_up_after == Some(msg.utterance) {
            self.hang_up_mark = Some(msg.last_mark);
            self.hang_up_if_heard(ctx);
        }
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
