//! What the caller has heard of the agent's current utterance, from the marks Twilio echoed.
//!
//! The Synthesizer reports every chunk it sends (its mark, its length, the clause it belongs to);
//! Twilio echoes a chunk's mark once the chunk has played. On a barge-in, the clauses whose chunks
//! were all echoed were heard; of the chunk playing at that moment, the share played since the
//! previous echo is estimated from the clock. Of that clause, the words whose end has played count
//! as heard when the engine gave word timings; otherwise the played share of its words (rounded
//! down). Sans-I/O: the caller passes the time.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::audio::FRAME_DURATION;
use crate::ids::{MarkName, UtteranceId};

struct Clause {
    text: Arc<str>,
    /// Frames sent for this clause so far.
    frames: u32,
    /// Frames of it echoed as played.
    heard: u32,
    /// Where its words end, from the start of its audio, as far as the engine said.
    word_ends: Vec<Duration>,
}

impl Clause {
    /// How many of its `words` words the caller heard in its first `frames` frames: those whose
    /// end played, by the engine's timings; past the last timed word (timings still to come), or
    /// without timings, the played share of the words.
    fn words_heard(&self, frames: u32, words: usize) -> usize {
        let share = words * frames as usize / self.frames as usize;
        let played = FRAME_DURATION * frames;
        let ended = self.word_ends.partition_point(|end| *end <= played);
        let heard = if ended == self.word_ends.len() {
            ended.max(share)
        } else {
            ended
        };
        heard.min(words)
    }
}

struct Chunk {
    mark: MarkName,
    clause: usize,
    frames: u32,
}

/// The playback of one utterance.
#[derive(Default)]
struct Utterance {
    clauses: Vec<Clause>,
    /// Chunks sent and not yet echoed, in order.
    unheard: VecDeque<Chunk>,
    /// When the chunk now playing started: the previous echo, or when the utterance's turn to
    /// play came (its first send, or the end of the utterance before it).
    playing_since: Option<Instant>,
}

/// The playback of the utterances whose audio went out: sent chunks, echoed marks, clause texts.
#[derive(Default)]
pub struct PlaybackLedger {
    utterances: BTreeMap<UtteranceId, Utterance>,
}

impl PlaybackLedger {
    /// The oldest utterance with audio sent and not yet heard: what the caller is hearing now.
    pub fn playing(&self) -> Option<UtteranceId> {
        self.utterances
            .iter()
            .find(|(_, utterance)| !utterance.unheard.is_empty())
            .map(|(id, _)| *id)
    }

    /// A chunk of `frames` frames went to Twilio, followed by `mark`. `clause` is the text of the
    /// clause the chunk starts, or `None` when it continues the previous chunk's clause.
    pub fn chunk_sent(
        &mut self,
        mark: MarkName,
        frames: u32,
        clause: Option<Arc<str>>,
        now: Instant,
    ) {
        let idle = self.playing().is_none();
        let utterance = self.utterances.entry(mark.utterance).or_default();
        if idle {
            // Nothing was playing: this chunk starts playing now.
            utterance.playing_since = Some(now);
        }
        if let Some(text) = clause {
            utterance.clauses.push(Clause {
                text,
                frames: 0,
                heard: 0,
                word_ends: Vec::new(),
            });
        }
        let Some(index) = utterance.clauses.len().checked_sub(1) else {
            return;
        };
        utterance.clauses[index].frames += frames;
        utterance.unheard.push_back(Chunk {
            mark,
            clause: index,
            frames,
        });
    }

    /// The engine said where more words of `utterance`'s latest clause end.
    pub fn words_timed(&mut self, utterance: UtteranceId, ends: Vec<Duration>) {
        let clause = self
            .utterances
            .get_mut(&utterance)
            .and_then(|utterance| utterance.clauses.last_mut());
        if let Some(clause) = clause {
            clause.word_ends.extend(ends);
        }
    }

    /// Twilio echoed `mark`: it and every chunk before it have played. Returns how long the
    /// echoed chunk played, if the mark was one of the unheard chunks.
    pub fn mark_echoed(&mut self, mark: MarkName, now: Instant) -> Option<Duration> {
        let utterance = self.utterances.get_mut(&mark.utterance)?;
        let echoed = utterance.unheard.iter().find(|chunk| chunk.mark == mark)?;
        let played = FRAME_DURATION * echoed.frames;
        while let Some(chunk) = utterance.unheard.pop_front() {
            utterance.clauses[chunk.clause].heard += chunk.frames;
            if chunk.mark == mark {
                break;
            }
        }
        utterance.playing_since = Some(now);
        let finished = utterance.unheard.is_empty();
        // Audio plays in order: whatever came before this utterance has played too.
        self.utterances = self.utterances.split_off(&mark.utterance);
        if finished {
            if let Some((_, next)) = self.utterances.range_mut(mark.utterance..).nth(1) {
                next.playing_since = Some(now);
            }
        }
        Some(played)
    }

    /// Forgets every utterance up to `through` (cleared or cancelled).
    pub fn forget_through(&mut self, through: UtteranceId) {
        self.utterances.retain(|id, _| *id > through);
    }

