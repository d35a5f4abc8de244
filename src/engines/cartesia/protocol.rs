//! Cartesia's TTS WebSocket messages: the generation, continuation, close and cancel requests we
//! send, and the `chunk`, `timestamps`, `flush_done`, `done` and `error` answers, each naming its
//! `context_id` (phoneme timestamps and anything newer are read and ignored).

use serde::{Deserialize, Serialize};

/// A generation request: a clause of an utterance (a context), or its end.
#[derive(Debug, Serialize)]
pub struct Generate<'a> {
    /// The model.
    pub model_id: &'a str,
    /// The clause's text; empty to close the context.
    pub transcript: &'a str,
    /// The voice.
    pub voice: Voice<'a>,
    /// The language.
    pub language: &'a str,
    /// The utterance.
    pub context_id: &'a str,
    /// More of the utterance follows (`false` closes it).
    #[serde(rename = "continue")]
    pub continues: bool,
    /// Generate everything received so far now, and say when with `flush_done`.
    pub flush: bool,
    /// Raw 8 kHz mu-law: Twilio's own format, no transcoding.
    pub output_format: OutputFormat,
    /// Word timestamps with the audio: what the caller heard of a clause cut short is counted in
    /// words whose end played.
    pub add_timestamps: bool,
}

/// A voice by id.
#[derive(Debug, Serialize)]
pub struct Voice<'a> {
    /// Always `id`.
    pub mode: &'static str,
    /// The voice's id.
    pub id: &'a str,
}

/// The audio format asked for.
#[derive(Debug, Serialize)]
pub struct OutputFormat {
    /// `raw`.
    pub container: &'static str,
    /// `pcm_mulaw`.
    pub encoding: &'static str,
    /// 8000.
    pub sample_rate: u32,
}

/// Twilio's format: raw mu-law at 8 kHz.
pub const TWILIO_FORMAT: OutputFormat = OutputFormat {
    container: "raw",
    encoding: "pcm_mulaw",
    sample_rate: 8000,
};

/// Stops an utterance's generation.
#[derive(Debug, Serialize)]
pub struct Cancel<'a> {
    /// The utterance.
    pub context_id: &'a str,
    /// Always `true`.
    pub cancel: bool,
}

/// An answer, by `type`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Answer {
    /// Audio.
    Chunk {
        /// The utterance.
        context_id: String,
        /// Base64 of the audio bytes.
        data: String,
    },
    /// When the context's words start and end.
    Timestamps {
        /// The utterance.
        context_id: String,
        /// The words' times.
        word_timestamps: WordTimestamps,
    },
    /// Everything sent before a flush has been generated.
    FlushDone {
        /// The utterance.
        context_id: String,
    },
    /// The utterance is complete.
    Done {
        /// The utterance.
        context_id: String,
    },
    /// The request failed.
    Error {
        /// The utterance, when the error is about one.
        context_id: Option<String>,
        /// A short title.
        title: Option<String>,
        /// Cartesia's code, e.g. `model_not_found`.
        error_code: Option<String>,
        /// The HTTP-like status.
        status_code: Option<u16>,
    },
    /// Phoneme timestamps, and anything newer: not used.
    #[serde(other)]
    Other,
}

/// Word timings: seconds of the context's audio, from its first audio on (a context's clauses
/// continue one timeline).
#[derive(Debug, Deserialize)]
pub struct WordTimestamps {
    /// Where each word ends (absent: no timings, the played share estimates what was heard).
    #[serde(default)]
    pub end: Vec<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_are_the_documented_shape() {
        let request = Generate {
            model_id: "sonic-3",
            transcript: "Hello, world!",
            voice: Voice {
                mode: "id",
                id: "a0e99841-438c-4a64-b679-ae501e7d6091",
            },
            language: "en",
            context_id: "CA1-u1",
            continues: true,
            flush: true,
            output_format: TWILIO_FORMAT,
            add_timestamps: true,
        };
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            json!({
                "model_id": "sonic-3", "transcript": "Hello, world!",
                "voice": {"mode": "id", "id": "a0e99841-438c-4a64-b679-ae501e7d6091"},
                "language": "en", "context_id": "CA1-u1", "continue": true, "flush": true,
                "output_format": {"container": "raw", "encoding": "pcm_mulaw", "sample_rate": 8000},
                "add_timestamps": true
            })
        );
        let cancel = Cancel {
            context_id: "CA1-u1",
            cancel: true,
        };
        assert_eq!(
            serde_json::to_value(&cancel).unwrap(),
            json!({"context_id": "CA1-u1", "cancel": true})
        );
    }

    #[test]
    fn reads_the_documented_answers() {
        let chunk = r#"{"type":"chunk","data":"aSDinaTvuI8gbWludGxpZnk=","done":false,"status_code":206,"step_time":123,"context_id":"c"}"#;
        assert!(matches!(
            serde_json::from_str(chunk).unwrap(),
            Answer::Chunk { .. }
        ));
        let words = r#"{"type":"timestamps","done":false,"status_code":206,"context_id":"c","word_timestamps":{"words":["Hello","world"],"start":[0,0.5],"end":[0.4,0.9]}}"#;
        let Answer::Timestamps {
            context_id,
            word_timestamps,
        } = serde_json::from_str(words).unwrap()
        else {
            panic!("word timestamps");
        };
        assert_eq!(
            (context_id.as_str(), word_timestamps.end),
            ("c", vec![0.4, 0.9])
        );
        let starts_only = r#"{"type":"timestamps","context_id":"c","word_timestamps":{"words":["Hi"],"start":[0]}}"#;
        let Answer::Timestamps {
            word_timestamps, ..
        } = serde_json::from_str(starts_only).unwrap()
        else {
            panic!("no ends: no timings, not a fault");
        };
        assert!(word_timestamps.end.is_empty());
        let error = r#"{"type":"error","done":true,"title":"Invalid model","message":"The model is not valid.","error_code":"model_not_found","status_code":400,"context_id":"c"}"#;
        assert!(matches!(
            serde_json::from_str(error).unwrap(),
            Answer::Error {
                status_code: Some(400),
                ..
            }
        ));
        let flush = r#"{"type":"flush_done","done":false,"flush_done":true,"flush_id":1,"status_code":206,"context_id":"c"}"#;
        assert!(matches!(
            serde_json::from_str(flush).unwrap(),
            Answer::FlushDone { .. }
        ));
        let phonemes = r#"{"type":"phoneme_timestamps","context_id":"c"}"#;
        assert!(matches!(
            serde_json::from_str(phonemes).unwrap(),
            Answer::Other
        ));
    }
}
