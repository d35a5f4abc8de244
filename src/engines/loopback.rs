//! The loopback engine set: the caller's audio goes through the whole actor path and comes back.
//!
//! The "STT" hears speech start, keeps each turn's audio on the call's [`LoopbackTape`] and ends the
//! turn with its name there (`loopback-17`) as the text; the "dialogue" says back what it heard, and
//! the "TTS" plays the audio the text names. Every actor, message and engine seam of a real call is
//! crossed with engines of near-zero cost, and the texts are as short as a spoken sentence's, so the
//! history and the call journal carry what a real call's do: what tests and benchmarks measure is
//! the framework. Chosen only by configuration (`ENGINES=loopback`).

use std::collections::VecDeque;
use std::sync::Arc;

use dashmap::DashMap;
use futures_util::{stream, StreamExt};
use phone_agent_actors::audio::AudioFrame;
use phone_agent_actors::engines::{
    last_caller_line, CallContext, ChatMessage, Dialogue, DialogueSession, EngineError,
    EngineStream, SpeechToText, SttSession, Synthesized, TextToSpeech, TranscriptEvent, TtsSession,
};
use phone_agent_actors::ids::{CallSid, UtteranceId};
use tokio::sync::mpsc;

/// Frames the loopback recogniser buffers: 1.28 s; more means the call's thread is stalled.
const AUDIO_BUFFER_FRAMES: usize = 64;

/// Audio a call's tape keeps unplayed: 30 s at 8 kHz mu-law. Turns are played as soon as their reply
/// is spoken, so this holds a burst of every-frame turns (Twilio delivering seconds of audio at once)
/// and only bounds a voice that plays nothing; past it the oldest turns go.
const MAX_UNPLAYED_BYTES: usize = 30 * 8_000;

const NAME: &str = "loopback";

/// How a turn is named in its text: `loopback-` and its number on the call's tape.
const TURN_PREFIX: &str = "loopback-";

/// The audio of each call's loopback turns, from the recogniser that heard them to the voice that
/// says them back. A turn is played once; a call's tape is erased when its recogniser session ends.
#[derive(Clone, Default)]
pub struct LoopbackTape {
    calls: Arc<DashMap<CallSid, CallTape>>,
}

#[derive(Default)]
struct CallTape {
    next: u64,
    unplayed: VecDeque<(u64, Vec<u8>)>,
    unplayed_bytes: usize,
}

impl CallTape {
    fn pop_front(&mut self) -> Option<(u64, Vec<u8>)> {
        let turn = self.unplayed.pop_front()?;
        self.unplayed_bytes -= turn.1.len();
        Some(turn)
    }
}

impl LoopbackTape {
    /// Keeps `audio` as the call's next turn and returns the turn's text.
    pub fn record(&self, call: &CallSid, audio: Vec<u8>) -> String {
        let mut tape = self.calls.entry(call.clone()).or_default();
        let number = tape.next;
        tape.next += 1;
        tape.unplayed_bytes += audio.len();
        tape.unplayed.push_back((number, audio));
        while tape.unplayed_bytes > MAX_UNPLAYED_BYTES {
            tape.pop_front();
        }
        format!("{TURN_PREFIX}{number}")
    }

    /// The audio of the turns `text` names, in order (a merged turn names several), each taken off
    /// the tape with the unplayed turns before it; `None` if a word names no unplayed turn, or
    /// there is no word.
    fn play(&self, call: &CallSid, text: &str) -> Option<Vec<u8>> {
        let mut tape = self.calls.get_mut(call)?;
        let mut audio = Vec::new();
        for word in text.split_whitespace() {
            let number: u64 = word.strip_prefix(TURN_PREFIX)?.parse().ok()?;
            while tape.unplayed.front()?.0 < number {
                tape.pop_front();
            }
            if tape.unplayed.front()?.0 != number {
                return None;
            }
            let (_, turn) = tape.pop_front()?;
            audio.extend_from_slice(&turn);
        }
        (!audio.is_empty()).then_some(audio)
    }

    fn erase(&self, call: &CallSid) {
        self.calls.remove(call);
    }
}

/// Erases its call's tape when dropped (with the recogniser session that records on it).
struct TapeEraser {
    tape: LoopbackTape,
    call: CallSid,
}

impl Drop for TapeEraser {
    fn drop(&mut self) {
        self.tape.erase(&self.call);
    }
}

/// "Recognises" each turn of `turn_frames` frames (one by default): its audio goes on the tape,
/// and its name there is the text.
pub struct LoopbackStt {
    turn_frames: usize,
    tape: LoopbackTape,
}

impl LoopbackStt {
    /// A turn every `turn_frames` frames (at least one), recorded on `tape`: one makes every frame a
    /// turn (the whole actor path per frame); 100 makes the 2 s turns of a real conversation, audio
    /// streaming both ways between them (`LOOPBACK_TURN_FRAMES`).
    pub fn new(turn_frames: usize, tape: LoopbackTape) -> Self {
        Self {
            turn_frames: turn_frames.max(1),
            tape,
        }
    }
}

