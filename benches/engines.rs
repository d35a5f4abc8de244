//! The embedded engines' speed on this machine, one core each (the workers are single-threaded):
//! recognition real-time factor over the telephony set, synthesis time to first audio, the VAD's
//! cost per 32 ms chunk, and the end-of-turn model's cost per question (features, then the model). Needs the models (`scripts/setup.sh`).
//!
//! `cargo bench --bench engines` (pin it, e.g. `taskset -c 1 cargo bench --bench engines`, for
//! one-core figures).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use phone_agent::client::loadgen::probe::ServerProbe;
use phone_agent::engines::embedded::log_mel::LogMel;
use phone_agent::engines::embedded::vad::{SileroVad, VadState, CHUNK_SAMPLES};
use phone_agent::engines::embedded::{self, onnx, EmbeddedSettings, RUNTIME_LIBRARY, VAD_MODEL};
use phone_agent::wav;

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let settings = EmbeddedSettings::single_worker(root.join("models"));

    let before = memory_kib();
    let mut recognizer =
        embedded::load_recognizer(&settings).expect("models: run scripts/setup.sh");
    let first = memory_kib();
    let second_worker = embedded::load_recognizer(&settings).unwrap();
    let second = memory_kib();
    drop(second_worker);
    println!(
        "stt memory: first worker (with the runtime) {} MiB resident, {} MiB proportional; a second \
         worker adds {} MiB resident, {} MiB proportional (its mapped weights are the first's)",
        (first.0 - before.0) / 1024,
        (first.1 - before.1) / 1024,
        (second.0 - first.0) / 1024,
        (second.1 - first.1) / 1024
    );
    let set = root.join("tests/data/telephony");
    let index = std::fs::read_to_string(set.join("transcripts.tsv")).unwrap();
    let (mut audio, mut busy, mut worst) = (Duration::ZERO, Duration::ZERO, 0.0_f64);
    for line in index.lines() {
        let file = line.split('\t').next().unwrap();
        let clip = wav::read(&std::fs::read(set.join(file)).unwrap()).unwrap();
        let length = Duration::from_secs_f64(clip.samples.len() as f64 / 8_000.0);
        let started = Instant::now();
        recognizer.transcribe(&clip.samples).unwrap();
        let took = started.elapsed();
        worst = worst.max(took.as_secs_f64() / length.as_secs_f64());
        audio += length;
        busy += took;
    }
    println!(
        "stt: {:.1} s of telephony audio decoded in {:.2} s: real-time factor {:.3} (worst utterance {:.3})",
        audio.as_secs_f64(),
        busy.as_secs_f64(),
        busy.as_secs_f64() / audio.as_secs_f64(),
        worst,
    );

    let env = onnx::runtime(&settings.models_dir.join(RUNTIME_LIBRARY)).unwrap();
    let mut vad = SileroVad::load(env, &settings.models_dir.join(VAD_MODEL)).unwrap();
    let mut state = VadState::default();
    let chunk = [0.01_f32; CHUNK_SAMPLES];
    let runs = 2_000;
    let started = Instant::now();
    for _ in 0..runs {
        vad.speech_probability(&mut state, &chunk).unwrap();
    }
    let per_chunk = started.elapsed() / runs;
    println!(
        "vad: {} µs per 32 ms chunk ({:.2}% of one core per call)",
        per_chunk.as_micros(),
        per_chunk.as_secs_f64() / 0.032 * 100.0
    );

    let before = memory_kib().0;
    let mut turns = embedded::load_turn_model(&settings).unwrap();
    let model_kib = memory_kib().0 - before;
    let mut features = LogMel::new();
    let turn = wav::read(&std::fs::read(set.join("u05.wav")).unwrap())
        .unwrap()
        .samples;
    let wideband = vec![0.01_f32; 8 * 16_000];
    let runs = 50;
    let started = Instant::now();
    for _ in 0..runs {
        std::hint::black_box(features.features(&wideband));
    }
    let per_features = started.elapsed() / runs;
    let started = Instant::now();
    for _ in 0..runs {
        turns.completion(&turn).unwrap();
    }
    let per_question = started.elapsed() / runs;
    println!(
        "turn model: {:.1} ms per question ({:.1} ms of it the features); one question per caller \
         turn, so at a turn every 5 s, {:.2}% of one core per call; {} MiB resident per worker",
        per_question.as_secs_f64() * 1000.0,
        per_features.as_secs_f64() * 1000.0,
        per_question.as_secs_f64() / 5.0 * 100.0,
        model_kib / 1024
    );

    let mut voice = embedded::load_voice(&settings).unwrap();
    for sentence in [
        "Sure, I can help with that.",
        "We're open Monday to Friday from eight in the morning to six in the evening.",
    ] {
        let mut times = Vec::new();
        let mut length = 0.0;
        for _ in 0..5 {
            let started = Instant::now();
            let audio = voice.speak(sentence).unwrap();
            times.push(started.elapsed());
            length = audio.len() as f64 / 8_000.0;
        }
        times.sort();
        println!(
            "tts: {sentence:?}: {:.2} s of speech, first audio after {} ms (median of 5), real-time factor {:.3}",
            length,
            times[2].as_millis(),
            times[2].as_secs_f64() / length
        );
    }
}

/// This process's resident and proportional memory, KiB.
fn memory_kib() -> (i64, i64) {
    let probe = ServerProbe::new(std::process::id());
    let rss = probe.rss_kib().expect("VmRSS readable") as i64;
    (rss, probe.pss_kib().expect("Pss readable") as i64)
}
