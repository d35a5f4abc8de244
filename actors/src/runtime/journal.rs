//! The journal port: where each call's story goes as it happens, so the server can keep a durable
//! record of it and stream it to subscribers.
//!
//! The CallActor records, in order: the start, every transcript turn once it is final (the
//! caller's when it is handed to the Responder, the agent's once it has been heard or cut short),
//! barge-ins, each turn's latencies, what the dialogue extracted, and the end. Recording must not
//! block the call: implementations queue the event and do their I/O elsewhere.

use std::time::Duration;

use super::latency::Stage;
use super::metrics::BargeInOutcome;
use crate::engines::{CallContext, Extraction};
use crate::events::EndReason;

/// Who spoke a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Speaker {
    /// The person on the phone.
    Caller,
    /// The voice agent.
    Agent,
}

impl Speaker {
    /// `caller` or `agent`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Caller => "caller",
            Self::Agent => "agent",
        }
    }

    /// The speaker a name names, if it is one.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Caller, Self::Agent]
            .into_iter()
            .find(|speaker| speaker.as_str() == name)
    }
}

/// One final turn of the transcript; times are offsets from the start of the media stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscriptTurn {
    /// Who spoke.
    pub speaker: Speaker,
    /// What was said: the caller's recognised words, or everything the agent sent to be played.
    pub text: String,
    /// When the turn began (the caller's speech, or the agent's audio starting to play).
    pub started: Duration,
    /// When it ended.
    pub ended: Duration,
    /// The caller cut the agent short.
    pub interrupted: bool,
    /// What the caller heard of an interrupted agent turn.
    pub heard: Option<String>,
}

/// Something that happened on a call, for its record.
#[derive(Debug, Clone, PartialEq)]
pub enum CallEvent {
    /// The media stream started: the call is live.
    Started,
    /// A turn of the transcript is final.
    Turn(TranscriptTurn),
    /// Caller speech over the agent, by stage.
    BargeIn(BargeInOutcome),
    /// A turn's answer, timed from the end of the caller's speech, stage by stage.
    Latency(Vec<(Stage, Duration)>),
    /// What the dialogue has extracted so far.
    Extraction(Extraction),
    /// The call ended.
    Ended(EndReason),
}

/// Receives every call's events; the server's implementation stores them and fans them out.
pub trait CallJournal: Send + Sync + 'static {
    /// Records `event` of `call` without blocking.
    fn record(&self, call: &CallContext, event: CallEvent);
}
