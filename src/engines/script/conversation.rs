//! One call's scripted conversation: intents, the booking flow, and what it extracts.
//!
//! Sans-I/O: [`Conversation::respond`] takes what the caller said and returns what to say and do.
//! The booking flow collects the caller's name and phone number (read back for confirmation) and
//! asks for consent to follow up; the extraction records those with the intent and the next step.
//! When nothing matches, it asks again once, then offers a person.

use std::sync::Arc;

use phone_agent_actors::engines::Extraction;

use super::agent::{AgentScript, IntentAction};
use super::matcher::words;
use super::numbers::{read_back, spoken_digits};

/// An intent must score at least this to count (see `matcher`).
const MATCH_THRESHOLD: f64 = 0.6;

/// While the booking flow asks a question, an intent must score this to interrupt it ("actually,
/// connect me to a person"); answers to the question itself rarely look like an intent.
const INTERRUPT_THRESHOLD: f64 = 0.8;

/// An intent scoring this is answered from the script even when an LLM answers everything else.
const SURE_THRESHOLD: f64 = 0.8;

/// Fewest and most digits accepted as a phone number.
const PHONE_DIGITS: std::ops::RangeInclusive<usize> = 7..=15;

/// What the agent does besides speaking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Hand the call to a person.
    Transfer,
    /// Hang up once the reply has played.
    EndCall,
}

/// The agent's reply to one caller turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// What to say.
    pub text: String,
    /// What to do after saying it.
    pub action: Option<Action>,
}

impl Reply {
    fn say(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            action: None,
        }
    }

    fn then(text: impl Into<String>, action: Action) -> Self {
        Self {
            text: text.into(),
            action: Some(action),
        }
    }
}

/// Where the conversation is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    Open,
    OfferedPerson,
    AskName { retried: bool },
    AskPhone { retried: bool },
    ConfirmPhone { digits: String },
    AskConsent,
}

/// The scripted conversation of one call; a clone is a fork of it (for a speculative reply).
#[derive(Debug, Clone)]
pub struct Conversation {
    script: Arc<AgentScript>,
    /// Whether the call can be handed to a person.
    transfers: bool,
    stage: Stage,
    misses: u32,
    extraction: Extraction,
}

impl Conversation {
    /// A conversation that has not started; `transfers`: whether the call can be handed to a
    /// person (otherwise the agent never offers to).
    pub fn new(script: Arc<AgentScript>, transfers: bool) -> Self {
        Self {
            script,
            transfers,
            stage: Stage::Open,
            misses: 0,
            extraction: Extraction::default(),
        }
    }

    /// The first words of the call.
    pub fn greeting(&self) -> &str {
        &self.script.persona.greeting
    }

    /// What the call has yielded so far.
    pub fn extraction(&self) -> &Extraction {
        &self.extraction
    }

    /// Answers what the caller said.
    pub fn respond(&mut self, said: &str) -> Reply {
        let intent = self.script.matcher.best(said);
        let interrupting = intent.filter(|&(_, score)| score >= INTERRUPT_THRESHOLD);
        match std::mem::replace(&mut self.stage, Stage::Open) {
            Stage::Open => self.open(intent.filter(|&(_, score)| score >= MATCH_THRESHOLD)),
            _ if interrupting.is_some() => self.open(interrupting),
            Stage::OfferedPerson => match yes_or_no(said) {
                Some(true) => self.transfer("talk_to_person"),
                Some(false) => Reply::say(self.script.persona.anything_else.clone()),
                None => self.open(intent.filter(|&(_, score)| score >= MATCH_THRESHOLD)),
            },
            Stage::AskName { retried } => self.take_name(said, retried),
            Stage::AskPhone { retried } => self.take_phone(said, retried),
            Stage::ConfirmPhone { digits } => self.confirm_phone(said, digits),
            Stage::AskConsent => self.take_consent(said),
        }
    }

