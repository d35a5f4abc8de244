//! Responder: the caller's turns in, the agent's reply out as clauses, over a [`Dialogue`] engine.
//!
//! ```text
//! CallActor --UserTurn/SayLine/AmendTurn/CancelReply--> Responder
//! CallActor --SpeculateTurn, then CommitTurn or DiscardTurn--> Responder
//! Responder --(dialogue session)--> Speak (one per clause) --> Synthesizer
//! Responder --ReplyStarted/AgentAction/ExtractionUpdated--> call
//! ```
//!
//! It keeps the conversation history (bounded) and answers one turn at a time, in order: a turn that
//! arrives while a reply streams waits for it. Reply text is cut at clause boundaries so synthesis
//! can start before the whole reply exists. On a barge-in the reply is cancelled (its stream is
//! dropped, which stops the engine) and the agent's line in the history becomes what the caller
//! actually heard. Supervised like every child (see [`ChildSupervision`]).
//!
//! A turn the caller has probably finished is answered speculatively on a fork of the dialogue
//! session ([`DialogueSession::fork`]): its clauses go to the Synthesizer (which holds their
//! audio), but the history, the action and the extraction wait. Committed, the fork becomes the
//! session and the turn and reply join the history; discarded, the fork is dropped with everything
//! it changed. A dialogue that cannot fork, or a Responder busy with another reply, answers the
//! turn only once it is committed.

use std::collections::VecDeque;
use std::sync::Arc;

use actix::prelude::*;
use actix::WeakRecipient;
use futures_util::{stream, StreamExt};

use crate::engines::{
    CallContext, ChatMessage, Dialogue, DialogueAction, DialogueSession, EngineError, Extraction,
    Role,
};
use crate::events::{AgentAction, ExtractionUpdated, ReplyStarted};
use crate::ids::UtteranceId;
use crate::runtime::supervision::{ChildSupervision, StopChild};
use crate::synthesizer::Speak;
use history::History;

mod history;

/// Lines of history kept and given to the dialogue; older lines are forgotten.
pub const MAX_HISTORY: usize = 64;

/// Turns waiting for the reply in progress; when more arrive, the oldest waiting turn is dropped
/// (a caller who said many things while the agent composed wants the latest answered).
pub const MAX_WAITING_TURNS: usize = 16;

/// The utterance id of the greeting; the CallActor numbers everything else from 1.
pub const GREETING: UtteranceId = UtteranceId(0);

/// The caller finished a turn; answer it as `utterance`.
#[derive(Debug, PartialEq, Eq, Message)]
#[rtype(result = "()")]
pub struct UserTurn {
    /// Id of the reply to produce.
    pub utterance: UtteranceId,
    /// What the caller said.
    pub text: String,
    /// The turn continues the caller's previous one, whose reply was cancelled unheard: `text` is
    /// the whole of it and replaces that line of the history.
    pub amends: bool,
}

/// The caller has probably finished a turn: prepare its reply, as `turn.utterance`, to be kept by
/// [`CommitTurn`] or dropped by [`DiscardTurn`].
#[derive(Debug, PartialEq, Eq, Message)]
#[rtype(result = "()")]
pub struct SpeculateTurn {
    /// The turn as recognised so far.
    pub turn: UserTurn,
}

/// The speculative turn `utterance` is confirmed: its reply is the reply.
#[derive(Debug, PartialEq, Eq, Message)]
#[rtype(result = "()")]
pub struct CommitTurn {
    /// The speculative reply.
    pub utterance: UtteranceId,
}

/// The caller went on after the speculative turn `utterance`: its reply is dropped unheard, and
/// the turn forgotten (it will come again, longer).
#[derive(Debug, PartialEq, Eq, Message)]
#[rtype(result = "()")]
pub struct DiscardTurn {
    /// The speculative reply.
    pub utterance: UtteranceId,
}

/// Words that belong to the caller's turn answered as `utterance`, recognised after its reply
/// began: added to that line of the history, not answered again.
#[derive(Debug, PartialEq, Eq, Message)]
#[rtype(result = "()")]
pub struct AmendTurn {
    /// The reply whose turn the words belong to.
    pub utterance: UtteranceId,
    /// The words.
    pub text: String,
}

