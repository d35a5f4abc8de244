//! The caller's side of a call: the turn in progress, keypad digits, when the energy VAD last
//! heard the caller, and the soft stage of a barge-in.
//!
//! Plain state, told the time: [`Conversation`](super::conversation::Conversation) drives it and
//! decides what the agent does about it. What waits here waits by deadline (the end of a turn on
//! silence, the end of a keypad turn, the resumption of paused playback), read back through
//! [`CallerSide::next_deadline`].

use std::time::{Duration, Instant};

use super::barge_in::{Backchannels, BargeIn};
use crate::audio::mulaw;
use crate::audio::vad::{rms_dbfs, VadConfig};
use crate::ids::UtteranceId;

/// A pause after the last key that ends a keypad turn (as IVRs wait for more digits).
pub const KEYPAD_PAUSE: Duration = Duration::from_millis(1500);

/// Keys kept per keypad turn; more are ignored (no phone number or account id is longer).
const MAX_KEYS: usize = 32;

/// A final result with no speech start before it, this soon after a turn was taken, belongs to
/// that turn (recognisers finalise the last words of a turn after its end).
pub const LATE_FINAL_WINDOW: Duration = Duration::from_secs(2);

/// The caller's turn in progress.
struct OpenTurn {
    /// Final text so far.
    text: String,
    /// The recogniser reported speech (a speech start or a partial) in this turn.
    speech: bool,
    opened_at: Instant,
    /// When the latest final arrived.
    final_at: Option<Instant>,
    /// When to check whether the caller has been silent long enough to end the turn.
    silence_check: Option<Instant>,
}

/// The turn last handed to the Responder.
struct TakenTurn {
    utterance: UtteranceId,
    text: String,
    at: Instant,
}

/// A caller turn to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerTurn {
    /// What the caller said (or keyed).
    pub text: String,
    /// The words of this turn alone (`text` less the previous turn it amends).
    pub said: String,
    /// It continues the caller's previous turn, whose reply has not started playing: `text` is the
    /// whole of it.
    pub amends: bool,
    /// When the caller started speaking (or pressed the first key).
    pub speech_start: Instant,
    /// When the caller stopped speaking.
    pub speech_end: Instant,
    /// When the recogniser's last final of the turn arrived.
    pub final_at: Option<Instant>,
}

/// How the open turn ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TurnEnd {
    /// Nothing was said, or only backchannel over the agent: not a turn.
    Dropped,
    /// Words recognised late for the turn answered as `utterance`, whose reply already started
    /// playing: they join that turn, unanswered.
    Late {
        /// The reply to the turn they belong to.
        utterance: UtteranceId,
        /// The words.
        text: String,
        /// When the words began.
        started: Instant,
    },
    /// A turn to answer.
    Answer(CallerTurn),
}

/// The caller's side of one call.
#[derive(Default)]
pub struct CallerSide {
    turn: Option<OpenTurn>,
    last_taken: Option<TakenTurn>,
    /// Keys pressed since the last keypad turn.
    keys: String,
    /// When the first of them was pressed.
    keys_start: Option<Instant>,
    /// When the keypad turn ends if no other key comes.
    keys_end: Option<Instant>,
    samples: Vec<i16>,
    /// When the energy VAD last heard a voiced frame.
    last_voiced: Option<Instant>,
    /// The barge-in state of the caller's speech over the agent.
    pub barge_in: BargeIn,
    /// When playback paused (soft stage), to cap the estimate of what was heard.
    paused_at: Option<Instant>,
    /// When an unconfirmed soft stage resumes playback.
    resume_at: Option<Instant>,
}

impl CallerSide {
    /// Whether the caller is in the middle of a turn (speech or keys).
    pub fn is_mid_turn(&self) -> bool {
        self.turn.is_some() || !self.keys.is_empty()
    }

