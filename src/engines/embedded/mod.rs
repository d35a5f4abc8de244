//! The embedded engines: offline speech recognition and synthesis, the default when no cloud
//! provider is configured. Everything runs in-process on ONNX Runtime (loaded from the library
//! `scripts/setup.sh` unpacks into `MODELS_DIR`), off the actors' threads on bounded worker pools.
//!
//! - [`stt`]: Silero VAD endpointing + Moonshine base (English) decoding, streaming; the end of a
//!   turn decided by [`smart_turn`] (Smart Turn v3.2 on [`log_mel`] features) or by silence.
//! - [`tts`]: Piper `en_US-joe-medium` (or flite), 8 kHz mu-law, fixed answers cached.
//! - [`onnx`], [`pool`], [`resample`]: the runtime, the worker pools, band-limited resampling.

pub mod flite;
pub mod log_mel;
pub mod moonshine;
pub mod onnx;
pub mod piper;
pub mod pool;
pub mod resample;
pub mod smart_turn;
pub mod stt;
pub mod tts;
pub mod vad;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use moonshine::Moonshine;
use pool::WorkerPool;
use smart_turn::SmartTurn;
use stt::{EmbeddedStt, Endpointing, ModelTurns, RecognitionWorker, TurnDetection};
use tts::{EmbeddedTts, SpeechCache, Voice};
use vad::SileroVad;

/// ONNX Runtime library inside `MODELS_DIR`.
pub const RUNTIME_LIBRARY: &str = "lib/libonnxruntime.so.1.32.0";
/// Moonshine model directory inside `MODELS_DIR`.
pub const STT_MODEL_DIR: &str = "moonshine-base-en";
/// Silero VAD model inside `MODELS_DIR`.
pub const VAD_MODEL: &str = "vad/silero_vad.onnx";
/// Smart Turn v3.2, the end-of-turn model, inside `MODELS_DIR`.
pub const SMART_TURN_MODEL: &str = "smart-turn/smart-turn-v3.2-cpu.onnx";
/// Piper voice inside `MODELS_DIR`.
pub const PIPER_VOICE: &str = "piper-joe/en_US-joe-medium.onnx";
/// Waiting jobs per pool before new ones are refused (each call has at most one recognition
/// and one synthesis job in flight).
const QUEUE_JOBS: usize = 64;

/// Why the embedded engines could not start. Every message names what is missing and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A model file is not where it should be.
    #[error("{what} not found at {}; run scripts/setup.sh (or set MODELS_DIR)", path.display())]
    Missing {
        /// What the file is.
        what: &'static str,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The ONNX Runtime library could not be loaded.
    #[error("ONNX Runtime could not be loaded from {}: {message}; run scripts/setup.sh (or set MODELS_DIR)", path.display())]
    Runtime {
        /// The library path.
        path: PathBuf,
        /// The loader's message.
        message: String,
    },
    /// A file is there but unusable.
    #[error("{what} at {} could not be loaded: {message}; run scripts/setup.sh to reinstall it", path.display())]
    Load {
        /// What the file is.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A helper program is not installed.
    #[error("{program} is not installed; run scripts/setup.sh (Debian package {package})")]
    Program {
        /// The program.
        program: &'static str,
        /// The Debian package that provides it.
        package: &'static str,
    },
}

/// Which voice the embedded synthesizer speaks with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoiceChoice {
    /// Piper `en_US-joe-medium`: natural, about 0.11 × real time per core.
    Piper,
    /// A flite voice (`kal`, `slt`, …): robotic, nearly free.
    Flite(String),
}

/// How the embedded engines are set up.
#[derive(Debug, Clone)]
pub struct EmbeddedSettings {
    /// Where `scripts/setup.sh` put the models (`MODELS_DIR`).
    pub models_dir: PathBuf,
    /// The voice (`TTS_VOICE`).
    pub voice: VoiceChoice,
    /// Recognition worker threads, each with its own model (`STT_WORKERS`).
    pub stt_workers: usize,
    /// Synthesis worker threads (`TTS_WORKERS`).
    pub tts_workers: usize,
    /// Endpointing (`TURN_DETECTION`, `TURN_*`, `STT_PARTIAL_INTERVAL_MS`).
    pub endpointing: Endpointing,
}

impl EmbeddedSettings {
    /// The defaults with one worker of each kind (for tools and tests).
    pub fn single_worker(models_dir: PathBuf) -> Self {
        Self {
            models_dir,
            voice: VoiceChoice::Piper,
            stt_workers: 1,
            tts_workers: 1,
            endpointing: Endpointing {
                turn_silence: Duration::from_millis(600),
                partial_interval: Duration::from_millis(1000),
                detection: TurnDetection::Model(ModelTurns::default()),
            },
        }
    }
}

