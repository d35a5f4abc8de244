//! The embedded engines on real models (installed by `scripts/setup.sh`): recognition accuracy on
//! the checked-in telephony set, synthesis round trips, and the start-up errors when models are
//! missing.

use std::path::PathBuf;
use std::time::Duration;

use futures_util::StreamExt;
use phone_agent::engines::embedded::moonshine::Moonshine;
use phone_agent::engines::embedded::pool::WorkerPool;
use phone_agent::engines::embedded::stt::RecognitionWorker;
use phone_agent::engines::embedded::tts::{EmbeddedTts, SpeechCache};
use phone_agent::engines::embedded::{self, EmbeddedSettings, VoiceChoice};
use phone_agent::wav;
use phone_agent_actors::audio::{mulaw, AudioFrame, Framer, FRAME_BYTES};
use phone_agent_actors::engines::{
    CallContext, SpeechToText, Synthesized, TextToSpeech, TranscriptEvent,
};
use phone_agent_actors::ids::{CallSid, StreamSid, UtteranceId};

use phone_agent::client::eval::wer;

/// Calibrated on this set: 14.5% measured (flite voices slt, rms and awb through 8 kHz mu-law;
/// Moonshine base). The margin absorbs small model or resampler changes, not a broken pipeline.
const WER_LIMIT: f64 = 0.20;

pub fn models_dir() -> PathBuf {
    std::env::var_os("MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models"))
}

pub fn settings() -> EmbeddedSettings {
    let mut settings = EmbeddedSettings::single_worker(models_dir());
    settings.endpointing.partial_interval = Duration::ZERO;
    settings
}

pub fn call() -> CallContext {
    CallContext {
        call_sid: CallSid::parse("CA0123456789abcdef0123456789abcdef").unwrap(),
        stream_sid: StreamSid::new("MZ1"),
        custom_parameters: Default::default(),
    }
}

/// 20 ms frames of mu-law audio, then a second of line silence.
fn frames(mulaw_audio: &[u8]) -> Vec<AudioFrame> {
    let mut audio = mulaw_audio.to_vec();
    audio.resize(
        audio.len().div_ceil(FRAME_BYTES) * FRAME_BYTES + 50 * FRAME_BYTES,
        0xFF,
    );
    let mut framer = Framer::new();
    let mut frames = Vec::new();
    framer.push(&audio, &mut frames);
    frames
}

/// What the streaming recogniser hears in `mulaw_audio`: the finals of every turn, joined.
pub async fn transcribe(stt: &dyn SpeechToText, mulaw_audio: &[u8]) -> String {
    let session = stt.open(&call()).unwrap();
    let sender = session.audio.clone();
    let frames = frames(mulaw_audio);
    actix_rt::spawn(async move {
        for frame in frames {
            if sender.send(frame).await.is_err() {
                return;
            }
        }
    });
    drop(session.audio);
    let mut events = session.events;
    let mut text = Vec::new();
    while let Some(event) = events.next().await {
        if let TranscriptEvent::Final { text: words } = event.unwrap() {
            text.push(words);
        }
    }
    text.join(" ")
}

fn encode(samples: &[f32]) -> Vec<u8> {
    let mut out = Vec::new();
    mulaw::encode_float_into(samples, &mut out);
    out
}

#[actix_rt::test]
async fn recognition_accuracy_on_the_telephony_set() {
    let stt = embedded::load_stt(&settings()).expect("models installed by scripts/setup.sh");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/telephony");
    let index = std::fs::read_to_string(dir.join("transcripts.tsv")).unwrap();
    let (mut errors, mut words) = (0, 0);
    for line in index.lines() {
        let mut fields = line.split('\t');
        let (file, _voice, reference) = (
            fields.next().unwrap(),
            fields.next().unwrap(),
            fields.next().unwrap(),
        );
        let clip = wav::read(&std::fs::read(dir.join(file)).unwrap()).unwrap();
        assert_eq!(clip.sample_rate, 8_000, "{file}");
        let heard = transcribe(&stt, &encode(&clip.samples)).await;
        let (reference, hypothesis) = (wer::normalise(reference), wer::normalise(&heard));
        let wrong = wer::errors(&reference, &hypothesis);
        println!("{file}: {wrong}/{} {heard:?}", reference.len());
        errors += wrong;
        words += reference.len();
    }
    let rate = errors as f64 / words as f64;
    println!("WER {:.1}% ({errors}/{words})", rate * 100.0);
    assert!(rate < WER_LIMIT, "WER {:.1}%", rate * 100.0);
}

