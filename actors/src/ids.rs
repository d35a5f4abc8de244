//! Newtypes for identifiers that must never be mixed up.

use std::fmt;

/// Twilio's identifier of a call (`CA` + 32 hex digits).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallSid(String);

impl CallSid {
    /// Accepts `CA` followed by 32 hexadecimal digits, as Twilio issues them.
    pub fn parse(value: &str) -> Option<Self> {
        let valid = value.len() == 34
            && value.starts_with("CA")
            && value[2..].bytes().all(|b| b.is_ascii_hexdigit());
        valid.then(|| Self(value.to_owned()))
    }

    /// The identifier as Twilio wrote it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CallSid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for CallSid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CallSid({})", self.0)
    }
}

/// Twilio's identifier of one media stream of a call (`MZ…`); every outbound message names it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct StreamSid(String);

impl StreamSid {
    /// Wraps the `streamSid` of a `start` message.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The identifier as Twilio wrote it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StreamSid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for StreamSid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StreamSid({})", self.0)
    }
}

/// One thing the agent says (a reply, a greeting); also the playback generation that barge-in
/// cancels. Allocated by the CallActor, increasing within a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UtteranceId(pub u64);

impl fmt::Display for UtteranceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "u{}", self.0)
    }
}

/// A playback mark: "chunk `chunk` of utterance `utterance` has played". Sent to Twilio after the
/// chunk's audio as the mark name `u{utterance}c{chunk}`, echoed back once it has played.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MarkName {
    /// The utterance the chunk belongs to.
    pub utterance: UtteranceId,
    /// The chunk's position in its utterance, from 0.
    pub chunk: u32,
}

impl MarkName {
    /// Reads a mark name we sent; `None` for names that are not ours.
    pub fn parse(name: &str) -> Option<Self> {
        let rest = name.strip_prefix('u')?;
        let (utterance, chunk) = rest.split_once('c')?;
        Some(Self {
            utterance: UtteranceId(utterance.parse().ok()?),
            chunk: chunk.parse().ok()?,
        })
    }
}

impl fmt::Display for MarkName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "u{}c{}", self.utterance.0, self.chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_sid_shape() {
        assert!(CallSid::parse("CA0123456789abcdef0123456789abcdef").is_some());
        assert!(CallSid::parse("CA0123").is_none());
        assert!(CallSid::parse("XX0123456789abcdef0123456789abcdef").is_none());
        assert!(CallSid::parse("CA0123456789abcdef0123456789abcdeg").is_none());
    }

    #[test]
    fn mark_names_round_trip() {
        let mark = MarkName {
            utterance: UtteranceId(12),
            chunk: 3,
        };
        assert_eq!(mark.to_string(), "u12c3");
        assert_eq!(MarkName::parse("u12c3"), Some(mark));
        assert_eq!(MarkName::parse("greeting"), None);
        assert_eq!(MarkName::parse("u1cx"), None);
    }
}
