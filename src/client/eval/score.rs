//! Scoring: what each case's call shows (cut-ins, when the reply came, whether the reply a
//! barge-in case was said over was interrupted), and the figures of a run, by turn-detection mode.

use phone_agent_actors::audio::FRAME_BYTES;
use serde::Serialize;

use super::cases::{Case, Kind};
use super::wer;
use crate::client::caller::is_loud;
use crate::client::caller::session::{Exchange, Recording};
use crate::store::transcripts::{Speaker, StoredTurn, TurnLatencies};

/// Bytes of mu-law per millisecond.
const BYTES_PER_MS: usize = 8;

/// One case's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    /// The case.
    pub id: String,
    /// What it tests.
    pub kind: Kind,
    /// The agent's audio started before the caller had finished.
    pub cut_in: bool,
    /// End of the caller's audio → first audio of the agent's reply (none: no reply).
    pub reply_after_ms: Option<u64>,
    /// A barge-in case: whether the reply it was said over was interrupted.
    pub interrupted: Option<bool>,
    /// A turn case: the stages of its reply as the server timed them (from the end of the
    /// caller's speech as its VAD heard it), when its record was found.
    pub stages: Option<TurnLatencies>,
    /// A turn case: what the agent understood while the case was said (its caller turns that
    /// started then), joined.
    pub heard: Option<String>,
}

/// The outcome of a turn case from its exchange in `recording`: a cut-in is agent audio on the
/// line between the start and the end of the caller's audio (`len` bytes).
pub fn turn_result(
    case: &Case,
    len: usize,
    exchange: &Exchange,
    recording: &Recording,
) -> CaseResult {
    let track = recording.agent_track.len();
    let end = (exchange.ended_at.as_millis() as usize) * BYTES_PER_MS;
    let start = end.saturating_sub(len).min(track);
    // The last 20 ms frame's worth is the caller's own end: not a cut-in.
    let stop = end.saturating_sub(FRAME_BYTES).clamp(start, track);
    let agent = &recording.agent_track[start..stop];
    CaseResult {
        id: case.id.clone(),
        kind: case.kind,
        cut_in: agent.iter().any(is_loud),
        reply_after_ms: exchange.latency().map(|latency| latency.as_millis() as u64),
        interrupted: None,
        stages: None,
        heard: None,
    }
}

/// How much earlier than the audio a recogniser may date the start of the caller's turn (its
/// pre-roll).
const TURN_START_SLACK_MS: i64 = 500;

/// When a turn whose audio (`len` bytes) ended at `ended_at` was said, ms of call time.
fn said_span(len: usize, ended_at: std::time::Duration) -> std::ops::Range<i64> {
    let end = ended_at.as_millis() as i64;
    end - (len / BYTES_PER_MS) as i64..end
}

/// What the agent understood of a turn whose audio (`len` bytes) ended at `ended_at`: its caller
/// turns of `transcript` that started while the audio played (or a little before, as the
/// recogniser's pre-roll dates them), joined.
pub fn heard_during(
    transcript: &[StoredTurn],
    len: usize,
    ended_at: std::time::Duration,
) -> String {
    let said = said_span(len, ended_at);
    let heard: Vec<&str> = transcript
        .iter()
        .map(|stored| &stored.turn)
        .filter(|turn| turn.speaker == Speaker::Caller)
        .filter(|turn| (said.start - TURN_START_SLACK_MS..said.end).contains(&turn.start_ms))
        .map(|turn| turn.text.as_str())
        .collect();
    heard.join(" | ")
}

/// The server's timing of the reply to a turn whose audio (`len` bytes) ended at `ended_at`:
/// the first agent turn of `transcript` that answered a turn and started after the caller did.
pub fn reply_stages(
    transcript: &[StoredTurn],
    len: usize,
    ended_at: std::time::Duration,
) -> Option<TurnLatencies> {
    let said = said_span(len, ended_at);
    transcript
        .iter()
        .map(|stored| &stored.turn)
        .find(|turn| {
            turn.speaker == Speaker::Agent
                && turn.latencies.end_of_turn_ms.is_some()
                && turn.start_ms >= said.start
        })
        .map(|turn| turn.latencies)
}