/// The ONNX rewrite of Moonshine that runs (`scripts/ort-to-onnx.py`) decodes as the graphs
/// shipped in the wheel do: the same words on every clip of the telephony set.
#[test]
fn the_rewritten_recogniser_hears_what_the_shipped_one_does() {
    let models = models_dir();
    let env = embedded::onnx::runtime(&models.join(embedded::RUNTIME_LIBRARY)).unwrap();
    let dir = models.join(embedded::STT_MODEL_DIR);
    let mut rewritten = RecognitionWorker::new(Moonshine::load(env, &dir).unwrap());
    let mut shipped = RecognitionWorker::new(Moonshine::load_as_shipped(env, &dir).unwrap());
    let clips = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/telephony");
    for n in 1..=4 {
        let clip = wav::read(&std::fs::read(clips.join(format!("u0{n}.wav"))).unwrap()).unwrap();
        let heard = rewritten.transcribe(&clip.samples).unwrap();
        assert!(!heard.is_empty(), "u0{n}");
        assert_eq!(heard, shipped.transcribe(&clip.samples).unwrap(), "u0{n}");
    }
}

#[actix_rt::test]
async fn synthesis_is_framed_mulaw_that_the_recogniser_understands() {
    let settings = settings();
    let tts = embedded::load_tts(&settings, &[]).expect("models installed by scripts/setup.sh");
    let mut session = tts.open(&call()).unwrap();
    let sentence = "Our office opens at nine in the morning.";
    let chunks: Vec<_> = session.synthesize(UtteranceId(1), sentence).collect().await;
    let audio: Vec<u8> = chunks
        .into_iter()
        .flat_map(|chunk| match chunk.unwrap() {
            Synthesized::Audio(audio) => audio,
            Synthesized::WordEnds(_) => panic!("the embedded voices give no word timings"),
        })
        .collect();

    let seconds = audio.len() as f64 / 8_000.0;
    assert!((1.0..6.0).contains(&seconds), "{seconds} s of speech");
    let mut pcm = Vec::new();
    mulaw::decode_into(&audio, &mut pcm);
    let peak = pcm.iter().map(|s| s.unsigned_abs()).max().unwrap();
    assert!(
        (16_000..=24_000).contains(&peak),
        "peak {peak}: normalised to about -3 dBFS"
    );

    let mut framer = Framer::new();
    let mut frames = Vec::new();
    framer.push(&audio, &mut frames);
    frames.extend(framer.finish());
    assert!(frames
        .iter()
        .all(|frame| frame.payload.len() == FRAME_BYTES));
    assert_eq!(frames.len(), audio.len().div_ceil(FRAME_BYTES));

    let mut recognizer = embedded::load_recognizer(&settings).unwrap();
    let mut samples = Vec::new();
    mulaw::decode_float_into(&audio, &mut samples);
    let heard = recognizer.transcribe(&samples).unwrap();
    let reference = wer::normalise(sentence);
    let wrong = wer::errors(&reference, &wer::normalise(&heard));
    assert!(wrong <= 1, "heard {heard:?} for {sentence:?}");
}

