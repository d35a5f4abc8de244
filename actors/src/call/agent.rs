//! The agent's side of a call: what it is saying and what the caller heard, and what it does on
//! its own (check-ins after silence, the maximum duration, hanging up, transfers).
//!
//! Every utterance (the greeting, a reply, a lifecycle line) has an id, allocated here in order; it
//! is also its playback generation. An utterance is *done* when its last mark was echoed (or it had
//! no audio), or when a barge-in cancelled it. A hang-up waits for its goodbye to be done by mark,
//! with a fallback timer in case the mark never comes (a Synthesizer that failed mid-goodbye).

use std::time::{Duration, Instant};

use actix::prelude::*;

use super::playback::PlaybackLedger;
use super::{CallActor, Children};
use crate::engines::DialogueAction;
use crate::events::{
    AgentAction, ChunkSent, EndReason, MarkPlayed, PlaybackStarted, ReplyStarted, UtteranceSent,
};
use crate::ids::{MarkName, UtteranceId};
use crate::media::ClearAudio;
use crate::responder::{CancelReply, SayLine, GREETING};
use crate::runtime::latency::{Stage, TurnClock};
use crate::runtime::metrics::BargeInOutcome;
use crate::synthesizer::CancelSpeech;

/// If a goodbye's last mark has not come back this long after the hang-up was decided, the call
/// ends anyway.
pub const HANG_UP_FALLBACK: Duration = Duration::from_secs(30);

/// Check-ins before the agent gives up on a silent caller.
const MAX_CHECKINS: u32 = 2;

struct HangUp {
    after: UtteranceId,
    reason: EndReason,
    fallback: SpawnHandle,
}

/// The agent's side of one call.
pub(super) struct AgentSide {
    /// The newest utterance allocated; the greeting is allocated when the call starts.
    latest: UtteranceId,
    /// Every utterance up to this one is done.
    done_through: Option<UtteranceId>,
    /// Every utterance up to this one was cancelled by a barge-in.
    cancelled_through: Option<UtteranceId>,
    /// The newest utterance whose audio started going out.
    audio_through: Option<UtteranceId>,
    ledger: PlaybackLedger,
    /// The latest utterance fully sent, and the mark after its last chunk.
    last_sent: Option<(UtteranceId, MarkName)>,
    /// The greeting, or a goodbye: caller speech does not interrupt it.
    uninterruptible: Option<UtteranceId>,
    clock: Option<TurnClock>,
    hang_up: Option<HangUp>,
    transfer_after: Option<UtteranceId>,
    silence_timer: Option<SpawnHandle>,
    /// Check-ins since the caller last spoke.
    checkins: u32,
}

impl Default for AgentSide {
    fn default() -> Self {
        Self {
            latest: GREETING,
            done_through: None,
            cancelled_through: None,
            audio_through: None,
            ledger: PlaybackLedger::default(),
            last_sent: None,
            // The greeting carries the AI disclosure: it is heard whole.
            uninterruptible: Some(GREETING),
            clock: None,
            hang_up: None,
            transfer_after: None,
            silence_timer: None,
            checkins: 0,
        }
    }
}

impl AgentSide {
    /// The caller spoke or pressed a key: check-ins start over.
    pub(super) fn caller_spoke(&mut self) {
        self.checkins = 0;
    }

    fn is_done(&self, utterance: UtteranceId) -> bool {
        self.done_through >= Some(utterance)
    }
}

impl CallActor {
    pub(super) fn children_do(&self, f: impl FnOnce(&Children)) {
        if let Some(children) = &self.children {
            f(children);
        }
    }

    /// The utterance the caller is hearing, if a barge-in may interrupt it.
    pub(super) fn agent_interruptible(&self) -> Option<UtteranceId> {
        if !self.settings.conversation.barge_in.enabled {
            return None;
        }
        self.agent
            .ledger
            .playing()
            .filter(|playing| Some(*playing) != self.agent.uninterruptible)
    }

    /// Whether audio of `utterance` has started going out.
    pub(super) fn reply_started_playing(&self, utterance: UtteranceId) -> bool {
        self.agent.audio_through >= Some(utterance)
    }

    /// Whether the agent has decided to hang up.
    pub(super) fn agent_hanging_up(&self) -> bool {
        self.agent.hang_up.is_some()
    }

    /// A new utterance id.
    pub(super) fn agent_allocate(&mut self) -> UtteranceId {
        self.agent.latest = UtteranceId(self.agent.latest.0 + 1);
        self.agent.latest
    }

    /// Starts timing a turn's answer; the previous turn's timeline is reported as it stands.
    pub(super) fn start_clock(&mut self, clock: TurnClock) {
        self.report_turn();
        self.agent.clock = Some(clock);
    }

    fn clock_reached(&mut self, utterance: UtteranceId, stage: Stage, at: Instant) {
        if let Some(clock) = self.agent.clock.as_mut() {
            clock.reached(utterance, stage, at);
            if clock.is_heard() {
                self.report_turn();
            }
        }
    }

