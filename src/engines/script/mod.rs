//! The scripted agent: a [`Dialogue`] defined by an agent file (`agents/default.toml`), for calls
//! without an LLM. No network, no model: intents matched tolerantly, a booking flow with read-back,
//! and the structured extraction the product records.
//!
//! - [`agent`]: the file's persona, prompts, intents and synonyms, loaded and checked.
//! - [`matcher`]: normalisation and fuzzy intent scoring.
//! - [`numbers`]: spoken phone numbers in, read-backs out.
//! - [`conversation`]: one call's state machine and its [`conversation::Extraction`].
//!
//! The reply's text goes to the Responder; its action (transfer, end of call) reaches the
//! CallActor after the reply, and the extraction goes to an [`ExtractionObserver`].

pub mod agent;
pub mod conversation;
pub mod matcher;
pub mod numbers;

use std::sync::Arc;

use futures_util::stream;
use phone_agent_actors::engines::{
    last_caller_line, CallContext, ChatMessage, Dialogue, DialogueAction, DialogueSession,
    EngineError, EngineStream,
};

use agent::AgentScript;
use conversation::{Action, Conversation, Extraction};

use crate::redact::mask_phone;

/// Told the call's [`Extraction`] each time a reply changes it (the call record's feed).
pub type ExtractionObserver = Arc<dyn Fn(&CallContext, &Extraction) + Send + Sync>;

/// The scripted dialogue engine; one loaded agent shared by every call.
pub struct ScriptDialogue {
    script: Arc<AgentScript>,
    observer: ExtractionObserver,
}

impl ScriptDialogue {
    /// An engine speaking for `script` whose extractions are logged (PII-safe).
    pub fn new(script: AgentScript) -> Self {
        Self::observed(script, Arc::new(log_extraction))
    }

    /// An engine whose extractions go to `observer`.
    pub fn observed(script: AgentScript, observer: ExtractionObserver) -> Self {
        Self {
            script: Arc::new(script),
            observer,
        }
    }
}

/// Logs what a call yielded without the personal data itself: whether a name was given, the
/// phone number masked.
fn log_extraction(call: &CallContext, extraction: &Extraction) {
    tracing::info!(
        call_sid = %call.call_sid,
        name_given = extraction.name.is_some(),
        phone = extraction.phone.as_deref().map(mask_phone),
        intent = extraction.intent.as_deref(),
        next_step = extraction.next_step.as_deref(),
        consent_to_follow_up = extraction.consent_to_follow_up,
        "call extraction updated"
    );
}

impl Dialogue for ScriptDialogue {
    fn name(&self) -> &'static str {
        "script"
    }

    fn open(&self, call: &CallContext) -> Result<Box<dyn DialogueSession>, EngineError> {
        Ok(Box::new(ScriptSession {
            conversation: Conversation::new(self.script.clone()),
            action: None,
            call: call.clone(),
            observer: self.observer.clone(),
        }))
    }
}

struct ScriptSession {
    conversation: Conversation,
    /// The last reply's action, until the Responder takes it.
    action: Option<DialogueAction>,
    call: CallContext,
    observer: ExtractionObserver,
}

impl DialogueSession for ScriptSession {
    fn take_action(&mut self) -> Option<DialogueAction> {
        self.action.take()
    }

    fn greeting(&mut self) -> Option<String> {
        Some(self.conversation.greeting().to_owned())
    }

    fn reply(&mut self, history: &[ChatMessage]) -> EngineStream<String> {
        let before = self.conversation.extraction().clone();
        let reply = self.conversation.respond(last_caller_line(history));
        if *self.conversation.extraction() != before {
            (self.observer)(&self.call, self.conversation.extraction());
        }
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
        let engine = ScriptDialogue::new(script);
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
