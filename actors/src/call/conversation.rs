//! The conversation of one call, sans-I/O: turn-taking, barge-in and the agent's lifecycle.
//!
//! [`Conversation`] is told what happened (caller audio, transcript events, keys, what the
//! Synthesizer sent and Twilio echoed, what the Responder asked for) and when (`now`). It answers
//! with [`Action`]s, which the CallActor carries out in order: messages to the children, reports,
//! the end of the call. It waits by deadline: [`Conversation::next_deadline`] says when it wants
//! [`Conversation::timeout`] called. Tests drive it with made-up instants.
//!
//! The caller's side (`turns`):
//! - A turn opens with the recogniser's first sign of speech and ends with its end of turn. A final
//!   result with no end of turn after it ends the turn once the energy VAD has heard
//!   [`ConversationSettings::turn_silence`] of silence. A turn is handed to the Responder once.
//! - A **late final** (words recognised after the turn was taken, with no new speech start) is
//!   merged into that turn: if its reply has not started playing, the reply is cancelled and the
//!   whole turn answered once; if it has, the words are added to the history, not answered.
//! - While the agent speaks, caller speech goes through [`BargeIn`](super::barge_in::BargeIn):
//!   pause, then resume or interrupt. A turn that ends over the agent interrupts it, unless it is
//!   only backchannel ("uh-huh"), which is not a turn at all.
//! - Keypad digits are a turn ended by `#` or a pause.
//! - **Speculative replies**: when the recogniser says the turn is probably over
//!   ([`TranscriptEvent::ProbableEnd`]) and the agent is quiet, the reply is prepared at once under
//!   a new utterance id, its audio held ([`Action::Speculate`]). If the turn then ends with the
//!   same words, that reply is the answer and its audio goes out ([`Action::Commit`]); if the
//!   caller goes on, or the turn ends otherwise, it is dropped unheard ([`Action::Discard`]).
//!
//! The agent's side (`agent`): what is playing and was heard (from marks), hanging
//! up once a goodbye is heard, transfers, check-ins after silence, the maximum duration, and the
//! per-turn latency clock.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::agent::{AgentSide, Finished, SpokenTurn, MAX_CHECKINS};
use super::barge_in::Verdict;
use super::settings::ConversationSettings;
use super::turns::{CallerSide, CallerTurn, TurnEnd};
use crate::engines::{DialogueAction, TranscriptEvent};
use crate::events::{AgentAction, ChunkSent, EndReason, UtteranceSent};
use crate::ids::{MarkName, UtteranceId};
use crate::responder::{AmendTurn, CancelReply, SayLine, UserTurn};
use crate::runtime::journal::{Speaker, TranscriptTurn};
use crate::runtime::latency::{Stage, TurnClock};

/// What the CallActor does for the conversation, in the order given.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Soft stage of a barge-in: pause playback (what Twilio has buffered plays).
    Pause,
    /// The soft stage ended unconfirmed: resume playback where it paused.
    Resume,
    /// Hard stage of a barge-in: `clear` Twilio's buffer first, then cancel the speech and the
    /// replies up to `through`; the Responder learns what was heard.
    Interrupt(CancelReply),
    /// Answer a caller turn.
    Answer(UserTurn),
    /// Prepare the reply to a turn the caller has probably finished, holding its audio.
    Speculate(UserTurn),
    /// The speculative reply is the answer: its audio goes out.
    Commit(UtteranceId),
    /// The speculative reply is not wanted: drop it unheard.
    Discard(UtteranceId),
    /// Late words for a turn whose reply is playing: into the history, unanswered.
    Amend(AmendTurn),
    /// Say a fixed line (a check-in, a goodbye).
    Say(SayLine),
    /// Transfer the call to a person; if that cannot be done, tell
    /// [`Conversation::transfer_failed`].
    Transfer,
    /// A turn's answer has been timed: record its latencies.
    Report(TurnClock),
    /// A turn of the transcript is final: record it.
    Transcript(TranscriptTurn),
    /// End the call.
    End(EndReason),
}

/// What the caller has heard so far (the answer to the CallActor's `GetPlayback`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PlaybackStatus {
    /// Marks Twilio has echoed.
    pub marks_heard: u64,
    /// The latest echoed mark.
    pub last_heard: Option<MarkName>,
    /// Utterances handed to the Responder.
    pub turns: u64,
}

/// A reply prepared for a turn the caller has probably finished.
struct Speculation {
    utterance: UtteranceId,
    /// The turn it answers.
    text: String,
    /// When its first text arrived, for the turn's clock once committed.
    first_text: Option<Instant>,
}

/// The turn-taking and lifecycle state of one call.
pub struct Conversation {
    settings: Arc<ConversationSettings>,
    caller: CallerSide,
    agent: AgentSide,
    status: PlaybackStatus,
    /// The call is streaming and its children run.
    live: bool,
    /// When the media stream started: transcript times count from here.
    started_at: Option<Instant>,
    speculation: Option<Speculation>,
    span: tracing::Span,
}

impl Conversation {
    /// The conversation of a call not yet streaming; it logs under `span`.
    pub fn new(settings: Arc<ConversationSettings>, span: tracing::Span) -> Self {
        Self {
            settings,
            caller: CallerSide::default(),
            agent: AgentSide::default(),
            status: PlaybackStatus::default(),
            live: false,
            started_at: None,
            speculation: None,
            span,
        }
    }

    /// What the caller has heard so far.
    pub fn status(&self) -> PlaybackStatus {
        self.status
    }

    /// The media stream started at `now` and the children run: the maximum duration counts.
    pub fn started(&mut self, now: Instant) {
        self.live = true;
        self.started_at = Some(now);
        self.agent.started(now, self.settings.max_duration);
        self.settle(now);
    }

    /// The call ended: nothing more happens. Returns the turn being timed, to report as it stands.
    pub fn ended(&mut self) -> Option<TurnClock> {
        self.live = false;
        self.agent.take_clock()
    }

    /// 20 ms of caller audio at `now`, for the energy VAD (barge-in confirmation, end of speech).
    pub fn caller_audio(&mut self, payload: &[u8], now: Instant, out: &mut Vec<Action>) {
        let voiced = self.caller.hear(payload, now);
        let verdict = self.caller.barge_in.frame(voiced, &self.settings.barge_in);
        if self.interruptible() {
            self.barge_in(verdict, now, out);
        }
        self.settle(now);
    }

