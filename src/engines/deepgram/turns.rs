//! Deepgram's messages as the Transcriber's events (sans-I/O).
//!
//! ```text
//! SpeechStarted                      --> SpeechStarted
//! Results, interim, words            --> Partial  (the words since the last final)
//! Results, is_final, words           --> Final    (that segment)
//! Results, speech_final / UtteranceEnd --> EndOfTurn (once per turn)
//! ```
//!
//! The CallActor's conversation joins a turn's finals itself and reads a partial as the words
//! after them (it prepends the finals so far), so a turn's text is every `is_final` segment since
//! the last end of turn, as [Deepgram recommends](https://developers.deepgram.com/docs/understand-endpointing-interim-results).
//! A turn ends on `speech_final` or on `UtteranceEnd`, whichever comes first: the other one,
//! arriving after, finds no turn open and ends nothing. A turn is open from the first sign of
//! speech (a speech start, a partial or a final), so a cough that Deepgram heard start and
//! transcribed as nothing still ends, and the conversation drops it.

use phone_agent_actors::engines::TranscriptEvent;

use super::protocol::ServerMessage;

/// The caller's turn as Deepgram reported it so far.
#[derive(Debug, Default)]
pub struct Turns {
    /// Something was heard since the last end of turn.
    open: bool,
}

impl Turns {
    /// The events `message` means, pushed onto `out`.
    pub fn on(&mut self, message: &ServerMessage, out: &mut Vec<TranscriptEvent>) {
        match message {
            ServerMessage::SpeechStarted => {
                self.open = true;
                out.push(TranscriptEvent::SpeechStarted);
            }
            ServerMessage::Results(results) => {
                let text = results.transcript();
                if !text.is_empty() {
                    self.open = true;
                    let text = text.to_owned();
                    out.push(if results.is_final || results.speech_final {
                        TranscriptEvent::Final { text }
                    } else {
                        TranscriptEvent::Partial { text }
                    });
                }
                if results.speech_final {
                    self.end(out);
                }
            }
            ServerMessage::UtteranceEnd => self.end(out),
            ServerMessage::Metadata | ServerMessage::Other(_) => {}
        }
    }

    fn end(&mut self, out: &mut Vec<TranscriptEvent>) {
        if std::mem::take(&mut self.open) {
            out.push(TranscriptEvent::EndOfTurn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::deepgram::protocol::{Alternative, Channel, Results};

    fn results(transcript: &str, is_final: bool, speech_final: bool) -> ServerMessage {
        ServerMessage::Results(Results {
            is_final,
            speech_final,
            channel: Channel {
                alternatives: vec![Alternative {
                    transcript: transcript.into(),
                }],
            },
        })
    }

    fn interim(transcript: &str) -> ServerMessage {
        results(transcript, false, false)
    }

    fn final_(transcript: &str) -> ServerMessage {
        results(transcript, true, false)
    }

    fn heard(turns: &mut Turns, messages: &[ServerMessage]) -> Vec<TranscriptEvent> {
        let mut out = Vec::new();
        for message in messages {
            turns.on(message, &mut out);
        }
        out
    }

    fn partial(text: &str) -> TranscriptEvent {
        TranscriptEvent::Partial { text: text.into() }
    }

    fn settled(text: &str) -> TranscriptEvent {
        TranscriptEvent::Final { text: text.into() }
    }

    #[test]
    fn deepgram_interims_are_partials_of_the_words_after_the_last_final() {
        let mut turns = Turns::default();
        let events = heard(
            &mut turns,
            &[
                ServerMessage::SpeechStarted,
                interim("I'd like"),
                interim("I'd like to book"),
                final_("I'd like to book"),
                interim("a cleaning"),
                results("a cleaning please", true, true),
            ],
        );
        assert_eq!(
            events,
            [
                TranscriptEvent::SpeechStarted,
                partial("I'd like"),
                partial("I'd like to book"),
                settled("I'd like to book"),
                partial("a cleaning"),
                settled("a cleaning please"),
                TranscriptEvent::EndOfTurn,
            ]
        );
    }

    #[test]
    fn deepgram_utterance_end_after_speech_final_ends_no_second_turn() {
        let mut turns = Turns::default();
        let events = heard(
            &mut turns,
            &[
                results("Hello.", true, true),
                results("", true, true),
                ServerMessage::UtteranceEnd,
            ],
        );
        assert_eq!(events, [settled("Hello."), TranscriptEvent::EndOfTurn]);
    }

    #[test]
    fn deepgram_utterance_end_ends_a_turn_speech_final_missed() {
        // In noise, endpointing may never hear silence: UtteranceEnd still ends the turn.
        let mut turns = Turns::default();
        let events = heard(
            &mut turns,
            &[
                final_("What are"),
                final_("your hours?"),
                ServerMessage::UtteranceEnd,
                ServerMessage::UtteranceEnd,
            ],
        );
        assert_eq!(
            events,
            [
                settled("What are"),
                settled("your hours?"),
                TranscriptEvent::EndOfTurn
            ]
        );
    }

    #[test]
    fn empty_deepgram_transcripts_say_nothing_but_a_heard_start_still_ends() {
        let mut turns = Turns::default();
        let silence = heard(
            &mut turns,
            &[interim(""), final_("  "), results("", true, true)],
        );
        assert_eq!(silence, []);
        let cough = heard(
            &mut turns,
            &[
                ServerMessage::SpeechStarted,
                interim(""),
                results("", true, true),
            ],
        );
        assert_eq!(
            cough,
            [TranscriptEvent::SpeechStarted, TranscriptEvent::EndOfTurn]
        );
    }

    #[test]
    fn deepgram_metadata_and_unknown_types_change_nothing() {
        let mut turns = Turns::default();
        let events = heard(
            &mut turns,
            &[
                ServerMessage::Metadata,
                ServerMessage::Other("Warning".into()),
                ServerMessage::UtteranceEnd,
            ],
        );
        assert_eq!(events, []);
    }
}
