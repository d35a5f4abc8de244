//! Barge-in: deciding, while the agent speaks, whether the caller is taking the floor.
//!
//! Two stages, as callers expect from the best agents:
//! - **soft**: the recogniser heard speech start (or a first partial). Playback pauses: nothing
//!   more goes to Twilio, but what it has buffered plays.
//! - **hard**: the speech is confirmed, by at least [`BargeInSettings::min_words`] words that are
//!   not all backchannel ("yeah", "uh-huh"), or by [`BargeInSettings::min_speech`] of voiced audio.
//!   The agent stops: `clear` first, then its reply is cancelled.
//!
//! A soft stage that is not confirmed within [`BargeInSettings::resume_after`] (or whose turn ends
//! as a backchannel) resumes where it paused. Sans-I/O: the CallActor feeds events and acts on the
//! [`Verdict`].

use std::collections::BTreeSet;
use std::time::Duration;

use crate::audio::FRAME_DURATION;

/// The backchannel words recognised by default: short signs of listening, not attempts to speak.
pub const DEFAULT_BACKCHANNELS: &str =
    "yeah, yes, yep, yup, uh-huh, mm-hmm, hmm, okay, ok, right, sure, alright, i see, got it";

/// How barge-in is confirmed.
#[derive(Debug, Clone)]
pub struct BargeInSettings {
    /// Whether caller speech may interrupt the agent at all (`BARGE_IN`).
    pub enabled: bool,
    /// Words (not all backchannel) that confirm a barge-in (`BARGE_IN_MIN_WORDS`).
    pub min_words: usize,
    /// Voiced audio that confirms a barge-in without words (`BARGE_IN_MIN_SPEECH_MS`).
    pub min_speech: Duration,
    /// A soft stage not confirmed within this resumes playback (`BARGE_IN_RESUME_MS`).
    pub resume_after: Duration,
    /// Words that never confirm a barge-in on their own (`BARGE_IN_BACKCHANNELS`).
    pub backchannels: Backchannels,
}

impl Default for BargeInSettings {
    /// Enabled; two words, 600 ms, resume after 1 s, [`DEFAULT_BACKCHANNELS`].
    fn default() -> Self {
        Self {
            enabled: true,
            min_words: 2,
            min_speech: Duration::from_millis(600),
            resume_after: Duration::from_secs(1),
            backchannels: Backchannels::parse(DEFAULT_BACKCHANNELS),
        }
    }
}

/// A set of backchannel words, matched case-insensitively, punctuation ignored.
#[derive(Debug, Clone, Default)]
pub struct Backchannels(BTreeSet<String>);

impl Backchannels {
    /// Reads a comma-separated list of words or phrases (`uh-huh` and `uh huh` are the same).
    pub fn parse(list: &str) -> Self {
        Self(list.split(',').flat_map(words).collect())
    }

    /// Whether every word of `text` is a backchannel word (true for no words at all).
    pub fn covers(&self, text: &str) -> bool {
        words(text).all(|word| self.0.contains(&word))
    }
}

/// Lower-case words of `text`: letters, digits and apostrophes; anything else separates.
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
}

/// What the CallActor does about what it just heard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing changes.
    Continue,
    /// Soft stage: pause playback (already buffered audio plays).
    Pause,
    /// Hard stage: `clear`, then cancel the agent's reply.
    Interrupt,
}

/// The barge-in state of the agent's current utterance.
#[derive(Debug, Default)]
pub struct BargeIn {
    /// Voiced frames since the soft stage began; `None` while not paused.
    paused: Option<u32>,
}

impl BargeIn {
    /// Whether playback is paused (soft stage).
    pub fn is_paused(&self) -> bool {
        self.paused.is_some()
    }

    /// The recogniser heard speech start: soft stage.
    pub fn speech_started(&mut self) -> Verdict {
        self.pause()
    }

    /// The caller's words so far in this turn (a partial, or the finals so far).
    pub fn heard(&mut self, text: &str, settings: &BargeInSettings) -> Verdict {
        let count = words(text).count();
        if count == 0 {
            return Verdict::Continue;
        }
        if count >= settings.min_words && !settings.backchannels.covers(text) {
            self.paused = None;
            return Verdict::Interrupt;
        }
        self.pause()
    }

    /// A frame of caller audio the energy VAD called voiced; counts only during the soft stage.
    pub fn voiced_frame(&mut self, settings: &BargeInSettings) -> Verdict {
        let Some(voiced) = self.paused.as_mut() else {
            return Verdict::Continue;
        };
        *voiced += 1;
        if FRAME_DURATION * *voiced >= settings.min_speech {
            self.paused = None;
            return Verdict::Interrupt;
        }
        Verdict::Continue
    }

    /// Leaves the soft stage (resumed, or the utterance ended); returns whether it was paused.
    pub fn resume(&mut self) -> bool {
        self.paused.take().is_some()
    }

    fn pause(&mut self) -> Verdict {
        if self.paused.is_some() {
            return Verdict::Continue;
        }
        self.paused = Some(0);
        Verdict::Pause
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backchannels_are_matched_word_by_word() {
        let list = Backchannels::parse(DEFAULT_BACKCHANNELS);
        assert!(list.covers("Uh-huh."));
        assert!(list.covers("uh huh"));
        assert!(list.covers("Yeah, okay!"));
        assert!(list.covers("mm-hmm right"));
        assert!(!list.covers("yeah but wait"));
        assert!(!list.covers("stop"));
    }

    #[test]
    fn speech_pauses_once_and_words_confirm() {
        let settings = BargeInSettings::default();
        let mut barge_in = BargeIn::default();
        assert_eq!(barge_in.speech_started(), Verdict::Pause);
        assert_eq!(barge_in.speech_started(), Verdict::Continue);
        assert_eq!(barge_in.heard("wait", &settings), Verdict::Continue);
        assert_eq!(barge_in.heard("yeah okay", &settings), Verdict::Continue);
        assert_eq!(barge_in.heard("wait, no", &settings), Verdict::Interrupt);
        assert!(!barge_in.is_paused());
    }

    #[test]
    fn a_first_partial_pauses_without_speech_start() {
        let settings = BargeInSettings::default();
        let mut barge_in = BargeIn::default();
        assert_eq!(barge_in.heard("mm-hmm", &settings), Verdict::Pause);
        assert!(barge_in.resume());
        assert!(!barge_in.resume());
    }

    #[test]
    fn long_voiced_audio_confirms_only_while_paused() {
        let settings = BargeInSettings::default();
        let mut barge_in = BargeIn::default();
        for _ in 0..100 {
            assert_eq!(barge_in.voiced_frame(&settings), Verdict::Continue);
        }
        barge_in.speech_started();
        let frames = (settings.min_speech.as_millis() / 20) as usize;
        for _ in 1..frames {
            assert_eq!(barge_in.voiced_frame(&settings), Verdict::Continue);
        }
        assert_eq!(barge_in.voiced_frame(&settings), Verdict::Interrupt);
    }
}