    /// The recogniser heard `event` at `now`.
    pub fn transcript(&mut self, event: TranscriptEvent, now: Instant, out: &mut Vec<Action>) {
        let interruptible = self.interruptible();
        let settings = self.settings.clone();
        let barge_in = &settings.barge_in;
        let verdict = match event {
            TranscriptEvent::SpeechStarted => {
                self.discard_speculation(now, out);
                self.open_turn(true, now);
                interruptible.then(|| self.caller.barge_in.speech_started(barge_in))
            }
            TranscriptEvent::Partial { text } => {
                self.discard_speculation(now, out);
                let so_far = format!("{} {text}", self.open_turn(true, now));
                interruptible.then(|| self.caller.barge_in.heard(&so_far, barge_in))
            }
            TranscriptEvent::Final { text } => {
                self.agent.caller_spoke();
                let silence = settings.turn_silence;
                let so_far = self.caller.final_words(&text, now, silence);
                let so_far = so_far.filter(|_| interruptible).map(str::to_owned);
                so_far.map(|text| self.caller.barge_in.heard(&text, barge_in))
            }
            TranscriptEvent::ProbableEnd { text } => {
                self.speculate(&text, out);
                None
            }
            TranscriptEvent::EndOfTurn => {
                self.take_turn(now, out);
                None
            }
        };
        if let Some(verdict) = verdict {
            self.barge_in(verdict, now, out);
        }
        self.settle(now);
    }

    /// The caller pressed `key` at `now`: `#` ends the keypad turn at once; any other key is
    /// collected, and the turn ends after a pause.
    pub fn key(&mut self, key: char, now: Instant, out: &mut Vec<Action>) {
        self.agent.caller_spoke();
        if key == '#' {
            self.keypad_turn(now, out);
        } else {
            self.caller.press(key, now);
        }
        self.settle(now);
    }

    /// The Synthesizer sent a chunk at `now`.
    pub fn chunk_sent(&mut self, chunk: ChunkSent, now: Instant, out: &mut Vec<Action>) {
        let utterance = chunk.mark.utterance;
        if self.agent.chunk_sent(chunk, now) {
            self.clock_reached(utterance, Stage::FirstAudio, now, out);
        }
        self.settle(now);
    }

    /// The engine said where more words of `utterance`'s latest clause end.
    pub fn words_timed(&mut self, utterance: UtteranceId, ends: Vec<Duration>) {
        self.agent.words_timed(utterance, ends);
    }

    /// The MediaStream wrote the first frame of `utterance` at `now`.
    pub fn playback_started(
        &mut self,
        utterance: UtteranceId,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        self.clock_reached(utterance, Stage::FirstSent, now, out);
    }

    /// The Responder received the first text of the reply `utterance` at `now`.
    pub fn reply_started(&mut self, utterance: UtteranceId, now: Instant, out: &mut Vec<Action>) {
        if let Some(speculation) = self
            .speculation
            .as_mut()
            .filter(|speculation| speculation.utterance == utterance)
        {
            speculation.first_text.get_or_insert(now);
        }
        self.clock_reached(utterance, Stage::FirstText, now, out);
    }

    /// Twilio echoed `mark` at `now`: the caller heard the audio before it.
    pub fn mark_played(&mut self, mark: MarkName, now: Instant, out: &mut Vec<Action>) {
        self.status.marks_heard += 1;
        self.status.last_heard = Some(mark);
        let echo = self.agent.mark_echoed(mark, now);
        if let Some(started) = echo.first_heard {
            self.clock_reached(mark.utterance, Stage::FirstHeard, started, out);
        }
        if let Some(utterance) = echo.last_of {
            self.utterance_done(utterance, now, out);
        }
        self.settle(now);
    }

    /// The Synthesizer sent the last audio of an utterance at `now`.
    pub fn utterance_sent(&mut self, sent: UtteranceSent, now: Instant, out: &mut Vec<Action>) {
        if let Some(done) = self.agent.utterance_sent(sent.utterance, sent.last_mark) {
            self.utterance_done(done, now, out);
        }
        self.settle(now);
    }

    /// A reply asked at `now` for an action once heard.
    pub fn agent_action(&mut self, action: AgentAction, now: Instant, out: &mut Vec<Action>) {
        match action.action {
            DialogueAction::EndCall => {
                self.hang_up_after(action.utterance, EndReason::AgentEnded, now, out);
            }
            DialogueAction::TransferCall => {
                if self.agent.transfer_after(action.utterance) {
                    out.push(Action::Transfer);
                }
            }
        }
        self.settle(now);
    }

    /// A [`Action::Transfer`] could not be done (at `now`): the agent says so.
    pub fn transfer_failed(&mut self, now: Instant, out: &mut Vec<Action>) {
        let line = self.settings.lines.transfer_unavailable.clone();
        self.say(now, line, out);
        self.settle(now);
    }

