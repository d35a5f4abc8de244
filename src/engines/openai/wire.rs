//! The OpenAI-compatible chat completions wire format: the streaming request we send, the chunks
//! it answers with, error bodies, and the assembly of tool calls from their deltas.
//!
//! Tool-call deltas are keyed by `index`: the first fragment of a call carries its `id` and
//! `function.name`, later ones append to `function.arguments`, split anywhere (inside a JSON
//! string too). The arguments are parsed only once the stream says the calls are complete.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST {base}/chat/completions` with `"stream": true`.
#[derive(Debug, Serialize)]
pub struct ChatRequest<'a> {
    /// The model.
    pub model: &'a str,
    /// The conversation: the system prompt first.
    pub messages: Vec<Message>,
    /// Always `true`: replies are spoken as they arrive.
    pub stream: bool,
    /// Sampling temperature.
    pub temperature: f64,
    /// Longest reply, in tokens.
    pub max_tokens: u32,
    /// The tools the model may call.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub tools: &'a [Value],
}

/// One message of the conversation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: &'static str,
    /// Its text; absent on an assistant message that only calls tools.
    pub content: Option<String>,
    /// The tools an assistant message called.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallOut>>,
    /// The call a `tool` message answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl Message {
    /// A message of `role` with `text`.
    pub fn text(role: &'static str, text: impl Into<String>) -> Self {
        Self {
            role,
            content: Some(text.into()),
            tool_calls: None,
            tool_call_id: None,
        }
    }
}

/// A tool call as an assistant message repeats it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolCallOut {
    /// Its id.
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The function and its arguments, as the model sent them.
    pub function: FunctionOut,
}

/// The function of a [`ToolCallOut`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunctionOut {
    /// Its name.
    pub name: String,
    /// Its arguments: JSON text.
    pub arguments: String,
}

/// One chunk of the stream (`data: {…}`).
#[derive(Debug, Deserialize)]
pub struct Chunk {
    /// The choices; we ask for one.
    #[serde(default)]
    pub choices: Vec<Choice>,
}

/// A choice's part of a chunk.
#[derive(Debug, Deserialize)]
pub struct Choice {
    /// What the chunk adds.
    #[serde(default)]
    pub delta: Delta,
    /// Why the choice ended: `stop`, `length`, `tool_calls`; `null` until then.
    pub finish_reason: Option<String>,
}

/// The text and tool-call fragments a chunk adds.
#[derive(Debug, Default, Deserialize)]
pub struct Delta {
    /// More of the reply's text.
    pub content: Option<String>,
    /// Fragments of tool calls.
    pub tool_calls: Option<Vec<ToolCallDelta>>,
}

/// A fragment of one tool call.
#[derive(Debug, Deserialize)]
pub struct ToolCallDelta {
    /// Which call it belongs to.
    pub index: usize,
    /// The call's id (first fragment).
    pub id: Option<String>,
    /// The function's name and more of its arguments.
    pub function: Option<FunctionDelta>,
}

/// A fragment of a tool call's function.
#[derive(Debug, Deserialize)]
pub struct FunctionDelta {
    /// Its name (first fragment).
    pub name: Option<String>,
    /// More of its arguments' JSON text.
    pub arguments: Option<String>,
}

/// `{"error":{"message","type","code"}}`, as the APIs answer a refused request.
#[derive(Debug, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What an [`ErrorBody`] says.
#[derive(Debug, Deserialize)]
pub struct ErrorDetail {
    /// Its type (`invalid_request_error`, `rate_limit_exceeded`, …).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Its code, a string or a number depending on the provider.
    pub code: Option<Value>,
}

/// A complete tool call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// Its id.
    pub id: String,
    /// The function's name.
    pub name: String,
    /// Its arguments, parsed.
    pub arguments: Value,
}

/// Why the tool calls of a reply cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolCallError {
    /// A call never got its id or name.
    #[error("tool call {0} has no id or name")]
    Incomplete(usize),
    /// A call's arguments are not a JSON object.
    #[error("tool call {name}: arguments are not a JSON object")]
    BadArguments {
        /// The function.
        name: String,
    },
}