    /// The energy VAD's opinion of one frame heard at `now`: whether it is voiced. It dates the
    /// end of speech and confirms barge-ins.
    pub fn hear(&mut self, payload: &[u8], now: Instant) -> bool {
        self.samples.clear();
        mulaw::decode_into(payload, &mut self.samples);
        let voiced = rms_dbfs(&self.samples) >= VadConfig::default().threshold_dbfs;
        if voiced {
            self.last_voiced = Some(now);
        }
        voiced
    }

    /// The recogniser reported speech (`speech`) or words at `now`: the open turn, opened now if
    /// there is none. Returns the text of its finals so far.
    pub fn open_turn(&mut self, speech: bool, now: Instant) -> &str {
        let turn = self.turn.get_or_insert_with(|| OpenTurn {
            text: String::new(),
            speech: false,
            opened_at: now,
            final_at: None,
            silence_check: None,
        });
        turn.speech |= speech;
        &turn.text
    }

    /// A final result at `now`: its words join the open turn (opened if need be), which ends once
    /// the caller has been silent for `silence`. Returns the turn's text so far if the recogniser
    /// heard speech in it (words that may confirm a barge-in).
    pub fn final_words(&mut self, text: &str, now: Instant, silence: Duration) -> Option<&str> {
        self.open_turn(false, now);
        self.check_silence(now, silence);
        let turn = self.turn.as_mut()?;
        if !turn.text.is_empty() {
            turn.text.push(' ');
        }
        turn.text.push_str(text.trim());
        turn.final_at = Some(now);
        turn.speech.then_some(turn.text.as_str())
    }

    /// What the open turn would say if it ended with `tentative` words after its finals: the turn a
    /// speculative reply answers. `None` unless the recogniser heard speech in it (words with no
    /// speech are late finals of the last turn) and there are words.
    pub fn tentative_text(&self, tentative: &str) -> Option<String> {
        let turn = self.turn.as_ref().filter(|turn| turn.speech)?;
        let text = format!("{} {}", turn.text, tentative.trim());
        let text = text.trim();
        (!text.is_empty()).then(|| text.to_owned())
    }

    /// Schedules the check of the open turn's silence: `silence` after the energy VAD last heard
    /// the caller (from `now` if it never did).
    fn check_silence(&mut self, now: Instant, silence: Duration) {
        let heard_since = self
            .last_voiced
            .map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
        if let Some(turn) = self.turn.as_mut() {
            turn.silence_check = Some(now + silence.saturating_sub(heard_since));
        }
    }

    /// The open turn's silence check is due at `now`: whether the caller has been silent for
    /// `silence` (the turn should end). If not, the check moves to when they will have been.
    pub fn silent_for(&mut self, silence: Duration, now: Instant) -> bool {
        let quiet = self
            .last_voiced
            .is_none_or(|at| now.saturating_duration_since(at) >= silence);
        if !quiet {
            self.check_silence(now, silence);
        } else if let Some(turn) = self.turn.as_mut() {
            turn.silence_check = None;
        }
        quiet
    }

    /// Ends the open turn at `now`. `over_agent`: the agent is speaking and may be interrupted;
    /// `audio_through`: the newest utterance whose audio started going out. `None` if no turn
    /// was open.
    pub fn take_turn(
        &mut self,
        now: Instant,
        over_agent: bool,
        backchannels: &Backchannels,
        audio_through: Option<UtteranceId>,
    ) -> Option<TurnEnd> {
        let mut turn = self.turn.take()?;
        if turn.text.is_empty() || (over_agent && backchannels.covers(&turn.text)) {
            return Some(TurnEnd::Dropped);
        }
        let late = self.last_taken.as_ref().filter(|last| {
            !turn.speech && now.saturating_duration_since(last.at) <= LATE_FINAL_WINDOW
        });
        let mut amends = false;
        let said = turn.text.clone();
        if let Some(last) = late {
            if audio_through >= Some(last.utterance) {
                return Some(TurnEnd::Late {
                    utterance: last.utterance,
                    text: turn.text,
                    started: turn.opened_at,
                });
            }
            turn.text = format!("{} {}", last.text, turn.text);
            amends = true;
        }
        let speech_end = self
            .last_voiced
            .filter(|at| *at >= turn.opened_at)
            .or(turn.final_at)
            .unwrap_or(now);
        Some(TurnEnd::Answer(CallerTurn {
            text: turn.text,
            said,
            amends,
            speech_start: turn.opened_at,
            speech_end,
            final_at: turn.final_at,
        }))
    }

