//! Which engine answers for each stage, and the cloud providers' settings: `LLM=script|openai`
//! with `LLM_BASE_URL`, `LLM_API_KEY`, `LLM_MODEL` and its timeouts.
//!
//! A cloud stage without its key fails at start-up, naming the variable. An `http://` base URL
//! (a local llama.cpp, vLLM or Ollama server) may go without a key.

use super::vars::Vars;
use super::{ConfigError, EngineChoice};
use crate::engines::openai::{LlmSettings, DEFAULT_BASE_URL, DEFAULT_MODEL};
use crate::redact::Secret;

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
