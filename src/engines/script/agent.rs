//! The agent file (`agents/default.toml`): persona, prompts, intents, synonyms; loaded and checked
//! once at start-up.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use super::matcher::Matcher;
use crate::calls::number::E164;

/// Why an agent file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The file cannot be read.
    #[error("cannot read agent file {path}: {source}")]
    Read {
        /// The path tried.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML of the agent's shape.
    #[error("invalid agent file: {0}")]
    Parse(#[from] toml::de::Error),
    /// The file parses but says something unusable.
    #[error("invalid agent file: {0}")]
    Invalid(String),
}

/// What an intent makes the agent do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum IntentAction {
    /// Say the answer and carry on.
    #[default]
    Answer,
    /// Start collecting the booking details.
    Book,
    /// Hand the call to a person.
    Transfer,
    /// Say the answer (or the goodbye) and hang up.
    EndCall,
}

/// One thing callers ask for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Intent {
    /// Name recorded as the call's intent.
    pub name: String,
    /// Phrases callers use for it.
    pub examples: Vec<String>,
    /// What to say, if anything.
    #[serde(default)]
    pub answer: Option<String>,
    /// What to do.
    #[serde(default)]
    pub action: IntentAction,
}

/// The persona's fixed lines.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Persona {
    /// The agent's name.
    pub name: String,
    /// Who it answers for.
    pub organisation: String,
    /// First words of every call; must say it is an AI assistant.
    pub greeting: String,
    /// Follows an answer.
    pub anything_else: String,
    /// When nothing matched, the first time.
    pub fallback: String,
    /// When nothing matched twice: offers a person (only when calls can be transferred).
    pub offer_person: String,
    /// Before a transfer.
    pub transfer: String,
    /// When a caller asks for a person and calls cannot be transferred.
    #[serde(default = "default_no_transfer")]
    pub no_transfer: String,
    /// Where this agent's transfers go (E.164); instead of `TRANSFER_TO`.
    #[serde(default)]
    pub transfer_to: Option<String>,
    /// Before hanging up.
    pub goodbye: String,
}

fn default_no_transfer() -> String {
    "I'm sorry, I can't put you through to a person on this call. Is there anything else I can \
     help you with?"
        .into()
}

/// The booking flow's prompts; `{name}` and `{phone}` are filled in.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BookingPrompts {
    /// Asks for the caller's name.
    pub ask_name: String,
    /// Asks again when no name was heard.
    pub ask_name_again: String,
    /// Asks for a phone number.
    pub ask_phone: String,
    /// Asks again when no number was heard.
    pub ask_phone_again: String,
    /// Reads the number back.
    pub confirm_phone: String,
    /// Asks for consent to follow up.
    pub ask_consent: String,
    /// Closes the booking when the caller agreed to be contacted.
    pub done_with_consent: String,
    /// Closes the booking when the caller declined.
    pub done_without_consent: String,
}

/// How the agent talks when an LLM answers (`[llm]`; every field optional).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmPrompt {
    /// Who the model is and how it speaks; by default one built from the persona.
    pub system_prompt: Option<String>,
    /// The practice's facts the model may state; by default the scripted answers.
    pub facts: Option<Vec<String>>,
    /// The model, instead of `LLM_MODEL`.
    pub model: Option<String>,
    /// Sampling temperature (default 0.3: replies that stay close to the facts).
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// Longest reply in tokens (default 200: a spoken reply is a sentence or two).
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
}

impl Default for LlmPrompt {
    fn default() -> Self {
        Self {
            system_prompt: None,
            facts: None,
            model: None,
            temperature: default_temperature(),
            max_tokens: default_max_tokens(),
        }
    }
}

fn default_temperature() -> f64 {
    0.3
}

