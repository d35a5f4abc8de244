//! Twilio Media Streams wire format: the JSON text frames of a bidirectional stream.
//!
//! Mirrors Twilio's documentation field by field (see `shared/PROTOCOLS.md`): inbound `connected`,
//! `start`, `media`, `mark`, `dtmf`, `stop`; outbound `media`, `mark`, `clear`. Numeric-looking
//! fields arrive as strings. Parsing turns a frame into an [`Inbound`] value or a [`ProtocolError`];
//! nothing here touches a socket.

use std::borrow::Cow;
use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::ProtocolError;
use crate::ids::{MarkName, StreamSid};

/// One message from Twilio, parsed and checked for shape.
#[derive(Debug, PartialEq)]
pub enum Inbound {
    /// The socket is up; first message of every stream.
    Connected,
    /// The stream's metadata; audio follows.
    Start(StartMessage),
    /// Caller audio.
    Media {
        /// `streamSid` the message names.
        stream_sid: Option<String>,
        /// Raw mu-law bytes, any length (160 in practice).
        payload: Vec<u8>,
        /// `media.timestamp`: the audio's time since the stream began, ms (Twilio sends it as a
        /// string); `None` when absent or not a number.
        timestamp_ms: Option<u64>,
    },
    /// Echo of a mark we sent: the audio queued before it has played (or was cleared).
    Mark {
        /// The mark's name as we sent it.
        name: String,
    },
    /// The caller pressed a key.
    Dtmf {
        /// `0`–`9`, `*` or `#`.
        digit: String,
    },
    /// The stream has ended (the call hung up or the stream was stopped).
    Stop,
}

/// The `start` message: who is calling and how the audio is encoded.
#[derive(Debug, Clone, PartialEq)]
pub struct StartMessage {
    /// Identifier of this stream; every message we send names it.
    pub stream_sid: StreamSid,
    /// The call's `CallSid`, unchecked (admission validates it).
    pub call_sid: String,
    /// The Twilio account.
    pub account_sid: String,
    /// `<Parameter>`s of the TwiML, e.g. our stream token.
    pub custom_parameters: BTreeMap<String, String>,
}

/// Encoding Twilio must announce in `start.mediaFormat`; anything else is refused.
const EXPECTED_ENCODING: &str = "audio/x-mulaw";

#[derive(Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
enum RawInbound<'a> {
    Connected {},
    Start {
        start: RawStart,
    },
    Media {
        #[serde(rename = "streamSid", default, borrow)]
        stream_sid: Option<Cow<'a, str>>,
        #[serde(borrow)]
        media: RawMedia<'a>,
    },
    Mark {
        mark: RawMark,
    },
    Dtmf {
        dtmf: RawDtmf,
    },
    Stop {},
    #[serde(other)]
    Unknown,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawStart {
    stream_sid: String,
    call_sid: String,
    #[serde(default)]
    account_sid: String,
    #[serde(default)]
    custom_parameters: BTreeMap<String, String>,
    media_format: RawMediaFormat,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMediaFormat {
    encoding: String,
    sample_rate: u32,
    channels: u32,
}

#[derive(Deserialize)]
struct RawMedia<'a> {
    #[serde(borrow)]
    payload: Cow<'a, str>,
    #[serde(borrow, default)]
    timestamp: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct RawMark {
    name: String,
}

#[derive(Deserialize)]
struct RawDtmf {
    digit: String,
}

#[derive(Deserialize)]
struct EventName<'a> {
    #[serde(borrow)]
    event: Cow<'a, str>,
}

/// Parses one text frame from Twilio.
pub fn parse_inbound(text: &str) -> Result<Inbound, ProtocolError> {
    let raw: RawInbound<'_> = serde_json::from_str(text).map_err(|error| classify(text, error))?;
    Ok(match raw {
        RawInbound::Connected {} => Inbound::Connected,
        RawInbound::Start { start } => {
            let format = &start.media_format;
            if format.encoding != EXPECTED_ENCODING
                || format.sample_rate != 8_000
                || format.channels != 1
            {
                return Err(ProtocolError::UnsupportedFormat);
            }
            Inbound::Start(StartMessage {
                stream_sid: StreamSid::new(start.stream_sid),
                call_sid: start.call_sid,
                account_sid: start.account_sid,
                custom_parameters: start.custom_parameters,
            })
        }
        RawInbound::Media { stream_sid, media } => Inbound::Media {
            stream_sid: stream_sid.map(Cow::into_owned),
            payload: BASE64
                .decode(media.payload.as_bytes())
                .map_err(|_| ProtocolError::InvalidPayload)?,
            timestamp_ms: media.timestamp.and_then(|t| t.parse().ok()),
        },
        RawInbound::Mark { mark } => Inbound::Mark { name: mark.name },
        RawInbound::Dtmf { dtmf } => Inbound::Dtmf { digit: dtmf.digit },
        RawInbound::Stop {} => Inbound::Stop,
        RawInbound::Unknown => {
            let name = serde_json::from_str::<EventName<'_>>(text)
                .map(|e| e.event.into_owned())
                .unwrap_or_default();
            return Err(ProtocolError::UnknownEvent(name));
        }
    })
}

/// Tells invalid JSON apart from well-formed JSON of the wrong shape.
fn classify(text: &str, error: serde_json::Error) -> ProtocolError {
    if error.is_syntax() || error.is_eof() {
        return ProtocolError::InvalidJson(error);
    }
    let event = serde_json::from_str::<EventName<'_>>(text)
        .map(|e| e.event.into_owned())
        .unwrap_or_default();
    ProtocolError::Malformed {
        event,
        source: error,
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OutboundMedia<'a> {
    event: &'static str,
    stream_sid: &'a str,
    media: PayloadField<'a>,
}

#[derive(Serialize)]
struct PayloadField<'a> {
    payload: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OutboundMark<'a> {
    event: &'static str,
    stream_sid: &'a str,
    mark: NameField<'a>,
}

