//! Reading TwiML as Twilio runs it: a `<Response>` of verbs, executed in order.
//!
//! Recognised: `<Connect><Stream url>` with its `<Parameter>`s (the bidirectional media stream),
//! `<Say>`, `<Play>`, `<Pause length>`, `<Hangup>`, `<Reject>`, `<Dial>` (a number as text or in
//! `<Number>`, `<Client>`, `<Sip>`), `<Redirect>`. Any other verb is kept as
//! [`Verb::Unsupported`] and skipped by the call. A document that is not well-formed XML, has
//! another root, or misses a required attribute is refused, as Twilio refuses it (error 12100).

use std::time::Duration;

use roxmltree::{Document, Node};

/// The longest `<Parameter>` name plus value Twilio passes on.
pub const PARAMETER_LIMIT: usize = 500;

/// One instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verb {
    /// `<Connect><Stream url>`: open the media WebSocket and stay until the server closes it.
    Stream {
        /// The `wss://` URL, as written.
        url: String,
        /// The `<Parameter>`s, in order (`start.customParameters`).
        parameters: Vec<(String, String)>,
    },
    /// `<Say>`: text spoken to the callee.
    Say(String),
    /// `<Play>`: an audio URL played to the callee.
    Play(String),
    /// `<Pause length>`: silence.
    Pause(Duration),
    /// `<Hangup>`: end the call.
    Hangup,
    /// `<Reject>`: end the call without answering it.
    Reject,
    /// `<Dial>`: connect the callee to this number (a transfer).
    Dial(String),
    /// `<Redirect>`: fetch TwiML from this URL and run it instead.
    Redirect(String),
    /// A verb the emulator does not run (`<Gather>`, `<Record>`, `<Start>`, …), by name.
    Unsupported(String),
}

/// Why a document is not runnable TwiML.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TwimlError {
    /// Not well-formed XML.
    #[error("not well-formed XML: {0}")]
    Xml(String),
    /// The root is not `<Response>`.
    #[error("the root element is <{0}>, not <Response>")]
    Root(String),
    /// A required attribute or text is missing or invalid.
    #[error("<{verb}>: {problem}")]
    Verb {
        /// The element.
        verb: &'static str,
        /// What is wrong.
        problem: String,
    },
}

/// The verbs of `document`, in order.
pub fn parse(document: &str) -> Result<Vec<Verb>, TwimlError> {
    let document = Document::parse(document).map_err(|e| TwimlError::Xml(e.to_string()))?;
    let root = document.root_element();
    if root.tag_name().name() != "Response" {
        return Err(TwimlError::Root(root.tag_name().name().to_owned()));
    }
    root.children().filter(Node::is_element).map(verb).collect()
}

fn verb(node: Node<'_, '_>) -> Result<Verb, TwimlError> {
    Ok(match node.tag_name().name() {
        "Connect" => connect(node)?,
        "Say" => Verb::Say(text(node)),
        "Play" => Verb::Play(text(node)),
        "Pause" => {
            let length = match node.attribute("length") {
                None => 1,
                Some(length) => length.trim().parse().map_err(|_| TwimlError::Verb {
                    verb: "Pause",
                    problem: format!("length {length:?} is not a whole number of seconds"),
                })?,
            };
            Verb::Pause(Duration::from_secs(length))
        }
        "Hangup" => Verb::Hangup,
        "Reject" => Verb::Reject,
        "Dial" => dial(node)?,
        "Redirect" => Verb::Redirect(required_text(node, "Redirect")?),
        other => Verb::Unsupported(other.to_owned()),
    })
}

