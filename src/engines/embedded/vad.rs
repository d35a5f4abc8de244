//! Silero VAD (v5 ONNX model, 8 kHz): the probability that a 32 ms chunk of caller audio is speech.
//!
//! The model is recurrent: each call keeps its own [`VadState`] (the LSTM state and the last samples
//! of the previous chunk), and any worker's session can score any call's next chunk with it.

use std::path::Path;

use ort::session::Session;
use ort::value::{Tensor, TensorRef};

use super::{onnx, ModelError};

/// Samples per scored chunk at 8 kHz (32 ms), as the model requires.
pub const CHUNK_SAMPLES: usize = 256;
/// Samples of the previous chunk the model sees before each chunk.
const CONTEXT_SAMPLES: usize = 32;
const STATE_LEN: usize = 2 * 128;
const SAMPLE_RATE_HZ: i64 = 8_000;

/// A loaded Silero model (one per worker thread).
pub struct SileroVad {
    session: Session,
}

/// One call's recurrent VAD state.
#[derive(Clone)]
pub struct VadState {
    state: Vec<f32>,
    context: [f32; CONTEXT_SAMPLES],
}

impl Default for VadState {
    fn default() -> Self {
        Self {
            state: vec![0.0; STATE_LEN],
            context: [0.0; CONTEXT_SAMPLES],
        }
    }
}

impl SileroVad {
    /// Loads `silero_vad.onnx`.
    pub fn load(env: &ort::environment::Environment, model: &Path) -> Result<Self, ModelError> {
        Ok(Self {
            session: onnx::session(env, "VAD model", model)?,
        })
    }

    /// Speech probability of `chunk` (8 kHz samples in [-1, 1]), advancing `vad`.
    pub fn speech_probability(
        &mut self,
        vad: &mut VadState,
        chunk: &[f32; CHUNK_SAMPLES],
    ) -> Result<f32, String> {
        let mut input = Vec::with_capacity(CONTEXT_SAMPLES + CHUNK_SAMPLES);
        input.extend_from_slice(&vad.context);
        input.extend_from_slice(chunk);
        vad.context
            .copy_from_slice(&chunk[CHUNK_SAMPLES - CONTEXT_SAMPLES..]);
        let input = TensorRef::from_array_view(([1_usize, input.len()], &input[..]))
            .map_err(onnx::run_error)?;
        let state = TensorRef::from_array_view(([2_usize, 1, 128], &vad.state[..]))
            .map_err(onnx::run_error)?;
        let rate = Tensor::from_array(((), vec![SAMPLE_RATE_HZ])).map_err(onnx::run_error)?;
        let outputs = self
            .session
            .run(ort::inputs!["input" => input, "state" => state, "sr" => rate])
            .map_err(onnx::run_error)?;
        let (_, probability) = outputs["output"]
            .try_extract_tensor::<f32>()
            .map_err(onnx::run_error)?;
        let probability = probability.first().copied().unwrap_or(0.0);
        let (_, next) = outputs["stateN"]
            .try_extract_tensor::<f32>()
            .map_err(onnx::run_error)?;
        if next.len() == STATE_LEN {
            vad.state.copy_from_slice(next);
        }
        Ok(probability)
    }
}