    /// The turn `text` was handed to the Responder at `now`, to be answered as `utterance`.
    pub fn taken(&mut self, utterance: UtteranceId, text: String, now: Instant) {
        self.last_taken = Some(TakenTurn {
            utterance,
            text,
            at: now,
        });
    }

    /// A key other than `#` pressed at `now`: collected; the keypad turn ends after a pause.
    pub fn press(&mut self, key: char, now: Instant) {
        self.keys_start.get_or_insert(now);
        if self.keys.len() < MAX_KEYS {
            self.keys.push(key);
        }
        self.keys_end = Some(now + KEYPAD_PAUSE);
    }

    /// The keys of the keypad turn, which ends now, and when the first was pressed (`None` if
    /// none were).
    pub fn take_keys(&mut self) -> Option<(String, Instant)> {
        self.keys_end = None;
        let started = self.keys_start.take()?;
        Some((std::mem::take(&mut self.keys), started))
    }

    /// Soft stage at `now`: playback pauses, and resumes after `resume_after` unless confirmed.
    pub fn pause(&mut self, now: Instant, resume_after: Duration) {
        self.paused_at = Some(now);
        self.resume_at = Some(now + resume_after);
    }

    /// When playback paused, if it is paused.
    pub fn paused_at(&self) -> Option<Instant> {
        self.paused_at
    }

    /// Ends the soft stage, if any; returns whether playback was paused (and is to resume).
    pub fn resume(&mut self) -> bool {
        self.barge_in.resume();
        self.resume_at = None;
        self.paused_at.take().is_some()
    }

    /// Which deadlines are due at `now` (the open turn's silence check, the end of the keypad turn,
    /// the resumption of playback); acting on one clears it.
    pub fn due(&mut self, now: Instant) -> CallerDue {
        let due = |at: Option<Instant>| at.is_some_and(|at| at <= now);
        let silence = self
            .turn
            .as_ref()
            .is_some_and(|turn| due(turn.silence_check));
        CallerDue {
            silence,
            keys: due(self.keys_end),
            resume: due(self.resume_at),
        }
    }

    /// The earliest deadline of the caller's side.
    pub fn next_deadline(&self) -> Option<Instant> {
        let silence = self.turn.as_ref().and_then(|turn| turn.silence_check);
        [silence, self.keys_end, self.resume_at]
            .into_iter()
            .flatten()
            .min()
    }
}