/// `<Connect>` holds one noun; the emulator runs `<Stream>`.
fn connect(node: Node<'_, '_>) -> Result<Verb, TwimlError> {
    let noun = node
        .children()
        .find(Node::is_element)
        .ok_or_else(|| TwimlError::Verb {
            verb: "Connect",
            problem: "no noun inside".into(),
        })?;
    if noun.tag_name().name() != "Stream" {
        return Ok(Verb::Unsupported(format!(
            "Connect/{}",
            noun.tag_name().name()
        )));
    }
    let url = noun
        .attribute("url")
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .ok_or_else(|| TwimlError::Verb {
            verb: "Stream",
            problem: "no url attribute".into(),
        })?;
    let parameters = noun
        .children()
        .filter(|child| child.is_element() && child.tag_name().name() == "Parameter")
        .map(|parameter| {
            let (Some(name), Some(value)) =
                (parameter.attribute("name"), parameter.attribute("value"))
            else {
                return Err(TwimlError::Verb {
                    verb: "Parameter",
                    problem: "needs a name and a value".into(),
                });
            };
            if name.len() + value.len() >= PARAMETER_LIMIT {
                return Err(TwimlError::Verb {
                    verb: "Parameter",
                    problem: format!("name and value reach {PARAMETER_LIMIT} characters"),
                });
            }
            Ok((name.to_owned(), value.to_owned()))
        })
        .collect::<Result<_, _>>()?;
    Ok(Verb::Stream {
        url: url.to_owned(),
        parameters,
    })
}

/// `<Dial>NUMBER</Dial>` or `<Dial><Number>NUMBER</Number></Dial>` (the first noun).
fn dial(node: Node<'_, '_>) -> Result<Verb, TwimlError> {
    let target = match node.children().find(Node::is_element) {
        Some(noun) => text(noun),
        None => text(node),
    };
    if target.is_empty() {
        return Err(TwimlError::Verb {
            verb: "Dial",
            problem: "nothing to dial".into(),
        });
    }
    Ok(Verb::Dial(target))
}

fn required_text(node: Node<'_, '_>, verb: &'static str) -> Result<String, TwimlError> {
    let text = text(node);
    if text.is_empty() {
        return Err(TwimlError::Verb {
            verb,
            problem: "no text".into(),
        });
    }
    Ok(text)
}

/// The element's text, trimmed.
fn text(node: Node<'_, '_>) -> String {
    node.children()
        .filter_map(|child| child.text())
        .collect::<String>()
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_servers_connect_stream_is_read_with_its_parameters() {
        let document = crate::twilio::twiml::connect_stream("agent.test", "token", "a&b");
        assert_eq!(
            parse(&document).unwrap(),
            vec![Verb::Stream {
                url: "wss://agent.test/twilio/media".into(),
                parameters: vec![("token".into(), "a&b".into())],
            }]
        );
    }

    #[test]
    fn verbs_are_read_in_order() {
        let document = r#"<Response><Say voice="alice"> Hello </Say><Pause length="2"/><Play>https://x/a.mp3</Play><Dial><Number>+14155550100</Number></Dial><Redirect>https://x/next</Redirect><Gather/><Hangup/></Response>"#;
        assert_eq!(
            parse(document).unwrap(),
            vec![
                Verb::Say("Hello".into()),
                Verb::Pause(Duration::from_secs(2)),
                Verb::Play("https://x/a.mp3".into()),
                Verb::Dial("+14155550100".into()),
                Verb::Redirect("https://x/next".into()),
                Verb::Unsupported("Gather".into()),
                Verb::Hangup,
            ]
        );
        assert_eq!(
            parse("<Response><Dial>+14155550100</Dial></Response>").unwrap(),
            vec![Verb::Dial("+14155550100".into())]
        );
    }

    #[test]
    fn broken_documents_are_refused() {
        assert!(matches!(parse("<Response><Say>"), Err(TwimlError::Xml(_))));
        assert_eq!(parse("<Reply/>"), Err(TwimlError::Root("Reply".into())));
        for document in [
            "<Response><Connect><Stream/></Connect></Response>",
            "<Response><Connect/></Response>",
            r#"<Response><Connect><Stream url="wss://h/m"><Parameter name="a"/></Stream></Connect></Response>"#,
            "<Response><Dial/></Response>",
            r#"<Response><Pause length="soon"/></Response>"#,
        ] {
            assert!(
                matches!(parse(document), Err(TwimlError::Verb { .. })),
                "{document}"
            );
        }
        let long = "x".repeat(PARAMETER_LIMIT);
        let document = format!(
            r#"<Response><Connect><Stream url="wss://h/m"><Parameter name="a" value="{long}"/></Stream></Connect></Response>"#
        );
        assert!(parse(&document).is_err());
    }
}
