//! The engine traits (ports) the call's actors depend on. Implementations live in the server crate.
//!
//! Each engine is a shared factory (`Arc<dyn …>`, loaded once per process) that opens one session per
//! call. Sessions stream: audio frames in and transcript events out for [`SpeechToText`], reply text
//! out for [`Dialogue`], audio out for [`TextToSpeech`]. Dropping a returned stream cancels the work
//! behind it; that is how barge-in stops an LLM or a synthesizer mid-sentence.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use tokio::sync::mpsc;

use crate::audio::AudioFrame;
use crate::ids::{CallSid, StreamSid, UtteranceId};

/// A boxed stream of engine output, `Send` so engines may produce it on any thread.
pub type EngineStream<T> = Pin<Box<dyn Stream<Item = Result<T, EngineError>> + Send>>;

/// Why an engine failed. The call's actor restarts the session (with backoff) or degrades the call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// The engine could not be reached or its connection dropped.
    #[error("{engine}: connection failed: {message}")]
    Connection {
        /// Engine name, e.g. `deepgram`.
        engine: &'static str,
        /// What happened, without secrets.
        message: String,
    },
    /// The engine answered with something we cannot use.
    #[error("{engine}: bad response: {message}")]
    Protocol {
        /// Engine name.
        engine: &'static str,
        /// What was wrong, without secrets.
        message: String,
    },
    /// The engine could not be set up (missing model, bad configuration).
    #[error("{engine}: unavailable: {message}")]
    Unavailable {
        /// Engine name.
        engine: &'static str,
        /// What is missing and how to fix it.
        message: String,
    },
}

/// What every engine session is told about its call.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// The call.
    pub call_sid: CallSid,
    /// The call's media stream.
    pub stream_sid: StreamSid,
    /// `<Parameter>`s of the TwiML other than our stream token.
    pub custom_parameters: BTreeMap<String, String>,
}

/// What a transcriber hears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TranscriptEvent {
    /// The caller started speaking (before any words are known).
    SpeechStarted,
    /// A hypothesis for the words so far; may change.
    Partial {
        /// Text of the hypothesis.
        text: String,
    },
    /// Settled words; will not change.
    Final {
        /// The settled text.
        text: String,
    },
    /// The caller has probably finished: `text` is the whole turn so far (with any finals of it
    /// already sent), recognised, but the end of the turn is not decided yet. A reply may be
    /// prepared, to be played only if [`TranscriptEvent::EndOfTurn`] confirms these words; a
    /// [`TranscriptEvent::SpeechStarted`] or a partial after it means the caller went on.
    ProbableEnd {
        /// Everything the caller said in this turn, as recognised so far.
        text: String,
    },
    /// The engine thinks the caller finished their turn.
    EndOfTurn,
}

/// One streaming recognition session: push audio, read events.
pub struct SttSession {
    /// Caller audio in. Bounded: when the engine falls behind, the Transcriber drops frames and
    /// counts them rather than delay the call.
    pub audio: mpsc::Sender<AudioFrame>,
    /// Transcript events out; ends when the session ends. An `Err` item means the session failed.
    pub events: EngineStream<TranscriptEvent>,
}

/// Streaming speech recognition.
pub trait SpeechToText: Send + Sync + 'static {
    /// Short name for logs, e.g. `deepgram`.
    fn name(&self) -> &'static str;
    /// Opens a session for one call. Connection work may continue in the background; its failure
    /// arrives as an `Err` on the event stream.
    fn open(&self, call: &CallContext) -> Result<SttSession, EngineError>;
}

/// Who said a line of the conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The caller.
    User,
    /// The agent.
    Assistant,
}

/// One line of the conversation so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// Who said it.
    pub role: Role,
    /// What was said (for the agent: what was actually played).
    pub text: String,
}

/// What the caller said last in `conversation` (empty if nothing yet).
pub fn last_caller_line(conversation: &[ChatMessage]) -> &str {
    conversation
        .iter()
        .rev()
        .find(|line| line.role == Role::User)
        .map_or("", |line| line.text.as_str())
}

/// What the agent does besides speaking, once its reply has been heard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogueAction {
    /// Hang up after the reply has played (its last mark echoed), not on a timer.
    EndCall,
    /// Transfer the caller to a person after the reply has played, through [`CallControl`]; when
    /// none is configured, the agent says it cannot.
    TransferCall,
}