    /// When the conversation next wants [`Conversation::timeout`] called.
    pub fn next_deadline(&self) -> Option<Instant> {
        [self.caller.next_deadline(), self.agent.next_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Acts on every deadline due at `now`.
    pub fn timeout(&mut self, now: Instant, out: &mut Vec<Action>) {
        let caller = self.caller.due(now);
        if caller.silence && self.caller.silent_for(self.settings.turn_silence, now) {
            self.take_turn(now, out);
        }
        if caller.keys {
            self.keypad_turn(now, out);
        }
        if caller.resume {
            self.resume_playback(out);
        }
        let agent = self.agent.due(now);
        if agent.hang_up {
            if let Some(reason) = self.agent.take_hang_up() {
                tracing::warn!(parent: &self.span, "goodbye never finished playing: hanging up");
                out.push(Action::End(reason));
            }
        }
        if agent.time_up {
            self.agent.take_time_up();
            self.time_up(now, out);
        }
        if agent.check_in {
            self.check_in(now, out);
        }
        self.settle(now);
    }

    /// Whether caller speech may interrupt what the agent is saying now.
    fn interruptible(&self) -> bool {
        self.settings.barge_in.enabled && self.agent.interruptible().is_some()
    }

    /// The open turn, opened at `now` if there is none; `speech`: the recogniser heard speech.
    /// Returns its final text so far.
    fn open_turn(&mut self, speech: bool, now: Instant) -> &str {
        self.agent.caller_spoke();
        self.caller.open_turn(speech, now)
    }

    /// Ends the open turn at `now`: answers it, merges it into the previous one, or drops it
    /// (noise, or backchannel over the agent).
    fn take_turn(&mut self, now: Instant, out: &mut Vec<Action>) {
        let over_agent = self.interruptible();
        let backchannels = &self.settings.barge_in.backchannels;
        let audio_through = self.agent.audio_through();
        let Some(end) = self
            .caller
            .take_turn(now, over_agent, backchannels, audio_through)
        else {
            return;
        };
        if !matches!(end, TurnEnd::Answer(_)) {
            self.discard_speculation(now, out);
        }
        match end {
            TurnEnd::Dropped => self.resume_playback(out),
            TurnEnd::Late {
                utterance,
                text,
                started,
            } => {
                self.record_caller(text.clone(), started, now, out);
                out.push(Action::Amend(AmendTurn { utterance, text }));
                self.resume_playback(out);
            }
            TurnEnd::Answer(turn) => self.hand_over(turn, now, out),
        }
    }

    /// The keypad turn ends at `now`, if keys were pressed. The transcript records that keys were
    /// pressed, never which: they can be a PIN or a card number.
    fn keypad_turn(&mut self, now: Instant, out: &mut Vec<Action>) {
        if let Some((keys, started)) = self.caller.take_keys() {
            let turn = CallerTurn {
                said: format!("[keypad: {} keys]", keys.chars().count()),
                text: keys,
                amends: false,
                speech_start: started,
                speech_end: now,
                final_at: None,
            };
            self.hand_over(turn, now, out);
        }
    }

    /// Gives a caller turn to the Responder at `now`, interrupting the agent first if it is
    /// speaking (or composing a reply the turn amends).
    fn hand_over(&mut self, turn: CallerTurn, now: Instant, out: &mut Vec<Action>) {
        self.record_caller(turn.said, turn.speech_start, turn.speech_end, out);
        if self.agent.is_hanging_up() {
            tracing::debug!(parent: &self.span, "caller turn after the agent ended the call: not answered");
            return;
        }
        let speculated = self
            .speculation
            .take_if(|speculation| speculation.text == turn.text && !turn.amends);
        self.discard_speculation(now, out);
        if self.interruptible() || turn.amends {
            self.interrupt(now, out);
        }
        let utterance = speculated
            .as_ref()
            .map_or_else(|| self.agent.allocate(), |s| s.utterance);
        let mut clock = TurnClock::new(utterance, turn.speech_end, turn.final_at, now);
        if let Some(at) = speculated.as_ref().and_then(|s| s.first_text) {
            clock.reached(utterance, Stage::FirstText, at);
        }
        if let Some(previous) = self.agent.start_clock(clock) {
            out.push(Action::Report(previous));
        }
        self.caller.taken(utterance, turn.text.clone(), now);
        self.status.turns += 1;
        out.push(match speculated {
            Some(_) => Action::Commit(utterance),
            None => Action::Answer(UserTurn {
                utterance,
                text: turn.text,
                amends: turn.amends,
            }),
        });
    }

    /// The recogniser thinks the caller probably said all of the open turn, ending in `text`:
    /// prepare the reply now if the agent is quiet (nothing said is still in flight, so the
    /// speculative utterance is the only one that can be dropped), and none is prepared already.
    fn speculate(&mut self, text: &str, out: &mut Vec<Action>) {
        if !self.settings.speculate
            || !self.live
            || self.speculation.is_some()
            || !self.agent.is_quiet()
        {
            return;
        }
        let Some(text) = self.caller.tentative_text(text) else {
            return;
        };
        let utterance = self.agent.allocate();
        tracing::debug!(parent: &self.span, %utterance, "speculative reply");
        self.speculation = Some(Speculation {
            utterance,
            text: text.clone(),
            first_text: None,
        });
        out.push(Action::Speculate(UserTurn {
            utterance,
            text,
            amends: false,
        }));
    }

    /// Drops the speculative reply, if any, at `now`: the caller went on, or the turn ended with
    /// other words. Its utterance is done, with nothing heard.
    fn discard_speculation(&mut self, now: Instant, out: &mut Vec<Action>) {
        if let Some(speculation) = self.speculation.take() {
            tracing::debug!(parent: &self.span, utterance = %speculation.utterance, "speculative reply dropped");
            out.push(Action::Discard(speculation.utterance));
            self.utterance_done(speculation.utterance, now, out);
        }
    }

    /// Acts on a barge-in verdict at `now`.
    fn barge_in(&mut self, verdict: Verdict, now: Instant, out: &mut Vec<Action>) {
        match verdict {
            Verdict::Continue => {}
            Verdict::Pause => {
                self.caller.pause(now, self.settings.barge_in.resume_after);
                out.push(Action::Pause);
            }
            Verdict::Interrupt => self.interrupt(now, out),
        }
    }

    /// Ends the soft stage, if any, and plays on from where playback paused.
    fn resume_playback(&mut self, out: &mut Vec<Action>) {
        if self.caller.resume() {
            out.push(Action::Resume);
        }
    }

    /// The hard stage of a barge-in at `now`: `clear` goes to Twilio first, then everything the
    /// agent has said or is composing is cancelled, and its line in the history becomes what was
    /// heard.
    fn interrupt(&mut self, now: Instant, out: &mut Vec<Action>) {
        let Some(cancel) = self.agent.interrupt(now, self.caller.paused_at()) else {
            return;
        };
        // The audio is cleared, not resumed: the soft stage ends with it.
        self.caller.resume();
        let (from, through) = (cancel.from, cancel.through);
        // A speculative reply is cancelled with the rest.
        self.speculation.take_if(|s| s.utterance <= through);
        let heard_words = cancel.heard.split_whitespace().count();
        tracing::debug!(parent: &self.span, %from, %through, heard_words, "agent interrupted");
        out.push(Action::Interrupt(cancel));
        if let Some(clock) = self.agent.take_clock_through(through) {
            out.push(Action::Report(clock));
        }
        self.utterance_done(through, now, out);
    }

    /// Everything up to `utterance` is done at `now` (heard, silent or cancelled): its turns go to
    /// the transcript, and a waiting transfer or hang-up happens now.
    fn utterance_done(&mut self, utterance: UtteranceId, now: Instant, out: &mut Vec<Action>) {
        let Some(Finished {
            turns,
            idle,
            transfer,
            hang_up,
        }) = self.agent.finish(utterance, now)
        else {
            return;
        };
        for turn in turns {
            self.record_agent(turn, out);
        }
        if idle {
            self.resume_playback(out);
        }
        if transfer {
            out.push(Action::Transfer);
        }
        if let Some(reason) = hang_up {
            self.hang_up(reason, out);
        }
    }

    /// Hangs up once `utterance` (a goodbye) has been heard; nothing interrupts it.
    fn hang_up_after(
        &mut self,
        utterance: UtteranceId,
        reason: EndReason,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        if let Some(reason) = self.agent.hang_up_after(utterance, reason, now) {
            self.hang_up(reason, out);
        }
    }

    /// The agent ends the call, its goodbye heard.
    fn hang_up(&self, reason: EndReason, out: &mut Vec<Action>) {
        tracing::info!(parent: &self.span, reason = reason.as_str(), "agent ended the call");
        out.push(Action::End(reason));
    }

    /// Says a fixed line as a new utterance (after dropping a speculative reply, which would
    /// otherwise play after it).
    fn say(&mut self, now: Instant, text: String, out: &mut Vec<Action>) -> UtteranceId {
        self.discard_speculation(now, out);
        let utterance = self.agent.allocate();
        out.push(Action::Say(SayLine { utterance, text }));
        utterance
    }

    /// The call reached its maximum duration at `now`: the agent stops, says goodbye and hangs up
    /// once it is heard.
    fn time_up(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.agent.is_hanging_up() {
            return;
        }
        tracing::info!(parent: &self.span, "maximum call duration reached");
        let goodbye = self.settings.lines.time_up_goodbye.clone();
        self.close_with(goodbye, EndReason::MaxDuration, now, out);
    }

    /// The call must end for `reason` (the server is draining): unless the agent is already
    /// hanging up, it stops, says the closing goodbye and hangs up once it is heard.
    pub fn wind_down(&mut self, reason: EndReason, now: Instant, out: &mut Vec<Action>) {
        if self.agent.is_hanging_up() {
            return;
        }
        tracing::info!(parent: &self.span, reason = reason.as_str(), "winding the call down");
        let goodbye = self.settings.lines.closing_goodbye.clone();
        self.close_with(goodbye, reason, now, out);
    }

    /// Stops whatever the agent is saying, says `goodbye` and hangs up for `reason` once it is
    /// heard.
    fn close_with(
        &mut self,
        goodbye: String,
        reason: EndReason,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        self.interrupt(now, out);
        let goodbye = self.say(now, goodbye, out);
        self.hang_up_after(goodbye, reason, now, out);
    }

    /// Both sides were quiet for the check-in time: the agent asks whether the caller is still
    /// there, and after [`MAX_CHECKINS`] unanswered check-ins says goodbye and hangs up.
    fn check_in(&mut self, now: Instant, out: &mut Vec<Action>) {
        let check_ins = self.agent.check_in();
        let lines = &self.settings.lines;
        if check_ins <= MAX_CHECKINS {
            tracing::info!(parent: &self.span, checkins = check_ins, "caller silent: checking in");
            self.say(now, lines.still_there.clone(), out);
        } else {
            tracing::info!(parent: &self.span, "caller silent after check-ins: hanging up");
            let goodbye = self.say(now, lines.no_answer_goodbye.clone(), out);
            self.hang_up_after(goodbye, EndReason::AgentEnded, now, out);
        }
    }

    /// Arms the silence check-in when both sides are quiet, and disarms it when not.
    fn settle(&mut self, now: Instant) {
        let quiet = self.live && !self.caller.is_mid_turn() && self.agent.is_quiet();
        self.agent.settle(quiet, self.settings.silence_checkin, now);
    }

    /// The caller's words from `started` to `ended`, for the transcript.
    fn record_caller(&self, text: String, started: Instant, ended: Instant, out: &mut Vec<Action>) {
        out.push(Action::Transcript(TranscriptTurn {
            speaker: Speaker::Caller,
            text,
            started: self.offset(started),
            ended: self.offset(ended),
            interrupted: false,
            heard: None,
        }));
    }

    /// An agent turn, whole or cut short, for the transcript.
    fn record_agent(&self, turn: SpokenTurn, out: &mut Vec<Action>) {
        out.push(Action::Transcript(TranscriptTurn {
            speaker: Speaker::Agent,
            text: turn.text,
            started: self.offset(turn.started),
            ended: self.offset(turn.ended),
            interrupted: turn.heard.is_some(),
            heard: turn.heard,
        }));
    }

    /// `at` as an offset from the start of the media stream.
    fn offset(&self, at: Instant) -> Duration {
        self.started_at
            .map_or(Duration::ZERO, |start| at.saturating_duration_since(start))
    }

    /// `utterance` reached `stage` at `at`; the turn is reported once the caller heard its answer.
    fn clock_reached(
        &mut self,
        utterance: UtteranceId,
        stage: Stage,
        at: Instant,
        out: &mut Vec<Action>,
    ) {
        if let Some(clock) = self.agent.clock_reached(utterance, stage, at) {
            out.push(Action::Report(clock));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::call::agent::HANG_UP_FALLBACK;
    use crate::call::turns::KEYPAD_PAUSE;

    const LOUD: [u8; 160] = [0x00; 160];

    /// A conversation on a fake clock: every call names the millisecond it happens at. The
    /// transcript turns it records are kept apart from the other actions.
    struct Talk {
        conversation: Conversation,
        start: Instant,
        transcript: Vec<TranscriptTurn>,
    }

    impl Talk {
        /// A call that started at 0 ms and whose greeting (no audio) is over.
        fn new(settings: ConversationSettings) -> Self {
            let start = Instant::now();
            let mut conversation = Conversation::new(Arc::new(settings), tracing::Span::none());
            conversation.started(start);
            let mut talk = Self {
                conversation,
                start,
                transcript: Vec::new(),
            };
            assert_eq!(talk.sent(0, 0, None), []);
            talk
        }

        fn at(&self, ms: u64) -> Instant {
            self.start + Duration::from_millis(ms)
        }

        fn run(
            &mut self,
            ms: u64,
            f: impl FnOnce(&mut Conversation, Instant, &mut Vec<Action>),
        ) -> Vec<Action> {
            let mut out = Vec::new();
            let now = self.at(ms);
            f(&mut self.conversation, now, &mut out);
            out.retain(|action| match action {
                Action::Transcript(turn) => {
                    self.transcript.push(turn.clone());
                    false
                }
                _ => true,
            });
            out
        }

        fn hear(&mut self, ms: u64, event: TranscriptEvent) -> Vec<Action> {
            self.run(ms, |c, now, out| c.transcript(event, now, out))
        }

        fn say(&mut self, ms: u64, text: &str) -> Vec<Action> {
            let text = text.to_owned();
            let mut out = self.hear(ms, TranscriptEvent::Final { text });
            out.extend(self.hear(ms, TranscriptEvent::EndOfTurn));
            out
        }

        fn frame(&mut self, ms: u64, payload: &[u8]) -> Vec<Action> {
            self.run(ms, |c, now, out| c.caller_audio(payload, now, out))
        }

        fn key(&mut self, ms: u64, key: char) -> Vec<Action> {
            self.run(ms, |c, now, out| c.key(key, now, out))
        }

        fn chunk(
            &mut self,
            ms: u64,
            utterance: u64,
            chunk: u32,
            frames: u32,
            clause: &str,
        ) -> Vec<Action> {
            let sent = ChunkSent {
                mark: mark(utterance, chunk),
                frames,
                clause: (!clause.is_empty()).then(|| Arc::from(clause)),
            };
            self.run(ms, |c, now, out| c.chunk_sent(sent, now, out))
        }

        fn sent(&mut self, ms: u64, utterance: u64, last_chunk: Option<u32>) -> Vec<Action> {
            let sent = UtteranceSent {
                utterance: UtteranceId(utterance),
                last_mark: last_chunk.map(|chunk| mark(utterance, chunk)),
            };
            self.run(ms, |c, now, out| c.utterance_sent(sent, now, out))
        }

        fn echo(&mut self, ms: u64, utterance: u64, chunk: u32) -> Vec<Action> {
            self.run(ms, |c, now, out| {
                c.mark_played(mark(utterance, chunk), now, out)
            })
        }

        /// Utterance `utterance` sent whole at `ms` as one chunk of `frames` frames.
        fn speak(&mut self, ms: u64, utterance: u64, frames: u32, text: &str) -> Vec<Action> {
            let mut out = self.chunk(ms, utterance, 0, frames, text);
            out.extend(self.sent(ms, utterance, Some(0)));
            out
        }

        fn act(&mut self, ms: u64, utterance: u64, action: DialogueAction) -> Vec<Action> {
            let action = AgentAction {
                utterance: UtteranceId(utterance),
                action,
            };
            self.run(ms, |c, now, out| c.agent_action(action, now, out))
        }

        fn tick(&mut self, ms: u64) -> Vec<Action> {
            self.run(ms, Conversation::timeout)
        }

        fn deadline(&self) -> Option<u64> {
            let next = self.conversation.next_deadline()?;
            Some(next.duration_since(self.start).as_millis() as u64)
        }
    }

    fn mark(utterance: u64, chunk: u32) -> MarkName {
        MarkName {
            utterance: UtteranceId(utterance),
            chunk,
        }
    }

    fn answer(utterance: u64, text: &str, amends: bool) -> Action {
        Action::Answer(UserTurn {
            utterance: UtteranceId(utterance),
            text: text.into(),
            amends,
        })
    }

    fn line(utterance: u64, text: &str) -> Action {
        Action::Say(SayLine {
            utterance: UtteranceId(utterance),
            text: text.into(),
        })
    }

    fn interrupt(from: u64, through: u64, heard: &str) -> Action {
        Action::Interrupt(CancelReply {
            from: UtteranceId(from),
            through: UtteranceId(through),
            heard: heard.into(),
        })
    }

    /// Settings with nothing happening on its own: no check-ins, no maximum duration.
    fn quiet_settings() -> ConversationSettings {
        ConversationSettings {
            silence_checkin: None,
            max_duration: None,
            ..ConversationSettings::default()
        }
    }

    /// Caller turn 1 answered at 1 s, its reply (four words, then seven, over 3 s) playing from 2 s.
    fn agent_speaking() -> Talk {
        let mut talk = Talk::new(quiet_settings());
        assert_eq!(
            talk.say(1_000, "tell me the prices"),
            [answer(1, "tell me the prices", false)]
        );
        talk.chunk(2_000, 1, 0, 50, "Our prices are low.");
        talk.chunk(2_000, 1, 1, 100, "A cleaning is ninety five dollars today.");
        talk.sent(2_000, 1, Some(1));
        talk
    }

    fn is_report(action: &Action) -> bool {
        matches!(action, Action::Report(_))
    }

    /// The actions other than latency reports.
    fn spoken(actions: Vec<Action>) -> Vec<Action> {
        actions.into_iter().filter(|a| !is_report(a)).collect()
    }

    fn speculate(utterance: u64, text: &str) -> Action {
        Action::Speculate(UserTurn {
            utterance: UtteranceId(utterance),
            text: text.into(),
            amends: false,
        })
    }

    fn probably_over(talk: &mut Talk, ms: u64, text: &str) -> Vec<Action> {
        let text = text.to_owned();
        talk.hear(ms, TranscriptEvent::ProbableEnd { text })
    }

    #[test]
    fn a_speculative_reply_is_the_answer_when_the_turn_ends_with_its_words() {
        let mut talk = Talk::new(quiet_settings());
        talk.hear(800, TranscriptEvent::SpeechStarted);
        talk.frame(900, &LOUD);
        assert_eq!(
            probably_over(&mut talk, 1_100, "what are your hours"),
            [speculate(1, "what are your hours")]
        );
        assert_eq!(
            probably_over(&mut talk, 1_150, "what are your hours"),
            [],
            "one reply prepared at a time"
        );
        talk.run(1_200, |c, now, out| {
            c.reply_started(UtteranceId(1), now, out)
        });
        assert_eq!(
            talk.say(1_400, "what are your hours"),
            [Action::Commit(UtteranceId(1))]
        );
        // Its audio goes out once committed; the clock kept when its text came.
        talk.chunk(1_410, 1, 0, 10, "We open at eight.");
        talk.sent(1_410, 1, Some(0));
        let heard = talk.echo(1_700, 1, 0);
        let [Action::Report(clock)] = heard.as_slice() else {
            panic!("expected the turn's report, got {heard:?}");
        };
        let stages: Vec<(&str, u128)> = clock
            .latencies()
            .into_iter()
            .map(|(stage, latency)| (stage.as_str(), latency.as_millis()))
            .collect();
        assert_eq!(
            stages[..3],
            [
                ("stt_final", 500),
                ("end_of_turn", 500),
                ("first_text", 300)
            ]
        );
        assert_eq!(talk.transcript.len(), 2, "the caller's turn and the reply");
    }

    #[test]
    fn a_speculative_reply_is_dropped_when_the_caller_goes_on() {
        let mut talk = Talk::new(quiet_settings());
        talk.hear(800, TranscriptEvent::SpeechStarted);
        assert_eq!(
            probably_over(&mut talk, 1_100, "I would like to book"),
            [speculate(1, "I would like to book")]
        );
        assert_eq!(
            talk.hear(1_300, TranscriptEvent::SpeechStarted),
            [Action::Discard(UtteranceId(1))]
        );
        // The whole turn is answered afresh, under a new utterance.
        assert_eq!(
            talk.say(2_500, "I would like to book an appointment"),
            [answer(2, "I would like to book an appointment", false)]
        );
        // A partial means the same; so does a turn that ends with other words.
        talk.chunk(2_600, 2, 0, 10, "Sure.");
        talk.sent(2_600, 2, Some(0));
        talk.echo(2_900, 2, 0);
        talk.hear(3_000, TranscriptEvent::SpeechStarted);
        assert_eq!(
            probably_over(&mut talk, 3_500, "my name is"),
            [speculate(3, "my name is")]
        );
        let text = "my name is Ann".to_owned();
        assert_eq!(
            talk.hear(3_600, TranscriptEvent::Partial { text }),
            [Action::Discard(UtteranceId(3))]
        );
        probably_over(&mut talk, 3_900, "my name is Ann");
        assert_eq!(
            talk.say(4_000, "my name is Anne"),
            [
                Action::Discard(UtteranceId(4)),
                answer(5, "my name is Anne", false)
            ]
        );
        let caller: Vec<&str> = talk
            .transcript
            .iter()
            .filter(|turn| turn.speaker == Speaker::Caller)
            .map(|turn| turn.text.as_str())
            .collect();
        assert_eq!(
            caller,
            ["I would like to book an appointment", "my name is Anne"]
        );
    }

    #[test]
    fn nothing_is_speculated_over_the_agent_or_when_switched_off() {
        let mut talk = agent_speaking();
        talk.hear(2_500, TranscriptEvent::SpeechStarted);
        assert_eq!(probably_over(&mut talk, 2_900, "wait a moment"), []);

        let mut talk = Talk::new(ConversationSettings {
            speculate: false,
            ..quiet_settings()
        });
        talk.hear(800, TranscriptEvent::SpeechStarted);
        assert_eq!(probably_over(&mut talk, 1_100, "hello"), []);
        assert_eq!(talk.say(1_400, "hello"), [answer(1, "hello", false)]);
    }

    #[test]
    fn a_final_without_end_of_turn_is_answered_once_the_caller_is_silent() {
        let mut talk = Talk::new(quiet_settings());
        talk.frame(900, &LOUD);
        let text = "what are your hours".to_owned();
        assert_eq!(talk.hear(1_000, TranscriptEvent::Final { text }), []);
        // 600 ms of silence after the last voiced frame, not after the final.
        assert_eq!(talk.deadline(), Some(1_500));
        assert_eq!(talk.tick(1_499), []);
        assert_eq!(talk.tick(1_500), [answer(1, "what are your hours", false)]);
        assert_eq!(talk.deadline(), None);
        assert_eq!(
            talk.hear(1_600, TranscriptEvent::EndOfTurn),
            [],
            "answered once"
        );
    }

    #[test]
    fn a_turn_is_timed_from_the_end_of_speech_to_when_its_answer_is_heard() {
        let mut talk = Talk::new(quiet_settings());
        talk.hear(800, TranscriptEvent::SpeechStarted);
        talk.frame(900, &LOUD);
        let text = "hi".to_owned();
        talk.hear(1_000, TranscriptEvent::Final { text });
        assert_eq!(
            talk.hear(1_100, TranscriptEvent::EndOfTurn),
            [answer(1, "hi", false)]
        );
        talk.run(1_200, |c, now, out| {
            c.reply_started(UtteranceId(1), now, out)
        });
        talk.chunk(1_300, 1, 0, 10, "Hello there.");
        talk.run(1_310, |c, now, out| {
            c.playback_started(UtteranceId(1), now, out)
        });
        talk.sent(1_300, 1, Some(0));
        let heard = talk.echo(1_600, 1, 0);
        let [Action::Report(clock)] = heard.as_slice() else {
            panic!("expected the turn's report, got {heard:?}");
        };
        let millis: Vec<(&str, u128)> = clock
            .latencies()
            .into_iter()
            .map(|(stage, latency)| (stage.as_str(), latency.as_millis()))
            .collect();
        // Heard: the echo of the 200 ms chunk, less its length.
        assert_eq!(
            millis,
            [
                ("stt_final", 100),
                ("end_of_turn", 200),
                ("first_text", 300),
                ("first_audio", 400),
                ("first_sent", 410),
                ("first_heard", 500)
            ]
        );
        assert_eq!(talk.conversation.status().turns, 1);
        assert_eq!(talk.conversation.status().last_heard, Some(mark(1, 0)));
    }

    #[test]
    fn speech_over_the_agent_pauses_it_and_words_interrupt_it_with_what_was_heard() {
        let mut talk = agent_speaking();
        assert_eq!(
            talk.hear(2_500, TranscriptEvent::SpeechStarted),
            [Action::Pause]
        );
        let text = "wait stop".to_owned();
        let actions = talk.hear(2_700, TranscriptEvent::Partial { text });
        // Half of the first clause's second had played when playback paused: two of four words.
        assert_eq!(actions[0], interrupt(1, 1, "Our prices"));
        assert!(actions[1..].iter().all(is_report), "{actions:?}");
        // The caller's turn is answered next, with nothing left to interrupt.
        assert_eq!(
            talk.say(3_000, "wait stop"),
            [answer(2, "wait stop", false)]
        );
        // Audio of the cancelled reply still in flight changes nothing.
        assert_eq!(talk.chunk(3_010, 1, 2, 10, ""), []);
    }

    #[test]
    fn words_interrupt_at_once_and_count_what_played_until_then() {
        let mut talk = agent_speaking();
        talk.echo(3_000, 1, 0);
        let text = "hold on please".to_owned();
        // 0.8 s into the second clause's 2 s: 40 % of its seven words.
        let actions = talk.hear(3_800, TranscriptEvent::Partial { text });
        assert_eq!(
            actions[0],
            interrupt(1, 1, "Our prices are low. A cleaning")
        );
    }

    #[test]
    fn backchannel_over_the_agent_resumes_playback_and_is_not_answered() {
        let mut talk = agent_speaking();
        assert_eq!(
            talk.hear(2_500, TranscriptEvent::SpeechStarted),
            [Action::Pause]
        );
        assert_eq!(talk.say(2_700, "uh-huh"), [Action::Resume]);
        assert_eq!(
            talk.deadline(),
            None,
            "the resume deadline went with the pause"
        );
    }

    #[test]
    fn an_unconfirmed_pause_resumes_after_the_resume_time() {
        let mut talk = agent_speaking();
        assert_eq!(
            talk.hear(2_500, TranscriptEvent::SpeechStarted),
            [Action::Pause]
        );
        assert_eq!(talk.deadline(), Some(3_500));
        assert_eq!(talk.tick(3_500), [Action::Resume]);
        // A new run of speech pauses again.
        assert_eq!(
            talk.hear(4_000, TranscriptEvent::SpeechStarted),
            [Action::Pause]
        );
    }

    #[test]
    fn voiced_audio_confirms_a_pause() {
        let settings = ConversationSettings {
            barge_in: crate::call::barge_in::BargeInSettings {
                min_speech: Duration::from_millis(200),
                ..Default::default()
            },
            ..quiet_settings()
        };
        let mut talk = Talk::new(settings);
        talk.say(1_000, "tell me a story");
        talk.speak(2_000, 1, 500, "Once upon a time there was a phone.");
        assert_eq!(
            talk.hear(2_500, TranscriptEvent::SpeechStarted),
            [Action::Pause]
        );
        for n in 0..9 {
            assert_eq!(talk.frame(2_500 + 20 * n, &LOUD), [], "frame {n}");
        }
        let actions = talk.frame(2_680, &LOUD);
        assert!(matches!(actions[0], Action::Interrupt(_)), "{actions:?}");
    }

    #[test]
    fn the_greeting_is_heard_whole() {
        let mut talk = Talk::new(quiet_settings());
        let mut conversation = Conversation::new(Arc::new(quiet_settings()), tracing::Span::none());
        conversation.started(talk.start);
        talk.conversation = conversation;
        talk.speak(0, 0, 100, "Hello, I am the practice's assistant.");
        assert_eq!(talk.hear(500, TranscriptEvent::SpeechStarted), []);
        assert_eq!(
            talk.hear(
                600,
                TranscriptEvent::Partial {
                    text: "hi there".into()
                }
            ),
            []
        );
    }

    #[test]
    fn a_late_final_before_the_reply_plays_cancels_it_and_answers_the_whole_turn() {
        let mut talk = Talk::new(quiet_settings());
        assert_eq!(
            talk.say(1_000, "I want to book"),
            [answer(1, "I want to book", false)]
        );
        let text = "an appointment".to_owned();
        assert_eq!(talk.hear(1_050, TranscriptEvent::Final { text }), []);
        let actions = talk.tick(1_650);
        assert_eq!(actions.first(), Some(&interrupt(1, 1, "")));
        assert_eq!(
            actions.last(),
            Some(&answer(2, "I want to book an appointment", true))
        );
        assert!(actions[1..actions.len() - 1].iter().all(is_report));
    }

    #[test]
    fn a_late_final_after_the_reply_started_joins_its_turn_unanswered() {
        let mut talk = agent_speaking();
        let text = "please".to_owned();
        talk.hear(2_100, TranscriptEvent::Final { text });
        assert_eq!(
            talk.tick(2_700),
            [Action::Amend(AmendTurn {
                utterance: UtteranceId(1),
                text: "please".into()
            })]
        );
    }

    #[test]
    fn keys_are_a_turn_ended_by_hash_or_a_pause() {
        let mut talk = Talk::new(quiet_settings());
        assert_eq!(talk.key(1_000, '1'), []);
        assert_eq!(talk.key(1_100, '2'), []);
        assert_eq!(talk.key(1_200, '#'), [answer(1, "12", false)]);
        assert_eq!(talk.deadline(), None);
        talk.key(2_000, '4');
        talk.key(2_500, '*');
        let end = 2_500 + KEYPAD_PAUSE.as_millis() as u64;
        assert_eq!(talk.deadline(), Some(end));
        assert_eq!(talk.tick(end - 1), []);
        assert_eq!(spoken(talk.tick(end)), [answer(2, "4*", false)]);
    }

    #[test]
    fn silence_brings_two_check_ins_then_a_goodbye_and_a_hang_up_once_it_is_heard() {
        let lines = crate::call::settings::AgentLines::default();
        let mut talk = Talk::new(ConversationSettings {
            silence_checkin: Some(Duration::from_secs(8)),
            max_duration: None,
            ..ConversationSettings::default()
        });
        assert_eq!(talk.deadline(), Some(8_000));
        assert_eq!(talk.tick(8_000), [line(1, &lines.still_there)]);
        assert_eq!(talk.deadline(), None, "not while the agent speaks");
        talk.speak(8_000, 1, 50, &lines.still_there);
        assert_eq!(talk.echo(9_000, 1, 0), []);
        // Counted from the end of playback.
        assert_eq!(talk.deadline(), Some(17_000));
        assert_eq!(talk.tick(17_000), [line(2, &lines.still_there)]);
        talk.speak(17_000, 2, 50, &lines.still_there);
        talk.echo(18_000, 2, 0);
        assert_eq!(talk.tick(26_000), [line(3, &lines.no_answer_goodbye)]);
        talk.speak(26_000, 3, 150, &lines.no_answer_goodbye);
        assert_eq!(
            talk.echo(29_000, 3, 0),
            [Action::End(EndReason::AgentEnded)]
        );
    }

    #[test]
    fn the_caller_speaking_starts_the_check_ins_over() {
        let lines = crate::call::settings::AgentLines::default();
        let mut talk = Talk::new(ConversationSettings {
            silence_checkin: Some(Duration::from_secs(8)),
            max_duration: None,
            ..ConversationSettings::default()
        });
        assert_eq!(talk.tick(8_000), [line(1, &lines.still_there)]);
        talk.speak(8_000, 1, 50, &lines.still_there);
        talk.echo(9_000, 1, 0);
        assert_eq!(talk.tick(17_000), [line(2, &lines.still_there)]);
        talk.speak(17_000, 2, 50, &lines.still_there);
        talk.echo(18_000, 2, 0);
        // Mid-turn, no check-in; after it, the count starts over.
        assert_eq!(talk.hear(20_000, TranscriptEvent::SpeechStarted), []);
        assert_eq!(talk.deadline(), None);
        assert_eq!(talk.say(21_000, "yes"), [answer(3, "yes", false)]);
        talk.speak(22_000, 3, 50, "Good.");
        talk.echo(23_000, 3, 0);
        assert_eq!(talk.tick(31_000), [line(4, &lines.still_there)]);
    }

    #[test]
    fn the_maximum_duration_stops_the_agent_and_ends_after_a_goodbye_nothing_interrupts() {
        let lines = crate::call::settings::AgentLines::default();
        let mut talk = Talk::new(ConversationSettings {
            silence_checkin: None,
            max_duration: Some(Duration::from_secs(60)),
            ..ConversationSettings::default()
        });
        talk.say(58_000, "tell me everything");
        talk.speak(59_000, 1, 100, "Well, it all began a long time ago.");
        assert_eq!(talk.deadline(), Some(60_000));
        let actions = talk.tick(60_000);
        // A second of the clause's two: half of its eight words.
        assert_eq!(
            actions.first(),
            Some(&interrupt(1, 1, "Well, it all began"))
        );
        assert_eq!(actions.last(), Some(&line(2, &lines.time_up_goodbye)));
        talk.speak(60_000, 2, 200, &lines.time_up_goodbye);
        assert_eq!(talk.hear(61_000, TranscriptEvent::SpeechStarted), []);
        assert_eq!(
            talk.hear(
                61_100,
                TranscriptEvent::Partial {
                    text: "wait a moment".into()
                }
            ),
            []
        );
        assert_eq!(
            talk.say(61_500, "wait a moment"),
            [],
            "not answered after the goodbye"
        );
        assert_eq!(
            talk.echo(64_000, 2, 0),
            [Action::End(EndReason::MaxDuration)]
        );
    }

    #[test]
    fn winding_down_cuts_the_reply_says_the_closing_goodbye_and_ends_once_it_is_heard() {
        let lines = crate::call::settings::AgentLines::default();
        let mut talk = agent_speaking();
        let actions = talk.run(3_000, |c, now, out| {
            c.wind_down(EndReason::Shutdown, now, out)
        });
        assert_eq!(actions.last(), Some(&line(2, &lines.closing_goodbye)));
        assert!(
            actions
                .iter()
                .any(|action| matches!(action, Action::Interrupt(_))),
            "the reply is cut: {actions:?}"
        );
        talk.speak(3_000, 2, 200, &lines.closing_goodbye);
        assert_eq!(
            talk.run(3_500, |c, now, out| c.wind_down(
                EndReason::Shutdown,
                now,
                out
            )),
            [],
            "asked again, it is already hanging up"
        );
        assert_eq!(talk.echo(5_000, 2, 0), [Action::End(EndReason::Shutdown)]);
    }

    #[test]
    fn a_goodbye_that_never_finishes_playing_hangs_up_after_the_fallback() {
        let mut talk = agent_speaking();
        assert_eq!(talk.act(2_000, 1, DialogueAction::EndCall), []);
        let fallback = 2_000 + HANG_UP_FALLBACK.as_millis() as u64;
        assert_eq!(talk.deadline(), Some(fallback));
        assert_eq!(talk.tick(fallback), [Action::End(EndReason::AgentEnded)]);
    }

    #[test]
    fn end_call_hangs_up_when_the_goodbye_is_heard() {
        let mut talk = agent_speaking();
        assert_eq!(talk.act(2_000, 1, DialogueAction::EndCall), []);
        assert_eq!(spoken(talk.echo(3_000, 1, 0)), []);
        assert_eq!(talk.echo(5_000, 1, 1), [Action::End(EndReason::AgentEnded)]);
    }

    #[test]
    fn a_transfer_waits_for_its_reply_to_be_heard_and_a_failed_one_is_said() {
        let lines = crate::call::settings::AgentLines::default();
        let mut talk = agent_speaking();
        assert_eq!(talk.act(2_000, 1, DialogueAction::TransferCall), []);
        assert_eq!(talk.echo(5_000, 1, 1), [Action::Transfer]);
        assert_eq!(
            talk.run(5_500, Conversation::transfer_failed),
            [line(2, &lines.transfer_unavailable)]
        );
    }

    #[test]
    fn a_transfer_asked_by_an_interrupted_reply_is_dropped() {
        let mut talk = agent_speaking();
        talk.act(2_000, 1, DialogueAction::TransferCall);
        talk.hear(2_500, TranscriptEvent::SpeechStarted);
        talk.hear(
            2_600,
            TranscriptEvent::Partial {
                text: "no wait".into(),
            },
        );
        assert_eq!(talk.echo(5_000, 1, 1), []);
    }

    fn turn(speaker: Speaker, text: &str, ms: (u64, u64), heard: Option<&str>) -> TranscriptTurn {
        TranscriptTurn {
            speaker,
            text: text.into(),
            started: Duration::from_millis(ms.0),
            ended: Duration::from_millis(ms.1),
            interrupted: heard.is_some(),
            heard: heard.map(str::to_owned),
        }
    }

    #[test]
    fn the_transcript_has_each_turn_with_its_times_and_what_was_heard_of_a_cut_one() {
        let mut talk = agent_speaking();
        talk.echo(3_000, 1, 0);
        talk.hear(3_500, TranscriptEvent::SpeechStarted);
        talk.hear(
            3_700,
            TranscriptEvent::Partial {
                text: "wait stop".into(),
            },
        );
        talk.say(4_000, "wait stop");
        talk.speak(4_500, 2, 25, "Of course.");
        talk.echo(5_100, 2, 0);
        let reply = "Our prices are low. A cleaning is ninety five dollars today.";
        assert_eq!(
            talk.transcript,
            [
                turn(Speaker::Caller, "tell me the prices", (1_000, 1_000), None),
                // Playing from 2 s (the first chunk's echo less its second); paused at 3.5 s,
                // half a second into the second clause's two: a quarter of its words, rounded down.
                turn(
                    Speaker::Agent,
                    reply,
                    (2_000, 3_500),
                    Some("Our prices are low. A")
                ),
                turn(Speaker::Caller, "wait stop", (3_500, 4_000), None),
                turn(Speaker::Agent, "Of course.", (4_600, 5_100), None),
            ]
        );
    }

    #[test]
    fn keypad_turns_are_transcribed_without_their_keys() {
        let mut talk = Talk::new(quiet_settings());
        talk.key(1_000, '4');
        talk.key(1_200, '2');
        talk.key(1_300, '#');
        assert_eq!(
            talk.transcript,
            [turn(
                Speaker::Caller,
                "[keypad: 2 keys]",
                (1_000, 1_300),
                None
            )]
        );
    }
}