    /// The script's reply when it is sure, for an agent whose other replies come from an LLM: no
    /// booking question pending, and an intent that answers, transfers or ends the call scoring
    /// at least [`SURE_THRESHOLD`]. Booking is left to the LLM, which takes names and corrections
    /// more naturally. `None` changes nothing.
    pub fn sure_reply(&mut self, said: &str) -> Option<Reply> {
        if self.stage != Stage::Open {
            return None;
        }
        let (index, score) = self.script.matcher.best(said)?;
        if score < SURE_THRESHOLD || self.script.intents[index].action == IntentAction::Book {
            return None;
        }
        Some(self.open(Some((index, score))))
    }

    fn open(&mut self, intent: Option<(usize, f64)>) -> Reply {
        let Some((index, _)) = intent else {
            return self.miss();
        };
        self.misses = 0;
        let intent = &self.script.intents[index];
        self.extraction.intent = Some(intent.name.clone());
        match intent.action {
            IntentAction::Answer => {
                let answer = intent.answer.clone().unwrap_or_default();
                Reply::say(format!("{answer} {}", self.script.persona.anything_else))
            }
            IntentAction::Book => {
                self.extraction.next_step = Some("book_appointment".into());
                match self.extraction.name.clone() {
                    Some(name) => self.ask_phone(&name),
                    None => {
                        self.stage = Stage::AskName { retried: false };
                        Reply::say(self.script.booking.ask_name.clone())
                    }
                }
            }
            IntentAction::Transfer => self.transfer(&intent.name.clone()),
            IntentAction::EndCall => {
                if intent.name == "stop_calling" {
                    self.extraction.consent_to_follow_up = Some(false);
                    self.extraction.next_step = Some("do_not_contact".into());
                }
                let text = intent
                    .answer
                    .clone()
                    .unwrap_or_else(|| self.script.persona.goodbye.clone());
                Reply::then(text, Action::EndCall)
            }
        }
    }

    fn miss(&mut self) -> Reply {
        self.misses += 1;
        if self.misses == 1 || !self.transfers {
            Reply::say(self.script.persona.fallback.clone())
        } else {
            self.misses = 0;
            self.stage = Stage::OfferedPerson;
            Reply::say(self.script.persona.offer_person.clone())
        }
    }

    /// Hands the call to a person, or, when calls cannot be transferred, says so and asks what
    /// else it can do (a person calls back).
    fn transfer(&mut self, intent: &str) -> Reply {
        self.extraction.intent = Some(intent.to_owned());
        if !self.transfers {
            self.extraction.next_step = Some("call_back_by_person".into());
            return Reply::say(self.script.persona.no_transfer.clone());
        }
        self.extraction.next_step = Some("transfer_to_person".into());
        Reply::then(self.script.persona.transfer.clone(), Action::Transfer)
    }

    fn take_name(&mut self, said: &str, retried: bool) -> Reply {
        match name_in(said) {
            Some(name) => {
                self.extraction.name = Some(name.clone());
                self.ask_phone(&name)
            }
            None if !retried => {
                self.stage = Stage::AskName { retried: true };
                Reply::say(self.script.booking.ask_name_again.clone())
            }
            None => self.miss(),
        }
    }

    fn ask_phone(&mut self, name: &str) -> Reply {
        self.stage = Stage::AskPhone { retried: false };
        Reply::say(self.script.booking.ask_phone.replace("{name}", name))
    }

    fn take_phone(&mut self, said: &str, retried: bool) -> Reply {
        let digits = spoken_digits(said);
        if PHONE_DIGITS.contains(&digits.len()) {
            let text = self
                .script
                .booking
                .confirm_phone
                .replace("{phone}", &read_back(&digits));
            self.stage = Stage::ConfirmPhone { digits };
            return Reply::say(text);
        }
        if retried {
            return self.miss();
        }
        self.stage = Stage::AskPhone { retried: true };
        Reply::say(self.script.booking.ask_phone_again.clone())
    }

    fn confirm_phone(&mut self, said: &str, digits: String) -> Reply {
        match yes_or_no(said) {
            Some(true) => {
                self.extraction.phone = Some(digits);
                self.stage = Stage::AskConsent;
                Reply::say(self.script.booking.ask_consent.clone())
            }
            // "No, it's five five five…": a correction may come with the "no".
            _ => self.take_phone(said, false),
        }
    }

