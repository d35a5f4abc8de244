//! The system prompt: who the model is (the agent file's `[llm].system_prompt`, or one built from
//! the persona), the only facts it may state, and the rules of a phone call and of its tools.

use crate::engines::script::agent::AgentScript;

/// The system prompt for `script`'s agent; `transfers`: whether calls can go to a person.
pub fn system_prompt(script: &AgentScript, transfers: bool) -> String {
    let persona = &script.persona;
    let who = script.llm.system_prompt.clone().unwrap_or_else(|| {
        format!(
            "You are {}, an AI assistant answering the phone for {}.",
            persona.name, persona.organisation
        )
    });
    let facts: Vec<&str> = match &script.llm.facts {
        Some(facts) => facts.iter().map(String::as_str).collect(),
        None => script
            .intents
            .iter()
            .filter_map(|intent| intent.answer.as_deref())
            .collect(),
    };
    let unknown = if transfers {
        "say you do not know and offer to connect them with a person"
    } else {
        "say you do not know and that someone from the team can call them back"
    };
    let person = if transfers {
        "When the caller asks for a person, or you cannot help, tell them you are connecting them \
         and call transfer_call."
    } else {
        "You cannot transfer calls: never offer or promise to connect the caller with a person."
    };
    let mut prompt = format!(
        "{who}\nYou already greeted the caller with: \"{greeting}\"\n\n\
         Facts you may state; say nothing else about {organisation}. If the caller asks \
         something these facts do not answer, {unknown}:\n",
        greeting = persona.greeting,
        organisation = persona.organisation,
    );
    for fact in facts {
        prompt.push_str("- ");
        prompt.push_str(fact);
        prompt.push('\n');
    }
    prompt.push_str(&format!(
        "\nYou are speaking on a phone call: answer in one or two short spoken sentences, with no \
         lists, markdown, emoji or abbreviations; say numbers as words. Never invent prices, times, \
         names or policies. Whenever you learn or correct the caller's name, phone number, what \
         they want, or whether they agree to be contacted, call save_details. {person} When the \
         caller says goodbye or has nothing more, say goodbye and call end_call. If the caller \
         asks not to be called again, apologise, call save_details with next_step \
         \"do_not_contact\" and consent_to_follow_up false, say goodbye and call end_call."
    ));
    prompt
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: &str = include_str!("../../../agents/default.toml");

    #[test]
    fn states_the_scripted_answers_as_facts_and_only_offers_what_is_possible() {
        let script = AgentScript::from_toml(DEFAULT).unwrap();
        let without = system_prompt(&script, false);
        assert!(without.starts_with("You are Ava, an AI assistant answering the phone for Bright"));
        assert!(without.contains("- A check-up with cleaning is ninety-five dollars"));
        assert!(without.contains("never offer or promise to connect"));
        assert!(!without.contains("transfer_call"));
        assert!(system_prompt(&script, true).contains("call transfer_call"));
        let custom = DEFAULT.replace(
            "[llm]\n",
            "[llm]\nsystem_prompt = \"You are Max.\"\nfacts = [\"We are closed on Sundays.\"]\n",
        );
        let prompt = system_prompt(&AgentScript::from_toml(&custom).unwrap(), false);
        assert!(prompt.starts_with("You are Max.\n"));
        assert!(prompt.contains("- We are closed on Sundays.\n\n"));
        assert!(!prompt.contains("ninety-five"));
    }
}
