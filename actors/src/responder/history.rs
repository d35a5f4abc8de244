//! The conversation as the dialogue sees it: the last [`MAX_HISTORY`] lines, each with the
//! utterance it belongs to. The lines are kept as one ring of messages beside a ring of
//! utterances, so the dialogue is handed them as a slice, without copying: a turn's cost does not
//! grow with the history's length.

use std::collections::VecDeque;

use super::MAX_HISTORY;
use crate::engines::{ChatMessage, Role};
use crate::ids::UtteranceId;

/// The lines so far, oldest first.
#[derive(Debug, Default)]
pub(super) struct History {
    messages: VecDeque<ChatMessage>,
    utterances: VecDeque<UtteranceId>,
}

impl History {
    /// Adds a line, forgetting the oldest past [`MAX_HISTORY`].
    pub fn push(&mut self, utterance: UtteranceId, role: Role, text: String) {
        if self.messages.len() == MAX_HISTORY {
            self.messages.pop_front();
            self.utterances.pop_front();
        }
        self.messages.push_back(ChatMessage { role, text });
        self.utterances.push_back(utterance);
    }

    /// The lines, in order, as one slice (the ring is straightened in place when it wraps: a move
    /// of at most [`MAX_HISTORY`] small values, no allocation).
    pub fn lines(&mut self) -> &[ChatMessage] {
        self.messages.make_contiguous()
    }

    /// `reply` given the lines and then `extra` (a turn not yet remembered), as one slice.
    pub fn with_line<T>(
        &mut self,
        extra: ChatMessage,
        reply: impl FnOnce(&[ChatMessage]) -> T,
    ) -> T {
        self.messages.push_back(extra);
        let answer = reply(self.messages.make_contiguous());
        self.messages.pop_back();
        answer
    }

    /// The last line if the caller said it: its utterance and text, to amend.
    pub fn last_caller_line(&mut self) -> Option<(&mut UtteranceId, &mut String)> {
        let message = self.messages.back_mut().filter(|m| m.role == Role::User)?;
        Some((self.utterances.back_mut()?, &mut message.text))
    }

    /// The text of the caller's latest line of `utterance`.
    pub fn caller_text(&mut self, utterance: UtteranceId) -> Option<&mut String> {
        self.messages
            .iter_mut()
            .zip(&self.utterances)
            .rev()
            .find(|(message, said)| **said == utterance && message.role == Role::User)
            .map(|(message, _)| &mut message.text)
    }

    /// After a barge-in: the agent's line for `from` becomes `heard` (gone if empty), and its
    /// lines for the later replies up to `through` go.
    pub fn trim_to_heard(&mut self, from: UtteranceId, through: UtteranceId, heard: &str) {
        let mut kept = History::default();
        for (message, utterance) in self.messages.drain(..).zip(self.utterances.drain(..)) {
            let spoken = message.role == Role::Assistant && (from..=through).contains(&utterance);
            let text = match (spoken, utterance == from) {
                (false, _) => message.text,
                (true, true) => heard.to_owned(),
                (true, false) => String::new(),
            };
            if !(spoken && text.is_empty()) {
                kept.messages.push_back(ChatMessage {
                    role: message.role,
                    text,
                });
                kept.utterances.push_back(utterance);
            }
        }
        *self = kept;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(history: &mut History) -> Vec<String> {
        history.lines().iter().map(|m| m.text.clone()).collect()
    }

    #[test]
    fn keeps_the_last_lines_in_order_as_one_slice() {
        let mut history = History::default();
        for n in 0..(MAX_HISTORY as u64 + 3) {
            history.push(UtteranceId(n), Role::User, n.to_string());
        }
        let lines = texts(&mut history);
        assert_eq!(lines.len(), MAX_HISTORY);
        assert_eq!(
            (lines[0].as_str(), lines[MAX_HISTORY - 1].as_str()),
            ("3", "66")
        );
        let extra = ChatMessage {
            role: Role::User,
            text: "next".into(),
        };
        let seen = history.with_line(extra, |lines| lines.last().map(|m| m.text.clone()));
        assert_eq!(seen.as_deref(), Some("next"));
        assert_eq!(
            history.lines().len(),
            MAX_HISTORY,
            "the extra line is not kept"
        );
    }

    #[test]
    fn a_barge_in_keeps_what_was_heard_of_the_agents_lines() {
        let mut history = History::default();
        history.push(UtteranceId(1), Role::User, "prices?".into());
        history.push(
            UtteranceId(2),
            Role::Assistant,
            "Our prices start at".into(),
        );
        history.push(UtteranceId(3), Role::Assistant, "and then".into());
        history.push(UtteranceId(3), Role::User, "wait".into());
        history.trim_to_heard(UtteranceId(2), UtteranceId(3), "Our prices");
        assert_eq!(texts(&mut history), ["prices?", "Our prices", "wait"]);
        history.trim_to_heard(UtteranceId(2), UtteranceId(2), "");
        assert_eq!(texts(&mut history), ["prices?", "wait"]);
        if let Some((utterance, text)) = history.last_caller_line() {
            *utterance = UtteranceId(9);
            text.push_str(" please");
        }
        assert_eq!(
            history.caller_text(UtteranceId(9)).map(|t| t.as_str()),
            Some("wait please")
        );
        assert_eq!(
            history.caller_text(UtteranceId(1)).map(|t| t.as_str()),
            Some("prices?")
        );
    }
}
