//! The agent's side of a call: what it has said, what is playing and what the caller heard, the
//! timing of the current turn's answer, and what it has decided to do on its own (hang up,
//! transfer, check in on a silent caller, end at the maximum duration).
//!
//! Every utterance (the greeting, a reply, a lifecycle line) has an id, allocated here in order; it
//! is also its playback generation. An utterance is *done* when its last mark was echoed (or it had
//! no audio), or when a barge-in cancelled it. A hang-up waits for its goodbye to be done by mark,
//! with a fallback deadline in case the mark never comes (a Synthesizer that failed mid-goodbye).
//!
//! Plain state, told the time: [`Conversation`](super::conversation::Conversation) drives it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::playback::PlaybackLedger;
use crate::events::{ChunkSent, EndReason};
use crate::ids::{MarkName, UtteranceId};
use crate::responder::{CancelReply, GREETING};
use crate::runtime::latency::{Stage, TurnClock};

/// If a goodbye's last mark has not come back this long after the hang-up was decided, the call
/// ends anyway.
pub const HANG_UP_FALLBACK: Duration = Duration::from_secs(30);

/// Check-ins before the agent gives up on a silent caller.
pub const MAX_CHECKINS: u32 = 2;

/// A decided hang-up, waiting for its goodbye.
struct HangUp {
    after: UtteranceId,
    reason: EndReason,
    fallback_at: Instant,
}

/// What the agent sent to be played of one utterance, and when the caller began hearing it.
#[derive(Debug, Default)]
struct Spoken {
    text: String,
    started: Option<Instant>,
}

/// The last barge-in: what the caller heard of the utterance it cut, and when playback stopped.
struct Interruption {
    from: UtteranceId,
    heard: String,
    at: Instant,
}

/// An utterance of the agent as the caller got it: whole, or cut short.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpokenTurn {
    /// Everything sent to be played.
    pub text: String,
    /// When it started playing (when it was cut, if it never did).
    pub started: Instant,
    /// When it finished playing, or was cut.
    pub ended: Instant,
    /// What the caller heard of it, if a barge-in cut it short.
    pub heard: Option<String>,
}

/// What became of an utterance that is now done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// The agent's turns it completes, in order (utterances with no audio are not turns).
    pub turns: Vec<SpokenTurn>,
    /// Nothing is playing any more.
    pub idle: bool,
    /// A transfer was waiting for it: transfer now.
    pub transfer: bool,
    /// A hang-up was waiting for it: end the call now, for this reason.
    pub hang_up: Option<EndReason>,
}

/// What Twilio's echo of a mark told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Echo {
    /// When the utterance's first chunk started playing, if this echo says so.
    pub first_heard: Option<Instant>,
    /// The utterance whose last mark this was: it is done.
    pub last_of: Option<UtteranceId>,
}

/// Which of the agent side's deadlines are due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentDue {
    /// A goodbye never finished playing.
    pub hang_up: bool,
    /// The call reached its maximum duration.
    pub time_up: bool,
    /// Both sides have been quiet for the check-in time.
    pub check_in: bool,
}

/// The agent's side of one call.
pub struct AgentSide {
    /// The newest utterance allocated; the greeting is allocated when the call starts.
    latest: UtteranceId,
    /// Every utterance up to this one is done.
    done_through: Option<UtteranceId>,
    /// Every utterance up to this one was cancelled by a barge-in.
    cancelled_through: Option<UtteranceId>,
    /// The newest utterance whose audio started going out.
    audio_through: Option<UtteranceId>,
    ledger: PlaybackLedger,
    /// The text and start of each utterance not yet done.
    spoken: BTreeMap<UtteranceId, Spoken>,
    /// The last barge-in.
    interruption: Option<Interruption>,
    /// The latest utterance fully sent, and the mark after its last chunk.
    last_sent: Option<(UtteranceId, MarkName)>,
    /// The greeting, or a goodbye: caller speech does not interrupt it.
    uninterruptible: Option<UtteranceId>,
    clock: Option<TurnClock>,
    hang_up: Option<HangUp>,
    transfer_after: Option<UtteranceId>,
    /// When the agent checks in on a silent caller.
    check_in_at: Option<Instant>,
    /// Check-ins since the caller last spoke.
    check_ins: u32,
    /// When the call reaches its maximum duration.
    time_up_at: Option<Instant>,
}

