//! The LLM agent: an OpenAI-compatible chat completions API (Groq, OpenAI, a local llama.cpp,
//! vLLM or Ollama server), streamed, with tools, in front of the scripted agent.
//!
//! - [`sse`]: the event stream's bytes → events.
//! - [`wire`]: the request, the chunks, error bodies, tool calls assembled from their deltas.
//! - [`stream`]: one streaming completion over awc, cancelled by dropping its reader.
//! - [`tools`]: `end_call`, `transfer_call`, `save_details`: definitions and effects.
//! - [`prompt`]: the system prompt from the agent file.
//! - [`session`]: one call's dialogue: hybrid routing, fallback to the script.
//!
//! **Hybrid routing.** The scripted matcher answers when it is sure (an answer, a transfer or the
//! end of the call, with no booking question pending): those replies are the operator's own words,
//! already synthesized, and play at once without an LLM round trip. Everything else, booking
//! included, goes to the model, which states only the agent file's facts. When the API fails, the
//! turn is answered by the script at once (the caller hears no gap); after
//! [`LlmSettings::max_failures`] failures in a row the call stays with the script; between
//! failures it waits a jittered, doubling backoff (and a 429's `Retry-After`) before asking again.

pub mod prompt;
pub mod session;
pub mod sse;
pub mod stream;
pub mod tools;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use phone_agent_actors::engines::{CallContext, Dialogue, DialogueSession, EngineError};
use phone_agent_actors::runtime::metrics::CallMetrics;
use serde_json::Value;

use crate::engines::script::agent::AgentScript;
use crate::redact::Secret;
use session::LlmSession;

/// The engine's name in logs and metrics.
pub const ENGINE: &str = "openai";

/// Groq's OpenAI-compatible API, the documented default.
pub const DEFAULT_BASE_URL: &str = "https://api.groq.com/openai/v1";

/// The default model (Groq's).
pub const DEFAULT_MODEL: &str = "llama-3.3-70b-versatile";

/// Where the API is and how long to wait for it (`LLM_*`).
#[derive(Debug, Clone)]
pub struct LlmSettings {
    /// The API's base URL, without a trailing `/` (`LLM_BASE_URL`).
    pub base_url: String,
    /// The bearer key (`LLM_API_KEY`).
    pub api_key: Secret,
    /// The model (`LLM_MODEL`; the agent file's `[llm].model` wins).
    pub model: String,
    /// Connecting and the TLS handshake, each (`LLM_CONNECT_TIMEOUT`).
    pub connect_timeout: Duration,
    /// Longest wait for the answer's head and between two pieces of it (`LLM_STALL_TIMEOUT`).
    pub stall_timeout: Duration,
    /// Lines of the conversation sent, newest last (`LLM_HISTORY_LINES`).
    pub history_lines: usize,
    /// Failed requests in a row after which a call stays with the script (`LLM_MAX_FAILURES`).
    pub max_failures: u32,
    /// After a failure the script answers for a jittered share of this, doubling per failure, at
    /// most 5 s (`PROVIDER_RECONNECT_BACKOFF`); a 429's `Retry-After` is waited out the same way.
    pub retry_backoff: Duration,
}

impl LlmSettings {
    /// Settings for `base_url` with `api_key`, and the defaults.
    pub fn new(base_url: &str, api_key: Secret) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key,
            model: DEFAULT_MODEL.to_owned(),
            connect_timeout: Duration::from_secs(2),
            stall_timeout: Duration::from_secs(1),
            history_lines: 24,
            max_failures: 3,
            retry_backoff: Duration::from_millis(250),
        }
    }
}

/// What every call's session shares.
pub struct Shared {
    /// The API.
    pub settings: Arc<LlmSettings>,
    /// The agent: its facts and fixed lines, and the script that answers when it is sure.
    pub script: Arc<AgentScript>,
    /// Whether calls can be transferred.
    pub transfers: bool,
    /// The system prompt.
    pub system_prompt: String,
    /// The tools offered.
    pub tools: Vec<Value>,
    /// Where faults are counted.
    pub metrics: Arc<CallMetrics>,
}

/// The LLM dialogue engine; one per process, a session per call.
pub struct LlmDialogue {
    shared: Arc<Shared>,
}

impl LlmDialogue {
    /// An engine speaking for `script` through the API of `settings`; `transfers`: whether calls
    /// can be handed to a person (otherwise the model is neither told nor offered it).
    pub fn new(
        mut settings: LlmSettings,
        script: AgentScript,
        transfers: bool,
        metrics: Arc<CallMetrics>,
    ) -> Self {
        if let Some(model) = &script.llm.model {
            settings.model = model.clone();
        }
        Self {
            shared: Arc::new(Shared {
                system_prompt: prompt::system_prompt(&script, transfers),
                tools: tools::definitions(transfers),
                settings: Arc::new(settings),
                script: Arc::new(script),
                transfers,
                metrics,
            }),
        }
    }
}

impl Dialogue for LlmDialogue {
    fn name(&self) -> &'static str {
        ENGINE
    }

    fn open(&self, call: &CallContext) -> Result<Box<dyn DialogueSession>, EngineError> {
        Ok(Box::new(LlmSession::new(self.shared.clone(), call)))
    }
}
