//! Moonshine base (English) speech recognition on ONNX Runtime: an encoder over 16 kHz audio and a
//! cached autoregressive decoder, decoded greedily. The recipe (tensor names, cache handling, token
//! file format) is in `shared/ENGINES.md` (beside the repository); the wheel's own C library is not used (it needs AVX-512).
//!
//! The graphs are loaded from the ONNX files `scripts/setup-models.sh` rewrites from the shipped
//! ORT-format ones (`scripts/ort-to-onnx.py`, node for node): ONNX Runtime does not optimise an
//! ORT-format graph, so the shipped decoder dequantises its int8 weights at every step (48 ms a
//! step on one core), where the ONNX copy is constant-folded (9 ms a step, the same tokens). The
//! folding is done once and saved beside the model ([`onnx::folded_session`]): the float weights
//! (355 MB) are then a file every worker maps, held once in memory, and used without a prepacked
//! copy. `cargo bench --bench engines`: the first worker 362 MiB with the runtime (700 when each
//! worker folded its own), each further worker 42 MiB of its own (460), at the same decoding speed.

use std::borrow::Cow;
use std::path::Path;

use ort::session::{Session, SessionInputValue};
use ort::value::{DynValue, Tensor, TensorRef};

use super::{onnx, ModelError};

/// Sample rate the model expects.
pub const SAMPLE_RATE_HZ: u32 = 16_000;
const LAYERS: usize = 8;
const HEADS: usize = 8;
const HEAD_DIM: usize = 52;
const BOS: i64 = 1;
const EOS: i64 = 2;
/// Tokens per second of audio the decoder may produce before it is cut off (a safety bound against
/// repetition loops; speech runs at about three).
const TOKENS_PER_SECOND: f32 = 6.0;

/// The loaded model (one per worker thread: `Session::run` needs `&mut`).
pub struct Moonshine {
    encoder: Session,
    decoder: Session,
    tokens: Vec<Vec<u8>>,
}

impl Moonshine {
    /// Loads `encoder_model.onnx`, `decoder_model_merged.onnx` and `tokenizer.bin` from `dir`.
    pub fn load(env: &ort::environment::Environment, dir: &Path) -> Result<Self, ModelError> {
        Self::load_graphs(env, dir, "onnx")
    }

    /// Loads the graphs as shipped (`encoder_model.ort`, `decoder_model_merged.ort`): several
    /// times slower, and the reference the ONNX copies are checked against.
    pub fn load_as_shipped(
        env: &ort::environment::Environment,
        dir: &Path,
    ) -> Result<Self, ModelError> {
        Self::load_graphs(env, dir, "ort")
    }

    fn load_graphs(
        env: &ort::environment::Environment,
        dir: &Path,
        extension: &str,
    ) -> Result<Self, ModelError> {
        let tokenizer = onnx::require_file("STT tokenizer", &dir.join("tokenizer.bin"))?;
        let graph = |name: &str| {
            let path = dir.join(format!("{name}.{extension}"));
            match extension {
                "onnx" => onnx::folded_session(env, "STT model", &path),
                _ => onnx::session(env, "STT model", &path),
            }
        };
        let encoder = graph("encoder_model")?;
        let decoder = graph("decoder_model_merged")?;
        let bytes = std::fs::read(&tokenizer).map_err(|error| ModelError::Load {
            what: "STT tokenizer",
            path: tokenizer.clone(),
            message: error.to_string(),
        })?;
        let tokens = parse_tokenizer(&bytes).ok_or_else(|| ModelError::Load {
            what: "STT tokenizer",
            path: tokenizer,
            message: "truncated token table".into(),
        })?;
        Ok(Self {
            encoder,
            decoder,
            tokens,
        })
    }

    /// Transcribes 16 kHz mono samples in [-1, 1]; stops early (with an error) once `abandoned`
    /// says nobody wants the result.
    pub fn transcribe(
        &mut self,
        samples: &[f32],
        abandoned: &dyn Fn() -> bool,
    ) -> Result<String, String> {
        if samples.len() < SAMPLE_RATE_HZ as usize / 10 {
            return Ok(String::new());
        }
        let seconds = samples.len() as f32 / SAMPLE_RATE_HZ as f32;
        let max_tokens = (seconds * TOKENS_PER_SECOND) as usize + 8;
        let ids = self.decode(samples, max_tokens, true, abandoned)?;
        Ok(self.detokenize(&ids))
    }

    /// Runs the model once over `seconds` of faint noise and a full run of decoder steps (noise
    /// alone would end at the first token): the first inferences of a session, and the first at
    /// each cache length, are several times slower, so a caller should not pay for them.
    pub fn warm_up(&mut self, seconds: f32) -> Result<(), String> {
        let len = (seconds * SAMPLE_RATE_HZ as f32) as usize;
        let noise: Vec<f32> = (0..len)
            .map(|i| ((i * 7919 % 200) as f32 - 100.0) / 10_000.0)
            .collect();
        let steps = (seconds * TOKENS_PER_SECOND) as usize;
        self.decode(&noise, steps, false, &|| false).map(drop)
    }

