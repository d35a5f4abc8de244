//! TwiML documents.

/// `<Connect><Stream>` to our media endpoint, passing the stream token as a `<Parameter>`.
///
/// Twilio requires `wss://`, and the stream URL carries no query string (it can fail the
/// handshake); per-call data travels in `<Parameter>`s instead.
pub fn connect_stream(public_host: &str, token_parameter: &str, token: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url="wss://{}/twilio/media"><Parameter name="{}" value="{}"/></Stream></Connect></Response>"#,
        escape(public_host),
        escape(token_parameter),
        escape(token)
    )
}

/// The longest TwiML Twilio accepts in a `Twiml` parameter, in characters.
pub const MAX_TWIML_CHARS: usize = 4_000;

/// `<Response><Dial>number</Dial></Response>`: connects the caller to `number` (E.164), e.g. a
/// person taking over from the agent. A phone number keeps it far below [`MAX_TWIML_CHARS`].
pub fn dial(number: &str) -> String {
    format!("<Response><Dial>{}</Dial></Response>", escape(number))
}

/// What a caller hears when the server cannot take another call: a short apology, then the call
/// ends (no stream is opened).
pub fn busy() -> String {
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Say>Sorry, all our lines are busy. \
     Please call again in a few minutes.</Say><Hangup/></Response>"
        .to_owned()
}

/// Escapes text for an XML attribute value or element text.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_stream_document() {
        assert_eq!(
            connect_stream("agent.example.com", "token", "abc"),
            r#"<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url="wss://agent.example.com/twilio/media"><Parameter name="token" value="abc"/></Stream></Connect></Response>"#
        );
    }

    #[test]
    fn dial_document() {
        assert_eq!(
            dial("+14155550100"),
            "<Response><Dial>+14155550100</Dial></Response>"
        );
        assert_eq!(
            dial("<Hangup/>"),
            "<Response><Dial>&lt;Hangup/&gt;</Dial></Response>"
        );
    }

    #[test]
    fn attribute_values_are_escaped() {
        assert!(connect_stream("h", "token", r#"a"<&"#).contains(r#"value="a&quot;&lt;&amp;""#));
    }
}