/// The outcome of a barge-in case, said over the reply to the call's first turn: whether that
/// reply was interrupted.
pub fn barge_in_result(case: &Case, recording: &Recording) -> CaseResult {
    let first_reply = recording.exchanges.first().map(|exchange| &exchange.reply);
    CaseResult {
        id: case.id.clone(),
        kind: case.kind,
        cut_in: false,
        reply_after_ms: None,
        interrupted: Some(first_reply.is_some_and(|reply| reply.cleared > 0)),
        stages: None,
        heard: None,
    }
}

/// A share: how many of how many.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Count {
    /// How many.
    pub hits: usize,
    /// Of how many.
    pub of: usize,
}

impl Count {
    fn of<'a>(
        results: impl Iterator<Item = &'a CaseResult>,
        hit: impl Fn(&CaseResult) -> bool,
    ) -> Self {
        let mut count = Self::default();
        for result in results {
            count.of += 1;
            count.hits += usize::from(hit(result));
        }
        count
    }

    /// The share in percent (0 when there is nothing to count).
    pub fn percent(self) -> f64 {
        if self.of == 0 {
            0.0
        } else {
            self.hits as f64 * 100.0 / self.of as f64
        }
    }
}

impl std::fmt::Display for Count {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{} ({:.0} %)", self.hits, self.of, self.percent())
    }
}

/// The figures of one mode's run.
#[derive(Debug, Clone, Serialize)]
pub struct ModeReport {
    /// `TURN_DETECTION`.
    pub mode: String,
    /// Voice to voice over the complete turns not cut in on: p50, ms.
    pub voice_to_voice_p50_ms: Option<u64>,
    /// The same, p95.
    pub voice_to_voice_p95_ms: Option<u64>,
    /// Where the time of those replies went, as the server timed each stage: p50s.
    pub stages_p50: StageFigures,
    /// Paused turns the agent cut in on.
    pub paused_cut_ins: Count,
    /// Dictated turns the agent cut in on.
    pub dictation_cut_ins: Count,
    /// End of a paused or dictated turn → reply, p50, ms (how late the end was taken).
    pub end_after_pauses_p50_ms: Option<u64>,
    /// Turns with no reply.
    pub replies_missing: Count,
    /// Word error rate of what the agent understood (its transcript of the caller), percent.
    pub word_error_rate: f64,
    /// Interruptions that stopped the agent.
    pub barge_in_recall: Count,
    /// Backchannels that stopped the agent.
    pub false_interruptions: Count,
    /// Every case.
    pub cases: Vec<CaseResult>,
}