/// Say a fixed line as `utterance` (a check-in, a goodbye), outside the dialogue.
#[derive(Debug, PartialEq, Eq, Message)]
#[rtype(result = "()")]
pub struct SayLine {
    /// Its id.
    pub utterance: UtteranceId,
    /// The line.
    pub text: String,
}

/// Barge-in: cancel every reply up to `through`. The caller heard `heard` of `from` (the one
/// playing) and nothing of the later ones.
#[derive(Debug, PartialEq, Eq, Message)]
#[rtype(result = "()")]
pub struct CancelReply {
    /// The oldest utterance cancelled: the one the caller was hearing.
    pub from: UtteranceId,
    /// The newest utterance cancelled.
    pub through: UtteranceId,
    /// What the caller heard of `from`.
    pub heard: String,
}

/// Where a Responder reports: one recipient per event it emits.
pub struct ResponderReports {
    /// The first text of a reply arrived.
    pub replies: Recipient<ReplyStarted>,
    /// A reply asked for an action once heard.
    pub actions: Recipient<AgentAction>,
    /// A reply changed what the call has yielded.
    pub extractions: Recipient<ExtractionUpdated>,
}

impl ResponderReports {
    /// Every report to `to`.
    pub fn to<A>(to: &Addr<A>) -> Self
    where
        A: Actor<Context = Context<A>>
            + Handler<ReplyStarted>
            + Handler<AgentAction>
            + Handler<ExtractionUpdated>,
    {
        Self {
            replies: to.clone().recipient(),
            actions: to.clone().recipient(),
            extractions: to.clone().recipient(),
        }
    }
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
    stream: SpawnHandle,
}

/// A turn answered speculatively, until it is committed or discarded.
struct Speculation {
    turn: UserTurn,
    reply: Speculative,
}

/// How far a speculative reply got.
enum Speculative {
    /// Not started (the dialogue cannot fork, or another reply was under way): a commit answers
    /// the turn as usual.
    Waiting,
    /// Streaming on `session`, a fork of the dialogue; `done` holds its text once complete.
    Replying {
        session: Box<dyn DialogueSession>,
        done: Option<String>,
    },
    /// Its reply failed and its utterance was ended: a commit keeps the turn, unanswered.
    Failed,
}

/// A line of the history, with the utterance it belongs to (a caller line: the reply to it).
/// The dialogue side of one call.
pub struct Responder {
    engine: Arc<dyn Dialogue>,
    call: CallContext,
    speech: WeakRecipient<Speak>,
    supervision: ChildSupervision,
    session: Option<Box<dyn DialogueSession>>,
    history: History,
    waiting: VecDeque<UserTurn>,
    replying: Option<Replying>,
    greeted: bool,
    reports: ResponderReports,
    /// The reply that ended the call: later turns are not answered (the goodbye plays out),
    /// unless the caller interrupts it.
    ending: Option<UtteranceId>,
    /// What the dialogue had extracted when last reported.
    extraction: Option<Extraction>,
    /// The turn answered speculatively, if any.
    speculation: Option<Speculation>,
}

impl Responder {
    /// A responder for `call` whose clauses go to `speech` (the Synthesizer; weak, so the
    /// Synthesizer stops with the call, not with the last Responder) and whose replies' starts and
    /// actions go to `reports`.
    pub fn new(
        engine: Arc<dyn Dialogue>,
        call: CallContext,
        speech: WeakRecipient<Speak>,
        reports: ResponderReports,
        supervision: ChildSupervision,
    ) -> Self {
        Self {
            engine,
            call,
            speech,
            supervision,
            session: None,
            history: History::default(),
            waiting: VecDeque::new(),
            replying: None,
            greeted: false,
            reports,
            ending: None,
            extraction: None,
            speculation: None,
        }
    }

