//! `phone-agent call`: talk to a local server without a phone.
//!
//! A Twilio-faithful client ([`super::sim`]): the voice webhook, then the media WebSocket. The
//! caller's turns are `--say` text (spoken by the embedded synthesizer), `--wav` files, or a
//! `--script`; each is sent in real time, then the simulator waits for the agent's reply (or
//! barges in with `--barge-in-after`). Afterwards the agent's replies are transcribed by the
//! embedded recogniser and the conversation is printed with per-turn latency (end of the caller's
//! audio → first audio of the reply); `--record` writes both sides to a stereo WAV.

pub mod session;
pub mod turns;

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use phone_agent_actors::audio::{mulaw, TELEPHONY_SAMPLE_RATE_HZ};

use crate::client::sim::{random_sid, SimError, TwilioAccountArgs};
use crate::engines::embedded::resample::ClipResampler;
use crate::engines::embedded::stt::RecognitionWorker;
use crate::engines::embedded::tts::Voice;
use crate::engines::embedded::{self, EmbeddedSettings, ModelError};
use crate::wav;
use session::{Recording, TimingArgs};
use turns::{CallerTurn, TurnArgs};

/// Options of `phone-agent call`.
#[derive(Debug, Clone, Args)]
pub struct CallArgs {
    /// Base URL of the server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// How to sign like Twilio.
    #[command(flatten)]
    pub account: TwilioAccountArgs,
    /// What the caller says.
    #[command(flatten)]
    pub turns: TurnArgs,
    /// When the caller speaks.
    #[command(flatten)]
    pub timing: TimingArgs,
    /// Write both sides to this stereo WAV (left: caller, right: agent).
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Where the embedded engines' models are (for the caller's voice and the transcripts).
    #[arg(long, env = "MODELS_DIR", default_value = "models")]
    pub models_dir: PathBuf,
    /// The call's CallSid (a random one by default).
    #[arg(long)]
    pub call_sid: Option<String>,
}