    /// Logs and records the current turn's latencies.
    pub(super) fn report_turn(&mut self) {
        let Some(clock) = self.agent.clock.take() else {
            return;
        };
        self.settings.metrics.turn(&clock);
        let mut ms = [None; 6];
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

    /// The hard stage of a barge-in: `clear` goes to Twilio first, then everything the agent has
    /// said or is composing is cancelled, and its line in the history becomes what was heard.
    pub(super) fn interrupt(&mut self, ctx: &mut Context<Self>) {
        let through = self.agent.latest;
        if self.agent.is_done(through) {
            return;
        }
        self.media.do_send(ClearAudio { through });
        let from =
            self.agent.ledger.playing().unwrap_or_else(|| {
                UtteranceId(self.agent.done_through.map_or(0, |done| done.0 + 1))
            });
        let heard = self
            .agent
            .ledger
            .heard_text(from, Instant::now(), self.caller.paused_at);
        let heard_words = heard.split_whitespace().count();
        self.children_do(|children| {
            children
                .synthesizer
                .do_send(CancelSpeech { utterance: through });
            children.responder.do_send(CancelReply {
                from,
                through,
                heard,
            });
        });
        self.agent.ledger.forget_through(through);
        self.agent.cancelled_through = Some(through);
        self.caller.paused_at = None;
        self.leave_soft_stage(ctx);
        self.settings.metrics.barge_in(BargeInOutcome::Interrupted);
        tracing::debug!(parent: &self.span, %from, %through, heard_words, "agent interrupted");
        if self.agent.transfer_after <= Some(through) {
            self.agent.transfer_after = None;
        }
        if self
            .agent
            .clock
            .as_ref()
            .is_some_and(|clock| clock.utterance() <= through)
        {
            self.report_turn();
        }
        self.utterance_done(through, ctx);
    }

    /// Everything up to `utterance` is done (heard, silent or cancelled).
    fn utterance_done(&mut self, utterance: UtteranceId, ctx: &mut Context<Self>) {
        if self.agent.is_done(utterance) {
            return;
        }
        self.agent.done_through = Some(utterance);
        if self.agent.ledger.playing().is_none() {
            self.resume_playback(ctx);
        }
        let heard = self.agent.cancelled_through < Some(utterance);
        if heard
            && self
                .agent
                .transfer_after
                .is_some_and(|after| after <= utterance)
        {
            self.agent.transfer_after = None;
            self.transfer(ctx);
        }
        if heard {
            if let Some(hang_up) = self.agent.hang_up.take_if(|h| h.after <= utterance) {
                ctx.cancel_future(hang_up.fallback);
                tracing::info!(parent: &self.span, reason = hang_up.reason.as_str(), "agent ended the call");
                self.end(hang_up.reason, ctx);
            }
        }
    }

    /// Hangs up once `utterance` (a goodbye) has been heard; nothing interrupts it.
    fn hang_up_after(
        &mut self,
        utterance: UtteranceId,
        reason: EndReason,
        ctx: &mut Context<Self>,
    ) {
        if self.agent.cancelled_through >= Some(utterance) {
            return;
        }
        self.agent.uninterruptible = Some(utterance);
        if self.agent.is_done(utterance) {
            tracing::info!(parent: &self.span, reason = reason.as_str(), "agent ended the call");
            self.end(reason, ctx);
            return;
        }
        let fallback = ctx.run_later(HANG_UP_FALLBACK, |call, ctx| {
            if let Some(hang_up) = call.agent.hang_up.take() {
                tracing::warn!(parent: &call.span, "goodbye never finished playing: hanging up");
                call.end(hang_up.reason, ctx);
            }
        });
        self.agent.hang_up = Some(HangUp {
            after: utterance,
            reason,
            fallback,
        });
    }

    /// Says a fixed line as a new utterance.
    fn say(&mut self, text: &str) -> UtteranceId {
        let utterance = self.agent_allocate();
        let line = SayLine {
            utterance,
            text: text.to_owned(),
        };
        self.children_do(|children| children.responder.do_send(line));
        utterance
    }

    /// Transfers the call through the configured call control, or says it cannot.
    fn transfer(&mut self, ctx: &mut Context<Self>) {
        let (Some(control), Some(call)) = (self.settings.call_control.clone(), self.call.as_ref())
        else {
            tracing::info!(parent: &self.span, "transfer requested: no call control configured");
            let conversation = self.settings.conversation.clone();
            self.say(&conversation.lines.transfer_unavailable);
            return;
        };
        tracing::info!(parent: &self.span, "transferring the call");
        let transfer = control.transfer(&call.call_sid).into_actor(self);
        ctx.spawn(transfer.map(|result, call, ctx| {
            if let Err(error) = result {
                tracing::warn!(parent: &call.span, %error, "transfer failed");
                let conversation = call.settings.conversation.clone();
                call.say(&conversation.lines.transfer_unavailable);
                call.settle(ctx);
            }
        }));
    }

    /// Starts the call-wide timers: the maximum duration.
    pub(super) fn arm_call_timers(&mut self, ctx: &mut Context<Self>) {
        if let Some(max) = self.settings.conversation.max_duration {
            ctx.run_later(max, |call, ctx| call.time_up(ctx));
        }
    }

    fn time_up(&mut self, ctx: &mut Context<Self>) {
        if self.agent_hanging_up() {
            return;
        }
        tracing::info!(parent: &self.span, "maximum call duration reached");
        self.interrupt(ctx);
        let conversation = self.settings.conversation.clone();
        let goodbye = self.say(&conversation.lines.time_up_goodbye);
        self.hang_up_after(goodbye, EndReason::MaxDuration, ctx);
        self.settle(ctx);
    }

    /// Arms the silence check-in when both sides are quiet, and disarms it when not.
    pub(super) fn settle(&mut self, ctx: &mut Context<Self>) {
        let quiet = self.children.is_some()
            && self.ended.is_none()
            && !self.caller.is_mid_turn()
            && self.agent.is_done(self.agent.latest)
            && self.agent.hang_up.is_none()
            && self.agent.transfer_after.is_none();
        let after = self.settings.conversation.silence_checkin;
        match (quiet, after, self.agent.silence_timer.is_some()) {
            (true, Some(after), false) => {
                self.agent.silence_timer = Some(ctx.run_later(after, |call, ctx| {
                    call.agent.silence_timer = None;
                    call.check_in(ctx);
                }));
            }
            (false, _, true) => {
                if let Some(timer) = self.agent.silence_timer.take() {
                    ctx.cancel_future(timer);
                }
            }
            _ => {}
        }
    }

    fn check_in(&mut self, ctx: &mut Context<Self>) {
        self.agent.checkins += 1;
        let conversation = self.settings.conversation.clone();
        let lines = &conversation.lines;
        if self.agent.checkins <= MAX_CHECKINS {
            tracing::info!(parent: &self.span, checkins = self.agent.checkins, "caller silent: checking in");
            self.say(&lines.still_there);
        } else {
            tracing::info!(parent: &self.span, "caller silent after check-ins: hanging up");
            let goodbye = self.say(&lines.no_answer_goodbye);
            self.hang_up_after(goodbye, EndReason::AgentEnded, ctx);
        }
        self.settle(ctx);
    }
}

impl Handler<ChunkSent> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: ChunkSent, ctx: &mut Context<Self>) {
        let utterance = msg.mark.utterance;
        if self.agent.is_done(utterance) {
            // A cancelled generation still in flight: the MediaStream drops its audio too.
            return;
        }
        self.agent
            .ledger
            .chunk_sent(msg.mark, msg.frames, msg.clause, Instant::now());
        self.agent.audio_through = self.agent.audio_through.max(Some(utterance));
        self.clock_reached(utterance, Stage::FirstAudio, Instant::now());
        self.settle(ctx);
    }
}