    fn open_session(&mut self, ctx: &mut Context<Self>) {
        match self.engine.open(&self.call) {
            Ok(mut session) => {
                if !self.greeted {
                    self.greeted = true;
                    // Always ends the greeting utterance, so the CallActor knows it is over.
                    let greeting = session.greeting().unwrap_or_default();
                    self.say_whole(GREETING, greeting);
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
        if self.session.is_none() {
            return;
        }
        let Some(turn) = self.waiting.pop_front() else {
            return;
        };
        let utterance = turn.utterance;
        self.remember_turn(turn);
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let reply = session.reply(self.history.lines());
        self.stream_reply(utterance, reply, ctx);
    }

    /// Streams `reply` as the reply `utterance`.
    fn stream_reply(
        &mut self,
        utterance: UtteranceId,
        reply: crate::engines::EngineStream<String>,
        ctx: &mut Context<Self>,
    ) {
        let reply = reply
            .map(move |item| ReplyItem::Text(utterance, item))
            .chain(stream::once(async move { ReplyItem::Done(utterance) }));
        let stream = ctx.add_stream(reply);
        self.replying = Some(Replying {
            utterance,
            clauses: ClauseSplitter::default(),
            text: String::new(),
            stream,
        });
    }

    /// Starts the speculative reply to `turn` on a fork of the dialogue, if the Responder is idle
    /// and the dialogue can fork.
    fn speculate(&mut self, turn: UserTurn, ctx: &mut Context<Self>) {
        let idle = self.replying.is_none() && self.waiting.is_empty() && self.ending.is_none();
        let fork = self
            .session
            .as_ref()
            .filter(|_| idle)
            .and_then(|session| session.fork());
        let reply = match fork {
            Some(mut session) => {
                let line = ChatMessage {
                    role: Role::User,
                    text: turn.text.clone(),
                };
                let reply = self.history.with_line(line, |lines| session.reply(lines));
                self.stream_reply(turn.utterance, reply, ctx);
                Speculative::Replying {
                    session,
                    done: None,
                }
            }
            None => Speculative::Waiting,
        };
        self.speculation = Some(Speculation { turn, reply });
    }

    /// Drops the speculative reply up to `through`, if any, unheard and unremembered.
    fn drop_speculation(&mut self, through: UtteranceId, ctx: &mut Context<Self>) {
        let Some(speculation) = self
            .speculation
            .take_if(|speculation| speculation.turn.utterance <= through)
        else {
            return;
        };
        let utterance = speculation.turn.utterance;
        if let Some(replying) = self.replying.take_if(|r| r.utterance == utterance) {
            ctx.cancel_future(replying.stream);
        }
    }

    /// The reply `utterance` is complete, with `text`: it joins the history, and its extraction and
    /// action are reported.
    fn reply_done(&mut self, utterance: UtteranceId, text: String) {
        if !text.is_empty() {
            self.remember(utterance, Role::Assistant, text);
        }
        self.report_extraction(utterance);
        if let Some(action) = self.session.as_mut().and_then(|s| s.take_action()) {
            if action == DialogueAction::EndCall {
                self.ending = Some(utterance);
                // Turns that came in meanwhile are remembered, not answered.
                while let Some(turn) = self.waiting.pop_front() {
                    self.remember_turn(turn);
                }
            }
            self.reports
                .actions
                .do_send(AgentAction { utterance, action });
        }
    }

    /// Answers `turn` once the replies before it are done; after a reply that ends the call, the
    /// turn is only remembered.
    fn answer(&mut self, turn: UserTurn, ctx: &mut Context<Self>) {
        if self.ending.is_some() {
            self.remember_turn(turn);
            return;
        }
        if self.waiting.len() == MAX_WAITING_TURNS {
            self.waiting.pop_front();
            tracing::warn!(parent: self.supervision.span(), "dialogue behind: oldest waiting turn dropped");
        }
        self.waiting.push_back(turn);
        self.next_turn(ctx);
    }

    /// Adds the caller's turn to the history; an amending turn replaces the caller's last line
    /// when nothing was said to it.
    fn remember_turn(&mut self, turn: UserTurn) {
        if turn.amends {
            if let Some((utterance, text)) = self.history.last_caller_line() {
                *utterance = turn.utterance;
                *text = turn.text;
                return;
            }
        }
        self.remember(turn.utterance, Role::User, turn.text);
    }

    /// Speaks a complete text (not streamed) clause by clause and remembers it.
    fn say_whole(&mut self, utterance: UtteranceId, text: String) {
        let mut clauses = ClauseSplitter::default();
        for clause in clauses.push(&text) {
            self.speak(utterance, clause, false);
        }
        self.speak(utterance, clauses.finish(), true);
        if !text.is_empty() {
            self.remember(utterance, Role::Assistant, text);
        }
    }

    fn speak(&self, utterance: UtteranceId, text: String, last: bool) {
        if let Some(speech) = self.speech.upgrade() {
            speech.do_send(Speak {
                utterance,
                text,
                last,
            });
        }
    }

    fn remember(&mut self, utterance: UtteranceId, role: Role, text: String) {
        self.history.push(utterance, role, text);
    }

    /// Reports what the dialogue has extracted, if the reply `utterance` changed it.
    fn report_extraction(&mut self, utterance: UtteranceId) {
        let extraction = self.session.as_ref().and_then(|s| s.extraction());
        if extraction.is_some() && extraction != self.extraction {
            self.extraction.clone_from(&extraction);
            if let Some(extraction) = extraction {
                let update = ExtractionUpdated {
                    utterance,
                    extraction,
                };
                self.reports.extractions.do_send(update);
            }
        }
    }
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
        if let Some(replying) = self.replying.take() {
            // Ends the interrupted reply, so the CallActor does not wait for it.
            self.speak(replying.utterance, String::new(), true);
            if let Some(speculation) = self
                .speculation
                .as_mut()
                .filter(|s| s.turn.utterance == replying.utterance)
            {
                speculation.reply = Speculative::Failed;
            }
        }
    }
}

impl Handler<UserTurn> for Responder {
    type Result = ();

    fn handle(&mut self, turn: UserTurn, ctx: &mut Context<Self>) {
        self.answer(turn, ctx);
    }
}

impl Handler<SpeculateTurn> for Responder {
    type Result = ();

    fn handle(&mut self, speculate: SpeculateTurn, ctx: &mut Context<Self>) {
        self.speculate(speculate.turn, ctx);
    }
}

impl Handler<CommitTurn> for Responder {
    type Result = ();

    fn handle(&mut self, commit: CommitTurn, ctx: &mut Context<Self>) {
        let Some(speculation) = self
            .speculation
            .take_if(|speculation| speculation.turn.utterance == commit.utterance)
        else {
            return;
        };
        match speculation.reply {
            Speculative::Waiting => self.answer(speculation.turn, ctx),
            Speculative::Replying { session, done } => {
                self.session = Some(session);
                self.remember_turn(speculation.turn);
                // Still streaming: it ends as any reply does.
                if let Some(text) = done {
                    self.reply_done(commit.utterance, text);
                    self.next_turn(ctx);
                }
            }
            Speculative::Failed => self.remember_turn(speculation.turn),
        }
    }
}

impl Handler<DiscardTurn> for Responder {
    type Result = ();

    fn handle(&mut self, discard: DiscardTurn, ctx: &mut Context<Self>) {
        self.drop_speculation(discard.utterance, ctx);
        self.next_turn(ctx);
    }
}

impl Handler<AmendTurn> for Responder {
    type Result = ();

    fn handle(&mut self, amend: AmendTurn, _: &mut Context<Self>) {
        let turn = self
            .waiting
            .iter_mut()
            .find(|turn| turn.utterance == amend.utterance)
            .map(|turn| &mut turn.text);
        let line = self.history.caller_text(amend.utterance);
        if let Some(text) = turn.or(line) {
            text.push(' ');
            text.push_str(&amend.text);
        }
    }
}

impl Handler<SayLine> for Responder {
    type Result = ();

    fn handle(&mut self, line: SayLine, _: &mut Context<Self>) {
        self.say_whole(line.utterance, line.text);
    }
}

impl Handler<CancelReply> for Responder {
    type Result = ();

    fn handle(&mut self, cancel: CancelReply, ctx: &mut Context<Self>) {
        self.drop_speculation(cancel.through, ctx);
        if let Some(replying) = self
            .replying
            .take_if(|replying| replying.utterance <= cancel.through)
        {
            // Dropping the stream cancels the engine's work on it.
            ctx.cancel_future(replying.stream);
            if !replying.text.is_empty() {
                self.remember(replying.utterance, Role::Assistant, replying.text);
            }
        }
        // Turns waiting for a cancelled reply were said, and are remembered, but not answered.
        while let Some(turn) = self.waiting.pop_front() {
            if turn.utterance > cancel.through {
                self.waiting.push_front(turn);
                break;
            }
            self.remember_turn(turn);
        }
        self.history
            .trim_to_heard(cancel.from, cancel.through, &cancel.heard);
        if self.ending.is_some_and(|ending| ending <= cancel.through) {
            self.ending = None;
        }
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
                if replying.text.is_empty() && !fragment.is_empty() {
                    self.reports.replies.do_send(ReplyStarted { utterance });
                }
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
                let speculation = self.speculation.as_mut();
                match speculation
                    .filter(|s| s.turn.utterance == utterance)
                    .map(|s| &mut s.reply)
                {
                    // Kept for the commit; the Synthesizer holds its audio meanwhile.
                    Some(Speculative::Replying { done, .. }) => *done = Some(text),
                    _ => self.reply_done(utterance, text),
                }
                self.next_turn(ctx);
            }
            // Items of a reply cancelled or abandoned by a restart.
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
    use std::sync::Mutex;

    use super::*;
    use crate::engines::EngineStream;
    use crate::events::ChildKind;
    use crate::testing::{call_context, recorder, supervision, Recorded};

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

    /// Greets, answers every turn with two fragments and asks to end the call after it; remembers
    /// the conversations it was given.
    #[derive(Clone, Default)]
    struct Receptionist {
        seen: Arc<Mutex<Vec<Vec<ChatMessage>>>>,
    }

    /// A dialogue engine whose sessions are clones of a session.
    struct Clones<T>(T);

    impl<T: DialogueSession + Clone + Sync + 'static> Dialogue for Clones<T> {
        fn name(&self) -> &'static str {
            "clones"
        }

        fn open(&self, _: &CallContext) -> Result<Box<dyn DialogueSession>, EngineError> {
            Ok(Box::new(self.0.clone()))
        }
    }

