//! Deepgram live speech-to-text as a streaming [`SpeechToText`]: one WebSocket per call session.
//!
//! ```text
//! Transcriber --AudioFrame--> session task --binary mu-law, KeepAlive, CloseStream--> Deepgram
//! Transcriber <--TranscriptEvent-- session task <--Results, SpeechStarted, UtteranceEnd-- Deepgram
//! ```
//!
//! [`DeepgramStt::open`] returns at once; the session task (on the call's arbiter: awc is not
//! `Send`) connects, then forwards the caller's 8 kHz mu-law unchanged, one binary message per
//! 20 ms frame, and turns Deepgram's messages into transcript events. A fault (no connection in
//! time, the upgrade refused, the stream closed or stalled mid-call, a message we cannot read)
//! ends the event stream with one `Err`, and the Transcriber reopens the session after its
//! backoff. Dropping the session sends `CloseStream` and closes the socket.
//!
//! - [`protocol`]: Deepgram's messages as written.
//! - [`turns`]: those messages as transcript events (sans-I/O).
//! - [`liveness`]: when a `KeepAlive` is due and when silence means a stall (sans-I/O).
//! - [`session`]: the socket task.

mod liveness;
pub mod protocol;
mod session;
mod turns;

use std::sync::Arc;
use std::time::Duration;

use phone_agent_actors::engines::{CallContext, EngineError, SpeechToText, SttSession};

use crate::redact::Secret;

/// The engine's name in logs and errors.
const NAME: &str = "deepgram";

/// How to reach Deepgram and how to listen.
#[derive(Debug, Clone)]
pub struct DeepgramSettings {
    /// The API key, sent as `Authorization: Token …` and nowhere else.
    pub api_key: Secret,
    /// Where Deepgram is: `wss://api.deepgram.com`, or a stand-in (`ws://127.0.0.1:PORT`).
    pub base_url: String,
    /// The model (`model=`).
    pub model: String,
    /// Silence that ends speech (`speech_final`), in milliseconds (`endpointing=`).
    pub endpointing_ms: u32,
    /// A gap after the last final word that ends an utterance, in milliseconds
    /// (`utterance_end_ms=`; Deepgram accepts 1000 and more).
    pub utterance_end_ms: u32,
    /// A `KeepAlive` goes out after this long without audio (Deepgram closes after ~10 s).
    pub keepalive_interval: Duration,
    /// The WebSocket upgrade must complete within this.
    pub connect_timeout: Duration,
    /// Audio unanswered for this long means the stream stalled: the session fails.
    pub stall_timeout: Duration,
}

impl DeepgramSettings {
    /// Deepgram's service with `api_key`: `nova-3`, 300 ms endpointing, utterance end after 1 s,
    /// a `KeepAlive` every 4 s without audio, 5 s to connect, a stall after 10 s unanswered.
    pub fn new(api_key: Secret) -> Self {
        Self {
            api_key,
            base_url: "wss://api.deepgram.com".into(),
            model: "nova-3".into(),
            endpointing_ms: 300,
            utterance_end_ms: 1000,
            keepalive_interval: Duration::from_secs(4),
            connect_timeout: Duration::from_secs(5),
            stall_timeout: Duration::from_secs(10),
        }
    }

    /// The live-streaming URL: Twilio's audio as it comes (8 kHz mono mu-law), interim results,
    /// endpointing, utterance ends and speech starts, smart formatting.
    fn listen_url(&self) -> String {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("encoding", "mulaw")
            .append_pair("sample_rate", "8000")
            .append_pair("channels", "1")
            .append_pair("model", &self.model)
            .append_pair("interim_results", "true")
            .append_pair("endpointing", &self.endpointing_ms.to_string())
            .append_pair("utterance_end_ms", &self.utterance_end_ms.to_string())
            .append_pair("vad_events", "true")
            .append_pair("smart_format", "true")
            .finish();
        let base = self.base_url.trim_end_matches('/');
        format!("{base}/v1/listen?{query}")
    }
}

/// Deepgram's live recogniser, shared by every call.
#[derive(Debug)]
pub struct DeepgramStt {
    settings: Arc<DeepgramSettings>,
}

impl DeepgramStt {
    /// A recogniser with `settings`.
    pub fn new(settings: DeepgramSettings) -> Self {
        Self {
            settings: Arc::new(settings),
        }
    }
}

impl SpeechToText for DeepgramStt {
    fn name(&self) -> &'static str {
        NAME
    }

    fn open(&self, call: &CallContext) -> Result<SttSession, EngineError> {
        session::open(&self.settings, call)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deepgram_url_asks_for_twilio_audio_and_every_turn_signal() {
        let mut settings = DeepgramSettings::new(Secret::new("k"));
        assert_eq!(
            settings.listen_url(),
            "wss://api.deepgram.com/v1/listen?encoding=mulaw&sample_rate=8000&channels=1\
             &model=nova-3&interim_results=true&endpointing=300&utterance_end_ms=1000\
             &vad_events=true&smart_format=true"
        );
        settings.base_url = "ws://127.0.0.1:9/".into();
        settings.model = "nova-3-medical".into();
        assert!(settings
            .listen_url()
            .starts_with("ws://127.0.0.1:9/v1/listen?encoding=mulaw&"));
        assert!(settings.listen_url().contains("&model=nova-3-medical&"));
    }

    #[test]
    fn deepgram_settings_never_print_the_key() {
        let settings = DeepgramSettings::new(Secret::new("dg-key-0123456789abcdef"));
        let printed = format!("{settings:?} {:?}", DeepgramStt::new(settings.clone()));
        assert!(!printed.contains("dg-key"), "{printed}");
        assert!(printed.contains("<redacted>"));
    }
}