impl ModeReport {
    /// The figures of `results`, with `(errors, words)` of the agent's understanding.
    pub fn new(mode: &str, results: Vec<CaseResult>, wer_counts: (usize, usize)) -> Self {
        let of_kind = |kinds: &'static [Kind]| {
            let results = &results;
            move || results.iter().filter(move |r| kinds.contains(&r.kind))
        };
        let turns = of_kind(&[Kind::Complete, Kind::Paused, Kind::Dictation]);
        let complete: Vec<u64> = of_kind(&[Kind::Complete])()
            .filter(|r| !r.cut_in)
            .filter_map(|r| r.reply_after_ms)
            .collect();
        let after_pauses: Vec<u64> = of_kind(&[Kind::Paused, Kind::Dictation])()
            .filter(|r| !r.cut_in)
            .filter_map(|r| r.reply_after_ms)
            .collect();
        let (errors, words) = wer_counts;
        let stages: Vec<TurnLatencies> = of_kind(&[Kind::Complete])()
            .filter(|r| !r.cut_in)
            .filter_map(|r| r.stages)
            .collect();
        Self {
            mode: mode.to_owned(),
            voice_to_voice_p50_ms: percentile(&complete, 0.5),
            voice_to_voice_p95_ms: percentile(&complete, 0.95),
            stages_p50: StageFigures::p50(&stages),
            paused_cut_ins: Count::of(of_kind(&[Kind::Paused])(), |r| r.cut_in),
            dictation_cut_ins: Count::of(of_kind(&[Kind::Dictation])(), |r| r.cut_in),
            end_after_pauses_p50_ms: percentile(&after_pauses, 0.5),
            replies_missing: Count::of(turns(), |r| r.reply_after_ms.is_none()),
            word_error_rate: if words == 0 {
                0.0
            } else {
                errors as f64 * 100.0 / words as f64
            },
            barge_in_recall: Count::of(of_kind(&[Kind::Interrupt])(), |r| {
                r.interrupted == Some(true)
            }),
            false_interruptions: Count::of(of_kind(&[Kind::Backchannel])(), |r| {
                r.interrupted == Some(true)
            }),
            cases: results,
        }
    }
}

/// The p50 of each stage of the server's replies, ms from the end of the caller's speech.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct StageFigures {
    /// The recogniser's final transcript.
    pub stt_final_ms: Option<u64>,
    /// The end of the turn decided.
    pub end_of_turn_ms: Option<u64>,
    /// The first audio synthesized.
    pub first_audio_ms: Option<u64>,
    /// The first audio sent to the caller.
    pub first_sent_ms: Option<u64>,
}

impl StageFigures {
    fn p50(stages: &[TurnLatencies]) -> Self {
        let p50 = |stage: fn(&TurnLatencies) -> Option<i64>| {
            let values: Vec<u64> = stages
                .iter()
                .filter_map(stage)
                .filter_map(|ms| u64::try_from(ms).ok())
                .collect();
            percentile(&values, 0.5)
        };
        Self {
            stt_final_ms: p50(|t| t.stt_final_ms),
            end_of_turn_ms: p50(|t| t.end_of_turn_ms),
            first_audio_ms: p50(|t| t.first_audio_ms),
            first_sent_ms: p50(|t| t.first_sent_ms),
        }
    }
}

/// Word errors of the agent's understanding (`heard`, its caller turns) against what `cases` said.
pub fn understanding_errors(cases: &[&Case], heard: &str) -> (usize, usize) {
    let said: Vec<String> = cases.iter().map(|case| case.words()).collect();
    let reference = wer::normalise(&said.join(" "));
    (
        wer::errors(&reference, &wer::normalise(heard)),
        reference.len(),
    )
}

/// The `q` quantile of `values` (nearest rank), if any.
fn percentile(values: &[u64], q: f64) -> Option<u64> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let last = sorted.len().checked_sub(1)?;
    Some(sorted[(last as f64 * q).round() as usize])
}

