//! Synthesizer: reply text in, 20 ms mu-law frames out, over a [`TextToSpeech`] engine.
//!
//! ```text
//! Responder --Speak--> Synthesizer --PlayAudio (frames + mark per chunk)--> MediaStream
//! Synthesizer --ChunkSent (per chunk), UtteranceSent (per utterance)--> CallActor
//! CallActor --CancelSpeech--> Synthesizer (barge-in: drop queued text and audio)
//! ```
//!
//! Clauses are synthesized one at a time, in order. Each chunk the engine yields is re-framed into
//! whole 160-byte frames (the remainder waits for the next chunk) and followed by a mark, so the
//! CallActor learns from Twilio's echoes what the caller heard, clause by clause. Only an
//! utterance's last frame is padded. Supervised like every child (see [`ChildSupervision`]).

use std::collections::VecDeque;
use std::sync::Arc;

use actix::prelude::*;
use futures_util::{stream, StreamExt};

use crate::audio::{AudioFrame, Framer};
use crate::call::messages::{ChunkSent, UtteranceSent};
use crate::call::supervision::{ChildSupervision, StopChild};
use crate::call::CallActor;
use crate::engines::{CallContext, EngineError, TextToSpeech, TtsSession};
use crate::ids::{MarkName, UtteranceId};
use crate::media::{MediaStream, PlayAudio};

/// One clause of reply text; its audio follows the previous clause's.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Speak {
    /// The reply this clause belongs to; `CancelSpeech` names the same id.
    pub utterance: UtteranceId,
    /// Text ending at a clause boundary, ready to synthesize (may be empty on the last clause).
    pub text: String,
    /// Whether this is the utterance's last clause: its audio ends with the padded last frame.
    pub last: bool,
}

/// Barge-in: drop every queued clause of `utterance` and earlier, the audio being made, and any
/// clause of those utterances that arrives later.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct CancelSpeech {
    /// The newest utterance to cancel.
    pub utterance: UtteranceId,
}

enum SynthItem {
    Audio(UtteranceId, Result<Vec<u8>, EngineError>),
    Done(UtteranceId),
}

/// The clause being synthesized.
struct Current {
    clause: Speak,
    stream: SpawnHandle,
}

/// The synthesis side of one call.
pub struct Synthesizer {
    engine: Arc<dyn TextToSpeech>,
    call: CallContext,
    media: Addr<MediaStream>,
    reports: Addr<CallActor>,
    supervision: ChildSupervision,
    session: Option<Box<dyn TtsSession>>,
    queue: VecDeque<Speak>,
    current: Option<Current>,
    framer: Framer,
    frames: Vec<AudioFrame>,
    /// Next chunk number within the current utterance.
    next_chunk: u32,
    /// The text of the clause whose first chunk is still to be sent.
    starting_clause: Option<Arc<str>>,
    /// Utterances up to this one are not spoken any more: cancelled by a barge-in, or interrupted
    /// by a restart (a reply missing its middle is worse than a reply cut short). Their chunk
    /// numbers are not reused.
    dropped_through: Option<UtteranceId>,
}

impl Synthesizer {
    /// A synthesizer for `call` whose audio goes to `media`; `reports` (the CallActor) learns each
    /// chunk and each utterance's last mark.
    pub fn new(
        engine: Arc<dyn TextToSpeech>,
        call: CallContext,
        media: Addr<MediaStream>,
        reports: Addr<CallActor>,
        supervision: ChildSupervision,
    ) -> Self {
        Self {
            engine,
            call,
            media,
            reports,
            supervision,
            session: None,
            queue: VecDeque::new(),
            current: None,
            framer: Framer::new(),
            frames: Vec::new(),
            next_chunk: 0,
            starting_clause: None,
            dropped_through: None,
        }
    }

    fn open_session(&mut self, ctx: &mut Context<Self>) {
        match self.engine.open(&self.call) {
            Ok(session) => {
                self.session = Some(session);
                self.next_clause(ctx);
            }
            Err(error) => self.fail(error, ctx),
        }
    }

    fn fail(&mut self, error: EngineError, ctx: &mut Context<Self>) {
        self.supervision.failed(error);
        ctx.stop();
    }

    /// Starts synthesizing the next queued clause, if idle.
    fn next_clause(&mut self, ctx: &mut Context<Self>) {
        while self.current.is_none() {
            let Some(session) = self.session.as_mut() else {
                return;
            };
            let Some(clause) = self.queue.pop_front() else {
                return;
            };
            if clause.text.is_empty() {
                self.end_clause(&clause);
                continue;
            }
            let utterance = clause.utterance;
            self.starting_clause = Some(Arc::from(clause.text.as_str()));
            let audio = session
                .synthesize(utterance, &clause.text)
                .map(move |item| SynthItem::Audio(utterance, item))
                .chain(stream::once(async move { SynthItem::Done(utterance) }));
            let stream = ctx.add_stream(audio);
            self.current = Some(Current { clause, stream });
        }
    }

