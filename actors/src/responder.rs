//! Responder: the caller's turns in, the agent's reply out as clauses, over a [`Dialogue`] engine.
//!
//! ```text
//! CallActor --UserTurn--> Responder --(dialogue session)--> Speak (one per clause) --> Synthesizer
//! ```
//!
//! It keeps the conversation history (bounded) and answers one turn at a time, in order: a turn that
//! arrives while a reply streams waits for it. Reply text is cut at clause boundaries so synthesis
//! can start before the whole reply exists. Supervised like every child (see [`ChildSupervision`]).

use std::collections::VecDeque;
use std::sync::Arc;

use actix::prelude::*;
use actix::WeakAddr;
use futures_util::{stream, StreamExt};

use crate::call::messages::AgentAction;
use crate::call::supervision::{ChildSupervision, StopChild};
use crate::engines::{
    CallContext, ChatMessage, Dialogue, DialogueAction, DialogueSession, EngineError, Role,
};
use crate::ids::UtteranceId;
use crate::synthesizer::{Speak, Synthesizer};

/// Lines of history kept and given to the dialogue; older lines are forgotten.
pub const MAX_HISTORY: usize = 64;

/// Turns waiting for the reply in progress; when more arrive, the oldest waiting turn is dropped
/// (a caller who said many things while the agent composed wants the latest answered).
pub const MAX_WAITING_TURNS: usize = 16;

/// The utterance id of the greeting; the CallActor numbers the caller's turns from 1.
pub const GREETING: UtteranceId = UtteranceId(0);

/// The caller finished a turn; answer it as `utterance`.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct UserTurn {
    /// Id of the reply to produce.
    pub utterance: UtteranceId,
    /// What the caller said.
    pub text: String,
}

/// An item of the current reply's stream.
enum ReplyItem {
    Text(UtteranceId, Result<String, EngineError>),
    Done(UtteranceId),
}

/// The reply being streamed.
struct Replying {
    utterance: UtteranceId,
    clauses: ClauseSplitter,
    text: String,
}

/// The dialogue side of one call.
pub struct Responder {
    engine: Arc<dyn Dialogue>,
    call: CallContext,
    synthesizer: WeakAddr<Synthesizer>,
    supervision: ChildSupervision,
    session: Option<Box<dyn DialogueSession>>,
    history: VecDeque<ChatMessage>,
    waiting: VecDeque<UserTurn>,
    replying: Option<Replying>,
    greeted: bool,
    actions: Recipient<AgentAction>,
    /// The dialogue ended the call: later turns are not answered (the goodbye plays out).
    ending: bool,
}

impl Responder {
    /// A responder for `call` whose clauses go to `synthesizer` and whose replies' actions go to
    /// `actions` (the CallActor).
    pub fn new(
        engine: Arc<dyn Dialogue>,
        call: CallContext,
        synthesizer: WeakAddr<Synthesizer>,
        actions: Recipient<AgentAction>,
        supervision: ChildSupervision,
    ) -> Self {
        Self {
            engine,
            call,
            synthesizer,
            supervision,
            session: None,
            history: VecDeque::new(),
            waiting: VecDeque::new(),
            replying: None,
            greeted: false,
            actions,
            ending: false,
        }
    }

    fn open_session(&mut self, ctx: &mut Context<Self>) {
        match self.engine.open(&self.call) {
            Ok(mut session) => {
                if !self.greeted {
                    self.greeted = true;
                    if let Some(greeting) = session.greeting() {
                        self.say_whole(GREETING, greeting);
                    }
                }
                self.session = Some(session);
                self.next_turn(ctx);
            }
            Err(error) => self.fail(error, ctx),
        }
    }

    fn fail(&mut self, error: EngineError, ctx: &mut Context<Self>) {
        self.supervision.failed(error);
        ctx.stop();
    }

    /// Starts the reply to the oldest waiting turn, if idle.
    fn next_turn(&mut self, ctx: &mut Context<Self>) {
        if self.replying.is_some() {
            return;
        }
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let Some(turn) = self.waiting.pop_front() else {
            return;
        };
        remember(&mut self.history, Role::User, turn.text);
        let utterance = turn.utterance;
        let history: Vec<ChatMessage> = self.history.iter().cloned().collect();
        let reply = session
            .reply(&history)
            .map(move |item| ReplyItem::Text(utterance, item))
            .chain(stream::once(async move { ReplyItem::Done(utterance) }));
        self.replying = Some(Replying {
            utterance,
            clauses: ClauseSplitter::default(),
            text: String::new(),
        });
        ctx.add_stream(reply);
    }

    /// Speaks a complete text (not streamed) clause by clause and remembers it.
    fn say_whole(&mut self, utterance: UtteranceId, text: String) {
        let mut clauses = ClauseSplitter::default();
        for clause in clauses.push(&text) {
            self.speak(utterance, clause, false);
        }
        self.speak(utterance, clauses.finish(), true);
        remember(&mut self.history, Role::Assistant, text);
    }

    fn speak(&self, utterance: UtteranceId, text: String, last: bool) {
        if let Some(synthesizer) = self.synthesizer.upgrade() {
            synthesizer.do_send(Speak {
                utterance,
                text,
                last,
            });
        }
    }
}