/// A row of the summary table: its name and how a report shows it.
type Row = (&'static str, fn(&ModeReport) -> String);

fn ms(value: Option<u64>) -> String {
    value.map_or("-".to_owned(), |v| format!("{v} ms"))
}

const ROWS: [Row; 13] = [
    ("voice to voice p50 (complete turns)", |r| {
        ms(r.voice_to_voice_p50_ms)
    }),
    ("voice to voice p95 (complete turns)", |r| {
        ms(r.voice_to_voice_p95_ms)
    }),
    ("· server: final transcript, p50", |r| {
        ms(r.stages_p50.stt_final_ms)
    }),
    ("· server: end of turn, p50", |r| {
        ms(r.stages_p50.end_of_turn_ms)
    }),
    ("· server: first audio synthesized, p50", |r| {
        ms(r.stages_p50.first_audio_ms)
    }),
    ("· server: first audio sent, p50", |r| {
        ms(r.stages_p50.first_sent_ms)
    }),
    ("cut-ins on paused turns", |r| r.paused_cut_ins.to_string()),
    ("cut-ins on dictation", |r| r.dictation_cut_ins.to_string()),
    ("reply after a paused turn's end, p50", |r| {
        ms(r.end_after_pauses_p50_ms)
    }),
    ("replies missing", |r| r.replies_missing.to_string()),
    ("word error rate (agent's understanding)", |r| {
        format!("{:.1} %", r.word_error_rate)
    }),
    ("barge-in recall (interruptions)", |r| {
        r.barge_in_recall.to_string()
    }),
    ("false interruptions (backchannels)", |r| {
        r.false_interruptions.to_string()
    }),
];

/// The summary table: a row per figure, a column per mode.
pub fn table(reports: &[ModeReport]) -> String {
    let modes: Vec<&str> = reports.iter().map(|r| r.mode.as_str()).collect();
    let mut out = format!(
        "| figure | {} |\n|---|{}\n",
        modes.join(" | "),
        "---|".repeat(reports.len())
    );
    for (name, show) in ROWS {
        let values: Vec<String> = reports.iter().map(show).collect();
        out.push_str(&format!("| {name} | {} |\n", values.join(" | ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(
        kind: Kind,
        cut_in: bool,
        reply: Option<u64>,
        interrupted: Option<bool>,
    ) -> CaseResult {
        CaseResult {
            id: "x".into(),
            kind,
            cut_in,
            reply_after_ms: reply,
            interrupted,
            stages: None,
            heard: None,
        }
    }

    #[test]
    fn a_cut_in_is_agent_audio_while_the_caller_speaks() {
        let case = super::super::cases::parse("p\tpaused\tpiper\tclean\ta | 500 | b")
            .unwrap()
            .remove(0);
        let mut recording = Recording {
            agent_track: vec![phone_agent_actors::audio::mulaw::SILENCE; 8_000],
            ..Recording::default()
        };
        recording.agent_track[2_000..2_100].fill(0x00);
        let exchange = Exchange {
            ended_at: std::time::Duration::from_millis(500),
            reply: Default::default(),
        };
        assert!(turn_result(&case, 3_000, &exchange, &recording).cut_in);
        assert!(
            !turn_result(&case, 1_000, &exchange, &recording).cut_in,
            "after it ended"
        );
        // A turn shorter than a frame: nothing to look at, no panic.
        assert!(!turn_result(&case, 100, &exchange, &recording).cut_in);
    }

    #[test]
    fn figures_count_what_each_kind_tests() {
        let report = ModeReport::new(
            "smart-turn",
            vec![
                result(Kind::Complete, false, Some(300), None),
                result(Kind::Complete, false, Some(500), None),
                result(Kind::Complete, true, Some(50), None),
                result(Kind::Paused, true, Some(40), None),
                result(Kind::Paused, false, Some(900), None),
                result(Kind::Dictation, false, None, None),
                result(Kind::Interrupt, false, None, Some(true)),
                result(Kind::Backchannel, false, None, Some(false)),
            ],
            (3, 30),
        );
        assert_eq!(report.voice_to_voice_p50_ms, Some(500), "cut-ins left out");
        assert_eq!(
            (report.paused_cut_ins.hits, report.paused_cut_ins.of),
            (1, 2)
        );
        assert_eq!(
            (report.replies_missing.hits, report.replies_missing.of),
            (1, 6)
        );
        assert_eq!(report.end_after_pauses_p50_ms, Some(900));
        assert!((report.word_error_rate - 10.0).abs() < 1e-9);
        assert_eq!(report.barge_in_recall.to_string(), "1/1 (100 %)");
        assert_eq!(report.false_interruptions.hits, 0);
        assert!(table(&[report]).contains("| cut-ins on paused turns | 1/2 (50 %) |"));
    }
}
