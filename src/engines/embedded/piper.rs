//! Piper (VITS) speech synthesis on ONNX Runtime, with phonemes from espeak-ng.
//!
//! espeak-ng runs as a helper process (`espeak-ng -q --ipa`), not linked: libespeak-ng is GPL-3 and
//! this server is MIT. A process per clause costs a few milliseconds next to the model's hundreds.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use ort::session::Session;
use ort::value::Tensor;
use serde::Deserialize;

use super::{onnx, ModelError};

/// The phonemizer program.
pub const ESPEAK: &str = "espeak-ng";
const BOS: char = '^';
const EOS: char = '$';
const PAD: char = '_';

#[derive(Deserialize)]
struct VoiceConfig {
    audio: AudioConfig,
    inference: InferenceConfig,
    espeak: EspeakConfig,
    phoneme_id_map: HashMap<String, Vec<i64>>,
}

#[derive(Deserialize)]
struct AudioConfig {
    sample_rate: u32,
}

#[derive(Deserialize)]
struct InferenceConfig {
    noise_scale: f32,
    length_scale: f32,
    noise_w: f32,
}

#[derive(Deserialize)]
struct EspeakConfig {
    voice: String,
}

/// A loaded Piper voice (one per worker thread).
pub struct Piper {
    session: Session,
    ids: HashMap<char, Vec<i64>>,
    scales: [f32; 3],
    espeak_voice: String,
    sample_rate: u32,
}

impl Piper {
    /// Loads `model` and its `model.json` configuration, and checks espeak-ng runs.
    pub fn load(env: &ort::environment::Environment, model: &Path) -> Result<Self, ModelError> {
        let config_path = model.with_extension("onnx.json");
        onnx::require_file("TTS voice", model)?;
        onnx::require_file("TTS voice configuration", &config_path)?;
        let bad_config = |message: String| ModelError::Load {
            what: "TTS voice configuration",
            path: config_path.clone(),
            message,
        };
        let text = std::fs::read_to_string(&config_path).map_err(|e| bad_config(e.to_string()))?;
        let config: VoiceConfig =
            serde_json::from_str(&text).map_err(|e| bad_config(e.to_string()))?;
        let mut ids = HashMap::new();
        for (phoneme, id) in config.phoneme_id_map {
            let mut chars = phoneme.chars();
            if let (Some(ch), None) = (chars.next(), chars.next()) {
                ids.insert(ch, id);
            }
        }
        if [BOS, EOS, PAD].iter().any(|ch| !ids.contains_key(ch)) {
            return Err(bad_config("phoneme_id_map lacks ^, $ or _".into()));
        }
        check_espeak()?;
        Ok(Self {
            session: onnx::folded_session(env, "TTS voice", model)?,
            ids,
            scales: [
                config.inference.noise_scale,
                config.inference.length_scale,
                config.inference.noise_w,
            ],
            espeak_voice: config.espeak.voice,
            sample_rate: config.audio.sample_rate,
        })
    }

    /// The voice's output rate.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Speaks `text`: samples in [-1, 1] at [`Self::sample_rate`].
    pub fn synthesize(&mut self, text: &str) -> Result<Vec<f32>, String> {
        let phonemes = phonemize(&self.espeak_voice, text)?;
        let ids = self.phoneme_ids(&phonemes, text);
        let count = ids.len();
        let input = Tensor::from_array(([1_usize, count], ids)).map_err(onnx::run_error)?;
        let lengths =
            Tensor::from_array(([1_usize], vec![count as i64])).map_err(onnx::run_error)?;
        let scales =
            Tensor::from_array(([3_usize], self.scales.to_vec())).map_err(onnx::run_error)?;
        let outputs = self
            .session
            .run(ort::inputs!["input" => input, "input_lengths" => lengths, "scales" => scales])
            .map_err(onnx::run_error)?;
        let (_, audio) = outputs["output"]
            .try_extract_tensor::<f32>()
            .map_err(onnx::run_error)?;
        Ok(audio.to_vec())
    }

    /// `^ _ (phoneme _)* $`; the clause's closing punctuation is kept (espeak-ng drops it) so a
    /// question sounds like one.
    fn phoneme_ids(&self, phonemes: &str, text: &str) -> Vec<i64> {
        let mut ids = Vec::with_capacity(phonemes.len() * 2 + 4);
        let push = |ch: char, ids: &mut Vec<i64>| {
            if let Some(id) = self.ids.get(&ch) {
                ids.extend_from_slice(id);
                ids.extend_from_slice(&self.ids[&PAD]);
            }
        };
        ids.extend_from_slice(&self.ids[&BOS]);
        ids.extend_from_slice(&self.ids[&PAD]);
        for ch in phonemes.chars() {
            push(ch, &mut ids);
        }
        if let Some(end) = text
            .trim_end()
            .chars()
            .last()
            .filter(|c| ".?!".contains(*c))
        {
            push(end, &mut ids);
        }
        ids.extend_from_slice(&self.ids[&EOS]);
        ids
    }
}

/// IPA phonemes of `text` from espeak-ng, clauses joined with ", ".
fn phonemize(voice: &str, text: &str) -> Result<String, String> {
    let mut child = Command::new(ESPEAK)
        .args(["-q", "--ipa", "-v", voice, "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|error| format!("{ESPEAK}: {error}"))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin
        .write_all(text.as_bytes())
        .map_err(|error| format!("{ESPEAK}: {error}"))?;
    drop(stdin);
    let output = child
        .wait_with_output()
        .map_err(|error| format!("{ESPEAK}: {error}"))?;
    if !output.status.success() {
        return Err(format!("{ESPEAK} exited with {}", output.status));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let clauses: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    Ok(clauses.join(", "))
}

/// Checks espeak-ng runs, naming its Debian package when it does not.
fn check_espeak() -> Result<(), ModelError> {
    let runs = Command::new(ESPEAK)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if runs {
        Ok(())
    } else {
        Err(ModelError::Program {
            program: ESPEAK,
            package: "espeak-ng",
        })
    }
}