fn remember(history: &mut VecDeque<ChatMessage>, role: Role, text: String) {
    if history.len() == MAX_HISTORY {
        history.pop_front();
    }
    history.push_back(ChatMessage { role, text });
}

impl Actor for Responder {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.supervision.open_after_backoff(ctx, Self::open_session);
    }
}

impl Supervised for Responder {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.session = None;
        self.replying = None;
    }
}

impl Handler<UserTurn> for Responder {
    type Result = ();

    fn handle(&mut self, turn: UserTurn, ctx: &mut Context<Self>) {
        if self.ending {
            return;
        }
        if self.waiting.len() == MAX_WAITING_TURNS {
            self.waiting.pop_front();
            tracing::warn!(parent: self.supervision.span(), "dialogue behind: oldest waiting turn dropped");
        }
        self.waiting.push_back(turn);
        self.next_turn(ctx);
    }
}

impl StreamHandler<ReplyItem> for Responder {
    fn handle(&mut self, item: ReplyItem, ctx: &mut Context<Self>) {
        let Some(replying) = self.replying.as_mut() else {
            return;
        };
        match item {
            ReplyItem::Text(utterance, Ok(fragment)) if utterance == replying.utterance => {
                replying.text.push_str(&fragment);
                let clauses = replying.clauses.push(&fragment);
                for clause in clauses {
                    self.speak(utterance, clause, false);
                }
            }
            ReplyItem::Text(_, Err(error)) => self.fail(error, ctx),
            ReplyItem::Done(utterance) if utterance == replying.utterance => {
                let rest = replying.clauses.finish();
                let text = std::mem::take(&mut replying.text);
                self.replying = None;
                self.speak(utterance, rest, true);
                remember(&mut self.history, Role::Assistant, text);
                if let Some(action) = self.session.as_mut().and_then(|s| s.take_action()) {
                    self.ending = action == DialogueAction::EndCall;
                    self.actions.do_send(AgentAction { utterance, action });
                }
                if self.ending {
                    self.waiting.clear();
                }
                self.next_turn(ctx);
            }
            // Items of a reply abandoned by a restart.
            ReplyItem::Text(..) | ReplyItem::Done(_) => {}
        }
    }

    fn finished(&mut self, _: &mut Context<Self>) {
        // Each reply stream ends with its `Done`; the actor lives on for the next turn.
    }
}

impl Handler<StopChild> for Responder {
    type Result = ();

    fn handle(&mut self, _: StopChild, ctx: &mut Context<Self>) {
        self.supervision.stop();
        ctx.stop();
    }
}

/// Characters that end a clause when followed by whitespace.
const CLAUSE_ENDINGS: &[char] = &['.', '!', '?', ';', ':'];

/// Commas end a clause only once it is at least this long, so short phrases stay whole.
const MIN_COMMA_CLAUSE_CHARS: usize = 40;

/// Cuts streamed text into clauses: sentence punctuation (or a comma in a long clause) followed by
/// whitespace ends one. Sans-I/O.
#[derive(Debug, Default)]
pub struct ClauseSplitter {
    pending: String,
}

impl ClauseSplitter {
    /// Adds a fragment; returns the clauses it completed, trimmed.
    pub fn push(&mut self, fragment: &str) -> Vec<String> {
        self.pending.push_str(fragment);
        let mut clauses = Vec::new();
        let mut start = 0;
        let mut previous: Option<(usize, char)> = None;
        for (index, ch) in self.pending.char_indices() {
            if let Some((end_index, end)) = previous {
                let long_enough = self.pending[start..end_index].len() >= MIN_COMMA_CLAUSE_CHARS;
                let ends_clause = CLAUSE_ENDINGS.contains(&end) || (end == ',' && long_enough);
                if ch.is_whitespace() && ends_clause {
                    let clause = self.pending[start..=end_index].trim();
                    if !clause.is_empty() {
                        clauses.push(clause.to_owned());
                    }
                    start = index;
                }
            }
            previous = Some((index, ch));
        }
        self.pending.drain(..start);
        clauses
    }

    /// Ends the text: whatever is pending, trimmed (may be empty).
    pub fn finish(&mut self) -> String {
        let rest = self.pending.trim().to_owned();
        self.pending.clear();
        rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_sentence_ends_across_fragments() {
        let mut splitter = ClauseSplitter::default();
        assert!(splitter.push("Hello there").is_empty());
        assert_eq!(splitter.push("! How can I"), vec!["Hello there!"]);
        assert_eq!(splitter.push(" help? Our price"), vec!["How can I help?"]);
        assert_eq!(splitter.finish(), "Our price");
    }

    #[test]
    fn decimals_and_short_commas_do_not_split() {
        let mut splitter = ClauseSplitter::default();
        assert!(splitter.push("It costs 9.99 dollars, or so").is_empty());
        assert_eq!(splitter.finish(), "It costs 9.99 dollars, or so");
    }

    #[test]
    fn long_clauses_split_at_commas() {
        let mut splitter = ClauseSplitter::default();
        let clauses =
            splitter.push("We are open every weekday from nine to five, and on Saturdays too. ");
        assert_eq!(
            clauses,
            vec![
                "We are open every weekday from nine to five,",
                "and on Saturdays too."
            ]
        );
    }
}