impl SpeechToText for LoopbackStt {
    fn name(&self) -> &'static str {
        NAME
    }

    fn open(&self, call: &CallContext) -> Result<SttSession, EngineError> {
        let (audio, frames) = mpsc::channel::<AudioFrame>(AUDIO_BUFFER_FRAMES);
        let turn_frames = self.turn_frames;
        let eraser = TapeEraser {
            tape: self.tape.clone(),
            call: call.call_sid.clone(),
        };
        let events = stream::unfold((frames, eraser), move |(mut frames, eraser)| async move {
            let mut turn = Vec::new();
            for _ in 0..turn_frames {
                turn.extend_from_slice(&frames.recv().await?.payload);
            }
            let text = eraser.tape.record(&eraser.call, turn);
            Some((text, (frames, eraser)))
        })
        .flat_map(|text| {
            stream::iter([
                Ok(TranscriptEvent::SpeechStarted),
                Ok(TranscriptEvent::Final { text }),
                Ok(TranscriptEvent::EndOfTurn),
            ])
        });
        Ok(SttSession {
            audio,
            events: Box::pin(events),
        })
    }
}

/// Replies with the caller's last line.
pub struct LoopbackDialogue;

impl Dialogue for LoopbackDialogue {
    fn name(&self) -> &'static str {
        NAME
    }

    fn open(&self, _: &CallContext) -> Result<Box<dyn DialogueSession>, EngineError> {
        Ok(Box::new(LoopbackDialogue))
    }
}

impl DialogueSession for LoopbackDialogue {
    fn reply(&mut self, conversation: &[ChatMessage]) -> EngineStream<String> {
        let heard = last_caller_line(conversation).to_owned();
        Box::pin(stream::once(async move { Ok(heard) }))
    }
}

/// "Synthesizes" a text naming turns on the tape into their audio.
pub struct LoopbackTts {
    tape: LoopbackTape,
}

impl LoopbackTts {
    /// A voice playing the turns recorded on `tape`.
    pub fn new(tape: LoopbackTape) -> Self {
        Self { tape }
    }
}

impl TextToSpeech for LoopbackTts {
    fn name(&self) -> &'static str {
        NAME
    }

    fn open(&self, call: &CallContext) -> Result<Box<dyn TtsSession>, EngineError> {
        Ok(Box::new(LoopbackVoice {
            tape: self.tape.clone(),
            call: call.call_sid.clone(),
        }))
    }
}

/// One call's loopback voice.
struct LoopbackVoice {
    tape: LoopbackTape,
    call: CallSid,
}

impl TtsSession for LoopbackVoice {
    fn synthesize(&mut self, _: UtteranceId, text: &str) -> EngineStream<Synthesized> {
        let audio = self
            .tape
            .play(&self.call, text)
            .map(Synthesized::Audio)
            .ok_or_else(|| EngineError::Protocol {
                engine: NAME,
                message: "text names no unplayed loopback turn".into(),
            });
        Box::pin(stream::once(async move { audio }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(n: u8) -> CallSid {
        CallSid::parse(&format!("CA{:032x}", n)).unwrap()
    }

    #[test]
    fn a_turn_plays_once_on_its_own_call() {
        let tape = LoopbackTape::default();
        let first = tape.record(&call(1), vec![1, 2]);
        let other = tape.record(&call(2), vec![9]);
        assert_eq!(first, "loopback-0");
        assert_eq!(other, "loopback-0");
        assert_eq!(tape.play(&call(1), &first), Some(vec![1, 2]));
        assert_eq!(tape.play(&call(1), &first), None);
        assert_eq!(tape.play(&call(2), &other), Some(vec![9]));
    }

    #[test]
    fn a_merged_turn_plays_its_turns_in_order_and_skipped_turns_go() {
        let tape = LoopbackTape::default();
        let texts: Vec<String> = (0..4).map(|n| tape.record(&call(1), vec![n])).collect();
        let merged = format!("{} {}", texts[1], texts[2]);
        assert_eq!(tape.play(&call(1), &merged), Some(vec![1, 2]));
        assert_eq!(tape.play(&call(1), &texts[0]), None, "skipped, so gone");
        assert_eq!(tape.play(&call(1), &texts[3]), Some(vec![3]));
    }

    #[test]
    fn a_burst_of_five_seconds_of_one_frame_turns_all_play_in_order() {
        let tape = LoopbackTape::default();
        let texts: Vec<String> = (0..250u32)
            .map(|n| tape.record(&call(1), n.to_be_bytes().repeat(40)))
            .collect();
        for (n, text) in (0..250u32).zip(&texts) {
            assert_eq!(tape.play(&call(1), text), Some(n.to_be_bytes().repeat(40)));
        }
    }

    #[test]
    fn texts_that_name_no_turn_are_refused_and_the_tape_is_bounded() {
        let tape = LoopbackTape::default();
        let second = vec![0; 8_000];
        let texts: Vec<String> = (0..=MAX_UNPLAYED_BYTES / second.len())
            .map(|_| tape.record(&call(1), second.clone()))
            .collect();
        assert_eq!(tape.play(&call(1), &texts[0]), None, "the oldest went");
        for text in ["123", "loopback-x", "loopback-99", ""] {
            assert_eq!(tape.play(&call(1), text), None, "{text:?}");
        }
        tape.erase(&call(1));
        assert_eq!(tape.play(&call(1), &texts[1]), None);
    }
}