fn default_max_tokens() -> u32 {
    200
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentFile {
    agent: Persona,
    booking: BookingPrompts,
    intent: Vec<Intent>,
    #[serde(default)]
    synonyms: HashMap<String, Vec<String>>,
    #[serde(default)]
    llm: LlmPrompt,
}

/// A loaded, checked agent, shared by every call.
#[derive(Debug, Clone)]
pub struct AgentScript {
    /// Fixed lines.
    pub persona: Persona,
    /// Booking prompts.
    pub booking: BookingPrompts,
    /// Intents, in file order.
    pub intents: Vec<Intent>,
    /// Matches caller text to intents (same order).
    pub matcher: Matcher,
    /// Where this agent's transfers go, if its file says.
    pub transfer_to: Option<E164>,
    /// How it talks when an LLM answers.
    pub llm: LlmPrompt,
}

impl AgentScript {
    /// Reads and checks an agent file.
    pub fn load(path: &Path) -> Result<Self, AgentError> {
        let text = std::fs::read_to_string(path).map_err(|source| AgentError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text)
    }

    /// Parses and checks an agent definition.
    pub fn from_toml(text: &str) -> Result<Self, AgentError> {
        let file: AgentFile = toml::from_str(text)?;
        if file.intent.is_empty() {
            return Err(AgentError::Invalid("no [[intent]]".into()));
        }
        for intent in &file.intent {
            if intent.examples.iter().all(|e| e.trim().is_empty()) {
                return Err(AgentError::Invalid(format!(
                    "intent {:?} has no examples",
                    intent.name
                )));
            }
            if intent.action == IntentAction::Answer && intent.answer.is_none() {
                return Err(AgentError::Invalid(format!(
                    "intent {:?} has neither answer nor action",
                    intent.name
                )));
            }
        }
        let greeting = super::matcher::words(&file.agent.greeting);
        if !(0.0..=2.0).contains(&file.llm.temperature) || file.llm.max_tokens == 0 {
            return Err(AgentError::Invalid(
                "[llm]: temperature 0 to 2, max_tokens at least 1".into(),
            ));
        }
        if !greeting.iter().any(|w| w == "ai" || w == "artificial") {
            return Err(AgentError::Invalid(
                "the greeting must tell callers they are talking to an AI assistant".into(),
            ));
        }
        let synonyms = file
            .synonyms
            .iter()
            .flat_map(|(canonical, words)| {
                words
                    .iter()
                    .map(move |w| (w.to_lowercase(), canonical.to_lowercase()))
            })
            .collect();
        let examples: Vec<Vec<String>> = file.intent.iter().map(|i| i.examples.clone()).collect();
        let transfer_to = file
            .agent
            .transfer_to
            .as_deref()
            .map(E164::parse)
            .transpose()
            .map_err(|error| AgentError::Invalid(format!("transfer_to: {error}")))?;
        Ok(Self {
            transfer_to,
            matcher: Matcher::new(&examples, synonyms),
            persona: file.agent,
            booking: file.booking,
            intents: file.intent,
            llm: file.llm,
        })
    }

    /// Everything the agent can say, as written: the persona's lines, the booking prompts (with
    /// their `{name}`/`{phone}` placeholders) and the answers. Their constant clauses are
    /// synthesized once, at start-up.
    pub fn lines(&self) -> Vec<&str> {
        let persona = &self.persona;
        let booking = &self.booking;
        let answers = self.intents.iter().filter_map(|i| i.answer.as_deref());
        [
            &persona.greeting,
            &persona.anything_else,
            &persona.fallback,
            &persona.offer_person,
            &persona.transfer,
            &persona.no_transfer,
            &persona.goodbye,
            &booking.ask_name,
            &booking.ask_name_again,
            &booking.ask_phone,
            &booking.ask_phone_again,
            &booking.confirm_phone,
            &booking.ask_consent,
            &booking.done_with_consent,
            &booking.done_without_consent,
        ]
        .into_iter()
        .map(String::as_str)
        .chain(answers)
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: &str = include_str!("../../../agents/default.toml");

    #[test]
    fn the_default_agent_loads() {
        let agent = AgentScript::from_toml(DEFAULT).unwrap();
        assert!(agent.persona.greeting.contains("AI assistant"));
        for name in [
            "who_are_you",
            "pricing",
            "opening_hours",
            "book_appointment",
            "talk_to_person",
            "stop_calling",
            "goodbye",
        ] {
            assert!(agent.intents.iter().any(|i| i.name == name), "{name}");
        }
        let answers = agent.intents.iter().filter(|i| i.answer.is_some()).count();
        assert_eq!(agent.lines().len(), 15 + answers);
        assert!(agent.transfer_to.is_none());
    }

    #[test]
    fn mistakes_are_reported() {
        let no_disclosure = DEFAULT.replace(
            "an AI assistant for Bright Smile Dental. I can",
            "the assistant of Bright Smile Dental. I can",
        );
        assert!(matches!(
            AgentScript::from_toml(&no_disclosure),
            Err(AgentError::Invalid(_))
        ));
        let bad_number = DEFAULT.replace("[agent]", "[agent]\ntransfer_to = \"555-0100\"");
        assert!(matches!(
            AgentScript::from_toml(&bad_number),
            Err(AgentError::Invalid(_))
        ));
        let unknown_field = DEFAULT.replace("[booking]", "[booking]\ncolour = \"red\"");
        assert!(matches!(
            AgentScript::from_toml(&unknown_field),
            Err(AgentError::Parse(_))
        ));
        assert!(matches!(
            AgentScript::load(Path::new("/nonexistent/agent.toml")),
            Err(AgentError::Read { .. })
        ));
    }
}