/// Why the simulated call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No caller turn was given.
    #[error("nothing to say: give --say, --wav or --script")]
    NoTurns,
    /// A file could not be read.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The engines could not be loaded.
    #[error(transparent)]
    Engines(#[from] ModelError),
    /// Speech synthesis failed.
    #[error("speech synthesis: {0}")]
    Synthesis(String),
    /// The server misbehaved or went away.
    #[error(transparent)]
    Call(#[from] SimError),
}

/// One turn of the printed conversation.
#[derive(Debug, Clone)]
pub struct TurnReport {
    /// What the caller said (text or file).
    pub said: String,
    /// What the agent answered, as the recogniser heard it.
    pub heard: String,
    /// End of the caller's audio → first audio of the answer.
    pub latency: Option<Duration>,
    /// Whether the answer was interrupted (`clear` received).
    pub interrupted: bool,
}

/// The simulated call's outcome.
#[derive(Debug, Clone)]
pub struct CallReport {
    /// The greeting, as heard.
    pub greeting: String,
    /// Every turn taken (fewer than given if the agent hung up first).
    pub turns: Vec<TurnReport>,
    /// Whether the agent ended the call.
    pub agent_hung_up: bool,
}

/// The simulator's engines: a voice for the caller and an ear for the agent.
pub struct CallerEngines {
    voice: Voice,
    ear: RecognitionWorker,
}

impl CallerEngines {
    /// Loads both from `models_dir` (Piper voice, Moonshine recogniser).
    pub fn load(models_dir: PathBuf) -> Result<Self, ModelError> {
        let settings = EmbeddedSettings::single_worker(models_dir);
        Ok(Self {
            voice: embedded::load_voice(&settings)?,
            ear: embedded::load_recognizer(&settings)?,
        })
    }

    /// A caller turn as 8 kHz mu-law: spoken by the voice, or read from its file.
    pub fn audio(&mut self, turn: &CallerTurn) -> Result<Vec<u8>, CallError> {
        caller_audio(turn, &mut self.voice)
    }

    /// What the recogniser hears in 8 kHz mu-law audio.
    pub fn transcribe(&mut self, audio: &[u8]) -> Result<String, String> {
        let mut samples = Vec::with_capacity(audio.len());
        mulaw::decode_float_into(audio, &mut samples);
        self.ear.transcribe(&samples)
    }
}

/// Turns from the arguments: `--wav` files, then `--say` texts, then the script's lines.
pub fn turns_of(args: &TurnArgs) -> Result<Vec<CallerTurn>, CallError> {
    let turns = args.turns().map_err(|error| CallError::File {
        path: args
            .script
            .as_ref()
            .map(|path| path.display().to_string())
            .unwrap_or_default(),
        message: error.to_string(),
    })?;
    if turns.is_empty() {
        return Err(CallError::NoTurns);
    }
    Ok(turns)
}

/// Places the call and talks it through; returns the report (and writes `--record`).
pub async fn place(
    args: &CallArgs,
    turns: &[CallerTurn],
    engines: &mut CallerEngines,
) -> Result<CallReport, CallError> {
    let audio = turns
        .iter()
        .map(|turn| engines.audio(turn))
        .collect::<Result<Vec<_>, _>>()?;
    let sim = args.account.sim(&args.url);
    let call_sid = args.call_sid.clone().unwrap_or_else(|| random_sid("CA"));
    let answer = sim.place_call(&call_sid).await?;
    let mut connection = sim.connect(&answer).await?;
    let recording = session::talk(
        &mut connection,
        &audio,
        args.timing.timing(),
        std::future::pending(),
    )
    .await?;
    if let Some(path) = &args.record {
        write_recording(path, &recording)?;
    }
    Ok(report(turns, &recording, engines))
}

/// What was said in `recording`, the agent's side as the recogniser heard it.
pub fn report(
    turns: &[CallerTurn],
    recording: &Recording,
    engines: &mut CallerEngines,
) -> CallReport {
    let mut hear = |audio: &[u8]| {
        engines
            .transcribe(audio)
            .unwrap_or_else(|error| format!("[not transcribed: {error}]"))
    };
    CallReport {
        greeting: hear(&recording.greeting.audio),
        turns: turns
            .iter()
            .zip(&recording.exchanges)
            .map(|(turn, exchange)| TurnReport {
                said: turn.label(),
                heard: hear(&exchange.reply.audio),
                latency: exchange.latency(),
                interrupted: exchange.reply.cleared > 0,
            })
            .collect(),
        agent_hung_up: recording.agent_hung_up,
    }
}

/// Runs `phone-agent call` and prints the conversation. Returns false on failure.
pub fn run(args: CallArgs) -> bool {
    let result = (|| {
        let turns = turns_of(&args.turns)?;
        let mut engines = CallerEngines::load(args.models_dir.clone())?;
        actix_rt::System::new().block_on(place(&args, &turns, &mut engines))
    })();
    match result {
        Ok(report) => {
            print(&report);
            true
        }
        Err(error) => {
            eprintln!("phone-agent call: {error}");
            false
        }
    }
}

/// Prints the conversation, one line a turn, with each reply's latency.
pub fn print(report: &CallReport) {
    if !report.greeting.is_empty() {
        println!("agent : {}", report.greeting);
    }
    let mut latencies = Vec::new();
    for turn in &report.turns {
        println!("caller: {}", turn.said);
        match turn.latency {
            Some(latency) => {
                latencies.push(latency);
                let interrupted = if turn.interrupted {
                    " (interrupted)"
                } else {
                    ""
                };
                println!(
                    "agent : {}{interrupted}    [first audio {} ms after the caller stopped]",
                    turn.heard,
                    latency.as_millis()
                );
            }
            None => println!("agent : (no reply)"),
        }
    }
    if report.agent_hung_up {
        println!("(the agent ended the call)");
    }
    if latencies.len() > 1 {
        latencies.sort();
        let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
        println!(
            "voice-to-voice latency over {} turns: p50 {} ms, p95 {} ms",
            latencies.len(),
            at(0.5).as_millis(),
            at(0.95).as_millis()
        );
    }
}

/// A caller turn as 8 kHz mu-law.
fn caller_audio(turn: &CallerTurn, voice: &mut Voice) -> Result<Vec<u8>, CallError> {
    match turn {
        CallerTurn::Say(text) => voice
            .speak(text)
            .map(|audio| trim_silence(&audio).to_vec())
            .map_err(CallError::Synthesis),
        CallerTurn::Wav(path) => {
            let failed = |message: String| CallError::File {
                path: path.display().to_string(),
                message,
            };
            let bytes = std::fs::read(path).map_err(|error| failed(error.to_string()))?;
            let clip = wav::read(&bytes).map_err(|error| failed(error.to_string()))?;
            let samples = if clip.sample_rate == TELEPHONY_SAMPLE_RATE_HZ {
                clip.samples
            } else {
                ClipResampler::new(clip.sample_rate, TELEPHONY_SAMPLE_RATE_HZ)
                    .process(&clip.samples)
            };
            let mut out = Vec::with_capacity(samples.len());
            mulaw::encode_float_into(&samples, &mut out);
            Ok(trim_silence(&out).to_vec())
        }
    }
}

/// Mu-law codes quieter than this (about -40 dBFS) count as silence at a turn's edges.
const SILENCE_LEVEL: i16 = 330;

/// Whether the mu-law `code` is louder than silence.
pub fn is_loud(code: &u8) -> bool {
    mulaw::decode_sample(*code).unsigned_abs() > SILENCE_LEVEL as u16
}

/// `audio` without the silence around its speech (a synthesizer's padding, a recording's lead-in),
/// so a turn's end is the end of its speech: what latency is measured from.
pub fn trim_silence(audio: &[u8]) -> &[u8] {
    let start = audio.iter().position(is_loud).unwrap_or(audio.len());
    let end = audio.iter().rposition(is_loud).map_or(start, |i| i + 1);
    &audio[start..end]
}

fn write_recording(path: &std::path::Path, recording: &Recording) -> Result<(), CallError> {
    let mut caller = Vec::new();
    let mut agent = Vec::new();
    mulaw::decode_into(&recording.caller_track, &mut caller);
    mulaw::decode_into(&recording.agent_track, &mut agent);
    let interleaved: Vec<i16> = caller
        .iter()
        .zip(&agent)
        .flat_map(|(left, right)| [*left, *right])
        .collect();
    std::fs::write(
        path,
        wav::write_pcm16(TELEPHONY_SAMPLE_RATE_HZ, 2, &interleaved),
    )
    .map_err(|error| CallError::File {
        path: path.display().to_string(),
        message: error.to_string(),
    })
}
