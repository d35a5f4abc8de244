//! Synthesizer: reply text in, 20 ms mu-law frames out, over a [`TextToSpeech`] engine.
//!
//! ```text
//! Responder --Speak--> Synthesizer --PlayAudio (frames + mark per chunk)--> MediaStream
//! Synthesizer --ChunkSent (per chunk), WordsTimed (word timings), UtteranceSent (per utterance)--> call
//! CallActor --CancelSpeech--> Synthesizer (barge-in: drop queued text and audio)
//! CallActor --HoldSpeech/ReleaseSpeech--> Synthesizer (a speculative reply: made now, sent once confirmed)
//! ```
//!
//! Clauses are synthesized one at a time, in order. Each chunk the engine yields is re-framed into
//! whole 160-byte frames (the remainder waits for the next chunk) and followed by a mark, so the
//! CallActor learns from Twilio's echoes what the caller heard, clause by clause. Word timings the
//! engine gives are reported once the clause's first chunk is (so they find their clause). Only an
//! utterance's last frame is padded. Supervised like every child (see [`ChildSupervision`]).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures_util::{stream, StreamExt};

use crate::audio::{AudioFrame, Framer};
use crate::engines::{CallContext, EngineError, Synthesized, TextToSpeech, TtsSession};
use crate::events::{ChunkSent, UtteranceSent, WordsTimed};
use crate::ids::{MarkName, UtteranceId};
use crate::media::PlayAudio;
use crate::runtime::supervision::{ChildSupervision, StopChild};

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

/// A speculative reply: synthesize `utterance` as usual, but keep its audio, and every report
/// about it, until [`ReleaseSpeech`] (the turn is confirmed); [`CancelSpeech`] drops them unheard.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct HoldSpeech {
    /// The reply to hold.
    pub utterance: UtteranceId,
}

/// The held `utterance` is confirmed: what was made of it goes out now, the rest as it comes.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ReleaseSpeech {
    /// The held reply.
    pub utterance: UtteranceId,
}

/// Something the Synthesizer sends, in the order it sends it.
enum Output {
    Audio(PlayAudio),
    Chunk(ChunkSent),
    Words(WordsTimed),
    Utterance(UtteranceSent),
}

/// What is kept of a held utterance until it is released.
struct Held {
    utterance: UtteranceId,
    outputs: Vec<Output>,
}

/// Where a Synthesizer reports: one recipient per event it emits.
pub struct SynthesizerReports {
    /// Each chunk sent, with its mark and the clause it starts.
    pub chunks: Recipient<ChunkSent>,
    /// Word timings of the clause being sent.
    pub words: Recipient<WordsTimed>,
    /// Each utterance's last chunk sent (or that it had no audio).
    pub utterances: Recipient<UtteranceSent>,
}

impl SynthesizerReports {
    /// Every report to `to`.
    pub fn to<A>(to: &Addr<A>) -> Self
    where
        A: Actor<Context = Context<A>>
            + Handler<ChunkSent>
            + Handler<WordsTimed>
            + Handler<UtteranceSent>,
    {
        Self {
            chunks: to.clone().recipient(),
            words: to.clone().recipient(),
            utterances: to.clone().recipient(),
        }
    }
}

enum SynthItem {
    Piece(UtteranceId, Result<Synthesized, EngineError>),
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
    audio: Recipient<PlayAudio>,
    reports: SynthesizerReports,
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
    /// Word timings of the clause that came before its first chunk was sent.
    early_word_ends: Vec<Duration>,
    /// Utterances up to this one are not spoken any more: cancelled by a barge-in, or interrupted
    /// by a restart (a reply missing its middle is worse than a reply cut short). Their chunk
    /// numbers are not reused.
    dropped_through: Option<UtteranceId>,
    /// A speculative reply whose output waits for its confirmation.
    held: Option<Held>,
}

impl Synthesizer {
    /// A synthesizer for `call` whose audio goes to `audio` (the MediaStream); `reports` learns
    /// each chunk and each utterance's last mark.
    pub fn new(
        engine: Arc<dyn TextToSpeech>,
        call: CallContext,
        audio: Recipient<PlayAudio>,
        reports: SynthesizerReports,
        supervision: ChildSupervision,
    ) -> Self {
        Self {
            engine,
            call,
            audio,
            reports,
            supervision,
            session: None,
            queue: VecDeque::new(),
            current: None,
            framer: Framer::new(),
            frames: Vec::new(),
            next_chunk: 0,
            starting_clause: None,
            early_word_ends: Vec::new(),
            dropped_through: None,
            held: None,
        }
    }