impl Default for AgentSide {
    fn default() -> Self {
        Self {
            latest: GREETING,
            done_through: None,
            cancelled_through: None,
            audio_through: None,
            ledger: PlaybackLedger::default(),
            spoken: BTreeMap::new(),
            interruption: None,
            last_sent: None,
            // The greeting carries the AI disclosure: it is heard whole.
            uninterruptible: Some(GREETING),
            clock: None,
            hang_up: None,
            transfer_after: None,
            check_in_at: None,
            check_ins: 0,
            time_up_at: None,
        }
    }
}

impl AgentSide {
    /// The caller spoke or pressed a key: check-ins start over.
    pub fn caller_spoke(&mut self) {
        self.check_ins = 0;
    }

    /// Whether `utterance` is done (heard, silent or cancelled).
    pub fn is_done(&self, utterance: UtteranceId) -> bool {
        self.done_through >= Some(utterance)
    }

    /// Whether the agent has nothing to say or do: everything said is done, and no hang-up or
    /// transfer waits.
    pub fn is_quiet(&self) -> bool {
        self.is_done(self.latest) && self.hang_up.is_none() && self.transfer_after.is_none()
    }

    /// The utterance the caller is hearing, if caller speech may interrupt it.
    pub fn interruptible(&self) -> Option<UtteranceId> {
        self.ledger
            .playing()
            .filter(|playing| Some(*playing) != self.uninterruptible)
    }

    /// The newest utterance whose audio started going out.
    pub fn audio_through(&self) -> Option<UtteranceId> {
        self.audio_through
    }

    /// Whether the agent has decided to hang up.
    pub fn is_hanging_up(&self) -> bool {
        self.hang_up.is_some()
    }

    /// A new utterance id.
    pub fn allocate(&mut self) -> UtteranceId {
        self.latest = UtteranceId(self.latest.0 + 1);
        self.latest
    }

    /// Starts timing a turn's answer; returns the previous turn's clock, to report as it stands.
    pub fn start_clock(&mut self, clock: TurnClock) -> Option<TurnClock> {
        self.clock.replace(clock)
    }

    /// `utterance` reached `stage` at `at`; returns the clock once the caller has heard the answer
    /// start (it is complete, to report).
    pub fn clock_reached(
        &mut self,
        utterance: UtteranceId,
        stage: Stage,
        at: Instant,
    ) -> Option<TurnClock> {
        let clock = self.clock.as_mut()?;
        clock.reached(utterance, stage, at);
        self.clock.take_if(|clock| clock.is_heard())
    }

    /// The clock of the turn being answered, to report as it stands (the call ends).
    pub fn take_clock(&mut self) -> Option<TurnClock> {
        self.clock.take()
    }

    /// The Synthesizer sent `chunk` at `now` (see [`PlaybackLedger::chunk_sent`]). Returns false
    /// if its utterance is already done: a cancelled generation still in flight, whose audio the
    /// MediaStream drops too.
    pub fn chunk_sent(&mut self, chunk: ChunkSent, now: Instant) -> bool {
        let utterance = chunk.mark.utterance;
        if self.is_done(utterance) {
            return false;
        }
        if let Some(clause) = &chunk.clause {
            let spoken = &mut self.spoken.entry(utterance).or_default().text;
            if !spoken.is_empty() {
                spoken.push(' ');
            }
            spoken.push_str(clause);
        }
        self.ledger
            .chunk_sent(chunk.mark, chunk.frames, chunk.clause, now);
        self.audio_through = self.audio_through.max(Some(utterance));
        true
    }

