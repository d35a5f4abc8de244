//! `phone-agent eval`: the turn-taking evaluation suite. It starts a real server in this process
//! for each turn-detection mode (the configuration comes from the environment, as for `serve`),
//! replays the labelled cases (`cases`) through it over the Twilio protocol with the simulator's
//! machinery, in real time, and scores what the calls show (`score`): false cut-ins on paused and
//! dictated turns, how late turn ends are taken, voice-to-voice latency, the word error rate of
//! what the agent understood (its own transcript), barge-in recall on interruptions and false
//! interruptions on backchannels, replies missing. A summary table, and the whole report as JSON.
//!
//! Turn cases are spoken in order on calls of a few turns (each after the previous reply has
//! played); barge-in cases each get a call: the caller asks a question with a long answer and
//! says the case 1.5 s into it (the greeting cannot be interrupted: it carries the AI disclosure).

pub mod cases;
pub mod score;
pub mod wer;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use phone_agent_actors::runtime::journal::Speaker;
use phone_agent_actors::runtime::metrics::CallMetrics;

use crate::client::caller::session::{self, Recording, Timing};
use crate::client::sim::{random_sid, SimError, TwilioSim};
use crate::config::Config;
use crate::store::transcripts::StoredTurn;
use crate::store::Store;
use crate::{engines, server};
use cases::{Case, CaseError, Kind, Segment, Voices};
use score::{CaseResult, ModeReport};

/// Turn cases per call: the greeting is paid once for several turns.
const TURNS_PER_CALL: usize = 7;
/// When barge-in cases are said: this far into the reply to [`LONG_ANSWER`].
const BARGE_IN_AFTER: Duration = Duration::from_millis(1_500);
/// What the caller asks before a barge-in case: the agent's answer runs for seconds.
const LONG_ANSWER: &str = "What are your opening hours?";
/// The Twilio host the evaluated server believes in.
const PUBLIC_HOST: &str = "eval.phone-agent.test";

/// Options of `phone-agent eval`.
#[derive(Debug, Clone, Args)]
pub struct EvalArgs {
    /// The labelled cases.
    #[arg(long, default_value = "tests/data/turn-eval/cases.tsv")]
    pub cases: PathBuf,
    /// The turn-detection modes to score, side by side (`TURN_DETECTION` values).
    #[arg(long, value_delimiter = ',', default_value = "smart-turn,silence")]
    pub modes: Vec<String>,
    /// Only these cases (ids, comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Write the whole report here, as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Where the embedded engines' models are (for the caller's voices).
    #[arg(long, env = "MODELS_DIR", default_value = "models")]
    pub models_dir: PathBuf,
}

/// Why the evaluation could not run.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The cases could not be read or spoken.
    #[error(transparent)]
    Cases(#[from] CaseError),
    /// The server could not be configured or started.
    #[error("server: {0}")]
    Server(String),
    /// A call failed.
    #[error(transparent)]
    Call(#[from] SimError),
    /// The agent ended a call before the caller's first turn.
    #[error("the agent ended a call before the caller's first turn")]
    CallEnded,
}

/// Runs the evaluation: one report per mode.
pub async fn evaluate(args: &EvalArgs) -> Result<Vec<ModeReport>, EvalError> {
    let mut cases = cases::read(&args.cases)?;
    if !args.only.is_empty() {
        cases.retain(|case| args.only.contains(&case.id));
    }
    let mut voices = Voices::new(args.models_dir.clone());
    let audio = cases
        .iter()
        .map(|case| voices.audio(case))
        .collect::<Result<Vec<_>, _>>()?;
    let question = voices.audio(&Case {
        id: "question".into(),
        kind: Kind::Complete,
        voice: "piper".into(),
        snr_db: None,
        script: vec![Segment::Say(LONG_ANSWER.into())],
    })?;
    let mut reports = Vec::new();
    for mode in &args.modes {
        reports.push(evaluate_mode(mode, &cases, &audio, &question).await?);
    }
    Ok(reports)
}

/// Starts a server with `TURN_DETECTION=mode`, replays every case, stops it.
async fn evaluate_mode(
    mode: &str,
    cases: &[Case],
    audio: &[Vec<u8>],
    question: &[u8],
) -> Result<ModeReport, EvalError> {
    let data_dir =
        std::env::temp_dir().join(format!("phone-agent-eval-{}-{mode}", std::process::id()));
    let auth_token = random_sid("eval");
    let overrides = [
        ("TURN_DETECTION", mode.to_owned()),
        ("LISTEN_ADDR", "127.0.0.1:0".to_owned()),
        ("PUBLIC_HOST", PUBLIC_HOST.to_owned()),
        ("TWILIO_AUTH_TOKEN", auth_token.clone()),
        ("DATA_DIR", data_dir.display().to_string()),
        (
            "DATABASE_URL",
            format!("sqlite://{}/eval.db?mode=rwc", data_dir.display()),
        ),
        // Only the caller's turns are measured: no check-ins in the pauses.
        ("SILENCE_CHECKIN_S", "0".to_owned()),
    ];
    let config = Config::from_lookup(|name| {
        overrides
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.clone())
            .or_else(|| std::env::var(name).ok())
    })
    .map_err(|error| EvalError::Server(error.to_string()))?;
    std::fs::create_dir_all(&data_dir).map_err(|error| EvalError::Server(error.to_string()))?;
    let metrics = Arc::new(CallMetrics::default());
    let built =
        engines::build(&config, &metrics).map_err(|error| EvalError::Server(error.to_string()))?;
    let running = server::start(&config, built.set, metrics)
        .await
        .map_err(|error| EvalError::Server(error.to_string()))?;
    let sim =
        TwilioSim::new(format!("http://{}", running.local_addr)).signing(&auth_token, PUBLIC_HOST);
    let outcome = replay(&sim, &running.store, cases, audio, question).await;
    running.shutdown();
    let _ = running.stopped().await;
    let _ = std::fs::remove_dir_all(&data_dir);
    let (results, understanding) = outcome?;
    Ok(ModeReport::new(mode, results, understanding))
}

