//! The tools the model may call, as JSON-schema function definitions, and what each call does:
//! the same actions the scripted agent takes (end the call, transfer it) and the extraction the
//! product records.

use phone_agent_actors::engines::Extraction;
use serde::Deserialize;
use serde_json::{json, Value};

use super::wire::ToolCall;

/// Hang up once the reply has been heard.
pub const END_CALL: &str = "end_call";
/// Hand the caller to a person once the reply has been heard.
pub const TRANSFER_CALL: &str = "transfer_call";
/// Record what the caller told us.
pub const SAVE_DETAILS: &str = "save_details";

/// The definitions sent with every request; `transfer_call` only when calls can be transferred
/// (a model cannot promise what it is not offered).
pub fn definitions(transfers: bool) -> Vec<Value> {
    let mut tools = vec![
        function(
            END_CALL,
            "End the call after your reply has been heard. Call it when the caller says goodbye \
             or has nothing more, or asks not to be called again; say goodbye in your reply.",
            json!({"type": "object", "properties": {}, "additionalProperties": false}),
        ),
        function(
            SAVE_DETAILS,
            "Record the caller's details as soon as you learn or correct any of them. Send only \
             what you know; phone numbers as digits.",
            json!({
                "type": "object",
                "properties": {
                    "name": {"type": "string", "description": "The caller's name"},
                    "phone": {"type": "string", "description": "The caller's number, digits only"},
                    "intent": {"type": "string", "description": "What the call is about, e.g. book_appointment, pricing"},
                    "next_step": {"type": "string", "description": "What happens next, e.g. callback_to_confirm_appointment, do_not_contact"},
                    "consent_to_follow_up": {"type": "boolean", "description": "Whether the caller agreed to be called or texted"}
                },
                "additionalProperties": false
            }),
        ),
    ];
    if transfers {
        tools.push(function(
            TRANSFER_CALL,
            "Transfer the caller to a person after your reply has been heard. Call it when the \
             caller asks for a person or you cannot help; tell them you are connecting them.",
            json!({"type": "object", "properties": {}, "additionalProperties": false}),
        ));
    }
    tools
}

fn function(name: &str, description: &str, parameters: Value) -> Value {
    json!({
        "type": "function",
        "function": {"name": name, "description": description, "parameters": parameters}
    })
}

/// What a tool call does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolEffect {
    /// End the call after the reply.
    EndCall,
    /// Transfer the call after the reply.
    Transfer,
    /// Details to merge into the extraction.
    Save(Extraction),
}

/// Why a tool call is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    /// A tool we did not offer.
    #[error("unknown tool {0:?}")]
    Unknown(String),
    /// Arguments of the wrong shape.
    #[error("{tool}: {message}")]
    Arguments {
        /// The tool.
        tool: &'static str,
        /// What is wrong.
        message: String,
    },
}

#[derive(Deserialize)]
struct SaveDetails {
    name: Option<String>,
    phone: Option<String>,
    intent: Option<String>,
    next_step: Option<String>,
    consent_to_follow_up: Option<bool>,
}

/// What `call` does, checked against the tools offered (`transfers`: whether `transfer_call` was).
pub fn effect(call: &ToolCall, transfers: bool) -> Result<ToolEffect, ToolError> {
    match call.name.as_str() {
        END_CALL => Ok(ToolEffect::EndCall),
        TRANSFER_CALL if transfers => Ok(ToolEffect::Transfer),
        SAVE_DETAILS => {
            let details: SaveDetails =
                serde_json::from_value(call.arguments.clone()).map_err(|error| {
                    ToolError::Arguments {
                        tool: SAVE_DETAILS,
                        message: error.to_string(),
                    }
                })?;
            let text = |value: Option<String>| value.filter(|v| !v.trim().is_empty());
            let phone = text(details.phone)
                .map(|phone| {
                    phone
                        .chars()
                        .filter(char::is_ascii_digit)
                        .collect::<String>()
                })
                .filter(|digits| !digits.is_empty());
            Ok(ToolEffect::Save(Extraction {
                name: text(details.name),
                phone,
                intent: text(details.intent),
                next_step: text(details.next_step),
                consent_to_follow_up: details.consent_to_follow_up,
            }))
        }
        other => Err(ToolError::Unknown(other.to_owned())),
    }
}

/// `update`'s known fields written over `extraction`.
pub fn merge(extraction: &mut Extraction, update: Extraction) {
    let Extraction {
        name,
        phone,
        intent,
        next_step,
        consent_to_follow_up,
    } = update;
    extraction.name = name.or(extraction.name.take());
    extraction.phone = phone.or(extraction.phone.take());
    extraction.intent = intent.or(extraction.intent.take());
    extraction.next_step = next_step.or(extraction.next_step.take());
    extraction.consent_to_follow_up = consent_to_follow_up.or(extraction.consent_to_follow_up);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, arguments: Value) -> ToolCall {
        ToolCall {
            id: "call_1".into(),
            name: name.into(),
            arguments,
        }
    }

    #[test]
    fn save_details_keeps_what_was_said_and_digits_of_numbers() {
        let effect = effect(
            &call(
                SAVE_DETAILS,
                json!({"name": "Jo", "phone": "(415) 555-0100", "intent": ""}),
            ),
            false,
        );
        let Ok(ToolEffect::Save(update)) = effect else {
            panic!("{effect:?}")
        };
        assert_eq!(update.name.as_deref(), Some("Jo"));
        assert_eq!(update.phone.as_deref(), Some("4155550100"));
        assert_eq!(update.intent, None);
        let mut extraction = Extraction {
            intent: Some("pricing".into()),
            name: Some("Joe".into()),
            ..Extraction::default()
        };
        merge(&mut extraction, update);
        assert_eq!(extraction.name.as_deref(), Some("Jo"));
        assert_eq!(extraction.intent.as_deref(), Some("pricing"));
    }

    #[test]
    fn tools_not_offered_and_bad_arguments_are_refused() {
        assert_eq!(
            effect(&call(TRANSFER_CALL, json!({})), false),
            Err(ToolError::Unknown(TRANSFER_CALL.into()))
        );
        assert_eq!(
            effect(&call(TRANSFER_CALL, json!({})), true),
            Ok(ToolEffect::Transfer)
        );
        assert!(matches!(
            effect(
                &call(SAVE_DETAILS, json!({"consent_to_follow_up": "yes"})),
                true
            ),
            Err(ToolError::Arguments { .. })
        ));
        let names: Vec<Value> = definitions(false)
            .iter()
            .map(|tool| tool["function"]["name"].clone())
            .collect();
        assert_eq!(names, [json!(END_CALL), json!(SAVE_DETAILS)]);
    }
}