/// Tool calls being assembled from their deltas.
#[derive(Debug, Default)]
pub struct ToolCalls {
    partial: BTreeMap<usize, (Option<String>, Option<String>, String)>,
}

impl ToolCalls {
    /// Adds a fragment.
    pub fn push(&mut self, delta: ToolCallDelta) {
        let (id, name, arguments) = self.partial.entry(delta.index).or_default();
        if delta.id.is_some() {
            *id = delta.id;
        }
        if let Some(function) = delta.function {
            if let Some(part) = function.name {
                name.get_or_insert_with(String::new).push_str(&part);
            }
            if let Some(part) = function.arguments {
                arguments.push_str(&part);
            }
        }
    }

    /// Whether any fragment arrived.
    pub fn is_empty(&self) -> bool {
        self.partial.is_empty()
    }

    /// The calls, in index order, their arguments parsed (empty arguments are `{}`).
    pub fn finish(self) -> Result<Vec<ToolCall>, ToolCallError> {
        self.partial
            .into_iter()
            .map(|(index, (id, name, arguments))| {
                let (Some(id), Some(name)) = (id, name) else {
                    return Err(ToolCallError::Incomplete(index));
                };
                let text = if arguments.trim().is_empty() {
                    "{}"
                } else {
                    &arguments
                };
                match serde_json::from_str::<Value>(text) {
                    Ok(arguments @ Value::Object(_)) => Ok(ToolCall {
                        id,
                        name,
                        arguments,
                    }),
                    _ => Err(ToolCallError::BadArguments { name }),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn delta(json: Value) -> ToolCallDelta {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn assembles_calls_from_fragments_split_inside_strings() {
        let arguments = r#"{"name": "Jo \"JJ\" Smith", "consent_to_follow_up": true}"#;
        for split in 1..arguments.len() {
            let (a, b) = arguments.split_at(split);
            let mut calls = ToolCalls::default();
            calls.push(delta(
                json!({"index": 0, "id": "call_1", "type": "function",
                "function": {"name": "save_details", "arguments": ""}}),
            ));
            calls.push(delta(json!({"index": 1, "id": "call_2",
                "function": {"name": "end_call"}})));
            calls.push(delta(json!({"index": 0, "function": {"arguments": a}})));
            calls.push(delta(json!({"index": 0, "function": {"arguments": b}})));
            let calls = calls.finish().unwrap();
            assert_eq!(calls.len(), 2);
            assert_eq!(calls[0].name, "save_details");
            assert_eq!(calls[0].arguments["name"], "Jo \"JJ\" Smith");
            assert_eq!(calls[1].arguments, json!({}));
        }
    }

    #[test]
    fn refuses_incomplete_calls_and_arguments_that_are_not_objects() {
        let mut calls = ToolCalls::default();
        calls.push(delta(json!({"index": 0, "function": {"arguments": "{}"}})));
        assert_eq!(calls.finish(), Err(ToolCallError::Incomplete(0)));
        let mut calls = ToolCalls::default();
        calls.push(delta(
            json!({"index": 0, "id": "c", "function": {"name": "end_call",
            "arguments": "{\"cut"}}),
        ));
        assert!(matches!(
            calls.finish(),
            Err(ToolCallError::BadArguments { .. })
        ));
    }

    #[test]
    fn the_request_is_what_the_api_documents() {
        let tools = [json!({"type": "function", "function": {"name": "end_call"}})];
        let request = ChatRequest {
            model: "llama-3.3-70b-versatile",
            messages: vec![
                Message::text("system", "Be brief."),
                Message::text("user", "Hi"),
            ],
            stream: true,
            temperature: 0.3,
            max_tokens: 200,
            tools: &tools,
        };
        let json = serde_json::to_value(&request).unwrap();
        assert_eq!(
            json,
            json!({
                "model": "llama-3.3-70b-versatile",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Hi"}
                ],
                "stream": true,
                "temperature": 0.3,
                "max_tokens": 200,
                "tools": [{"type": "function", "function": {"name": "end_call"}}]
            })
        );
    }
}