    impl DialogueSession for Receptionist {
        fn greeting(&mut self) -> Option<String> {
            Some("Hello.".into())
        }

        fn reply(&mut self, conversation: &[ChatMessage]) -> EngineStream<String> {
            self.seen.lock().unwrap().push(conversation.to_vec());
            Box::pin(stream::iter(
                ["Sure. We ", "open at nine."].map(|f| Ok(f.into())),
            ))
        }

        fn take_action(&mut self) -> Option<DialogueAction> {
            Some(DialogueAction::EndCall)
        }

        fn extraction(&self) -> Option<Extraction> {
            let answered = !self.seen.lock().unwrap().is_empty();
            Some(Extraction {
                intent: answered.then(|| "opening_hours".into()),
                ..Extraction::default()
            })
        }
    }

    /// A Responder over clones of a session, and what it sends.
    struct Alone {
        responder: Addr<Responder>,
        /// Held: the Responder's link to it is weak.
        speech: Recipient<Speak>,
        spoken: Recorded<Speak>,
        started: Recorded<ReplyStarted>,
        asked: Recorded<AgentAction>,
        extracted: Recorded<ExtractionUpdated>,
    }

    impl Alone {
        fn start<T: DialogueSession + Clone + Sync + 'static>(session: T) -> Self {
            let (speech, spoken) = recorder::<Speak>();
            let (replies, started) = recorder::<ReplyStarted>();
            let (actions, asked) = recorder::<AgentAction>();
            let (extractions, extracted) = recorder::<ExtractionUpdated>();
            let (supervision, _) = supervision(ChildKind::Responder);
            let engine = Arc::new(Clones(session));
            let reports = ResponderReports {
                replies,
                actions,
                extractions,
            };
            let weak = speech.downgrade();
            let responder = Supervisor::start(move |_| {
                Responder::new(engine, call_context(), weak, reports, supervision)
            });
            Self {
                responder,
                speech,
                spoken,
                started,
                asked,
                extracted,
            }
        }
    }

    fn said(speak: Speak) -> (u64, String, bool) {
        (speak.utterance.0, speak.text, speak.last)
    }

    #[actix::test]
    async fn greets_then_answers_a_turn_clause_by_clause_and_reports_its_start_and_action() {
        let dialogue = Receptionist::default();
        let Alone {
            responder,
            speech,
            mut spoken,
            mut started,
            mut asked,
            mut extracted,
        } = Alone::start(dialogue.clone());
        assert_eq!(said(spoken.next().await), (0, "Hello.".into(), true));

        responder.do_send(UserTurn {
            utterance: UtteranceId(1),
            text: "When do you open?".into(),
            amends: false,
        });
        assert_eq!(started.next().await.utterance, UtteranceId(1));
        assert_eq!(said(spoken.next().await), (1, "Sure.".into(), false));
        assert_eq!(
            said(spoken.next().await),
            (1, "We open at nine.".into(), true)
        );
        let update = extracted.next().await;
        assert_eq!(update.utterance, UtteranceId(1));
        assert_eq!(update.extraction.intent.as_deref(), Some("opening_hours"));
        let action = asked.next().await;
        assert_eq!(
            (action.utterance, action.action),
            (UtteranceId(1), DialogueAction::EndCall)
        );
        let seen = dialogue.seen.lock().unwrap().clone();
        assert_eq!(
            seen,
            [vec![
                ChatMessage {
                    role: Role::Assistant,
                    text: "Hello.".into()
                },
                ChatMessage {
                    role: Role::User,
                    text: "When do you open?".into()
                },
            ]]
        );
        drop(speech);
    }

    /// Numbers its replies (state a fork copies), asks for a transfer after each, and can fork.
    #[derive(Clone, Default)]
    struct Counter {
        replies: u32,
        seen: Arc<Mutex<Vec<Vec<ChatMessage>>>>,
    }

    impl DialogueSession for Counter {
        fn reply(&mut self, conversation: &[ChatMessage]) -> EngineStream<String> {
            self.seen.lock().unwrap().push(conversation.to_vec());
            self.replies += 1;
            let text = format!("Reply {}.", self.replies);
            Box::pin(stream::once(async move { Ok(text) }))
        }

        fn take_action(&mut self) -> Option<DialogueAction> {
            Some(DialogueAction::TransferCall)
        }

        fn fork(&self) -> Option<Box<dyn DialogueSession>> {
            Some(Box::new(self.clone()))
        }
    }

    #[actix::test]
    async fn a_speculative_reply_changes_nothing_unless_committed() {
        let dialogue = Counter::default();
        let Alone {
            responder,
            speech,
            mut spoken,
            mut asked,
            ..
        } = Alone::start(dialogue.clone());
        assert_eq!(said(spoken.next().await), (0, String::new(), true));
        let turn = |utterance, text: &str| UserTurn {
            utterance: UtteranceId(utterance),
            text: text.into(),
            amends: false,
        };

        // Prepared, then dropped: the next reply is the first, and never saw the dropped turn.
        let turn1 = turn(1, "I want to book");
        responder.do_send(SpeculateTurn { turn: turn1 });
        assert_eq!(said(spoken.next().await), (1, "Reply 1.".into(), true));
        responder.do_send(DiscardTurn {
            utterance: UtteranceId(1),
        });
        responder.do_send(turn(2, "I want to book a cleaning"));
        assert_eq!(said(spoken.next().await), (2, "Reply 1.".into(), true));
        assert_eq!(
            asked.next().await.utterance,
            UtteranceId(2),
            "no action for 1"
        );

        // Prepared, then kept: its action is reported on the commit, and the dialogue goes on
        // from the fork's state, with the turn and its reply in the history.
        responder.do_send(SpeculateTurn {
            turn: turn(3, "on Tuesday"),
        });
        assert_eq!(said(spoken.next().await), (3, "Reply 2.".into(), true));
        responder.do_send(CommitTurn {
            utterance: UtteranceId(3),
        });
        assert_eq!(asked.next().await.utterance, UtteranceId(3));
        responder.do_send(turn(4, "thanks"));
        assert_eq!(said(spoken.next().await), (4, "Reply 3.".into(), true));
        let seen = dialogue.seen.lock().unwrap().clone();
        let last: Vec<&str> = seen[3].iter().map(|line| line.text.as_str()).collect();
        assert_eq!(
            last,
            [
                "I want to book a cleaning",
                "Reply 1.",
                "on Tuesday",
                "Reply 2.",
                "thanks"
            ]
        );
        drop(speech);
    }
}
