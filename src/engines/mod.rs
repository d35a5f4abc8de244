//! Engine adapters: implementations of the actors' `SpeechToText`, `Dialogue` and `TextToSpeech`.
//!
//! - [`embedded`]: offline recognition and synthesis on ONNX Runtime (the default).
//! - [`deepgram`]: Deepgram's live speech-to-text over a WebSocket (`DeepgramStt`).
//! - [`script`]: the scripted agent, a `Dialogue` defined by an agent file (the default dialogue).
//! - [`openai`]: the LLM agent over an OpenAI-compatible API, in front of the script.
//! - [`cartesia`]: Cartesia's streaming synthesis over a WebSocket per call.
//! - [`reconnect`]: when a call may try a provider's connection again.
//! - [`failover`]: a cloud engine backed by an embedded one, per call.
//! - [`loopback`]: the echo set that measures the framework itself (`ENGINES=loopback`).

pub mod cartesia;
pub mod deepgram;
pub mod embedded;
pub mod failover;
pub mod loopback;
pub mod openai;
pub mod reconnect;
pub mod script;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use phone_agent_actors::engines::{Dialogue, EngineSet, SpeechToText, TextToSpeech};
use phone_agent_actors::runtime::metrics::CallMetrics;

use crate::calls::number::E164;
use crate::config::{Config, DialogueChoice, EngineChoice, HearingChoice, SpeechChoice};
use cartesia::{CartesiaSettings, CartesiaTts};
use deepgram::DeepgramStt;
use embedded::ModelError;
use failover::{FailoverStt, FailoverTts};
use openai::{LlmDialogue, LlmSettings};
use reconnect::Reconnect;
use script::agent::{AgentError, AgentScript};
use script::ScriptDialogue;

/// The longest wait before a call reconnects to a cloud provider.
pub const MAX_RECONNECT_BACKOFF: Duration = Duration::from_secs(5);

/// Why the configured engines could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A model, library or helper program of the embedded engines is missing or broken.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The agent file cannot be used.
    #[error("{}: {source}", path.display())]
    Agent {
        /// The agent file.
        path: PathBuf,
        /// What is wrong with it.
        source: AgentError,
    },
}

/// The engines calls use, and where the agent's transfers go.
pub struct Engines {
    /// The engine set.
    pub set: EngineSet,
    /// The agent file's `transfer_to`, or `TRANSFER_TO`.
    pub transfer_to: Option<E164>,
}

/// Builds the engine set the configuration names. Loading the embedded models takes a few
/// seconds; run it before serving.
pub fn build(config: &Config, metrics: &Arc<CallMetrics>) -> Result<Engines, BuildError> {
    match config.engines {
        EngineChoice::Loopback => Ok(Engines {
            set: loopback_set_with_turns_of(config.loopback_turn_frames),
            transfer_to: config.calls.transfer_to.clone(),
        }),
        EngineChoice::Stages => {
            let script =
                AgentScript::load(&config.agent_file).map_err(|source| BuildError::Agent {
                    path: config.agent_file.clone(),
                    source,
                })?;
            let embedded_stt: Arc<dyn SpeechToText> =
                Arc::new(embedded::load_stt(&config.embedded)?);
            let stt: Arc<dyn SpeechToText> = match &config.hearing {
                HearingChoice::Embedded => embedded_stt,
                HearingChoice::Deepgram(settings) => Arc::new(FailoverStt::new(
                    Arc::new(DeepgramStt::new((**settings).clone())),
                    embedded_stt,
                    config.provider_max_failures,
                    Reconnect::new(config.provider_reconnect_backoff, MAX_RECONNECT_BACKOFF),
                    metrics.clone(),
                )),
            };
            // Lifecycle lines (check-ins, goodbyes) are said without the dialogue: cache them too.
            let mut lines = script.lines();
            lines.extend(config.conversation.lines.all());
            let embedded_tts: Arc<dyn TextToSpeech> =
                Arc::new(embedded::load_tts(&config.embedded, &lines)?);
            let tts: Arc<dyn TextToSpeech> = match &config.speech {
                SpeechChoice::Embedded => embedded_tts,
                SpeechChoice::Cartesia(settings) => Arc::new(FailoverTts::new(
                    Arc::new(CartesiaTts::new(
                        CartesiaSettings {
                            reconnect_backoff: config.provider_reconnect_backoff,
                            reconnect_max_backoff: MAX_RECONNECT_BACKOFF,
                            ..(**settings).clone()
                        },
                        metrics.clone(),
                    )),
                    embedded_tts,
                    config.provider_max_failures,
                )),
            };
            let transfer_to = script
                .transfer_to
                .clone()
                .or_else(|| config.calls.transfer_to.clone());
            // A transfer needs somewhere to go and Twilio's REST API to get it there.
            let transfers = transfer_to.is_some() && config.twilio_rest.is_some();
            let dialogue: Arc<dyn Dialogue> = match &config.dialogue {
                DialogueChoice::Script => Arc::new(ScriptDialogue::new(script, transfers)),
                DialogueChoice::Llm(settings) => Arc::new(LlmDialogue::new(
                    LlmSettings {
                        retry_backoff: config.provider_reconnect_backoff,
                        ..settings.clone()
                    },
                    script,
                    transfers,
                    metrics.clone(),
                )),
            };
            let set = EngineSet { stt, dialogue, tts };
            Ok(Engines { set, transfer_to })
        }
    }
}

/// The loopback set (tests and benchmarks of the framework): every frame a turn.
pub fn loopback_set() -> EngineSet {
    loopback_set_with_turns_of(1)
}

/// The loopback set with a turn every `turn_frames` frames.
pub fn loopback_set_with_turns_of(turn_frames: usize) -> EngineSet {
    let tape = loopback::LoopbackTape::default();
    EngineSet {
        stt: Arc::new(loopback::LoopbackStt::new(turn_frames, tape.clone())),
        dialogue: Arc::new(loopback::LoopbackDialogue),
        tts: Arc::new(loopback::LoopbackTts::new(tape)),
    }
}
