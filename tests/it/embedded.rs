//! The embedded engines on real models (installed by `scripts/setup.sh`): recognition accuracy on
//! the checked-in telephony set, synthesis round trips, and the start-up errors when models are
//! missing.

use std::path::PathBuf;
use std::time::Duration;

use futures_util::StreamExt;
use phone_agent::engines::embedded::stt::Endpointing;
use phone_agent::engines::embedded::{self, EmbeddedSettings, VoiceChoice};
use phone_agent::wav;
use phone_agent_actors::audio::{mulaw, AudioFrame, Framer, FRAME_BYTES};
use phone_agent_actors::engines::{CallContext, SpeechToText, TranscriptEvent};
use phone_agent_actors::ids::{CallSid, StreamSid};

use crate::wer;

fn models_dir() -> PathBuf {
    std::env::var_os("MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models"))
}

pub fn settings() -> EmbeddedSettings {
    EmbeddedSettings {
        models_dir: models_dir(),
        voice: VoiceChoice::Piper,
        stt_workers: 1,
        tts_workers: 1,
        endpointing: Endpointing {
            turn_silence: Duration::from_millis(600),
            partial_interval: Duration::ZERO,
        },
    }
}

fn call() -> CallContext {
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
    mulaw::encode_into(&wav::to_i16(samples), &mut out);
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
    assert!(rate < 0.5, "WER {:.1}%", rate * 100.0);
}