/// Which of the caller side's deadlines are due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallerDue {
    /// The open turn's silence check.
    pub silence: bool,
    /// The end of the keypad turn.
    pub keys: bool,
    /// The resumption of paused playback.
    pub resume: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backchannels() -> Backchannels {
        Backchannels::parse(super::super::barge_in::DEFAULT_BACKCHANNELS)
    }

    fn answer(end: Option<TurnEnd>) -> CallerTurn {
        match end {
            Some(TurnEnd::Answer(turn)) => turn,
            other => panic!("expected a turn to answer, got {other:?}"),
        }
    }

    #[test]
    fn a_turn_is_timed_from_the_last_voiced_frame_it_heard() {
        let start = Instant::now();
        let ms = |n| start + Duration::from_millis(n);
        let mut caller = CallerSide::default();
        caller.open_turn(true, ms(0));
        assert!(caller.hear(&[0x00; 160], ms(300)), "loud audio is voiced");
        assert!(!caller.hear(&[0xFF; 160], ms(320)), "silence is not");
        caller.final_words("book a table", ms(500), Duration::from_millis(600));
        let turn = answer(caller.take_turn(ms(900), false, &backchannels(), None));
        assert_eq!(turn.text, "book a table");
        assert_eq!((turn.speech_end, turn.final_at), (ms(300), Some(ms(500))));
        assert!(!turn.amends);
    }

    #[test]
    fn the_silence_check_waits_for_the_vad_not_the_final() {
        let start = Instant::now();
        let ms = |n| start + Duration::from_millis(n);
        let silence = Duration::from_millis(600);
        let mut caller = CallerSide::default();
        caller.hear(&[0x00; 160], ms(0));
        caller.final_words("hello", ms(200), silence);
        assert_eq!(caller.next_deadline(), Some(ms(600)));
        // The caller speaks on: at the check, the silence has not lasted; it moves.
        caller.hear(&[0x00; 160], ms(500));
        assert!(caller.due(ms(600)).silence);
        assert!(!caller.silent_for(silence, ms(600)));
        assert_eq!(caller.next_deadline(), Some(ms(1100)));
        assert!(caller.silent_for(silence, ms(1100)));
        assert_eq!(caller.next_deadline(), None);
    }

    #[test]
    fn backchannel_over_the_agent_is_no_turn_but_is_one_to_a_quiet_agent() {
        let now = Instant::now();
        let mut caller = CallerSide::default();
        caller.final_words("uh-huh", now, Duration::ZERO);
        assert_eq!(
            caller.take_turn(now, true, &backchannels(), None),
            Some(TurnEnd::Dropped)
        );
        caller.final_words("uh-huh", now, Duration::ZERO);
        assert_eq!(
            answer(caller.take_turn(now, false, &backchannels(), None)).text,
            "uh-huh"
        );
        assert_eq!(caller.take_turn(now, false, &backchannels(), None), None);
    }

    #[test]
    fn late_finals_amend_the_last_turn_until_its_reply_plays() {
        let start = Instant::now();
        let ms = |n| start + Duration::from_millis(n);
        let mut caller = CallerSide::default();
        caller.taken(UtteranceId(3), "I want to book".into(), ms(0));

        caller.final_words("an appointment", ms(100), Duration::ZERO);
        let turn = answer(caller.take_turn(ms(100), false, &backchannels(), None));
        assert_eq!(turn.text, "I want to book an appointment");
        assert!(turn.amends);

        caller.taken(UtteranceId(4), turn.text, ms(100));
        caller.final_words("please", ms(300), Duration::ZERO);
        assert_eq!(
            caller.take_turn(ms(300), false, &backchannels(), Some(UtteranceId(4))),
            Some(TurnEnd::Late {
                utterance: UtteranceId(4),
                text: "please".into(),
                started: ms(300),
            })
        );

        // Outside the window, or after new speech, words are a turn of their own.
        caller.final_words("thanks", ms(2_200), Duration::ZERO);
        assert!(!answer(caller.take_turn(ms(2_200), false, &backchannels(), None)).amends);
        caller.taken(UtteranceId(5), "thanks".into(), ms(2_200));
        caller.open_turn(true, ms(2_300));
        caller.final_words("and more", ms(2_400), Duration::ZERO);
        assert!(!answer(caller.take_turn(ms(2_400), false, &backchannels(), None)).amends);
    }

    #[test]
    fn keys_end_their_turn_after_a_pause_from_the_last_key() {
        let start = Instant::now();
        let mut caller = CallerSide::default();
        caller.press('1', start);
        caller.press('2', start + Duration::from_secs(1));
        assert!(caller.is_mid_turn());
        let end = start + Duration::from_secs(1) + KEYPAD_PAUSE;
        assert_eq!(caller.next_deadline(), Some(end));
        assert!(!caller.due(end - Duration::from_millis(1)).keys);
        assert!(caller.due(end).keys);
        assert_eq!(caller.take_keys(), Some(("12".into(), start)));
        assert_eq!(caller.next_deadline(), None);
        assert!(!caller.is_mid_turn());
    }
}
