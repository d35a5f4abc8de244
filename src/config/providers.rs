//! Which engine answers for each stage, and the cloud providers' settings: `LLM=script|openai`
//! with `LLM_BASE_URL`, `LLM_API_KEY`, `LLM_MODEL` and its timeouts; `TTS=piper|flite|cartesia`
//! with `CARTESIA_*`.
//!
//! A cloud stage without its key fails at start-up, naming the variable. An `http://` LLM base
//! URL (a local llama.cpp, vLLM or Ollama server) may go without a key. A cloud voice is backed by
//! the embedded one of `TTS_VOICE` (see [`crate::engines::failover`]).

use super::vars::Vars;
use super::{ConfigError, EngineChoice};
use crate::engines::cartesia::{self, CartesiaSettings};
use crate::engines::embedded::VoiceChoice;
use crate::engines::openai::{LlmSettings, DEFAULT_BASE_URL, DEFAULT_MODEL};
use crate::redact::Secret;

/// Cartesia's documented example voice, until `CARTESIA_VOICE_ID` names another.
const DEFAULT_CARTESIA_VOICE: &str = "a0e99841-438c-4a64-b679-ae501e7d6091";

/// What speaks.
#[derive(Debug, Clone)]
pub enum SpeechChoice {
    /// The embedded voice of `TTS_VOICE` (`TTS=piper` or `flite`).
    Embedded,
    /// Cartesia, backed by the embedded voice.
    Cartesia(Box<CartesiaSettings>),
}

/// `TTS` and its settings; `TTS=piper` or `flite` also picks the embedded voice.
pub fn speech<F: Fn(&str) -> Option<String>>(
    vars: &Vars<'_, F>,
    engines: EngineChoice,
    voice: &mut VoiceChoice,
) -> Result<SpeechChoice, ConfigError> {
    let choice = vars.get("TTS");
    if engines == EngineChoice::Loopback {
        return match choice {
            None => Ok(SpeechChoice::Embedded),
            Some(_) => Err(vars.invalid(
                "TTS",
                "not used with ENGINES=loopback (its voice is the caller's audio)".into(),
            )),
        };
    }
    match choice.as_deref() {
        None => Ok(SpeechChoice::Embedded),
        Some("piper") => {
            *voice = VoiceChoice::Piper;
            Ok(SpeechChoice::Embedded)
        }
        Some("flite") => {
            if !matches!(voice, VoiceChoice::Flite(_)) {
                *voice = VoiceChoice::Flite("kal".into());
            }
            Ok(SpeechChoice::Embedded)
        }
        Some("cartesia") => {
            cartesia(vars).map(|settings| SpeechChoice::Cartesia(Box::new(settings)))
        }
        Some(other) => Err(vars.invalid(
            "TTS",
            format!("{other:?} (expected: piper, flite or cartesia)"),
        )),
    }
}

fn cartesia<F: Fn(&str) -> Option<String>>(
    vars: &Vars<'_, F>,
) -> Result<CartesiaSettings, ConfigError> {
    let key = vars.get("CARTESIA_API_KEY").ok_or_else(|| {
        vars.invalid(
            "CARTESIA_API_KEY",
            "required with TTS=cartesia: the key of your Cartesia account".into(),
        )
    })?;
    let voice = vars
        .get("CARTESIA_VOICE_ID")
        .unwrap_or_else(|| DEFAULT_CARTESIA_VOICE.to_owned());
    let mut settings = CartesiaSettings::new(Secret::new(key), &voice);
    let base_url = vars
        .get("CARTESIA_BASE_URL")
        .unwrap_or_else(|| cartesia::DEFAULT_BASE_URL.to_owned());
    if !base_url.starts_with("wss://") && !base_url.starts_with("ws://") {
        return Err(vars.invalid(
            "CARTESIA_BASE_URL",
            format!(
                "{base_url:?} is not a ws(s) URL such as {}",
                cartesia::DEFAULT_BASE_URL
            ),
        ));
    }
    settings.base_url = base_url.trim_end_matches('/').to_owned();
    if let Some(model) = vars.get("CARTESIA_MODEL") {
        settings.model = model;
    }
    if let Some(version) = vars.get("CARTESIA_VERSION") {
        settings.version = version;
    }
    if let Some(language) = vars.get("CARTESIA_LANGUAGE") {
        settings.language = language;
    }
    settings.connect_timeout = vars.duration("CARTESIA_CONNECT_TIMEOUT", "3s")?;
    settings.stall_timeout = vars.duration("CARTESIA_STALL_TIMEOUT", "1s")?;
    settings.reconnect_backoff = vars.duration("CARTESIA_RECONNECT_BACKOFF", "250ms")?;
    Ok(settings)
}

/// What decides what the agent says.
#[derive(Debug, Clone)]
pub enum DialogueChoice {
    /// The scripted agent of the agent file.
    Script,
    /// An LLM over an OpenAI-compatible API, in front of the script.
    Llm(LlmSettings),
}

/// `LLM` and its settings; with the loopback engines, no `LLM` may be chosen.
pub fn dialogue<F: Fn(&str) -> Option<String>>(
    vars: &Vars<'_, F>,
    engines: EngineChoice,
) -> Result<DialogueChoice, ConfigError> {
    let choice = vars.get("LLM");
    if engines == EngineChoice::Loopback {
        return match choice {
            None => Ok(DialogueChoice::Script),
            Some(_) => Err(vars.invalid(
                "LLM",
                "not used with ENGINES=loopback (its dialogue repeats the caller)".into(),
            )),
        };
    }
    match choice.as_deref().unwrap_or("script") {
        "script" => Ok(DialogueChoice::Script),
        "openai" => llm(vars).map(DialogueChoice::Llm),
        other => Err(vars.invalid("LLM", format!("{other:?} (expected: script or openai)"))),
    }
}

fn llm<F: Fn(&str) -> Option<String>>(vars: &Vars<'_, F>) -> Result<LlmSettings, ConfigError> {
    let base_url = vars
        .get("LLM_BASE_URL")
        .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());
    if !base_url.starts_with("https://") && !base_url.starts_with("http://") {
        return Err(vars.invalid(
            "LLM_BASE_URL",
            format!("{base_url:?} is not an http(s) URL such as {DEFAULT_BASE_URL}"),
        ));
    }
    let key = vars.get("LLM_API_KEY").unwrap_or_default();
    if key.is_empty() && base_url.starts_with("https://") {
        return Err(vars.invalid(
            "LLM_API_KEY",
            "required with LLM=openai: the key of LLM_BASE_URL's API".into(),
        ));
    }
    let mut settings = LlmSettings::new(&base_url, Secret::new(key));
    settings.model = vars
        .get("LLM_MODEL")
        .unwrap_or_else(|| DEFAULT_MODEL.to_owned());
    settings.connect_timeout = vars.duration("LLM_CONNECT_TIMEOUT", "2s")?;
    settings.stall_timeout = vars.duration("LLM_STALL_TIMEOUT", "1s")?;
    settings.history_lines = vars.bounded("LLM_HISTORY_LINES", "24", 2..=64)?;
    settings.max_failures = vars.bounded("LLM_MAX_FAILURES", "3", 1..=100)?;
    Ok(settings)
}