/// Replays the cases on `sim`'s server; their results and the word errors of its understanding.
async fn replay(
    sim: &TwilioSim,
    store: &Store,
    cases: &[Case],
    audio: &[Vec<u8>],
    question: &[u8],
) -> Result<(Vec<CaseResult>, (usize, usize)), EvalError> {
    let (turn_cases, barge_in_cases): (Vec<usize>, Vec<usize>) =
        (0..cases.len()).partition(|&i| !cases[i].kind.barges_in());
    let mut results = Vec::new();
    let (mut errors, mut words) = (0, 0);
    let mut pending = &turn_cases[..];
    while !pending.is_empty() {
        let batch = &pending[..pending.len().min(TURNS_PER_CALL)];
        let said: Vec<Vec<u8>> = batch.iter().map(|&i| audio[i].clone()).collect();
        let (call_sid, recording) = call(sim, &said, None).await?;
        // A call the agent ended early carries on with the rest on a new call.
        let taken = recording.exchanges.len().min(batch.len());
        if taken == 0 {
            return Err(EvalError::CallEnded);
        }
        let transcript = transcript(store, &call_sid).await;
        for (&i, exchange) in batch.iter().zip(&recording.exchanges) {
            let mut result = score::turn_result(&cases[i], audio[i].len(), exchange, &recording);
            result.stages = score::reply_stages(&transcript, audio[i].len(), exchange.ended_at);
            result.heard = Some(score::heard_during(
                &transcript,
                audio[i].len(),
                exchange.ended_at,
            ));
            results.push(result);
        }
        let understood: Vec<&str> = transcript
            .iter()
            .filter(|stored| stored.turn.speaker == Speaker::Caller)
            .map(|stored| stored.turn.text.as_str())
            .collect();
        let spoken: Vec<&Case> = batch[..taken].iter().map(|&i| &cases[i]).collect();
        let (wrong, total) = score::understanding_errors(&spoken, &understood.join(" "));
        errors += wrong;
        words += total;
        pending = &pending[taken..];
    }
    for &i in &barge_in_cases {
        let turns = [question.to_vec(), audio[i].clone()];
        let (_, recording) = call(sim, &turns, Some(BARGE_IN_AFTER)).await?;
        results.push(score::barge_in_result(&cases[i], &recording));
    }
    Ok((results, (errors, words)))
}

/// One call saying `turns` (each after the previous reply, or `barge_in_after` into it).
async fn call(
    sim: &TwilioSim,
    turns: &[Vec<u8>],
    barge_in_after: Option<Duration>,
) -> Result<(String, Recording), SimError> {
    let call_sid = random_sid("CA");
    let answer = sim.place_call(&call_sid).await?;
    let mut connection = sim.connect(&answer).await?;
    let timing = Timing {
        reply_gap: Duration::from_millis(1_000),
        reply_timeout: Duration::from_secs(8),
        barge_in_after,
        stay_on_line: false,
        hang_up_after: None,
    };
    let recording = session::talk(&mut connection, turns, timing, std::future::pending()).await?;
    Ok((call_sid, recording))
}

/// The transcript of `call_sid` once the call's end is recorded (the journal writes its turns
/// first), waiting up to 5 s for it.
async fn transcript(store: &Store, call_sid: &str) -> Vec<StoredTurn> {
    for _ in 0..50 {
        let ended = store
            .call(call_sid)
            .await
            .ok()
            .flatten()
            .is_some_and(|call| call.end_reason.is_some());
        if ended {
            return store.transcript(call_sid).await.unwrap_or_default();
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    Vec::new()
}

/// Runs `phone-agent eval`: prints the table, writes `--json`. Returns false on failure.
pub fn run(args: EvalArgs) -> bool {
    // The evaluated servers log only when asked (`RUST_LOG`): the table is the output.
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = crate::logging::init(crate::config::LogFormat::Pretty);
    }
    let result = actix_rt::System::new().block_on(evaluate(&args));
    let reports = match result {
        Ok(reports) => reports,
        Err(error) => {
            eprintln!("phone-agent eval: {error}");
            return false;
        }
    };
    print!("{}", score::table(&reports));
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&reports).expect("reports are JSON");
        if let Err(error) = std::fs::write(path, json) {
            eprintln!("phone-agent eval: {}: {error}", path.display());
            return false;
        }
    }
    true
}