    /// The text of `utterance` heard by `now`; `until` caps the clock (playback paused then).
    pub fn heard_text(
        &self,
        utterance: UtteranceId,
        now: Instant,
        until: Option<Instant>,
    ) -> String {
        let Some(utterance) = self.utterances.get(&utterance) else {
            return String::new();
        };
        let now = until.map_or(now, |until| until.min(now));
        let playing = utterance.unheard.front().map(|chunk| {
            let elapsed = utterance
                .playing_since
                .map_or(Duration::ZERO, |since| now.saturating_duration_since(since));
            let played = (elapsed.as_millis() / FRAME_DURATION.as_millis()) as u32;
            (chunk.clause, played.min(chunk.frames))
        });
        let mut heard = Vec::new();
        for (index, clause) in utterance.clauses.iter().enumerate() {
            let extra = playing.filter(|(at, _)| *at == index).map_or(0, |(_, f)| f);
            let frames = clause.heard + extra;
            if frames == 0 {
                break;
            }
            if frames >= clause.frames {
                heard.push(clause.text.to_string());
                continue;
            }
            let words: Vec<&str> = clause.text.split_whitespace().collect();
            let count = clause.words_heard(frames, words.len());
            if count > 0 {
                heard.push(words[..count].join(" "));
            }
            break;
        }
        heard.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(utterance: u64, chunk: u32) -> MarkName {
        MarkName {
            utterance: UtteranceId(utterance),
            chunk,
        }
    }

    fn text(s: &str) -> Option<Arc<str>> {
        Some(Arc::from(s))
    }

    #[test]
    fn echoed_clauses_are_heard_and_the_playing_one_in_part() {
        let start = Instant::now();
        let mut ledger = PlaybackLedger::default();
        let u = UtteranceId(3);
        ledger.chunk_sent(mark(3, 0), 50, text("Our prices are low."), start);
        ledger.chunk_sent(
            mark(3, 1),
            100,
            text("A cleaning is ninety five dollars today."),
            start,
        );
        assert_eq!(ledger.heard_text(u, start, None), "");

        // Nothing echoed yet, 0.5 s in: half of the first clause (two of its four words).
        let half = start + Duration::from_millis(500);
        assert_eq!(ledger.heard_text(u, half, None), "Our prices");

        assert_eq!(
            ledger.mark_echoed(mark(3, 0), start + Duration::from_secs(1)),
            Some(Duration::from_secs(1))
        );
        let later = start + Duration::from_millis(1_800);
        // 0.8 s into the second clause's 2 s: 40 % of its 7 words, rounded down.
        assert_eq!(
            ledger.heard_text(u, later, None),
            "Our prices are low. A cleaning"
        );
        // A pause freezes the clock.
        assert_eq!(
            ledger.heard_text(u, later, Some(start + Duration::from_secs(1))),
            "Our prices are low."
        );
        assert!(ledger.mark_echoed(mark(3, 1), later).is_some());
        assert_eq!(ledger.mark_echoed(mark(3, 1), later), None, "echoed once");
        assert_eq!(
            ledger.heard_text(u, later, None),
            "Our prices are low. A cleaning is ninety five dollars today."
        );
        assert_eq!(ledger.heard_text(UtteranceId(2), later, None), "");
    }

    #[test]
    fn word_timings_count_the_words_whose_end_has_played() {
        let start = Instant::now();
        let mut ledger = PlaybackLedger::default();
        let u = UtteranceId(1);
        ledger.chunk_sent(mark(1, 0), 50, text("one two three four five"), start);
        let ms = Duration::from_millis;
        // Quick words first, a long last pair: half the audio holds three words, not two.
        ledger.words_timed(u, vec![ms(100), ms(200), ms(300)]);
        ledger.words_timed(u, vec![ms(900), ms(1_000)]);
        assert_eq!(ledger.heard_text(u, start + ms(299), None), "one two");
        assert_eq!(ledger.heard_text(u, start + ms(500), None), "one two three");
        // Past the last timed word, the played share counts: 90 % of five words is four.
        ledger.chunk_sent(mark(1, 1), 50, text("six seven eight nine ten"), start);
        ledger.words_timed(u, vec![ms(100), ms(200)]);
        assert!(ledger.mark_echoed(mark(1, 0), start + ms(1_000)).is_some());
        assert_eq!(
            ledger.heard_text(u, start + ms(1_900), None),
            "one two three four five six seven eight nine"
        );
        // Timings for an utterance with no audio sent are nobody's.
        ledger.words_timed(UtteranceId(9), vec![ms(1)]);
        assert_eq!(ledger.heard_text(UtteranceId(9), start + ms(500), None), "");
    }

    #[test]
    fn a_clause_may_span_chunks_and_utterances_play_in_turn() {
        let start = Instant::now();
        let mut ledger = PlaybackLedger::default();
        ledger.chunk_sent(mark(1, 0), 10, text("one two three four"), start);
        ledger.chunk_sent(mark(1, 1), 10, None, start);
        assert!(ledger.mark_echoed(mark(1, 0), start).is_some());
        assert_eq!(ledger.heard_text(UtteranceId(1), start, None), "one two");
        assert_eq!(ledger.playing(), Some(UtteranceId(1)));

        // The next utterance queues behind; it starts playing when the first one has.
        let later = start + Duration::from_secs(1);
        ledger.chunk_sent(mark(2, 0), 10, text("five six"), start);
        assert_eq!(ledger.heard_text(UtteranceId(2), later, None), "");
        assert!(ledger.mark_echoed(mark(1, 1), later).is_some());
        assert_eq!(ledger.playing(), Some(UtteranceId(2)));
        let half = later + Duration::from_millis(100);
        assert_eq!(ledger.heard_text(UtteranceId(2), half, None), "five");

        ledger.forget_through(UtteranceId(2));
        assert_eq!(ledger.playing(), None);
        assert_eq!(ledger.mark_echoed(mark(2, 0), half), None);
    }
}
