//! Whisper-style log-mel features, as Smart Turn v3 reads them: the last 8 s of 16 kHz audio
//! (zero-padded at the start), normalised to zero mean and unit variance, a centred 400-point
//! periodic-Hann power spectrogram every 160 samples (reflect-padded), 80 Slaney-normalised mel
//! filters from 0 to 8 kHz, `log10` floored at 1e-10, clamped to 8 below the maximum and mapped by
//! `(x + 4) / 4`; 800 frames. This is the arithmetic of pipecat's `_whisper_features.py` (itself
//! from Hugging Face's `WhisperFeatureExtractor`), tested against values that reference computed
//! (`tests/data/smart_turn_reference.json`, in `tests/it/smart_turn.rs`).

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

/// The features' sample rate.
pub const SAMPLE_RATE_HZ: u32 = 16_000;
/// Samples the features cover: 8 s.
pub const WINDOW_SAMPLES: usize = 8 * SAMPLE_RATE_HZ as usize;
/// Mel bins per frame.
pub const MEL_BINS: usize = 80;
/// Frames: one per 10 ms of the window.
pub const FRAMES: usize = WINDOW_SAMPLES / HOP;

const N_FFT: usize = 400;
const HOP: usize = 160;
const SPECTRUM_BINS: usize = N_FFT / 2 + 1;
const MEL_FLOOR: f64 = 1e-10;
const VARIANCE_EPSILON: f32 = 1e-7;

/// One mel filter: its weights from its first non-zero spectrum bin on.
struct MelFilter {
    first_bin: usize,
    weights: Vec<f64>,
}

/// The feature extractor, with its FFT plan, window and filters (keep one per worker).
pub struct LogMel {
    fft: Arc<dyn RealToComplex<f64>>,
    window: Vec<f64>,
    filters: Vec<MelFilter>,
    frame: Vec<f64>,
    spectrum: Vec<Complex<f64>>,
    scratch: Vec<Complex<f64>>,
}

impl Default for LogMel {
    fn default() -> Self {
        Self::new()
    }
}

impl LogMel {
    /// An extractor.
    pub fn new() -> Self {
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(N_FFT);
        let spectrum = fft.make_output_vec();
        let scratch = fft.make_scratch_vec();
        // Periodic Hann: numpy's `hanning(401)[:-1]`.
        let window = (0..N_FFT)
            .map(|n| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / N_FFT as f64).cos())
            .collect();
        Self {
            fft,
            window,
            filters: mel_filters(),
            frame: vec![0.0; N_FFT],
            spectrum,
            scratch,
        }
    }

    /// The features of the last 8 s of `audio` (16 kHz, in [-1, 1]), bin-major: `[MEL_BINS][FRAMES]`
    /// flattened, the model's `input_features` without its batch dimension.
    pub fn features(&mut self, audio: &[f32]) -> Vec<f32> {
        let signal = normalised_window(audio);
        // Centred frames: the signal reflect-padded by half a frame on each side.
        let pad = N_FFT / 2;
        let padded = |index: usize| -> f64 {
            let reflected = if index < pad {
                pad - index
            } else if index - pad >= signal.len() {
                2 * (signal.len() - 1) - (index - pad)
            } else {
                index - pad
            };
            f64::from(signal[reflected])
        };
        let mut log_mel = vec![0.0_f64; MEL_BINS * FRAMES];
        let mut power = [0.0_f64; SPECTRUM_BINS];
        for frame in 0..FRAMES {
            let start = frame * HOP;
            for (n, sample) in self.frame.iter_mut().enumerate() {
                *sample = padded(start + n) * self.window[n];
            }
            self.fft
                .process_with_scratch(&mut self.frame, &mut self.spectrum, &mut self.scratch)
                .expect("buffers sized by the plan");
            for (bin, value) in self.spectrum.iter().enumerate() {
                power[bin] = value.norm_sqr();
            }
            for (mel, filter) in self.filters.iter().enumerate() {
                let bins = &power[filter.first_bin..filter.first_bin + filter.weights.len()];
                let energy: f64 = bins.iter().zip(&filter.weights).map(|(p, w)| p * w).sum();
                log_mel[mel * FRAMES + frame] = energy.max(MEL_FLOOR).log10();
            }
        }
        let max = log_mel.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        log_mel
            .iter()
            .map(|value| ((value.max(max - 8.0) + 4.0) / 4.0) as f32)
            .collect()
    }
}

