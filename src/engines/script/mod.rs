//! The scripted agent: a [`Dialogue`] defined by an agent file (`agents/default.toml`), for calls
//! without an LLM. No network, no model: intents matched tolerantly, a booking flow with read-back,
//! and the structured extraction the product records.
//!
//! - [`agent`]: the file's persona, prompts, intents and synonyms, loaded and checked.
//! - [`matcher`]: normalisation and fuzzy intent scoring.
//! - [`numbers`]: spoken phone numbers in, read-backs out.
//! - [`conversation`]: one call's state machine and what it extracts.
//!
//! The reply's text goes to the Responder; its action (transfer, end of call) reaches the
//! CallActor after the reply, and so does the extraction (`DialogueSession::extraction`).

pub mod agent;
pub mod conversation;
pub mod matcher;
pub mod numbers;

use std::sync::Arc;

use futures_util::stream;
use phone_agent_actors::engines::{
    last_caller_line, CallContext, ChatMessage, Dialogue, DialogueAction, DialogueSession,
    EngineError, EngineStream, Extraction,
};

use agent::AgentScript;
use conversation::{Action, Conversation};

/// The scripted dialogue engine; one loaded agent shared by every call.
pub struct ScriptDialogue {
    script: Arc<AgentScript>,
    transfers: bool,
}

impl ScriptDialogue {
    /// An engine speaking for `script`; `transfers`: whether calls can be handed to a person
    /// (otherwise the agent never offers or promises to).
    pub fn new(script: AgentScript, transfers: bool) -> Self {
        Self {
            script: Arc::new(script),
            transfers,
        }
    }
}

impl Dialogue for ScriptDialogue {
    fn name(&self) -> &'static str {
        "script"
    }

    fn open(&self, _: &CallContext) -> Result<Box<dyn DialogueSession>, EngineError> {
        Ok(Box::new(ScriptSession {
            conversation: Conversation::new(self.script.clone(), self.transfers),
            action: None,
        }))
    }
}

#[derive(Clone)]
struct ScriptSession {
    conversation: Conversation,
    /// The last reply's action, until the Responder takes it.
    action: Option<DialogueAction>,
}

impl DialogueSession for ScriptSession {
    fn take_action(&mut self) -> Option<DialogueAction> {
        self.action.take()
    }

    fn greeting(&mut self) -> Option<String> {
        Some(self.conversation.greeting().to_owned())
    }

    fn extraction(&self) -> Option<Extraction> {
        Some(self.conversation.extraction().clone())
    }

    fn fork(&self) -> Option<Box<dyn DialogueSession>> {
        Some(Box::new(self.clone()))
    }

    fn reply(&mut self, history: &[ChatMessage]) -> EngineStream<String> {
        let reply = self.conversation.respond(last_caller_line(history));
        self.action = reply.action.map(|action| match action {
            Action::EndCall => DialogueAction::EndCall,
            Action::Transfer => DialogueAction::TransferCall,
        });
        Box::pin(stream::once(async move { Ok(reply.text) }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use phone_agent_actors::engines::Role;
    use phone_agent_actors::ids::{CallSid, StreamSid};

    #[actix_rt::test]
    async fn replies_through_the_dialogue_trait() {
        let script = AgentScript::from_toml(include_str!("../../../agents/default.toml")).unwrap();
        let engine = ScriptDialogue::new(script, false);
        let call = CallContext {
            call_sid: CallSid::parse("CA0123456789abcdef0123456789abcdef").unwrap(),
            stream_sid: StreamSid::new("MZ1"),
            custom_parameters: Default::default(),
        };
        let mut session = engine.open(&call).unwrap();
        let history = [ChatMessage {
            role: Role::User,
            text: "how much is a cleaning".into(),
        }];
        let reply: Vec<_> = session.reply(&history).collect().await;
        let text = reply.into_iter().collect::<Result<String, _>>().unwrap();
        assert!(text.contains("ninety-five dollars"), "{text}");
    }
}
