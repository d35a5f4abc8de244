//! One call's LLM dialogue: the scripted answer when the script is sure, the model's otherwise,
//! the script's again when the model fails.
//!
//! A reply streams the model's text as it arrives. Its tool calls set the action taken once the
//! reply has been heard and update the extraction. A reply that is only tool calls gets its words
//! from the persona (goodbye, transfer) or, after `save_details`, from a second request that
//! tells the model its details were saved.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use futures_util::stream;
use phone_agent_actors::engines::{
    last_caller_line, CallContext, ChatMessage, DialogueAction, DialogueSession, EngineStream,
    Extraction, Role,
};
use serde_json::json;
use tokio::sync::mpsc;

use super::stream::{self as completion, Completion, LlmError};
use super::tools::{self, ToolEffect};
use super::wire::{ChatRequest, FunctionOut, Message, ToolCall, ToolCallOut};
use super::{Shared, ENGINE};
use crate::engines::reconnect::Reconnect;
use crate::engines::script::conversation::{self, Conversation};
use crate::engines::MAX_RECONNECT_BACKOFF;
use ring::rand::SystemRandom;

/// What a call's replies share with the session.
#[derive(Clone)]
struct State {
    /// The scripted conversation: sure answers and the fallback.
    script: Conversation,
    /// The last reply's action, until the Responder takes it.
    action: Option<DialogueAction>,
    /// What the call has yielded, from the script and the model.
    extraction: Extraction,
    /// Failed requests in a row, and when the model may be asked again.
    reconnect: Reconnect,
    /// A 429's `Retry-After`: the model is not asked before.
    retry_after: Option<Instant>,
}

impl State {
    /// Whether the model may be asked at `now`.
    fn may_ask(&self, now: Instant) -> bool {
        self.reconnect.may_try(now) && self.retry_after.is_none_or(|at| now >= at)
    }

    /// Takes a scripted reply: its action and what the script extracted.
    fn scripted(&mut self, reply: conversation::Reply) -> String {
        self.action = reply.action.map(|action| match action {
            conversation::Action::EndCall => DialogueAction::EndCall,
            conversation::Action::Transfer => DialogueAction::TransferCall,
        });
        tools::merge(&mut self.extraction, self.script.extraction().clone());
        reply.text
    }
}

/// One call's session.
pub struct LlmSession {
    shared: Arc<Shared>,
    state: Arc<Mutex<State>>,
    call_sid: Arc<str>,
}