    /// Sends `output` about `utterance`, or keeps it while that utterance is held.
    fn emit(&mut self, utterance: UtteranceId, output: Output) {
        match &mut self.held {
            Some(held) if held.utterance == utterance => held.outputs.push(output),
            _ => self.send(output),
        }
    }

    fn send(&self, output: Output) {
        match output {
            // do_send: outbound audio must not be dropped; it is buffered as data in the
            // MediaStream's pacer (which barge-in clears), not here.
            Output::Audio(audio) => self.audio.do_send(audio),
            Output::Chunk(chunk) => self.reports.chunks.do_send(chunk),
            Output::Words(words) => self.reports.words.do_send(words),
            Output::Utterance(sent) => self.reports.utterances.do_send(sent),
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
            self.early_word_ends.clear();
            let audio = session
                .synthesize(utterance, &clause.text)
                .map(move |item| SynthItem::Piece(utterance, item))
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

    /// Reports where more words of the clause being synthesized end, or keeps them until its
    /// first chunk has been reported.
    fn words_timed(&mut self, utterance: UtteranceId, ends: Vec<Duration>) {
        if self.starting_clause.is_some() {
            self.early_word_ends.extend(ends);
        } else {
            self.emit(utterance, Output::Words(WordsTimed { utterance, ends }));
        }
    }

    /// After an utterance's last clause, the padded remainder goes out as the last chunk.
    fn end_clause(&mut self, clause: &Speak) {
        if !clause.last {
            return;
        }
        if let Some(session) = self.session.as_mut() {
            session.finish(clause.utterance);
        }
        self.frames.extend(self.framer.finish());
        self.send_frames(clause.utterance);
        let last_mark = self.next_chunk.checked_sub(1).map(|chunk| MarkName {
            utterance: clause.utterance,
            chunk,
        });
        let sent = UtteranceSent {
            utterance: clause.utterance,
            last_mark,
        };
        self.emit(clause.utterance, Output::Utterance(sent));
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
        let chunk = ChunkSent {
            mark,
            frames: frames.len() as u32,
            clause: self.starting_clause.take(),
        };
        self.emit(utterance, Output::Chunk(chunk));
        if !self.early_word_ends.is_empty() {
            let ends = std::mem::take(&mut self.early_word_ends);
            self.emit(utterance, Output::Words(WordsTimed { utterance, ends }));
        }
        self.emit(utterance, Output::Audio(PlayAudio { mark, frames }));
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
            let sent = UtteranceSent {
                utterance,
                last_mark: None,
            };
            self.emit(utterance, Output::Utterance(sent));
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
        // A held reply cancelled goes unheard: nothing of it was sent.
        self.held.take_if(|held| held.utterance <= cancel.utterance);
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
            self.early_word_ends.clear();
        }
        self.next_clause(ctx);
    }
}

impl Handler<HoldSpeech> for Synthesizer {
    type Result = ();

    fn handle(&mut self, hold: HoldSpeech, _: &mut Context<Self>) {
        self.held = Some(Held {
            utterance: hold.utterance,
            outputs: Vec::new(),
        });
    }
}

impl Handler<ReleaseSpeech> for Synthesizer {
    type Result = ();