impl Handler<PlaybackStarted> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: PlaybackStarted, _: &mut Context<Self>) {
        self.clock_reached(msg.utterance, Stage::FirstSent, Instant::now());
    }
}

impl Handler<ReplyStarted> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: ReplyStarted, _: &mut Context<Self>) {
        self.clock_reached(msg.utterance, Stage::FirstText, Instant::now());
    }
}

impl Handler<MarkPlayed> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: MarkPlayed, ctx: &mut Context<Self>) {
        self.playback.marks_heard += 1;
        self.playback.last_heard = Some(msg.mark);
        let now = Instant::now();
        if let Some(played) = self.agent.ledger.mark_echoed(msg.mark, now) {
            if msg.mark.chunk == 0 {
                // The first chunk started playing its own length before its mark came back.
                let started = now.checked_sub(played).unwrap_or(now);
                self.clock_reached(msg.mark.utterance, Stage::FirstHeard, started);
            }
        }
        if let Some((utterance, _)) = self.agent.last_sent.filter(|(_, last)| *last == msg.mark) {
            self.utterance_done(utterance, ctx);
        }
        self.settle(ctx);
    }
}

impl Handler<UtteranceSent> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: UtteranceSent, ctx: &mut Context<Self>) {
        if self.agent.is_done(msg.utterance) {
            return;
        }
        match msg.last_mark {
            Some(mark) => self.agent.last_sent = Some((msg.utterance, mark)),
            None => self.utterance_done(msg.utterance, ctx),
        }
        self.settle(ctx);
    }
}

impl Handler<AgentAction> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: AgentAction, ctx: &mut Context<Self>) {
        match msg.action {
            DialogueAction::EndCall => {
                self.hang_up_after(msg.utterance, EndReason::AgentEnded, ctx);
            }
            DialogueAction::TransferCall => {
                if self.agent.cancelled_through >= Some(msg.utterance) {
                    return;
                }
                if self.agent.is_done(msg.utterance) {
                    self.transfer(ctx);
                } else {
                    self.agent.transfer_after = Some(msg.utterance);
                }
            }
        }
        self.settle(ctx);
    }
}
