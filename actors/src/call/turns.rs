//! The caller's side of a call: when a turn ends, late finals, keypad turns and barge-in.
//!
//! - A turn opens with the recogniser's first sign of speech and ends with its end of turn. A
//!   final result with no end of turn after it ends the turn once the energy VAD has heard
//!   [`ConversationSettings::turn_silence`] of silence. A turn is handed to the Responder once.
//! - A **late final** (words recognised after the turn was taken, with no new speech start) is
//!   merged into that turn: if its reply has not started playing, the reply is cancelled and the
//!   whole turn answered once; if it has, the words are added to the history, not answered.
//! - While the agent speaks, caller speech goes through [`BargeIn`]: pause, then resume or
//!   interrupt. A turn that ends over the agent interrupts it, unless it is only backchannel
//!   ("uh-huh"), which is not a turn at all.
//! - Keypad digits are a turn ended by `#` or a pause.
//!
//! [`ConversationSettings::turn_silence`]: super::conversation::ConversationSettings::turn_silence

use std::time::{Duration, Instant};

use actix::prelude::*;

use super::barge_in::{BargeIn, Verdict};
use super::CallActor;
use crate::audio::mulaw;
use crate::audio::vad::{rms_dbfs, VadConfig};
use crate::engines::TranscriptEvent;
use crate::events::{InboundAudio, KeyPressed, TranscriptReceived};
use crate::media::{PausePlayback, ResumePlayback};
use crate::responder::{AmendTurn, UserTurn};
use crate::runtime::latency::TurnClock;
use crate::runtime::metrics::BargeInOutcome;

/// A pause after the last key that ends a keypad turn (as IVRs wait for more digits).
pub const KEYPAD_PAUSE: Duration = Duration::from_millis(1500);

/// Keys kept per keypad turn; more are ignored (no phone number or account id is longer).
const MAX_KEYS: usize = 32;

/// A final result with no speech start before it, this soon after a turn was taken, belongs to
/// that turn (recognisers finalise the last words of a turn after its end).
const LATE_FINAL_WINDOW: Duration = Duration::from_secs(2);

/// The caller's turn in progress.
struct OpenTurn {
    /// Final text so far.
    text: String,
    /// The recogniser reported speech (a speech start or a partial) in this turn.
    speech: bool,
    opened_at: Instant,
    /// When the latest final arrived.
    final_at: Option<Instant>,
    /// Ends the turn on silence if the recogniser does not.
    silence_timer: Option<SpawnHandle>,
}

/// The turn last handed to the Responder.
struct TakenTurn {
    utterance: crate::ids::UtteranceId,
    text: String,
    at: Instant,
}

/// The caller's side of one call.
#[derive(Default)]
pub(super) struct CallerSide {
    turn: Option<OpenTurn>,
    last_taken: Option<TakenTurn>,
    /// Keys pressed since the last keypad turn.
    pub(super) keys: String,
    /// Bumped per key, so only the latest key's pause timer ends the keypad turn.
    keys_generation: u64,
    samples: Vec<i16>,
    /// When the energy VAD last heard a voiced frame.
    last_voiced: Option<Instant>,
    barge_in: BargeIn,
    /// When playback paused (soft stage), to cap the estimate of what was heard.
    pub(super) paused_at: Option<Instant>,
    resume_timer: Option<SpawnHandle>,
}

impl CallerSide {
    /// Whether the caller is in the middle of a turn (speech or keys).
    pub(super) fn is_mid_turn(&self) -> bool {
        self.turn.is_some() || !self.keys.is_empty()
    }
}

impl CallActor {
    /// The energy VAD's opinion of one frame: it dates the end of speech and confirms barge-ins.
    fn on_caller_audio(&mut self, payload: &[u8], ctx: &mut Context<Self>) {
        let samples = &mut self.caller.samples;
        samples.clear();
        mulaw::decode_into(payload, samples);
        let voiced = rms_dbfs(samples) >= VadConfig::default().threshold_dbfs;
        if voiced {
            self.caller.last_voiced = Some(Instant::now());
        }
        let settings = &self.settings.conversation.barge_in;
        let verdict = self.caller.barge_in.frame(voiced, settings);
        if self.agent_interruptible().is_some() {
            self.barge_in(verdict, ctx);
        }
    }