    fn take_consent(&mut self, said: &str) -> Reply {
        let Some(consent) = yes_or_no(said) else {
            self.stage = Stage::AskConsent;
            return Reply::say(self.script.booking.ask_consent.clone());
        };
        self.extraction.consent_to_follow_up = Some(consent);
        let name = self.extraction.name.clone().unwrap_or_default();
        let (template, next_step) = if consent {
            (
                &self.script.booking.done_with_consent,
                "callback_to_confirm_appointment",
            )
        } else {
            (
                &self.script.booking.done_without_consent,
                "caller_to_call_back",
            )
        };
        self.extraction.next_step = Some(next_step.into());
        Reply::say(format!(
            "{} {}",
            template.replace("{name}", &name),
            self.script.persona.anything_else
        ))
    }
}

/// Whether `said` is a yes or a no; `None` when it is neither (or both).
fn yes_or_no(said: &str) -> Option<bool> {
    const YES: &[&str] = &[
        "yes",
        "yeah",
        "yep",
        "yup",
        "correct",
        "right",
        "sure",
        "ok",
        "okay",
        "exactly",
        "absolutely",
        "please",
    ];
    const NO: &[&str] = &["no", "nope", "nah", "wrong", "incorrect", "not", "dont"];
    let words = words(said);
    let yes = words.iter().any(|w| YES.contains(&w.as_str()));
    let no = words.iter().any(|w| NO.contains(&w.as_str()));
    match (yes, no) {
        (true, false) => Some(true),
        (false, true) => Some(false),
        _ => None,
    }
}