/// Loads the streaming recogniser: the VAD and `stt_workers` recognition workers.
pub fn load_stt(settings: &EmbeddedSettings) -> Result<EmbeddedStt, ModelError> {
    let started = Instant::now();
    let dir = &settings.models_dir;
    let env = onnx::runtime(&dir.join(RUNTIME_LIBRARY))?;
    let models = (0..settings.stt_workers.max(1))
        .map(|_| load_recognizer(settings))
        .collect::<Result<Vec<_>, _>>()?;
    let vad = SileroVad::load(env, &dir.join(VAD_MODEL))?;
    let turns = match settings.endpointing.detection {
        TurnDetection::Model(_) => {
            let models = (0..models.len())
                .map(|_| load_turn_model(settings))
                .collect::<Result<Vec<_>, _>>()?;
            Some(WorkerPool::start("turn", models, QUEUE_JOBS))
        }
        TurnDetection::Silence => None,
    };
    tracing::info!(
        workers = models.len(),
        turn_model = turns.is_some(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "speech recognition loaded (Moonshine base, Silero VAD, Smart Turn v3.2 if turn_model)"
    );
    Ok(EmbeddedStt::new(
        WorkerPool::start("vad", vec![vad], QUEUE_JOBS * 4),
        WorkerPool::start("stt", models, QUEUE_JOBS),
        turns,
        settings.endpointing,
    ))
}

/// Loads the synthesizer, and synthesizes the constant clauses of `lines` (everything the agent
/// can say) into its cache, in parallel on its workers.
pub fn load_tts(settings: &EmbeddedSettings, lines: &[&str]) -> Result<EmbeddedTts, ModelError> {
    let started = Instant::now();
    let voices = (0..settings.tts_workers.max(1))
        .map(|_| load_voice(settings))
        .collect::<Result<Vec<_>, _>>()?;
    let workers = voices.len();
    let clauses = SpeechCache::constant_clauses(lines);
    let pool = WorkerPool::start("tts", voices, QUEUE_JOBS.max(clauses.len()));
    let cache = SpeechCache::build(&pool, clauses).map_err(|message| ModelError::Load {
        what: "TTS voice",
        path: settings.models_dir.clone(),
        message,
    })?;
    let name = match settings.voice {
        VoiceChoice::Piper => "piper",
        VoiceChoice::Flite(_) => "flite",
    };
    tracing::info!(
        voice = name,
        workers,
        cached_clauses = cache.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "speech synthesis loaded"
    );
    Ok(EmbeddedTts::new(name, pool, cache))
}

/// Loads one recognition worker (a whole-clip recogniser, without endpointing).
pub fn load_recognizer(settings: &EmbeddedSettings) -> Result<RecognitionWorker, ModelError> {
    let dir = &settings.models_dir;
    let env = onnx::runtime(&dir.join(RUNTIME_LIBRARY))?;
    let mut worker = RecognitionWorker::new(Moonshine::load(env, &dir.join(STT_MODEL_DIR))?);
    // The first inference of a session is several times slower (allocations, kernel set-up):
    // pay it at start-up, not on the first caller's turn.
    worker.warm_up().map_err(|message| ModelError::Load {
        what: "STT model",
        path: dir.join(STT_MODEL_DIR),
        message,
    })?;
    Ok(worker)
}

/// Loads one end-of-turn model, warmed up.
pub fn load_turn_model(settings: &EmbeddedSettings) -> Result<SmartTurn, ModelError> {
    let dir = &settings.models_dir;
    let env = onnx::runtime(&dir.join(RUNTIME_LIBRARY))?;
    let mut model = SmartTurn::load(env, &dir.join(SMART_TURN_MODEL))?;
    // As for recognition: the first inference is slow; pay it now.
    model
        .completion(&[0.0; 8_000])
        .map_err(|message| ModelError::Load {
            what: "end-of-turn model",
            path: dir.join(SMART_TURN_MODEL),
            message,
        })?;
    Ok(model)
}

/// Loads one voice of the configured kind.
pub fn load_voice(settings: &EmbeddedSettings) -> Result<Voice, ModelError> {
    match &settings.voice {
        VoiceChoice::Piper => {
            let dir: &Path = &settings.models_dir;
            let env = onnx::runtime(&dir.join(RUNTIME_LIBRARY))?;
            let mut voice = Voice::piper(piper::Piper::load(env, &dir.join(PIPER_VOICE))?);
            // As for recognition: the first inference is slow; pay it now.
            voice.speak("Hello.").map_err(|message| ModelError::Load {
                what: "TTS voice",
                path: dir.join(PIPER_VOICE),
                message,
            })?;
            Ok(voice)
        }
        VoiceChoice::Flite(voice) => Ok(Voice::flite(flite::Flite::new(voice)?)),
    }
}
