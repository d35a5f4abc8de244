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

/// Unvoiced frames that end a run of caller speech: 300 ms (the pause between words is shorter).
const HANGOVER_FRAMES: u32 = 15;

/// The barge-in state of one call.
#[derive(Debug, Default)]
pub struct BargeIn {
    /// Soft stage: playback is paused.
    paused: bool,
    /// Voiced frames in the caller's current run of speech.
    voiced: u32,
    /// Unvoiced frames since the last voiced one.
    quiet: u32,
}

impl BargeIn {
    /// The recogniser heard speech start: soft stage, or hard at once if the energy VAD has
    /// already heard enough.
    pub fn speech_started(&mut self, settings: &BargeInSettings) -> Verdict {
        if self.long_enough(settings) {
            self.paused = false;
            return Verdict::Interrupt;
        }
        self.pause()
    }

    /// The caller's words so far in this turn (a partial, or the finals so far).
    pub fn heard(&mut self, text: &str, settings: &BargeInSettings) -> Verdict {
        let count = words(text).count();
        if count == 0 {
            return Verdict::Continue;
        }
        if count >= settings.min_words && !settings.backchannels.covers(text) {
            self.paused = false;
            return Verdict::Interrupt;
        }
        self.pause()
    }

    /// One frame of caller audio and whether the energy VAD called it voiced. Voiced audio counts
    /// from the start of the speech run, even before the recogniser reports it, but confirms a
    /// barge-in only in the soft stage.
    pub fn frame(&mut self, voiced: bool, settings: &BargeInSettings) -> Verdict {
        if voiced {
            self.voiced += 1;
            self.quiet = 0;
        } else {
            self.quiet += 1;
            if self.quiet >= HANGOVER_FRAMES {
                self.voiced = 0;
            }
        }
        if self.paused && self.long_enough(settings) {
            self.paused = false;
            return Verdict::Interrupt;
        }
        Verdict::Continue
    }

    /// Leaves the soft stage (resumed, or the utterance ended); returns whether it was paused.
    pub fn resume(&mut self) -> bool {
        std::mem::take(&mut self.paused)
    }

    fn long_enough(&self, settings: &BargeInSettings) -> bool {
        FRAME_DURATION * self.voiced >= settings.min_speech
    }

    fn pause(&mut self) -> Verdict {
        if self.paused {
            return Verdict::Continue;
        }
        self.paused = true;
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
        assert_eq!(barge_in.speech_started(&settings), Verdict::Pause);
        assert_eq!(barge_in.speech_started(&settings), Verdict::Continue);
        assert_eq!(barge_in.heard("wait", &settings), Verdict::Continue);
        assert_eq!(barge_in.heard("yeah okay", &settings), Verdict::Continue);
        assert_eq!(barge_in.heard("wait, no", &settings), Verdict::Interrupt);
        assert!(!barge_in.resume(), "the hard stage ends the soft one");
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
    fn voiced_audio_counts_from_the_start_of_the_run_and_confirms_while_paused() {
        let settings = BargeInSettings::default();
        let needed = (settings.min_speech.as_millis() / 20) as usize;
        let mut barge_in = BargeIn::default();
        for _ in 0..needed * 2 {
            assert_eq!(barge_in.frame(true, &settings), Verdict::Continue);
        }
        assert_eq!(barge_in.speech_started(&settings), Verdict::Interrupt);

        // A pause longer than the hangover starts a new run.
        let mut barge_in = BargeIn::default();
        for _ in 0..needed - 1 {
            barge_in.frame(true, &settings);
        }
        for _ in 0..HANGOVER_FRAMES {
            barge_in.frame(false, &settings);
        }
        assert_eq!(barge_in.speech_started(&settings), Verdict::Pause);
        for _ in 1..needed {
            assert_eq!(barge_in.frame(true, &settings), Verdict::Continue);
        }
        assert_eq!(barge_in.frame(true, &settings), Verdict::Interrupt);
    }
}