/// The last [`WINDOW_SAMPLES`] of `audio`, zero-padded at the start, normalised to zero mean and
/// unit variance (in `f32`, as the reference does).
fn normalised_window(audio: &[f32]) -> Vec<f32> {
    let kept = &audio[audio.len().saturating_sub(WINDOW_SAMPLES)..];
    let mut signal = vec![0.0_f32; WINDOW_SAMPLES - kept.len()];
    signal.extend_from_slice(kept);
    let count = signal.len() as f64;
    let mean = signal.iter().map(|&x| f64::from(x)).sum::<f64>() / count;
    let variance = signal
        .iter()
        .map(|&x| (f64::from(x) - mean).powi(2))
        .sum::<f64>()
        / count;
    let (mean, scale) = (mean as f32, (variance as f32 + VARIANCE_EPSILON).sqrt());
    for sample in &mut signal {
        *sample = (*sample - mean) / scale;
    }
    signal
}

fn hertz_to_mel(hertz: f64) -> f64 {
    const MIN_LOG_HERTZ: f64 = 1000.0;
    const MIN_LOG_MEL: f64 = 15.0;
    if hertz >= MIN_LOG_HERTZ {
        MIN_LOG_MEL + (hertz / MIN_LOG_HERTZ).ln() * (27.0 / 6.4_f64.ln())
    } else {
        3.0 * hertz / 200.0
    }
}

fn mel_to_hertz(mel: f64) -> f64 {
    const MIN_LOG_HERTZ: f64 = 1000.0;
    const MIN_LOG_MEL: f64 = 15.0;
    if mel >= MIN_LOG_MEL {
        MIN_LOG_HERTZ * ((6.4_f64.ln() / 27.0) * (mel - MIN_LOG_MEL)).exp()
    } else {
        200.0 * mel / 3.0
    }
}

/// Slaney-normalised triangular filters over the spectrum's bins (0 to 8 kHz), kept sparse.
fn mel_filters() -> Vec<MelFilter> {
    let nyquist = f64::from(SAMPLE_RATE_HZ) / 2.0;
    let (low, high) = (hertz_to_mel(0.0), hertz_to_mel(nyquist));
    let edges: Vec<f64> = (0..MEL_BINS + 2)
        .map(|i| mel_to_hertz(low + (high - low) * i as f64 / (MEL_BINS + 1) as f64))
        .collect();
    let bin_hertz = |bin: usize| nyquist * bin as f64 / (SPECTRUM_BINS - 1) as f64;
    (0..MEL_BINS)
        .map(|mel| {
            let (left, centre, right) = (edges[mel], edges[mel + 1], edges[mel + 2]);
            let area = 2.0 / (right - left);
            let weights: Vec<f64> = (0..SPECTRUM_BINS)
                .map(|bin| {
                    let hertz = bin_hertz(bin);
                    let rising = (hertz - left) / (centre - left);
                    let falling = (right - hertz) / (right - centre);
                    rising.min(falling).max(0.0) * area
                })
                .collect();
            let first_bin = weights.iter().position(|&w| w > 0.0).unwrap_or(0);
            let last_bin = weights.iter().rposition(|&w| w > 0.0).unwrap_or(first_bin);
            MelFilter {
                first_bin,
                weights: weights[first_bin..=last_bin].to_vec(),
            }
        })
        .collect()
}