    fn on_transcript(&mut self, event: TranscriptEvent, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let interruptible = self.agent_interruptible().is_some();
        let conversation = self.settings.conversation.clone();
        let settings = &conversation.barge_in;
        let verdict = match event {
            TranscriptEvent::SpeechStarted => {
                self.open_turn(true, now);
                interruptible.then(|| self.caller.barge_in.speech_started(settings))
            }
            TranscriptEvent::Partial { text } => {
                let turn = self.open_turn(true, now);
                let so_far = format!("{} {text}", turn.text);
                interruptible.then(|| self.caller.barge_in.heard(&so_far, settings))
            }
            TranscriptEvent::Final { text } => {
                let turn = self.open_turn(false, now);
                if !turn.text.is_empty() {
                    turn.text.push(' ');
                }
                turn.text.push_str(text.trim());
                turn.final_at = Some(now);
                let so_far = (interruptible && turn.speech).then(|| turn.text.clone());
                let verdict = so_far.map(|text| self.caller.barge_in.heard(&text, settings));
                self.end_turn_on_silence(ctx);
                verdict
            }
            TranscriptEvent::EndOfTurn => {
                self.take_turn(ctx);
                None
            }
        };
        if let Some(verdict) = verdict {
            self.barge_in(verdict, ctx);
        }
        self.settle(ctx);
    }

    /// The open turn (opened now if there is none); `speech`: the recogniser heard speech.
    fn open_turn(&mut self, speech: bool, now: Instant) -> &mut OpenTurn {
        self.agent.caller_spoke();
        let turn = self.caller.turn.get_or_insert_with(|| OpenTurn {
            text: String::new(),
            speech: false,
            opened_at: now,
            final_at: None,
            silence_timer: None,
        });
        turn.speech |= speech;
        turn
    }

    /// Arms the fallback end of turn: `turn_silence` after the energy VAD last heard the caller.
    fn end_turn_on_silence(&mut self, ctx: &mut Context<Self>) {
        let silence = self.settings.conversation.turn_silence;
        let heard_since = self
            .caller
            .last_voiced
            .map_or(Duration::ZERO, |at| at.elapsed());
        let Some(turn) = self.caller.turn.as_mut() else {
            return;
        };
        if let Some(timer) = turn.silence_timer.take() {
            ctx.cancel_future(timer);
        }
        let wait = silence.saturating_sub(heard_since);
        turn.silence_timer = Some(ctx.run_later(wait, |call, ctx| {
            if let Some(turn) = call.caller.turn.as_mut() {
                turn.silence_timer = None;
            }
            let quiet = call
                .caller
                .last_voiced
                .is_none_or(|at| at.elapsed() >= call.settings.conversation.turn_silence);
            if quiet {
                call.take_turn(ctx);
            } else {
                call.end_turn_on_silence(ctx);
            }
            call.settle(ctx);
        }));
    }

    /// Ends the open turn: answers it, merges it into the previous one, or drops it (noise, or
    /// backchannel over the agent).
    fn take_turn(&mut self, ctx: &mut Context<Self>) {
        let Some(mut turn) = self.caller.turn.take() else {
            return;
        };
        if let Some(timer) = turn.silence_timer.take() {
            ctx.cancel_future(timer);
        }
        let now = Instant::now();
        let over_agent = self.agent_interruptible().is_some();
        let backchannel = self
            .settings
            .conversation
            .barge_in
            .backchannels
            .covers(&turn.text);
        if turn.text.is_empty() || (over_agent && backchannel) {
            self.resume_playback(ctx);
            return;
        }
        let late = self
            .caller
            .last_taken
            .as_ref()
            .filter(|last| !turn.speech && now.duration_since(last.at) <= LATE_FINAL_WINDOW)
            .map(|last| (last.utterance, last.text.clone()));
        let mut amends = false;
        if let Some((utterance, text)) = late {
            if self.reply_started_playing(utterance) {
                let amend = AmendTurn {
                    utterance,
                    text: turn.text,
                };
                self.children_do(|children| children.responder.do_send(amend));
                self.resume_playback(ctx);
                return;
            }
            turn.text = format!("{text} {}", turn.text);
            amends = true;
        }
        let speech_end = self
            .caller
            .last_voiced
            .filter(|at| *at >= turn.opened_at)
            .or(turn.final_at)
            .unwrap_or(now);
        self.hand_over(turn.text, amends, speech_end, turn.final_at, ctx);
    }

