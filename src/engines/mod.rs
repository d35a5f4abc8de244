//! Engine adapters: implementations of the actors' `SpeechToText`, `Dialogue` and `TextToSpeech`.
//!
//! - [`loopback`]: the echo set that measures the framework itself (`ENGINES=loopback`).
//! - [`script`]: the scripted agent, a `Dialogue` defined by an agent file.

pub mod loopback;
pub mod script;

use std::sync::Arc;

use phone_agent_actors::engines::EngineSet;

use crate::config::EngineChoice;

/// Builds the engine set the configuration names.
pub fn build(choice: EngineChoice) -> EngineSet {
    match choice {
        EngineChoice::Loopback => EngineSet {
            stt: Arc::new(loopback::LoopbackStt),
            dialogue: Arc::new(loopback::LoopbackDialogue),
            tts: Arc::new(loopback::LoopbackTts),
        },
    }
}
