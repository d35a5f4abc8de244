//! Deepgram's live-streaming wire format, as its
//! [API reference](https://developers.deepgram.com/reference/speech-to-text/listen-streaming)
//! writes it: the server's JSON messages by their `type`, and the control messages we send.
//!
//! Only what the adapter reads is typed: a `Results` message's first alternative's transcript and
//! its `is_final`/`speech_final` flags. Everything else in a message (timings, words, metadata) is
//! left unread, so a field Deepgram adds never breaks a call.

use serde::Deserialize;
use serde_json::Value;

/// Keeps the stream open while no audio flows (Deepgram closes an idle stream after ~10 s).
pub const KEEP_ALIVE: &str = r#"{"type":"KeepAlive"}"#;

/// Asks Deepgram to finish the stream: it flushes its last results and closes.
pub const CLOSE_STREAM: &str = r#"{"type":"CloseStream"}"#;

/// A message from Deepgram, by its `type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerMessage {
    /// A transcript of the audio so far: interim, final, or final and the end of speech.
    Results(Results),
    /// Speech began (`vad_events=true`), before any words are known.
    SpeechStarted,
    /// A gap of `utterance_end_ms` after the last final word.
    UtteranceEnd,
    /// What the request was (model, request id); sent as the stream closes.
    Metadata,
    /// A type this adapter does not know (named for the log).
    Other(String),
}

/// A `Results` message, the parts of it we use.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Results {
    /// Whether the transcript of this stretch of audio is settled (it will not be revised).
    pub is_final: bool,
    /// Whether Deepgram's endpointing heard the speaker stop after it (implies `is_final`).
    /// Deepgram's SDKs treat it as optional: absent means `false`.
    #[serde(default)]
    pub speech_final: bool,
    /// The channel's alternatives, best first.
    pub channel: Channel,
}

impl Results {
    /// The best alternative's transcript, trimmed (empty when Deepgram heard no words).
    pub fn transcript(&self) -> &str {
        self.channel.alternatives[0].transcript.trim()
    }
}

/// The `channel` of a `Results` message.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Channel {
    /// Transcripts, best first; never empty once parsed.
    pub alternatives: Vec<Alternative>,
}

/// One alternative transcript.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Alternative {
    /// Its text, smart-formatted.
    pub transcript: String,
}

/// Why a server message could not be read. The wording is fixed: it never repeats the message,
/// whose transcript is what the caller said.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MalformedMessage {
    /// The text is not JSON.
    #[error("a message that is not JSON")]
    NotJson,
    /// The JSON has no string `type`.
    #[error("a message without a type")]
    NoType,
    /// A known type without the fields it always has.
    #[error("a {0} message without its fields")]
    MissingFields(&'static str),
}

/// Reads one text message from Deepgram.
pub fn parse(text: &[u8]) -> Result<ServerMessage, MalformedMessage> {
    let value: Value = serde_json::from_slice(text).map_err(|_| MalformedMessage::NotJson)?;
    let kind = value
        .get("type")
        .and_then(Value::as_str)
        .ok_or(MalformedMessage::NoType)?;
    match kind {
        "Results" => {
            let results = Results::deserialize(&value)
                .ok()
                .filter(|results| !results.channel.alternatives.is_empty())
                .ok_or(MalformedMessage::MissingFields("Results"))?;
            Ok(ServerMessage::Results(results))
        }
        "SpeechStarted" => Ok(ServerMessage::SpeechStarted),
        "UtteranceEnd" => Ok(ServerMessage::UtteranceEnd),
        "Metadata" => Ok(ServerMessage::Metadata),
        other => Ok(ServerMessage::Other(other.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Results` message as Deepgram's reference documents it.
    const RESULTS: &str = r#"{
        "type": "Results",
        "channel_index": [0, 1],
        "duration": 1.98,
        "start": 5.99,
        "is_final": true,
        "speech_final": true,
        "channel": {
            "alternatives": [{
                "transcript": " Book a cleaning. ",
                "confidence": 0.98,
                "words": [{"word": "book", "start": 6.1, "end": 6.3, "confidence": 0.99, "punctuated_word": "Book"}]
            }]
        },
        "metadata": {
            "request_id": "0f4c4a8e-2d3b-4f0e-9a59-6e5c1b7d9a10",
            "model_info": {"name": "general-nova-3", "version": "2024-12-20.0", "arch": "nova-3"},
            "model_uuid": "3b3aabe4-608a-46ac-9585-7960a25daf1a"
        },
        "from_finalize": false
    }"#;

    #[test]
    fn deepgram_results_are_read_for_their_transcript_and_flags() {
        let ServerMessage::Results(results) = parse(RESULTS.as_bytes()).unwrap() else {
            panic!("a Results message");
        };
        assert!(results.is_final && results.speech_final);
        assert_eq!(results.transcript(), "Book a cleaning.");
    }

    #[test]
    fn deepgram_events_are_read_by_type_and_unknown_types_are_named() {
        let cases = [
            (
                r#"{"type":"SpeechStarted","channel":[0,1],"timestamp":9.54}"#,
                ServerMessage::SpeechStarted,
            ),
            (
                r#"{"type":"UtteranceEnd","channel":[0,1],"last_word_end":2.39}"#,
                ServerMessage::UtteranceEnd,
            ),
            (
                r#"{"type":"Metadata","request_id":"r","channels":1,"duration":3.2}"#,
                ServerMessage::Metadata,
            ),
            (
                r#"{"type":"Warning","description":"later"}"#,
                ServerMessage::Other("Warning".into()),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text.as_bytes()), Ok(expected), "{text}");
        }
    }

    #[test]
    fn a_deepgram_interim_without_speech_final_is_not_the_end_of_speech() {
        let text = r#"{"type":"Results","is_final":false,"channel":{"alternatives":[{"transcript":"book"}]}}"#;
        let ServerMessage::Results(results) = parse(text.as_bytes()).unwrap() else {
            panic!("a Results message");
        };
        assert!(!results.is_final && !results.speech_final);
    }

    #[test]
    fn malformed_deepgram_messages_are_named_without_their_content() {
        let cases = [
            ("secret words", MalformedMessage::NotJson),
            (r#"{"transcript":"secret words"}"#, MalformedMessage::NoType),
            (r#"{"type":7}"#, MalformedMessage::NoType),
            (
                r#"{"type":"Results","is_final":true}"#,
                MalformedMessage::MissingFields("Results"),
            ),
            (
                r#"{"type":"Results","is_final":true,"channel":{"alternatives":[]}}"#,
                MalformedMessage::MissingFields("Results"),
            ),
            (
                r#"{"type":"Results","channel":{"alternatives":[{"transcript":"secret words"}]}}"#,
                MalformedMessage::MissingFields("Results"),
            ),
        ];
        for (text, expected) in cases {
            let error = parse(text.as_bytes()).unwrap_err();
            assert_eq!(error, expected, "{text}");
            assert!(!error.to_string().contains("secret"));
        }
    }
}