    /// Gives a caller turn to the Responder, interrupting the agent first if it is speaking (or
    /// composing a reply the turn amends).
    fn hand_over(
        &mut self,
        text: String,
        amends: bool,
        speech_end: Instant,
        final_at: Option<Instant>,
        ctx: &mut Context<Self>,
    ) {
        if self.agent_hanging_up() {
            tracing::debug!(parent: &self.span, "caller turn after the agent ended the call: not answered");
            return;
        }
        if self.agent_interruptible().is_some() || amends {
            self.interrupt(ctx);
        }
        let utterance = self.agent_allocate();
        let now = Instant::now();
        self.start_clock(TurnClock::new(utterance, speech_end, final_at, now));
        self.caller.last_taken = Some(TakenTurn {
            utterance,
            text: text.clone(),
            at: now,
        });
        self.playback.turns += 1;
        let turn = UserTurn {
            utterance,
            text,
            amends,
        };
        self.children_do(|children| children.responder.do_send(turn));
    }

    /// Acts on a barge-in verdict.
    fn barge_in(&mut self, verdict: Verdict, ctx: &mut Context<Self>) {
        match verdict {
            Verdict::Continue => {}
            Verdict::Pause => {
                self.media.do_send(PausePlayback);
                self.caller.paused_at = Some(Instant::now());
                self.settings.metrics.barge_in(BargeInOutcome::Paused);
                let after = self.settings.conversation.barge_in.resume_after;
                self.caller.resume_timer = Some(ctx.run_later(after, |call, ctx| {
                    call.caller.resume_timer = None;
                    call.resume_playback(ctx);
                }));
            }
            Verdict::Interrupt => self.interrupt(ctx),
        }
    }

    /// Ends the soft stage, if any, and plays on from where playback paused.
    pub(super) fn resume_playback(&mut self, ctx: &mut Context<Self>) {
        self.leave_soft_stage(ctx);
        if self.caller.paused_at.take().is_some() {
            self.media.do_send(ResumePlayback);
            self.settings.metrics.barge_in(BargeInOutcome::Resumed);
        }
    }

    /// Forgets the soft stage without resuming (the audio was cleared or has played).
    pub(super) fn leave_soft_stage(&mut self, ctx: &mut Context<Self>) {
        self.caller.barge_in.resume();
        if let Some(timer) = self.caller.resume_timer.take() {
            ctx.cancel_future(timer);
        }
    }

    /// A key: `#` ends the keypad turn at once; any other key is collected, and the turn ends
    /// after a pause.
    fn on_key(&mut self, key: char, ctx: &mut Context<Self>) {
        self.agent.caller_spoke();
        if key == '#' {
            self.keypad_turn(ctx);
            return;
        }
        if self.caller.keys.len() < MAX_KEYS {
            self.caller.keys.push(key);
        }
        self.caller.keys_generation += 1;
        let generation = self.caller.keys_generation;
        ctx.run_later(KEYPAD_PAUSE, move |call, ctx| {
            if call.caller.keys_generation == generation {
                call.keypad_turn(ctx);
                call.settle(ctx);
            }
        });
    }

    fn keypad_turn(&mut self, ctx: &mut Context<Self>) {
        let keys = std::mem::take(&mut self.caller.keys);
        if !keys.is_empty() {
            let now = Instant::now();
            self.hand_over(keys, false, now, None, ctx);
        }
    }
}

impl Handler<InboundAudio> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: InboundAudio, ctx: &mut Context<Self>) {
        self.frames_in += 1;
        if self.children.is_none() {
            return;
        }
        self.on_caller_audio(&msg.frame.payload, ctx);
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
        self.on_transcript(msg.event, ctx);
    }
}

impl Handler<KeyPressed> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: KeyPressed, ctx: &mut Context<Self>) {
        self.on_key(msg.key, ctx);
        self.settle(ctx);
    }
}
