//! Deterministic engines for conversation tests (never shipped): the test directs what the
//! recogniser hears, the dialogue answers fixed lines and records what it was given, and the
//! synthesizer makes 200 ms of audio per word whose bytes name the utterance.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{stream, StreamExt};
use phone_agent_actors::audio::FRAME_BYTES;
use phone_agent_actors::engines::{
    CallContext, ChatMessage, Dialogue, DialogueAction, DialogueSession, EngineError, EngineSet,
    EngineStream, SpeechToText, SttSession, Synthesized, TextToSpeech, TranscriptEvent, TtsSession,
};
use phone_agent_actors::ids::UtteranceId;
use tokio::sync::{mpsc, watch};

/// Frames of audio per word: 200 ms.
pub const FRAMES_PER_WORD: usize = 10;

/// The byte every frame of `utterance`'s audio is made of.
pub fn utterance_byte(utterance: u64) -> u8 {
    0x10 + utterance as u8
}

/// Which utterance a frame of agent audio belongs to.
pub fn utterance_of(frame: &[u8]) -> u64 {
    u64::from(frame[0] - 0x10)
}

type EventSender = mpsc::UnboundedSender<Result<TranscriptEvent, EngineError>>;

/// A recogniser whose events the test sends ([`DirectedStt::hear`]); caller audio is drained.
#[derive(Clone)]
pub struct DirectedStt {
    session: Arc<Mutex<Option<EventSender>>>,
    opened: Arc<watch::Sender<bool>>,
}

impl Default for DirectedStt {
    fn default() -> Self {
        Self {
            session: Arc::default(),
            opened: Arc::new(watch::channel(false).0),
        }
    }
}

impl DirectedStt {
    /// The recogniser reports `event` for the current call.
    pub fn hear(&self, event: TranscriptEvent) {
        let session = self.session.lock().unwrap();
        let sender = session.as_ref().expect("a recognition session is open");
        sender.send(Ok(event)).expect("session open");
    }

    /// Waits until the call's recognition session is open.
    pub async fn opened(&self) {
        // The sender lives in `self`: the channel cannot close while we wait.
        let _ = self.opened.subscribe().wait_for(|&open| open).await;
    }

    /// Speech start, the words as one final, end of turn.
    pub fn say(&self, words: &str) {
        self.hear(TranscriptEvent::SpeechStarted);
        self.hear(TranscriptEvent::Final { text: words.into() });
        self.hear(TranscriptEvent::EndOfTurn);
    }
}

impl SpeechToText for DirectedStt {
    fn name(&self) -> &'static str {
        "directed"
    }

    fn open(&self, _: &CallContext) -> Result<SttSession, EngineError> {
        let (events, heard) = mpsc::unbounded_channel();
        *self.session.lock().unwrap() = Some(events);
        self.opened.send_replace(true);
        let (audio, frames) = mpsc::channel(64);
        let drained = stream::unfold(frames, |mut frames| async move {
            frames.recv().await?;
            Some((None, frames))
        });
        let heard = stream::unfold(heard, |mut heard| async move {
            let event = heard.recv().await?;
            Some((Some(event), heard))
        });
        let events = stream::select(drained, heard).filter_map(|event| async move { event });
        Ok(SttSession {
            audio,
            events: Box::pin(events),
        })
    }
}

/// A dialogue that answers with fixed lines in turn (the last one repeats), after `delay`, and
/// records every conversation it was given.
#[derive(Clone)]
pub struct FixedDialogue {
    replies: Arc<Vec<(String, Option<DialogueAction>)>>,
    delay: Duration,
    seen: Arc<Mutex<Vec<Vec<ChatMessage>>>>,
    /// How many replies were asked for.
    asked: Arc<watch::Sender<usize>>,
    /// How many replies gave their text.
    answered: Arc<watch::Sender<usize>>,
}

impl FixedDialogue {
    /// Answers `replies` in turn, each after `delay`.
    pub fn new(replies: &[(&str, Option<DialogueAction>)], delay: Duration) -> Self {
        Self {
            replies: Arc::new(replies.iter().map(|(t, a)| ((*t).to_owned(), *a)).collect()),
            delay,
            seen: Arc::default(),
            asked: Arc::new(watch::channel(0).0),
            answered: Arc::new(watch::channel(0).0),
        }
    }

    /// The conversations given so far, one per reply asked for.
    pub fn seen(&self) -> Vec<Vec<ChatMessage>> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits until `count` replies have been asked for; returns the conversations given.
    pub async fn asked(&self, count: usize) -> Vec<Vec<ChatMessage>> {
        // The sender lives in `self`: the channel cannot close while we wait.
        let _ = self.asked.subscribe().wait_for(|&n| n >= count).await;
        self.seen()
    }

    /// Waits until `count` replies have given their text (to the Responder, which passes it on
    /// as it comes).
    pub async fn answered(&self, count: usize) {
        let _ = self.answered.subscribe().wait_for(|&n| n >= count).await;
    }
}

impl Dialogue for FixedDialogue {
    fn name(&self) -> &'static str {
        "fixed"
    }

    fn open(&self, _: &CallContext) -> Result<Box<dyn DialogueSession>, EngineError> {
        Ok(Box::new(FixedSession {
            dialogue: self.clone(),
            action: None,
        }))
    }
}

struct FixedSession {
    dialogue: FixedDialogue,
    action: Option<DialogueAction>,
}

impl DialogueSession for FixedSession {
    fn reply(&mut self, conversation: &[ChatMessage]) -> EngineStream<String> {
        let mut seen = self.dialogue.seen.lock().unwrap();
        let replies = &self.dialogue.replies;
        let (text, action) = replies[seen.len().min(replies.len() - 1)].clone();
        seen.push(conversation.to_vec());
        self.dialogue.asked.send_replace(seen.len());
        self.action = action;
        let delay = self.dialogue.delay;
        let answered = self.dialogue.answered.clone();
        Box::pin(stream::once(async move {
            actix_rt::time::sleep(delay).await;
            answered.send_modify(|n| *n += 1);
            Ok(text)
        }))
    }

    fn take_action(&mut self) -> Option<DialogueAction> {
        self.action.take()
    }

    fn fork(&self) -> Option<Box<dyn DialogueSession>> {
        Some(Box::new(FixedSession {
            dialogue: self.dialogue.clone(),
            action: self.action,
        }))
    }
}

/// 200 ms of audio per word, one chunk per word, every byte naming the utterance.
pub struct WordTts;

impl TextToSpeech for WordTts {
    fn name(&self) -> &'static str {
        "words"
    }

    fn open(&self, _: &CallContext) -> Result<Box<dyn TtsSession>, EngineError> {
        Ok(Box::new(WordTts))
    }
}

impl TtsSession for WordTts {
    fn synthesize(&mut self, utterance: UtteranceId, text: &str) -> EngineStream<Synthesized> {
        let byte = utterance_byte(utterance.0);
        let words = text.split_whitespace().count();
        let chunk = vec![byte; FRAMES_PER_WORD * FRAME_BYTES];
        Box::pin(stream::iter(
            (0..words).map(move |_| Ok(Synthesized::Audio(chunk.clone()))),
        ))
    }
}

/// The directed engines, with `dialogue`.
pub fn directed_set(stt: &DirectedStt, dialogue: &FixedDialogue) -> EngineSet {
    EngineSet {
        stt: Arc::new(stt.clone()),
        dialogue: Arc::new(dialogue.clone()),
        tts: Arc::new(WordTts),
    }
}