#[test]
fn a_model_is_folded_once_again_when_it_changes_and_opened_as_it_is_where_it_cannot_be() {
    use phone_agent::engines::embedded::onnx;
    let env = onnx::runtime(&models_dir().join(embedded::RUNTIME_LIBRARY)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("vad.onnx");
    std::fs::copy(models_dir().join(embedded::VAD_MODEL), &model).unwrap();

    let folded = onnx::fold(env, "VAD model", &model).unwrap();
    assert_eq!(folded, dir.path().join("folded/vad.onnx"));
    assert!(
        dir.path().join("folded/vad.onnx.data").is_file(),
        "weights apart"
    );
    let made = || std::fs::metadata(&folded).unwrap().modified().unwrap();
    let first = made();
    onnx::fold(env, "VAD model", &model).unwrap();
    assert_eq!(made(), first, "an up-to-date copy is not made again");
    let source = std::fs::File::options().write(true).open(&model).unwrap();
    source
        .set_modified(std::time::SystemTime::now() + Duration::from_secs(1))
        .unwrap();
    onnx::fold(env, "VAD model", &model).unwrap();
    assert_ne!(made(), first, "a changed source is folded again");
    let leftovers = std::fs::read_dir(dir.path().join("folded"))
        .unwrap()
        .filter(|entry| {
            entry
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.')
        })
        .count();
    assert_eq!(leftovers, 0, "no scratch directory left behind");
    let session = onnx::folded_session(env, "VAD model", &model).unwrap();
    assert_eq!(session.inputs().len(), 3, "silero: input, state, sr");

    // Where no copy can be written (here a file stands where its directory would be), the model
    // is opened as it is.
    let blocked = tempfile::tempdir().unwrap();
    let model = blocked.path().join("vad.onnx");
    std::fs::copy(models_dir().join(embedded::VAD_MODEL), &model).unwrap();
    std::fs::write(blocked.path().join("folded"), b"not a directory").unwrap();
    assert!(onnx::fold(env, "VAD model", &model).is_err());
    assert!(onnx::folded_session(env, "VAD model", &model).is_ok());
}

#[test]
fn missing_models_stop_start_up_with_the_path_and_the_fix() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_phone-agent"))
        .env_clear()
        .env("MODELS_DIR", "/nonexistent/models")
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("/nonexistent/models/lib/libonnxruntime.so.1.32.0")
            && stderr.contains("run scripts/setup.sh"),
        "{stderr}"
    );
}

#[test]
fn a_missing_recognition_model_is_named() {
    let dir = std::env::temp_dir().join(format!("phone-agent-models-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("lib")).unwrap();
    let library = dir.join(embedded::RUNTIME_LIBRARY);
    if !library.exists() {
        std::os::unix::fs::symlink(models_dir().join(embedded::RUNTIME_LIBRARY), &library).unwrap();
    }
    let error = match embedded::load_stt(&EmbeddedSettings::single_worker(dir.clone())) {
        Ok(_) => panic!("loaded without a model"),
        Err(error) => error.to_string(),
    };
    std::fs::remove_dir_all(&dir).unwrap();
    let expected = format!(
        "STT tokenizer not found at {}; run scripts/setup.sh",
        dir.join("moonshine-base-en/tokenizer.bin").display()
    );
    assert!(error.starts_with(&expected), "{error}");
}

#[actix_rt::test]
async fn fixed_answers_play_from_memory() {
    let mut settings = settings();
    settings.voice = VoiceChoice::Flite("kal".into());
    let mut voice = embedded::load_voice(&settings).expect("flite installed by scripts/setup.sh");
    let lines = [
        "We are open every weekday from nine to five. Goodbye!",
        "Thanks, {name}. What's your number?",
    ];
    let clauses = SpeechCache::constant_clauses(&lines);
    let expected = [
        "Goodbye!",
        "We are open every weekday from nine to five.",
        "What's your number?",
    ];
    assert_eq!(
        clauses.iter().map(String::as_str).collect::<Vec<_>>(),
        expected
    );
    let workers = WorkerPool::start("tts", vec![embedded::load_voice(&settings).unwrap()], 8);
    let cache = SpeechCache::build(&workers, clauses).unwrap();
    assert_eq!(
        cache.len(),
        3,
        "one entry per constant clause, as the Responder cuts them"
    );
    // A pool without workers: only what is cached can be spoken.
    let tts = EmbeddedTts::new("flite", WorkerPool::start("tts", Vec::new(), 4), cache);
    let mut session = tts.open(&call()).unwrap();
    let cached = session.synthesize(UtteranceId(1), "Goodbye!").next().await;
    assert_eq!(
        cached.unwrap().unwrap(),
        Synthesized::Audio(voice.speak("Goodbye!").unwrap())
    );
    let uncached = tokio::time::timeout(
        Duration::from_millis(300),
        session.synthesize(UtteranceId(1), "Hello there.").next(),
    )
    .await;
    assert!(
        !matches!(uncached, Ok(Some(Ok(_)))),
        "an uncached clause cannot be spoken without a worker"
    );
}