    /// The engine said where more words of `utterance`'s latest clause end.
    pub fn words_timed(&mut self, utterance: UtteranceId, ends: Vec<Duration>) {
        if !self.is_done(utterance) {
            self.ledger.words_timed(utterance, ends);
        }
    }

    /// Twilio echoed `mark` at `now`.
    pub fn mark_echoed(&mut self, mark: MarkName, now: Instant) -> Echo {
        let first_heard = self
            .ledger
            .mark_echoed(mark, now)
            .filter(|_| mark.chunk == 0)
            // The first chunk started playing its own length before its mark came back.
            .map(|played| now.checked_sub(played).unwrap_or(now));
        if let (Some(started), Some(spoken)) = (first_heard, self.spoken.get_mut(&mark.utterance)) {
            spoken.started = Some(started);
        }
        let last_of = self
            .last_sent
            .filter(|(_, last)| *last == mark)
            .map(|(utterance, _)| utterance);
        Echo {
            first_heard,
            last_of,
        }
    }

    /// The Synthesizer sent the last audio of `utterance`, followed by `last_mark`. Returns the
    /// utterance if that makes it done (it had no audio).
    pub fn utterance_sent(
        &mut self,
        utterance: UtteranceId,
        last_mark: Option<MarkName>,
    ) -> Option<UtteranceId> {
        if self.is_done(utterance) {
            return None;
        }
        match last_mark {
            Some(mark) => {
                self.last_sent = Some((utterance, mark));
                None
            }
            None => Some(utterance),
        }
    }

    /// The hard stage of a barge-in at `now`: everything the agent has said or is composing is
    /// cancelled. `paused_at` caps what was heard (playback paused then). Returns what to cancel
    /// and what the caller heard of it; `None` if the agent has nothing left to interrupt. The
    /// cancelled utterances are not yet done: [`AgentSide::finish`] them.
    pub fn interrupt(&mut self, now: Instant, paused_at: Option<Instant>) -> Option<CancelReply> {
        let through = self.latest;
        if self.is_done(through) {
            return None;
        }
        let from = self
            .ledger
            .playing()
            .unwrap_or_else(|| UtteranceId(self.done_through.map_or(0, |done| done.0 + 1)));
        let heard = self.ledger.heard_text(from, now, paused_at);
        self.ledger.forget_through(through);
        self.cancelled_through = Some(through);
        self.interruption = Some(Interruption {
            from,
            heard: heard.clone(),
            at: paused_at.unwrap_or(now),
        });
        if self.transfer_after <= Some(through) {
            self.transfer_after = None;
        }
        Some(CancelReply {
            from,
            through,
            heard,
        })
    }

    /// The clock of a turn answered by an utterance up to `through`, which was cancelled.
    pub fn take_clock_through(&mut self, through: UtteranceId) -> Option<TurnClock> {
        self.clock.take_if(|clock| clock.utterance() <= through)
    }

    /// Everything up to `utterance` is done at `now` (heard, silent or cancelled). `None` if it
    /// already was.
    pub fn finish(&mut self, utterance: UtteranceId, now: Instant) -> Option<Finished> {
        if self.is_done(utterance) {
            return None;
        }
        self.done_through = Some(utterance);
        let later = self.spoken.split_off(&UtteranceId(utterance.0 + 1));
        let done = std::mem::replace(&mut self.spoken, later);
        let turns = done
            .into_iter()
            .filter(|(_, spoken)| !spoken.text.is_empty())
            .map(|(id, spoken)| self.turn(id, spoken, now))
            .collect();
        let idle = self.ledger.playing().is_none();
        let heard = self.cancelled_through < Some(utterance);
        let transfer = heard && self.transfer_after.is_some_and(|after| after <= utterance);
        if transfer {
            self.transfer_after = None;
        }
        let hang_up = self
            .hang_up
            .take_if(|hang_up| heard && hang_up.after <= utterance)
            .map(|hang_up| hang_up.reason);
        Some(Finished {
            turns,
            idle,
            transfer,
            hang_up,
        })
    }

