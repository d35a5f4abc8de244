//! The client side of Server-Sent Events, as the OpenAI-compatible APIs stream completions: bytes
//! in, in pieces of any size; each event's `data` out once its blank line arrives. Lines end in
//! `\n`, `\r\n` or `\r`; comment lines (`:`) and other fields (`event`, `id`, `retry`) are skipped;
//! several `data` lines of one event are joined with `\n`.

/// Longest line kept: a completion chunk is a few hundred bytes; a peer that never ends a line
/// must not grow our memory.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Why the stream cannot be read as events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// A line longer than [`MAX_LINE_BYTES`].
    #[error("an event stream line longer than {MAX_LINE_BYTES} bytes")]
    LineTooLong,
    /// A line that is not UTF-8.
    #[error("an event stream line that is not UTF-8")]
    NotUtf8,
}

/// Splits a byte stream into events' data.
#[derive(Debug, Default)]
pub struct SseDecoder {
    line: Vec<u8>,
    /// The previous byte was a `\r`: a `\n` right after it ends nothing more.
    after_cr: bool,
    data: Option<String>,
}

impl SseDecoder {
    /// Feeds `bytes`; returns the data of every event they complete, in order.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<String>, SseError> {
        let mut events = Vec::new();
        for &byte in bytes {
            let after_cr = std::mem::replace(&mut self.after_cr, byte == b'\r');
            match byte {
                b'\n' if after_cr => {}
                b'\n' | b'\r' => {
                    let line = std::mem::take(&mut self.line);
                    let line = String::from_utf8(line).map_err(|_| SseError::NotUtf8)?;
                    if let Some(data) = self.line_done(&line) {
                        events.push(data);
                    }
                }
                _ if self.line.len() >= MAX_LINE_BYTES => return Err(SseError::LineTooLong),
                _ => self.line.push(byte),
            }
        }
        Ok(events)
    }

    /// Takes a complete line; a blank one ends the event.
    fn line_done(&mut self, line: &str) -> Option<String> {
        if line.is_empty() {
            return self.data.take();
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        if field == "data" {
            let value = value.strip_prefix(' ').unwrap_or(value);
            match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `stream` split at every possible point, and whole: the events must not change.
    fn events(stream: &str) -> Vec<String> {
        let mut whole = SseDecoder::default();
        let expected = whole.push(stream.as_bytes()).unwrap();
        for split in 0..stream.len() {
            let mut decoder = SseDecoder::default();
            let (a, b) = stream.as_bytes().split_at(split);
            let mut got = decoder.push(a).unwrap();
            got.extend(decoder.push(b).unwrap());
            assert_eq!(got, expected, "split at {split}");
        }
        expected
    }

    #[test]
    fn reads_data_events_split_anywhere() {
        let stream = ": keep-alive\n\ndata: {\"a\":1}\n\ndata: [DONE]\n\n";
        assert_eq!(events(stream), ["{\"a\":1}", "[DONE]"]);
    }

    #[test]
    fn handles_crlf_cr_multiline_data_and_other_fields() {
        let stream = "event: message\r\nid: 7\r\ndata: one\r\ndata:two\r\n\r\ndata: three\r\r";
        assert_eq!(events(stream), ["one\ntwo", "three"]);
    }

    #[test]
    fn an_event_without_its_blank_line_is_not_complete() {
        let mut decoder = SseDecoder::default();
        assert!(decoder.push(b"data: half").unwrap().is_empty());
        assert!(decoder.push(b"\n").unwrap().is_empty());
        assert_eq!(decoder.push(b"\n").unwrap(), ["half"]);
    }

    #[test]
    fn refuses_endless_lines_and_bad_utf8() {
        let mut decoder = SseDecoder::default();
        let long = vec![b'x'; MAX_LINE_BYTES + 1];
        assert_eq!(decoder.push(&long), Err(SseError::LineTooLong));
        let mut decoder = SseDecoder::default();
        assert_eq!(decoder.push(b"data: \xff\n"), Err(SseError::NotUtf8));
    }
}
