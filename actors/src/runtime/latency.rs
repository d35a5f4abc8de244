//! Per-turn latency: when each stage of the agent's answer happened, from the end of the caller's
//! speech.
//!
//! ```text
//! caller stops ─ STT final ─ end of turn ─ first reply text ─ first TTS audio ─ first frame sent
//!                                                                             ─ first chunk heard
//! ```
//! The end of speech is the last frame the CallActor's energy VAD called voiced (the recogniser's
//! end-of-turn silence comes after it). "Heard" is when the reply's first chunk started playing:
//! its mark's echo less the chunk's length. Sans-I/O: the CallActor passes the times.

use std::time::{Duration, Instant};

use crate::ids::UtteranceId;

/// A stage of a turn's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// The recogniser's last final result of the turn arrived.
    SttFinal,
    /// The CallActor took the turn and handed it to the Responder.
    EndOfTurn,
    /// The Responder received the first text of the reply.
    FirstText,
    /// The Synthesizer sent the first audio of the reply.
    FirstAudio,
    /// The MediaStream wrote the first frame of the reply to the socket.
    FirstSent,
    /// The caller started hearing the reply: the echo of its first mark, less that chunk's length.
    FirstHeard,
}

impl Stage {
    /// Every stage, in timeline order.
    pub const ALL: [Stage; 6] = [
        Stage::SttFinal,
        Stage::EndOfTurn,
        Stage::FirstText,
        Stage::FirstAudio,
        Stage::FirstSent,
        Stage::FirstHeard,
    ];

    /// Name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::SttFinal => "stt_final",
            Stage::EndOfTurn => "end_of_turn",
            Stage::FirstText => "first_text",
            Stage::FirstAudio => "first_audio",
            Stage::FirstSent => "first_sent",
            Stage::FirstHeard => "first_heard",
        }
    }
}

/// The timeline of one turn's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnClock {
    utterance: UtteranceId,
    speech_end: Instant,
    at: [Option<Instant>; Stage::ALL.len()],
}

impl TurnClock {
    /// A turn answered as `utterance`, whose speech ended at `speech_end`, taken at `now`.
    pub fn new(
        utterance: UtteranceId,
        speech_end: Instant,
        stt_final: Option<Instant>,
        now: Instant,
    ) -> Self {
        let mut clock = Self {
            utterance,
            speech_end,
            at: [None; Stage::ALL.len()],
        };
        if let Some(at) = stt_final {
            clock.reached(utterance, Stage::SttFinal, at);
        }
        clock.reached(utterance, Stage::EndOfTurn, now);
        clock
    }

    /// The answer this clock times.
    pub fn utterance(&self) -> UtteranceId {
        self.utterance
    }

    /// `utterance` reached `stage` at `at`; only the first time counts, and only for this turn.
    pub fn reached(&mut self, utterance: UtteranceId, stage: Stage, at: Instant) {
        if utterance == self.utterance {
            self.at[stage as usize].get_or_insert(at);
        }
    }

    /// Whether the caller has heard the start of the answer.
    pub fn is_heard(&self) -> bool {
        self.at[Stage::FirstHeard as usize].is_some()
    }

    /// Each stage reached, with its time after the end of the caller's speech, in order.
    pub fn latencies(&self) -> Vec<(Stage, Duration)> {
        Stage::ALL
            .iter()
            .zip(self.at)
            .filter_map(|(stage, at)| {
                Some((*stage, at?.saturating_duration_since(self.speech_end)))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_are_timed_from_the_end_of_speech_once_each() {
        let end = Instant::now();
        let ms = |n| end + Duration::from_millis(n);
        let u = UtteranceId(4);
        let mut clock = TurnClock::new(u, end, Some(ms(150)), ms(600));
        clock.reached(u, Stage::FirstText, ms(650));
        clock.reached(u, Stage::FirstText, ms(900));
        clock.reached(UtteranceId(3), Stage::FirstAudio, ms(700));
        clock.reached(u, Stage::FirstAudio, ms(800));
        assert!(!clock.is_heard());
        clock.reached(u, Stage::FirstHeard, ms(1000));
        assert!(clock.is_heard());
        let millis: Vec<(&str, u128)> = clock
            .latencies()
            .into_iter()
            .map(|(stage, d)| (stage.as_str(), d.as_millis()))
            .collect();
        assert_eq!(
            millis,
            vec![
                ("stt_final", 150),
                ("end_of_turn", 600),
                ("first_text", 650),
                ("first_audio", 800),
                ("first_heard", 1000)
            ]
        );
    }
}