/// The name in "my name is Ada Lovelace", "it's Ada", "this is Ada", or a bare "Ada Lovelace".
fn name_in(said: &str) -> Option<String> {
    const LEADS: &[&[&str]] = &[
        &["my", "name", "is"],
        &["name", "is"],
        &["names"],
        &["this", "is"],
        &["its"],
        &["im"],
        &["i", "am"],
        &["call", "me"],
    ];
    const NOT_NAMES: &[&str] = &[
        "yes", "no", "yeah", "sure", "ok", "okay", "sorry", "what", "why", "hello", "hi",
    ];
    let words = words(said);
    let start = LEADS
        .iter()
        .find_map(|lead| {
            (0..words.len())
                .find(|&i| {
                    words[i..].starts_with(&lead.iter().map(|w| w.to_string()).collect::<Vec<_>>())
                })
                .map(|i| i + lead.len())
        })
        .unwrap_or(0);
    let name: Vec<String> = words[start.min(words.len())..]
        .iter()
        .take(3)
        .filter(|w| w.chars().all(char::is_alphabetic))
        .map(|w| capitalise(w))
        .collect();
    let bare_answer_too_long = start == 0 && words.len() > 3;
    if name.is_empty()
        || bare_answer_too_long
        || NOT_NAMES.contains(&name[0].to_lowercase().as_str())
    {
        return None;
    }
    Some(name.join(" "))
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conversation() -> Conversation {
        let script = AgentScript::from_toml(include_str!("../../../agents/default.toml")).unwrap();
        Conversation::new(Arc::new(script), true)
    }

    #[test]
    fn without_transfers_a_person_is_never_offered_nor_promised() {
        let script = AgentScript::from_toml(include_str!("../../../agents/default.toml")).unwrap();
        let persona = script.persona.clone();
        let mut call = Conversation::new(Arc::new(script), false);
        let asked = call.respond("can I talk to a person");
        assert_eq!(asked, Reply::say(persona.no_transfer.clone()));
        assert_eq!(
            call.extraction().next_step.as_deref(),
            Some("call_back_by_person")
        );
        for _ in 0..3 {
            assert_eq!(
                call.respond("blue giraffe"),
                Reply::say(persona.fallback.clone())
            );
        }
    }

    #[test]
    fn answers_questions_and_keeps_the_call_going() {
        let mut call = conversation();
        let reply = call.respond("What are your prices?");
        assert!(reply.text.contains("ninety-five dollars"), "{}", reply.text);
        assert!(reply
            .text
            .ends_with("Is there anything else I can help you with?"));
        assert_eq!(reply.action, None);
        assert!(call
            .respond("when are you open on saturday")
            .text
            .contains("Saturdays"));
        assert!(call
            .respond("wait, am I talking to a robot?")
            .text
            .contains("AI assistant"));
        assert_eq!(call.extraction().intent.as_deref(), Some("who_are_you"));
    }

    #[test]
    fn tolerates_recognition_errors() {
        let mut call = conversation();
        assert!(call
            .respond("what are you prizes")
            .text
            .contains("ninety-five dollars"));
        assert!(call
            .respond("how much does it caste")
            .text
            .contains("ninety-five dollars"));
    }

    #[test]
    fn books_with_name_phone_read_back_and_consent() {
        let mut call = conversation();
        assert!(call
            .respond("I'd like to book an appointment")
            .text
            .contains("your name"));
        assert!(call
            .respond("My name is Ada Lovelace")
            .text
            .starts_with("Thanks, Ada Lovelace."));
        let confirm = call.respond("five five five, one two three four");
        assert_eq!(
            confirm.text,
            "I have five five five, one two three four. Is that right?"
        );
        assert!(call.respond("yes").text.contains("May we call or text you"));
        let done = call.respond("yes please");
        assert!(
            done.text.starts_with("Thank you, Ada Lovelace."),
            "{}",
            done.text
        );
        assert_eq!(
            call.extraction(),
            &Extraction {
                name: Some("Ada Lovelace".into()),
                phone: Some("5551234".into()),
                intent: Some("book_appointment".into()),
                next_step: Some("callback_to_confirm_appointment".into()),
                consent_to_follow_up: Some(true),
            }
        );
    }

    #[test]
    fn a_wrong_read_back_is_corrected() {
        let mut call = conversation();
        call.respond("can I make an appointment");
        call.respond("it's Grace");
        call.respond("four one five five five five zero one nine nine");
        let again = call.respond("no, it's four one five five five five zero one nine eight");
        assert_eq!(
            again.text,
            "I have four one five, five five five, zero one nine eight. Is that right?"
        );
        call.respond("correct");
        call.respond("no thanks");
        assert_eq!(call.extraction().phone.as_deref(), Some("4155550198"));
        assert_eq!(call.extraction().consent_to_follow_up, Some(false));
        assert_eq!(
            call.extraction().next_step.as_deref(),
            Some("caller_to_call_back")
        );
    }

    #[test]
    fn unclear_input_is_asked_again_once_then_a_person_is_offered() {
        let mut call = conversation();
        assert!(call
            .respond("purple monkey dishwasher")
            .text
            .starts_with("Sorry, I didn't catch that"));
        assert!(call
            .respond("banana")
            .text
            .contains("connect you with a person"));
        let transfer = call.respond("yes");
        assert_eq!(transfer.action, Some(Action::Transfer));
        assert_eq!(
            call.extraction().next_step.as_deref(),
            Some("transfer_to_person")
        );
    }

    #[test]
    fn stop_and_goodbye_end_the_call() {
        let mut call = conversation();
        let stop = call.respond("please stop calling me");
        assert!(stop.text.starts_with("I'm sorry"));
        assert_eq!(stop.action, Some(Action::EndCall));
        assert_eq!(call.extraction().consent_to_follow_up, Some(false));

        let mut call = conversation();
        assert_eq!(call.respond("bye").action, Some(Action::EndCall));
    }

    #[test]
    fn a_strong_intent_interrupts_the_booking_flow() {
        let mut call = conversation();
        call.respond("book an appointment");
        let reply = call.respond("actually can I talk to a real person");
        assert_eq!(reply.action, Some(Action::Transfer));
    }

    #[test]
    fn names_are_found_in_common_phrasings() {
        assert_eq!(
            name_in("my name is ada lovelace").as_deref(),
            Some("Ada Lovelace")
        );
        assert_eq!(name_in("It's Grace.").as_deref(), Some("Grace"));
        assert_eq!(name_in("Alan Turing").as_deref(), Some("Alan Turing"));
        assert_eq!(name_in("yes"), None);
        assert_eq!(name_in("I would rather not say that"), None);
    }
}