    fn handle(&mut self, release: ReleaseSpeech, _: &mut Context<Self>) {
        if let Some(held) = self
            .held
            .take_if(|held| held.utterance == release.utterance)
        {
            for output in held.outputs {
                self.send(output);
            }
        }
    }
}

impl StreamHandler<SynthItem> for Synthesizer {
    fn handle(&mut self, item: SynthItem, ctx: &mut Context<Self>) {
        let Some(current) = &self.current else {
            return;
        };
        match item {
            SynthItem::Piece(utterance, Ok(piece)) if utterance == current.clause.utterance => {
                match piece {
                    Synthesized::Audio(chunk) => self.play(utterance, &chunk),
                    Synthesized::WordEnds(ends) => self.words_timed(utterance, ends),
                }
            }
            SynthItem::Piece(_, Err(error)) => self.fail(error, ctx),
            SynthItem::Done(utterance) if utterance == current.clause.utterance => {
                if let Some(done) = self.current.take() {
                    self.end_clause(&done.clause);
                }
                self.next_clause(ctx);
            }
            // Items of a cancelled clause still in flight.
            SynthItem::Piece(..) | SynthItem::Done(_) => {}
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::FRAME_BYTES;
    use crate::events::ChildKind;
    use crate::testing::{call_context, recorder, supervision, Recorded};

    /// Speaks every clause as 390 bytes of mu-law (about two and a half frames), in two chunks.
    struct TwoChunks;

    impl TextToSpeech for TwoChunks {
        fn name(&self) -> &'static str {
            "two-chunks"
        }

        fn open(&self, _: &CallContext) -> Result<Box<dyn TtsSession>, EngineError> {
            Ok(Box::new(TwoChunks))
        }
    }

    impl TtsSession for TwoChunks {
        fn synthesize(
            &mut self,
            _: UtteranceId,
            _: &str,
        ) -> crate::engines::EngineStream<Synthesized> {
            let ms = Duration::from_millis;
            // Timings before the first chunk and between the chunks, as a provider may send them.
            Box::pin(stream::iter([
                Ok(Synthesized::WordEnds(vec![ms(10)])),
                Ok(Synthesized::Audio(vec![0x11; 300])),
                Ok(Synthesized::WordEnds(vec![ms(30), ms(40)])),
                Ok(Synthesized::Audio(vec![0x22; 90])),
            ]))
        }
    }

    /// A Synthesizer over [`TwoChunks`] reporting to stub receivers, and what they get.
    struct Alone {
        synthesizer: Addr<Synthesizer>,
        played: Recorded<PlayAudio>,
        chunks: Recorded<ChunkSent>,
        words: Recorded<WordsTimed>,
        utterances: Recorded<UtteranceSent>,
    }

    impl Alone {
        fn start() -> Self {
            let (audio, played) = recorder();
            let (chunks, chunks_log) = recorder();
            let (words, words_log) = recorder();
            let (utterances, utterances_log) = recorder();
            let (supervision, _) = supervision(ChildKind::Synthesizer);
            let reports = SynthesizerReports {
                chunks,
                words,
                utterances,
            };
            let synthesizer = Supervisor::start(move |_| {
                let engine = Arc::new(TwoChunks);
                Synthesizer::new(engine, call_context(), audio, reports, supervision)
            });
            Self {
                synthesizer,
                played,
                chunks: chunks_log,
                words: words_log,
                utterances: utterances_log,
            }
        }
    }

    fn speak(utterance: u64, text: &str, last: bool) -> Speak {
        Speak {
            utterance: UtteranceId(utterance),
            text: text.into(),
            last,
        }
    }

    #[actix::test]
    async fn clauses_become_whole_frames_with_a_mark_per_chunk_and_a_padded_last_frame() {
        let mut alone = Alone::start();
        let (synthesizer, played) = (&alone.synthesizer, &mut alone.played);
        let (chunks_sent, utterances_sent) = (&mut alone.chunks, &mut alone.utterances);
        synthesizer.do_send(speak(1, "Hello there.", false));
        synthesizer.do_send(speak(1, "How can I help?", true));

        // First clause: 300 bytes make a frame (140 held), +90 another (70 held). Second clause:
        // +300 make two frames (50 held), +90 none (140 held); its end pads those into a frame.
        let mut chunks = Vec::new();
        for _ in 0..4 {
            let chunk = played.next().await;
            assert!(chunk.frames.iter().all(|frame| frame.len() == FRAME_BYTES));
            let reported = chunks_sent.next().await;
            assert_eq!(
                (reported.mark, reported.frames),
                (chunk.mark, chunk.frames.len() as u32)
            );
            let clause = reported.clause.map(|clause| clause.to_string());
            chunks.push((chunk.mark.to_string(), chunk.frames, clause));
        }
        let shape: Vec<(&str, usize, Option<&str>)> = chunks
            .iter()
            .map(|(mark, frames, clause)| (mark.as_str(), frames.len(), clause.as_deref()))
            .collect();
        assert_eq!(
            shape,
            [
                ("u1c0", 1, Some("Hello there.")),
                ("u1c1", 1, None),
                ("u1c2", 2, Some("How can I help?")),
                ("u1c3", 1, None),
            ]
        );
        let last = &chunks[3].1[0];
        assert_eq!(last[..50], [0x11; 50]);
        assert_eq!(last[50..140], [0x22; 90]);
        assert_eq!(last[140..], [0xFF; 20], "padded with mu-law silence");
        let sent = utterances_sent.next().await;
        assert_eq!(sent.utterance, UtteranceId(1));
        assert_eq!(sent.last_mark, MarkName::parse("u1c3"));
        assert!(played.try_next().is_none());

        // Each clause's timings, those from before its first chunk included, in order.
        let ms = Duration::from_millis;
        let mut timed = Vec::new();
        for _ in 0..4 {
            let words = alone.words.next().await;
            assert_eq!(words.utterance, UtteranceId(1));
            timed.push(words.ends);
        }
        assert_eq!(
            timed,
            [
                vec![ms(10)],
                vec![ms(30), ms(40)],
                vec![ms(10)],
                vec![ms(30), ms(40)]
            ]
        );
        assert!(alone.words.try_next().is_none());
    }

    #[actix::test]
    async fn a_cancelled_utterance_is_not_spoken_and_later_ones_are() {
        let mut alone = Alone::start();
        let (synthesizer, played) = (&alone.synthesizer, &mut alone.played);
        let utterances_sent = &mut alone.utterances;
        synthesizer.do_send(CancelSpeech {
            utterance: UtteranceId(2),
        });
        synthesizer.do_send(speak(2, "Never heard.", true));
        synthesizer.do_send(speak(3, "Heard.", true));
        assert_eq!(played.next().await.mark.to_string(), "u3c0");
        assert_eq!(utterances_sent.next().await.utterance, UtteranceId(3));
    }

    #[actix::test]
    async fn a_held_utterance_is_made_but_sent_only_once_released() {
        let mut alone = Alone::start();
        let (synthesizer, played) = (&alone.synthesizer, &mut alone.played);
        let (chunks_sent, utterances_sent) = (&mut alone.chunks, &mut alone.utterances);
        synthesizer.do_send(HoldSpeech {
            utterance: UtteranceId(1),
        });
        synthesizer.do_send(speak(1, "Held.", true));
        // Queued behind the held one: once it is out, the held one was made, and kept.
        synthesizer.do_send(speak(2, "Not held.", true));
        assert_eq!(utterances_sent.next().await.utterance, UtteranceId(2));
        let marks = |played: &mut Recorded<PlayAudio>| -> Vec<String> {
            std::iter::from_fn(|| played.try_next())
                .map(|chunk| chunk.mark.to_string())
                .collect()
        };
        assert_eq!(marks(played), ["u2c0", "u2c1", "u2c2"]);
        while chunks_sent.try_next().is_some() {}
        synthesizer.do_send(ReleaseSpeech {
            utterance: UtteranceId(1),
        });
        // Everything about it, in the order it was made.
        let sent = utterances_sent.next().await;
        assert_eq!(sent.utterance, UtteranceId(1));
        assert_eq!(sent.last_mark, MarkName::parse("u1c2"));
        assert_eq!(marks(played), ["u1c0", "u1c1", "u1c2"]);
        assert_eq!(chunks_sent.next().await.mark.to_string(), "u1c0");
    }

    #[actix::test]
    async fn a_held_utterance_cancelled_is_never_sent() {
        let mut alone = Alone::start();
        let (synthesizer, played) = (&alone.synthesizer, &mut alone.played);
        let utterances_sent = &mut alone.utterances;
        synthesizer.do_send(HoldSpeech {
            utterance: UtteranceId(1),
        });
        synthesizer.do_send(speak(1, "Dropped.", true));
        synthesizer.do_send(speak(2, "Said.", true));
        assert_eq!(utterances_sent.next().await.utterance, UtteranceId(2));
        synthesizer.do_send(CancelSpeech {
            utterance: UtteranceId(1),
        });
        synthesizer.do_send(ReleaseSpeech {
            utterance: UtteranceId(1),
        });
        synthesizer.do_send(speak(3, "Said too.", true));
        assert_eq!(utterances_sent.next().await.utterance, UtteranceId(3));
        let marks: Vec<String> = std::iter::from_fn(|| played.try_next())
            .map(|chunk| chunk.mark.to_string())
            .collect();
        assert!(
            marks.iter().all(|mark| !mark.starts_with("u1")),
            "{marks:?}"
        );
    }
}