/// Control of the phone call itself, outside the media stream (Twilio's REST API).
pub trait CallControl: Send + Sync + 'static {
    /// Transfers the live call to the operator's configured destination. Once it succeeds, the
    /// carrier ends the media stream. The future runs on the call's own arbiter, so it need not
    /// be `Send` (HTTP clients such as awc are not).
    fn transfer(
        &self,
        call: &CallSid,
    ) -> Pin<Box<dyn std::future::Future<Output = Result<(), EngineError>>>>;
}

/// The structured details a call yields, as the dialogue understood them so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Extraction {
    /// The caller's name, as given.
    pub name: Option<String>,
    /// The caller's phone number, digits only, as confirmed.
    pub phone: Option<String>,
    /// The intent that shaped the call (the last one acted on).
    pub intent: Option<String>,
    /// What happens next (`callback_to_confirm_appointment`, `transfer_to_person`,
    /// `do_not_contact`, …).
    pub next_step: Option<String>,
    /// Whether the caller agreed to be contacted again.
    pub consent_to_follow_up: Option<bool>,
}

/// One call's dialogue state (an LLM conversation, a scripted flow's slots).
pub trait DialogueSession: Send {
    /// What the agent says as the call connects, before the caller speaks; `None` waits for the
    /// caller. Asked once per call.
    fn greeting(&mut self) -> Option<String> {
        None
    }

    /// Streams the reply to the conversation so far, whose last line is the caller's. Text arrives in
    /// fragments of any size; dropping the stream cancels the reply.
    fn reply(&mut self, conversation: &[ChatMessage]) -> EngineStream<String>;

    /// The action the reply just streamed asked for, if any (asked once, after the reply ends).
    fn take_action(&mut self) -> Option<DialogueAction> {
        None
    }

    /// What the call has yielded so far (asked after each reply); `None`: this dialogue extracts
    /// nothing.
    fn extraction(&self) -> Option<Extraction> {
        None
    }

    /// A copy of this session that may reply to a turn the caller has probably, not surely,
    /// finished: it replaces this one if the turn is confirmed and is dropped, with everything it
    /// changed, if not. `None` (the default): this dialogue does not reply speculatively.
    fn fork(&self) -> Option<Box<dyn DialogueSession>> {
        None
    }
}

/// Decides what the agent says.
pub trait Dialogue: Send + Sync + 'static {
    /// Short name for logs.
    fn name(&self) -> &'static str;
    /// Opens the dialogue of one call.
    fn open(&self, call: &CallContext) -> Result<Box<dyn DialogueSession>, EngineError>;
}

/// What the synthesis of a clause yields, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Synthesized {
    /// 8 kHz mu-law audio, in a chunk of any length.
    Audio(Vec<u8>),
    /// Where the clause's next words end, measured from the start of the clause's audio: one
    /// entry per word, in order, continuing the words given before. Engines that know (a provider's
    /// word timestamps) say so, and what the caller heard of the clause is then counted in words
    /// played; without them it is estimated from the share of the clause's audio played.
    WordEnds(Vec<Duration>),
}

/// One call's synthesis session (a voice, a provider connection).
pub trait TtsSession: Send {
    /// Streams the audio of one clause of `utterance` (and, if the engine knows them, its word
    /// timings). Dropping the stream cancels synthesis.
    fn synthesize(&mut self, utterance: UtteranceId, text: &str) -> EngineStream<Synthesized>;

    /// `utterance`'s last clause has been synthesized: a session that streams an utterance across
    /// clauses (one provider context) may close it. Nothing by default.
    fn finish(&mut self, _utterance: UtteranceId) {}
}

/// Speech synthesis.
pub trait TextToSpeech: Send + Sync + 'static {
    /// Short name for logs.
    fn name(&self) -> &'static str;
    /// Opens the synthesis session of one call.
    fn open(&self, call: &CallContext) -> Result<Box<dyn TtsSession>, EngineError>;
}

/// The three engines a call uses, shared by every call.
#[derive(Clone)]
pub struct EngineSet {
    /// Speech recognition.
    pub stt: Arc<dyn SpeechToText>,
    /// What to say.
    pub dialogue: Arc<dyn Dialogue>,
    /// Speech synthesis.
    pub tts: Arc<dyn TextToSpeech>,
}

impl std::fmt::Debug for EngineSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineSet")
            .field("stt", &self.stt.name())
            .field("dialogue", &self.dialogue.name())
            .field("tts", &self.tts.name())
            .finish()
    }
}
