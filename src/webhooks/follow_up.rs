//! The follow-up email of a completed call whose caller agreed to be contacted again: a short
//! summary of what the agent noted, sent to the address the call's metadata names (`email`, set by
//! the client that placed it) or else to `FOLLOW_UP_TO` (a team inbox). Built from the
//! `call.completed` message's payload, so it says what the webhooks said.

use serde_json::Value;

use crate::email::resend::Email;

/// Why no follow-up email can be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoFollowUp {
    /// Neither the call's metadata nor the configuration names an address.
    #[error("no address: the call's metadata has no \"email\" and FOLLOW_UP_TO is not set")]
    NoAddress,
    /// The payload is not a `call.completed` message (erased, or from a newer version).
    #[error("the message holds no completed call")]
    NoCall,
}

/// The email for the `call.completed` payload `message`, to the call's `metadata.email` or
/// `fallback_to`.
pub fn compose(message: &Value, fallback_to: Option<&str>) -> Result<Email, NoFollowUp> {
    let data = message.get("data").ok_or(NoFollowUp::NoCall)?;
    let call = data.get("call").ok_or(NoFollowUp::NoCall)?;
    let to = call["metadata"]["email"]
        .as_str()
        .filter(|address| address.contains('@'))
        .or(fallback_to)
        .ok_or(NoFollowUp::NoAddress)?;
    let extraction = &data["extraction"];
    let field = |name: &str| {
        extraction[name]
            .as_str()
            .map(|value| value.replace('_', " "))
    };
    let mut text = match extraction["name"].as_str() {
        Some(name) => format!("Hello {name},\n\n"),
        None => "Hello,\n\n".to_owned(),
    };
    text.push_str("Thank you for your call. Here is what we noted:\n\n");
    if let Some(intent) = field("intent") {
        text.push_str(&format!("- You called about: {intent}\n"));
    }
    if let Some(next) = field("next_step") {
        text.push_str(&format!("- Next step: {next}\n"));
    }
    if let Some(duration) = call["duration_ms"].as_i64() {
        text.push_str(&format!(
            "- Call length: {} min {} s\n",
            duration / 60_000,
            duration / 1_000 % 60
        ));
    }
    text.push_str("\nReply to this email if anything is missing or wrong.\n");
    Ok(Email {
        to: to.to_owned(),
        subject: "Summary of your call".to_owned(),
        text,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn completed(metadata: Value) -> Value {
        json!({
            "type": "call.completed",
            "timestamp": "2026-11-26T06:00:00Z",
            "data": {
                "call": { "id": "call_1", "metadata": metadata, "duration_ms": 83_000 },
                "extraction": {
                    "name": "Ana",
                    "intent": "book_appointment",
                    "next_step": "callback_to_confirm_appointment",
                    "consent_to_follow_up": true
                }
            }
        })
    }

    #[test]
    fn the_summary_goes_to_the_calls_address_and_says_what_was_noted() {
        let email = compose(&completed(json!({ "email": "ana@example.com" })), None).unwrap();
        assert_eq!(email.to, "ana@example.com");
        assert_eq!(email.subject, "Summary of your call");
        assert!(email.text.starts_with("Hello Ana,"), "{}", email.text);
        assert!(email.text.contains("- You called about: book appointment"));
        assert!(email
            .text
            .contains("- Next step: callback to confirm appointment"));
        assert!(email.text.contains("- Call length: 1 min 23 s"));
    }

    #[test]
    fn without_the_calls_address_the_configured_one_is_used_or_none() {
        let message = completed(Value::Null);
        let email = compose(&message, Some("team@example.com")).unwrap();
        assert_eq!(email.to, "team@example.com");
        assert_eq!(compose(&message, None).err(), Some(NoFollowUp::NoAddress));
        let not_an_address = completed(json!({ "email": "nobody" }));
        assert_eq!(
            compose(&not_an_address, None).err(),
            Some(NoFollowUp::NoAddress)
        );
        assert_eq!(compose(&json!({}), None).err(), Some(NoFollowUp::NoCall));
    }
}
