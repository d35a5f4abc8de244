//! Smart Turn v3.2 (pipecat's end-of-turn model, BSD-2-Clause, on ONNX Runtime): the probability
//! that the caller has finished their turn, judged from the turn's audio (intonation, pacing, an
//! unfinished phrase), not from the length of the silence.
//!
//! Phone audio is 8 kHz; the model is trained on 16 kHz: the turn is resampled first (the model
//! run on 8 kHz audio answers nonsense without an error). It reads the last 8 s, as
//! [`log_mel`](super::log_mel) features.

use std::path::Path;

use ort::session::Session;
use ort::value::TensorRef;

use super::log_mel::{self, LogMel, FRAMES, MEL_BINS};
use super::resample::ClipResampler;
use super::{onnx, ModelError};

/// Telephone samples the model reads (8 s), with a little more for the resampler's edge: a turn's
/// earlier audio need not be passed.
pub const TELEPHONY_SAMPLES: usize = 8 * 8_000 + 800;

/// A loaded model with its feature extractor and resampler (one per worker thread).
pub struct SmartTurn {
    session: Session,
    features: LogMel,
    upsample: ClipResampler,
}

impl SmartTurn {
    /// Loads `smart-turn-v3.2-cpu.onnx`.
    pub fn load(env: &ort::environment::Environment, model: &Path) -> Result<Self, ModelError> {
        Ok(Self {
            session: onnx::session(env, "end-of-turn model", model)?,
            features: LogMel::new(),
            upsample: ClipResampler::new(8_000, log_mel::SAMPLE_RATE_HZ),
        })
    }

    /// The probability that the turn whose audio is `telephony` (8 kHz, in [-1, 1], ending now)
    /// is complete.
    pub fn completion(&mut self, telephony: &[f32]) -> Result<f32, String> {
        let recent = &telephony[telephony.len().saturating_sub(TELEPHONY_SAMPLES)..];
        let wideband = self.upsample.process(recent);
        self.completion_wideband(&wideband)
    }

    /// The probability that the turn whose audio is `wideband` (16 kHz) is complete.
    pub fn completion_wideband(&mut self, wideband: &[f32]) -> Result<f32, String> {
        let features = self.features.features(wideband);
        let input = TensorRef::from_array_view(([1_usize, MEL_BINS, FRAMES], &features[..]))
            .map_err(onnx::run_error)?;
        let outputs = self
            .session
            .run(ort::inputs!["input_features" => input])
            .map_err(onnx::run_error)?;
        let (_, probability) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(onnx::run_error)?;
        probability
            .first()
            .copied()
            .ok_or_else(|| "the end-of-turn model gave no output".to_owned())
    }
}
