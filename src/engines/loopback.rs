//! The loopback engine set: the caller's audio goes through the whole actor path and comes back.
//!
//! Transcriber → Responder → Synthesizer exchange text, so the audio travels as text: the "STT"
//! hears speech start, writes each 20 ms frame as hex and ends the turn, the "dialogue" says back what it heard, and the
//! "TTS" turns the hex back into the same mu-law bytes. Every actor, message and engine seam of a real
//! call is crossed, with engines of near-zero cost: what tests and benchmarks measure is the framework.
//! Chosen only by configuration (`ENGINES=loopback`).

use futures_util::{stream, StreamExt};
use phone_agent_actors::audio::AudioFrame;
use phone_agent_actors::engines::{
    last_caller_line, CallContext, ChatMessage, Dialogue, DialogueSession, EngineError,
    EngineStream, SpeechToText, SttSession, Synthesized, TextToSpeech, TranscriptEvent, TtsSession,
};
use phone_agent_actors::ids::UtteranceId;
use tokio::sync::mpsc;

/// Frames the loopback recogniser buffers: 1.28 s; more means the call's thread is stalled.
const AUDIO_BUFFER_FRAMES: usize = 64;

const NAME: &str = "loopback";

/// "Recognises" each turn of `turn_frames` frames (one by default) as its hex text.
pub struct LoopbackStt {
    turn_frames: usize,
}

impl LoopbackStt {
    /// A turn every `turn_frames` frames (at least one): one makes every frame a turn (the whole
    /// actor path per frame); 100 makes the 2 s turns of a real conversation, audio streaming both
    /// ways between them (`LOOPBACK_TURN_FRAMES`).
    pub fn new(turn_frames: usize) -> Self {
        Self {
            turn_frames: turn_frames.max(1),
        }
    }
}

impl SpeechToText for LoopbackStt {
    fn name(&self) -> &'static str {
        NAME
    }

    fn open(&self, _: &CallContext) -> Result<SttSession, EngineError> {
        let (audio, frames) = mpsc::channel::<AudioFrame>(AUDIO_BUFFER_FRAMES);
        let turn_frames = self.turn_frames;
        let events = stream::unfold(frames, move |mut frames| async move {
            let mut turn = Vec::new();
            for _ in 0..turn_frames {
                turn.extend_from_slice(&frames.recv().await?.payload);
            }
            Some((turn, frames))
        })
        .flat_map(|turn| {
            stream::iter([
                Ok(TranscriptEvent::SpeechStarted),
                Ok(TranscriptEvent::Final {
                    text: to_hex(&turn),
                }),
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

/// "Synthesizes" hex text back into its bytes.
pub struct LoopbackTts;

impl TextToSpeech for LoopbackTts {
    fn name(&self) -> &'static str {
        NAME
    }

    fn open(&self, _: &CallContext) -> Result<Box<dyn TtsSession>, EngineError> {
        Ok(Box::new(LoopbackTts))
    }
}

impl TtsSession for LoopbackTts {
    fn synthesize(&mut self, _: UtteranceId, text: &str) -> EngineStream<Synthesized> {
        let audio = from_hex(text)
            .map(Synthesized::Audio)
            .ok_or_else(|| EngineError::Protocol {
                engine: NAME,
                message: "text is not hex audio".into(),
            });
        Box::pin(stream::once(async move { audio }))
    }
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 0x0F)] as char);
    }
    out
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.as_bytes()
        .chunks_exact(2)
        .map(|pair| {
            let high = char::from(pair[0]).to_digit(16)?;
            let low = char::from(pair[1]).to_digit(16)?;
            Some((high << 4 | low) as u8)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(from_hex(&to_hex(&bytes)), Some(bytes));
        assert_eq!(from_hex("abc"), None);
        assert_eq!(from_hex("zz"), None);
        assert_eq!(from_hex("+f"), None);
    }
}