    /// Greedy decoding of up to `max_tokens` tokens, stopping at end of text if `stop_at_eos`.
    fn decode(
        &mut self,
        samples: &[f32],
        max_tokens: usize,
        stop_at_eos: bool,
        abandoned: &dyn Fn() -> bool,
    ) -> Result<Vec<i64>, String> {
        let audio = TensorRef::from_array_view(([1_usize, samples.len()], samples))
            .map_err(onnx::run_error)?;
        let mut encoded = self
            .encoder
            .run(ort::inputs!["input_values" => audio])
            .map_err(onnx::run_error)?;
        let hidden = encoded
            .remove("last_hidden_state")
            .ok_or("encoder output missing")?;
        drop(encoded);

        let mut cache = KvCache::empty()?;
        let mut token = BOS;
        let mut ids = Vec::new();
        for step in 0..max_tokens {
            if abandoned() {
                return Err("abandoned".into());
            }
            let mut inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = vec![
                (
                    "input_ids".into(),
                    Tensor::from_array(([1_usize, 1], vec![token]))
                        .map_err(onnx::run_error)?
                        .into(),
                ),
                ("encoder_hidden_states".into(), (&hidden).into()),
                (
                    "use_cache_branch".into(),
                    Tensor::from_array(([1_usize], vec![step > 0]))
                        .map_err(onnx::run_error)?
                        .into(),
                ),
            ];
            for (name, value) in cache.names.iter().zip(&cache.values) {
                inputs.push((Cow::Owned(name.past.clone()), value.into()));
            }
            let mut outputs = self.decoder.run(inputs).map_err(onnx::run_error)?;
            let (_, logits) = outputs["logits"]
                .try_extract_tensor::<f32>()
                .map_err(onnx::run_error)?;
            token = argmax(logits);
            for (name, value) in cache.names.iter().zip(cache.values.iter_mut()) {
                // The encoder's cross-attention cache is computed once, at the first step.
                if name.is_encoder && step > 0 {
                    continue;
                }
                *value = outputs
                    .remove(&name.present)
                    .ok_or("decoder cache output missing")?;
            }
            if token == EOS && stop_at_eos {
                break;
            }
            ids.push(token);
        }
        Ok(ids)
    }

    fn detokenize(&self, ids: &[i64]) -> String {
        let mut bytes = Vec::new();
        for &id in ids {
            if id > EOS {
                if let Some(piece) = usize::try_from(id).ok().and_then(|i| self.tokens.get(i)) {
                    bytes.extend_from_slice(piece);
                }
            }
        }
        String::from_utf8_lossy(&bytes)
            .replace('\u{2581}', " ")
            .trim()
            .to_owned()
    }
}

struct CacheName {
    past: String,
    present: String,
    is_encoder: bool,
}

/// The decoder's key/value cache, fed back as `past_key_values.*` from `present.*`.
struct KvCache {
    names: Vec<CacheName>,
    values: Vec<DynValue>,
}

impl KvCache {
    fn empty() -> Result<Self, String> {
        let mut names = Vec::new();
        let mut values = Vec::new();
        for layer in 0..LAYERS {
            for side in ["decoder", "encoder"] {
                for part in ["key", "value"] {
                    names.push(CacheName {
                        past: format!("past_key_values.{layer}.{side}.{part}"),
                        present: format!("present.{layer}.{side}.{part}"),
                        is_encoder: side == "encoder",
                    });
                    let empty =
                        Tensor::from_array(([1_usize, HEADS, 0, HEAD_DIM], Vec::<f32>::new()))
                            .map_err(onnx::run_error)?;
                    values.push(empty.into_dyn());
                }
            }
        }
        Ok(Self { names, values })
    }
}

fn argmax(logits: &[f32]) -> i64 {
    let mut best = (0, f32::NEG_INFINITY);
    for (index, &value) in logits.iter().enumerate() {
        if value > best.1 {
            best = (index, value);
        }
    }
    best.0 as i64
}

/// Parses `tokenizer.bin`: entries of a length (one byte, or two as a varint when the first is
/// ≥ 128) followed by that many bytes; a token's id is its entry's index.
fn parse_tokenizer(bytes: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut tokens = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let mut len = usize::from(bytes[at]);
        at += 1;
        if len >= 128 {
            len = (len & 0x7F) | usize::from(*bytes.get(at)?) << 7;
            at += 1;
        }
        tokens.push(bytes.get(at..at + len)?.to_vec());
        at += len;
    }
    Some(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_entries_with_short_and_varint_lengths() {
        let mut file = vec![0, 1, b'a', 2, 0xE2, 0x96];
        file.push(0x80 | 1);
        file.push(1); // 129 bytes
        file.extend(std::iter::repeat_n(b'x', 129));
        let tokens = parse_tokenizer(&file).unwrap();
        assert_eq!(tokens.len(), 4);
        assert_eq!(tokens[0], b"");
        assert_eq!(tokens[1], b"a");
        assert_eq!(tokens[3].len(), 129);
        assert!(parse_tokenizer(&[5, b'a']).is_none());
    }
}