    /// The turn utterance `id` made, done at `now`.
    fn turn(&self, id: UtteranceId, spoken: Spoken, now: Instant) -> SpokenTurn {
        let cut = self
            .interruption
            .as_ref()
            .filter(|_| self.cancelled_through >= Some(id));
        let ended = cut.map_or(now, |cut| cut.at);
        let heard = cut.map(|cut| {
            if cut.from == id {
                cut.heard.clone()
            } else {
                String::new()
            }
        });
        SpokenTurn {
            text: spoken.text,
            started: spoken.started.unwrap_or(ended).min(ended),
            ended,
            heard,
        }
    }

    /// Decides at `now` to hang up once `utterance` (a goodbye) has been heard; nothing interrupts
    /// it. Returns the reason if the call ends now (the goodbye is already done). Nothing happens
    /// if the goodbye was cancelled.
    pub fn hang_up_after(
        &mut self,
        utterance: UtteranceId,
        reason: EndReason,
        now: Instant,
    ) -> Option<EndReason> {
        if self.cancelled_through >= Some(utterance) {
            return None;
        }
        self.uninterruptible = Some(utterance);
        if self.is_done(utterance) {
            return Some(reason);
        }
        self.hang_up = Some(HangUp {
            after: utterance,
            reason,
            fallback_at: now + HANG_UP_FALLBACK,
        });
        None
    }

    /// The hang-up whose goodbye never finished playing, if any: it happens now.
    pub fn take_hang_up(&mut self) -> Option<EndReason> {
        self.hang_up.take().map(|hang_up| hang_up.reason)
    }

    /// The reply `utterance` asked for a transfer once heard. Returns true to transfer now (it was
    /// heard already); false if it waits for the reply, or the reply was cancelled.
    pub fn transfer_after(&mut self, utterance: UtteranceId) -> bool {
        if self.cancelled_through >= Some(utterance) {
            return false;
        }
        if self.is_done(utterance) {
            return true;
        }
        self.transfer_after = Some(utterance);
        false
    }

    /// The call started at `now`; it reaches its maximum duration after `max`.
    pub fn started(&mut self, now: Instant, max: Option<Duration>) {
        self.time_up_at = max.map(|max| now + max);
    }

    /// The maximum duration is reached: it happens once.
    pub fn take_time_up(&mut self) {
        self.time_up_at = None;
    }

    /// Arms the check-in `after` from `now` when both sides are `quiet` (unless armed already),
    /// and disarms it when not.
    pub fn settle(&mut self, quiet: bool, after: Option<Duration>, now: Instant) {
        match (quiet, after) {
            (true, Some(after)) => {
                self.check_in_at.get_or_insert(now + after);
            }
            (true, None) => {}
            (false, _) => self.check_in_at = None,
        }
    }

    /// The check-in is due: returns its number since the caller last spoke.
    pub fn check_in(&mut self) -> u32 {
        self.check_in_at = None;
        self.check_ins += 1;
        self.check_ins
    }

    /// Which deadlines are due at `now`; acting on one clears it.
    pub fn due(&self, now: Instant) -> AgentDue {
        let due = |at: Option<Instant>| at.is_some_and(|at| at <= now);
        AgentDue {
            hang_up: due(self.hang_up.as_ref().map(|hang_up| hang_up.fallback_at)),
            time_up: due(self.time_up_at),
            check_in: due(self.check_in_at),
        }
    }

    /// The earliest deadline of the agent's side.
    pub fn next_deadline(&self) -> Option<Instant> {
        let fallback = self.hang_up.as_ref().map(|hang_up| hang_up.fallback_at);
        [fallback, self.time_up_at, self.check_in_at]
            .into_iter()
            .flatten()
            .min()
    }
}