    /// Frames `chunk` and sends the whole frames, followed by a mark.
    fn play(&mut self, utterance: UtteranceId, chunk: &[u8]) {
        self.framer.push(chunk, &mut self.frames);
        self.send_frames(utterance);
    }

    /// After an utterance's last clause, the padded remainder goes out as the last chunk.
    fn end_clause(&mut self, clause: &Speak) {
        if !clause.last {
            return;
        }
        self.frames.extend(self.framer.finish());
        self.send_frames(clause.utterance);
        let last_mark = self.next_chunk.checked_sub(1).map(|chunk| MarkName {
            utterance: clause.utterance,
            chunk,
        });
        self.reports.do_send(UtteranceSent {
            utterance: clause.utterance,
            last_mark,
        });
        self.next_chunk = 0;
    }

    fn send_frames(&mut self, utterance: UtteranceId) {
        if self.frames.is_empty() {
            return;
        }
        let mark = MarkName {
            utterance,
            chunk: self.next_chunk,
        };
        self.next_chunk += 1;
        let frames: Vec<_> = self.frames.drain(..).map(|frame| frame.payload).collect();
        self.reports.do_send(ChunkSent {
            mark,
            frames: frames.len() as u32,
            clause: self.starting_clause.take(),
        });
        // do_send: outbound audio must not be dropped; it is buffered as data in the MediaStream's
        // pacer (which barge-in clears), not here.
        self.media.do_send(PlayAudio { mark, frames });
    }
}

impl Actor for Synthesizer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.supervision.open_after_backoff(ctx, Self::open_session);
    }
}

impl Supervised for Synthesizer {
    fn restarting(&mut self, _: &mut Context<Self>) {
        let interrupted = self.current.as_ref().map(|c| c.clause.utterance);
        let queued = self.queue.back().map(|clause| clause.utterance);
        if let Some(utterance) = interrupted.max(queued) {
            // The CallActor must not wait for marks that will never come.
            self.reports.do_send(UtteranceSent {
                utterance,
                last_mark: None,
            });
        }
        self.dropped_through = self.dropped_through.max(interrupted.max(queued));
        self.session = None;
        self.current = None;
        self.queue.clear();
        self.framer.discard();
        self.next_chunk = 0;
    }
}

impl Handler<Speak> for Synthesizer {
    type Result = ();

    fn handle(&mut self, clause: Speak, ctx: &mut Context<Self>) {
        if self
            .dropped_through
            .is_some_and(|dropped| clause.utterance <= dropped)
        {
            return;
        }
        self.queue.push_back(clause);
        self.next_clause(ctx);
    }
}

impl Handler<CancelSpeech> for Synthesizer {
    type Result = ();

    fn handle(&mut self, cancel: CancelSpeech, ctx: &mut Context<Self>) {
        self.dropped_through = self.dropped_through.max(Some(cancel.utterance));
        self.queue
            .retain(|clause| clause.utterance > cancel.utterance);
        if let Some(current) = self
            .current
            .take_if(|c| c.clause.utterance <= cancel.utterance)
        {
            ctx.cancel_future(current.stream);
            self.framer.discard();
            self.next_chunk = 0;
            self.starting_clause = None;
        }
        self.next_clause(ctx);
    }
}

impl StreamHandler<SynthItem> for Synthesizer {
    fn handle(&mut self, item: SynthItem, ctx: &mut Context<Self>) {
        let Some(current) = &self.current else {
            return;
        };
        match item {
            SynthItem::Audio(utterance, Ok(chunk)) if utterance == current.clause.utterance => {
                self.play(utterance, &chunk);
            }
            SynthItem::Audio(_, Err(error)) => self.fail(error, ctx),
            SynthItem::Done(utterance) if utterance == current.clause.utterance => {
                if let Some(done) = self.current.take() {
                    self.end_clause(&done.clause);
                }
                self.next_clause(ctx);
            }
            // Items of a cancelled clause still in flight.
            SynthItem::Audio(..) | SynthItem::Done(_) => {}
        }
    }

    fn finished(&mut self, _: &mut Context<Self>) {
        // Each clause's stream ends with its `Done`; the actor lives on for the next clause.
    }
}

impl Handler<StopChild> for Synthesizer {
    type Result = ();

    fn handle(&mut self, _: StopChild, ctx: &mut Context<Self>) {
        self.supervision.stop();
        ctx.stop();
    }
}