impl LlmSession {
    /// The dialogue of `call`.
    pub fn new(shared: Arc<Shared>, call: &CallContext) -> Self {
        let script = Conversation::new(shared.script.clone(), shared.transfers);
        let reconnect = Reconnect::new(shared.settings.retry_backoff, MAX_RECONNECT_BACKOFF);
        Self {
            shared,
            state: Arc::new(Mutex::new(State {
                script,
                action: None,
                extraction: Extraction::default(),
                reconnect,
                retry_after: None,
            })),
            call_sid: Arc::from(call.call_sid.as_str()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// The request's messages: the system prompt, then the newest lines of the conversation.
    fn messages(&self, history: &[ChatMessage]) -> Vec<Message> {
        let window = history
            .len()
            .saturating_sub(self.shared.settings.history_lines);
        std::iter::once(Message::text("system", self.shared.system_prompt.clone()))
            .chain(history[window..].iter().map(|line| {
                let role = match line.role {
                    Role::User => "user",
                    Role::Assistant => "assistant",
                };
                Message::text(role, line.text.clone())
            }))
            .collect()
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl DialogueSession for LlmSession {
    fn greeting(&mut self) -> Option<String> {
        Some(self.shared.script.persona.greeting.clone())
    }

    /// A session with a copy of this one's state: a speculative reply's tool calls, action and
    /// provider failures stay in the copy unless it is kept.
    fn fork(&self) -> Option<Box<dyn DialogueSession>> {
        Some(Box::new(Self {
            shared: self.shared.clone(),
            state: Arc::new(Mutex::new(self.state().clone())),
            call_sid: self.call_sid.clone(),
        }))
    }

    fn reply(&mut self, history: &[ChatMessage]) -> EngineStream<String> {
        let said = last_caller_line(history).to_owned();
        {
            let mut state = self.state();
            let staying = state.reconnect.failures() >= self.shared.settings.max_failures;
            let scripted = match state.script.sure_reply(&said) {
                Some(reply) => Some(reply),
                None if staying || !state.may_ask(Instant::now()) => {
                    Some(state.script.respond(&said))
                }
                None => None,
            };
            if let Some(reply) = scripted {
                let text = state.scripted(reply);
                return Box::pin(stream::once(async move { Ok(text) }));
            }
        }
        let messages = self.messages(history);
        let turn = Turn {
            shared: self.shared.clone(),
            state: self.state.clone(),
            call_sid: self.call_sid.clone(),
            receiver: completion::start(
                self.shared.settings.clone(),
                body(&self.shared, &messages),
            ),
            messages,
            said,
            spoke: false,
            followed_up: false,
            over: false,
        };
        Box::pin(stream::unfold(Some(turn), |turn| async move {
            let mut turn = turn?;
            turn.next().await.map(|text| (Ok(text), Some(turn)))
        }))
    }

    fn take_action(&mut self) -> Option<DialogueAction> {
        self.state().action.take()
    }

    fn extraction(&self) -> Option<Extraction> {
        Some(self.state().extraction.clone())
    }
}

/// The serialized request for `messages`.
fn body(shared: &Shared, messages: &[Message]) -> actix_web::web::Bytes {
    let request = ChatRequest {
        model: &shared.settings.model,
        messages: messages.to_vec(),
        stream: true,
        temperature: shared.script.llm.temperature,
        max_tokens: shared.script.llm.max_tokens,
        tools: &shared.tools,
    };
    serde_json::to_vec(&request)
        .expect("a request is JSON")
        .into()
}

/// One reply in progress.
struct Turn {
    shared: Arc<Shared>,
    state: Arc<Mutex<State>>,
    call_sid: Arc<str>,
    receiver: mpsc::Receiver<Result<Completion, LlmError>>,
    /// The request's messages (for a follow-up request).
    messages: Vec<Message>,
    /// What the caller said (for the script's fallback).
    said: String,
    /// Some of the model's text has been passed on.
    spoke: bool,
    /// The second request, after tools only, has been made.
    followed_up: bool,
    /// The reply is over (the script answered for a failed request).
    over: bool,
}

impl Turn {
    /// The next text to say; `None` once the reply is over.
    async fn next(&mut self) -> Option<String> {
        if self.over {
            return None;
        }
        loop {
            match self.receiver.recv().await {
                Some(Ok(Completion::Text(text))) => {
                    self.spoke = true;
                    return Some(text);
                }
                Some(Ok(Completion::ToolCalls(calls))) => {
                    if let Some(text) = self.tools_called(calls) {
                        self.spoke = true;
                        return Some(text);
                    }
                }
                Some(Err(error)) => return self.failed(&error),
                None if !self.spoke => {
                    // A reply with no words at all: the caller must not wait in silence.
                    return self.failed(&LlmError::Malformed("a reply without words".into()));
                }
                None => {
                    lock(&self.state).reconnect.succeeded();
                    return None;
                }
            }
        }
    }

    /// Applies the tool calls; the words of a reply that had none, unless a follow-up request
    /// is to give them.
    fn tools_called(&mut self, calls: Vec<ToolCall>) -> Option<String> {
        let transfers = self.shared.transfers;
        let persona = &self.shared.script.persona;
        let mut state = lock(&self.state);
        let mut results = Vec::with_capacity(calls.len());
        for call in &calls {
            let result = match tools::effect(call, transfers) {
                Ok(ToolEffect::EndCall) => {
                    state.action = Some(DialogueAction::EndCall);
                    json!({"ok": true})
                }
                Ok(ToolEffect::Transfer) => {
                    state.action = Some(DialogueAction::TransferCall);
                    state.extraction.next_step = Some("transfer_to_person".into());
                    json!({"ok": true})
                }
                Ok(ToolEffect::Save(update)) => {
                    tools::merge(&mut state.extraction, update);
                    json!({"ok": true})
                }
                Err(error) => {
                    tracing::warn!(engine = ENGINE, call_sid = %self.call_sid, %error, "the model called a tool wrongly");
                    self.shared.metrics.engine_fault(ENGINE, "tool");
                    json!({"ok": false, "error": error.to_string()})
                }
            };
            results.push(result);
        }
        if self.spoke {
            return None;
        }
        match state.action {
            Some(DialogueAction::EndCall) => return Some(persona.goodbye.clone()),
            Some(DialogueAction::TransferCall) => return Some(persona.transfer.clone()),
            None if self.followed_up => return Some(persona.anything_else.clone()),
            None => {}
        }
        drop(state);
        // Details saved and nothing said: the model answers again, told they were saved.
        self.followed_up = true;
        self.messages.push(Message {
            role: "assistant",
            content: None,
            tool_calls: Some(
                calls
                    .iter()
                    .map(|call| ToolCallOut {
                        id: call.id.clone(),
                        kind: "function",
                        function: FunctionOut {
                            name: call.name.clone(),
                            arguments: call.arguments.to_string(),
                        },
                    })
                    .collect(),
            ),
            tool_call_id: None,
        });
        for (call, result) in calls.iter().zip(results) {
            self.messages.push(Message {
                role: "tool",
                content: Some(result.to_string()),
                tool_calls: None,
                tool_call_id: Some(call.id.clone()),
            });
        }
        self.receiver = completion::start(
            self.shared.settings.clone(),
            body(&self.shared, &self.messages),
        );
        None
    }

    /// Logs and counts the fault; the script answers a turn the model left unanswered.
    fn failed(&mut self, error: &LlmError) -> Option<String> {
        self.over = true;
        let mut state = lock(&self.state);
        let now = Instant::now();
        state.reconnect.failed(now, &SystemRandom::new());
        if let LlmError::Refused {
            retry_after: Some(wait),
            ..
        } = error
        {
            state.retry_after = Some(now + *wait);
        }
        self.shared.metrics.engine_fault(ENGINE, error.kind());
        let staying = state.reconnect.failures() >= self.shared.settings.max_failures;
        tracing::warn!(
            engine = ENGINE,
            call_sid = %self.call_sid,
            kind = error.kind(),
            %error,
            failures = state.reconnect.failures(),
            staying_with_script = staying,
            "LLM request failed"
        );
        if self.spoke {
            return None;
        }
        let reply = state.script.respond(&self.said);
        Some(state.scripted(reply))
    }
}