#[derive(Serialize)]
struct NameField<'a> {
    name: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OutboundClear<'a> {
    event: &'static str,
    stream_sid: &'a str,
}

/// `{"event":"media","streamSid":…,"media":{"payload":base64}}`: audio for Twilio to play.
pub fn media_message(stream_sid: &StreamSid, mulaw: &[u8]) -> String {
    let payload = BASE64.encode(mulaw);
    to_json(&OutboundMedia {
        event: "media",
        stream_sid: stream_sid.as_str(),
        media: PayloadField { payload: &payload },
    })
}

/// `{"event":"mark",…}`: Twilio echoes it once the audio sent before it has played.
pub fn mark_message(stream_sid: &StreamSid, mark: MarkName) -> String {
    let name = mark.to_string();
    to_json(&OutboundMark {
        event: "mark",
        stream_sid: stream_sid.as_str(),
        mark: NameField { name: &name },
    })
}

/// `{"event":"clear",…}`: Twilio drops its buffered audio and echoes every pending mark.
pub fn clear_message(stream_sid: &StreamSid) -> String {
    to_json(&OutboundClear {
        event: "clear",
        stream_sid: stream_sid.as_str(),
    })
}

fn to_json(value: &impl Serialize) -> String {
    // Serialising plain structs of strings to a String cannot fail.
    serde_json::to_string(value).expect("outbound Twilio messages serialise")
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: &str = r#"{"event":"start","sequenceNumber":"1","start":{"accountSid":"AC1","streamSid":"MZ1","callSid":"CA1","tracks":["inbound"],"customParameters":{"token":"t0k"},"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}},"streamSid":"MZ1"}"#;

    #[test]
    fn parses_start_with_parameters() {
        let Inbound::Start(start) = parse_inbound(START).unwrap() else {
            panic!("not a start")
        };
        assert_eq!(start.stream_sid.as_str(), "MZ1");
        assert_eq!(start.call_sid, "CA1");
        assert_eq!(
            start.custom_parameters.get("token").map(String::as_str),
            Some("t0k")
        );
    }

    #[test]
    fn parses_media_with_string_numbers() {
        let text = r#"{"event":"media","sequenceNumber":"3","media":{"track":"inbound","chunk":"2","timestamp":"20","payload":"/w=="},"streamSid":"MZ1"}"#;
        assert_eq!(
            parse_inbound(text).unwrap(),
            Inbound::Media {
                stream_sid: Some("MZ1".into()),
                payload: vec![0xFF],
                timestamp_ms: Some(20),
            }
        );
    }

    #[test]
    fn escaped_payload_still_parses() {
        let text = r#"{"event":"media","media":{"payload":"\/w=="}}"#;
        assert!(matches!(parse_inbound(text), Ok(Inbound::Media { .. })));
    }

    #[test]
    fn other_messages() {
        assert_eq!(
            parse_inbound(r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#).unwrap(),
            Inbound::Connected
        );
        assert_eq!(
            parse_inbound(r#"{"event":"mark","streamSid":"MZ1","mark":{"name":"u1c0"}}"#).unwrap(),
            Inbound::Mark {
                name: "u1c0".into()
            }
        );
        assert_eq!(
            parse_inbound(r#"{"event":"dtmf","dtmf":{"track":"inbound_track","digit":"5"}}"#)
                .unwrap(),
            Inbound::Dtmf { digit: "5".into() }
        );
        assert_eq!(
            parse_inbound(r#"{"event":"stop","stop":{"accountSid":"AC1","callSid":"CA1"}}"#)
                .unwrap(),
            Inbound::Stop
        );
    }

    #[test]
    fn bad_input_is_classified() {
        assert!(matches!(
            parse_inbound("{not json"),
            Err(ProtocolError::InvalidJson(_))
        ));
        assert!(matches!(
            parse_inbound(r#"{"event":"dance"}"#),
            Err(ProtocolError::UnknownEvent(name)) if name == "dance"
        ));
        assert!(matches!(
            parse_inbound(r#"{"event":"media","media":{}}"#),
            Err(ProtocolError::Malformed { event, .. }) if event == "media"
        ));
        assert!(matches!(
            parse_inbound(r#"{"event":"media","media":{"payload":"***"}}"#),
            Err(ProtocolError::InvalidPayload)
        ));
        assert!(matches!(
            parse_inbound(r#"{"no":"event"}"#),
            Err(ProtocolError::Malformed { .. })
        ));
        let pcm = START.replace("audio/x-mulaw", "audio/l16");
        assert!(matches!(
            parse_inbound(&pcm),
            Err(ProtocolError::UnsupportedFormat)
        ));
    }

    #[test]
    fn outbound_messages_match_twilio() {
        let sid = StreamSid::new("MZ1");
        assert_eq!(
            media_message(&sid, &[0xFF, 0xFF]),
            r#"{"event":"media","streamSid":"MZ1","media":{"payload":"//8="}}"#
        );
        let mark = MarkName::parse("u1c2").unwrap();
        assert_eq!(
            mark_message(&sid, mark),
            r#"{"event":"mark","streamSid":"MZ1","mark":{"name":"u1c2"}}"#
        );
        assert_eq!(
            clear_message(&sid),
            r#"{"event":"clear","streamSid":"MZ1"}"#
        );
    }
}
