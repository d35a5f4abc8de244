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

/// Escapes text for an XML attribute value.
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
    fn attribute_values_are_escaped() {
        assert!(connect_stream("h", "token", r#"a"<&"#).contains(r#"value="a&quot;&lt;&amp;""#));
    }
}
