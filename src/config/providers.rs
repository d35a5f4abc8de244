//! Which engine answers for each stage, and the cloud providers' settings:
//! `STT=embedded|deepgram` with `DEEPGRAM_*`; `LLM=script|openai` with `LLM_BASE_URL`,
//! `LLM_API_KEY`, `LLM_MODEL` and its timeouts; `TTS=piper|flite|cartesia` with `CARTESIA_*`.
//! `ENGINES=embedded` (the default) makes each stage default to its embedded engine,
//! `ENGINES=cloud` to its cloud one; a stage's own variable wins. With `ENGINES=loopback` no
//! stage may be chosen.
//!
//! A cloud stage without its key fails at start-up, naming the variable. An `http://` LLM base
//! URL (a local llama.cpp, vLLM or Ollama server) may go without a key. Cloud recognition and
//! voices are backed by the embedded ones (see [`crate::engines::failover`]).

use super::vars::Vars;
use super::{ConfigError, EngineChoice};
use crate::engines::cartesia::{self, CartesiaSettings};
use crate::engines::deepgram::DeepgramSettings;
use crate::engines::embedded::VoiceChoice;
use crate::engines::openai::{LlmSettings, DEFAULT_BASE_URL, DEFAULT_MODEL};
use crate::redact::Secret;

/// The engine set, and whether its stages default to their cloud engines (`ENGINES=cloud`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Stages {
    /// The set.
    pub engines: EngineChoice,
    /// `ENGINES=cloud`.
    pub cloud: bool,
}

impl Stages {
    /// The engine `variable` names for its stage, or the preset's (`embedded` or `cloud`);
    /// `None` with the loopback set, which has no stages to choose.
    fn choice<F: Fn(&str) -> Option<String>>(
        self,
        vars: &Vars<'_, F>,
        variable: &'static str,
        (embedded, cloud): (&str, &str),
    ) -> Result<Option<String>, ConfigError> {
        let value = vars.get(variable);
        if self.engines == EngineChoice::Loopback {
            return match value {
                None => Ok(None),
                Some(_) => Err(vars.invalid(
                    variable,
                    "not used with ENGINES=loopback (its stages echo the caller)".into(),
                )),
            };
        }
        let preset = if self.cloud { cloud } else { embedded };
        Ok(Some(value.unwrap_or_else(|| preset.to_owned())))
    }
}

/// What hears the caller.
#[derive(Debug, Clone)]
pub enum HearingChoice {
    /// The embedded recogniser.
    Embedded,
    /// Deepgram, backed by the embedded recogniser.
    Deepgram(Box<DeepgramSettings>),
}

/// `STT` and its settings.
pub(super) fn hearing<F: Fn(&str) -> Option<String>>(
    vars: &Vars<'_, F>,
    stages: Stages,
) -> Result<HearingChoice, ConfigError> {
    match stages
        .choice(vars, "STT", ("embedded", "deepgram"))?
        .as_deref()
    {
        None | Some("embedded") => Ok(HearingChoice::Embedded),
        Some("deepgram") => deepgram(vars).map(|s| HearingChoice::Deepgram(Box::new(s))),
        Some(other) => {
            Err(vars.invalid("STT", format!("{other:?} (expected: embedded or deepgram)")))
        }
    }
}

fn deepgram<F: Fn(&str) -> Option<String>>(
    vars: &Vars<'_, F>,
) -> Result<DeepgramSettings, ConfigError> {
    let key = vars.get("DEEPGRAM_API_KEY").ok_or_else(|| {
        vars.invalid(
            "DEEPGRAM_API_KEY",
            "required with STT=deepgram: the key of your Deepgram project".into(),
        )
    })?;
    let mut settings = DeepgramSettings::new(Secret::new(key));
    if let Some(base_url) = vars.get("DEEPGRAM_BASE_URL") {
        if !base_url.starts_with("wss://") && !base_url.starts_with("ws://") {
            return Err(vars.invalid(
                "DEEPGRAM_BASE_URL",
                format!("{base_url:?} is not a ws(s) URL such as wss://api.deepgram.com"),
            ));
        }
        settings.base_url = base_url;
    }
    if let Some(model) = vars.get("DEEPGRAM_MODEL") {
        settings.model = model;
    }
    settings.endpointing_ms = vars.bounded("DEEPGRAM_ENDPOINTING_MS", "300", 10..=5_000)?;
    settings.utterance_end_ms = vars.bounded("DEEPGRAM_UTTERANCE_END_MS", "1000", 1_000..=5_000)?;
    settings.keepalive_interval = vars.duration("DEEPGRAM_KEEPALIVE_INTERVAL", "4s")?;
    settings.connect_timeout = vars.duration("DEEPGRAM_CONNECT_TIMEOUT", "5s")?;
    settings.stall_timeout = vars.duration("DEEPGRAM_STALL_TIMEOUT", "10s")?;
    Ok(settings)
}

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
pub(super) fn speech<F: Fn(&str) -> Option<String>>(
    vars: &Vars<'_, F>,
    stages: Stages,
    voice: &mut VoiceChoice,
) -> Result<SpeechChoice, ConfigError> {
    // Unset with the embedded preset: the voice of TTS_VOICE as it is.
    let embedded = match voice {
        VoiceChoice::Piper => "piper",
        VoiceChoice::Flite(_) => "flite",
    };
    match stages
        .choice(vars, "TTS", (embedded, "cartesia"))?
        .as_deref()
    {
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

/// `LLM` and its settings.
pub(super) fn dialogue<F: Fn(&str) -> Option<String>>(
    vars: &Vars<'_, F>,
    stages: Stages,
) -> Result<DialogueChoice, ConfigError> {
    match stages.choice(vars, "LLM", ("script", "openai"))?.as_deref() {
        None | Some("script") => Ok(DialogueChoice::Script),
        Some("openai") => llm(vars).map(DialogueChoice::Llm),
        Some(other) => Err(vars.invalid("LLM", format!("{other:?} (expected: script or openai)"))),
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
