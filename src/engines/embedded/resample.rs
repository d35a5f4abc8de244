//! Band-limited sample-rate conversion (FFT resampling with an anti-aliasing window, from `rubato`).
//!
//! The engines need it at two places: the caller's 8 kHz audio goes up to the recogniser's 16 kHz,
//! and the synthesizer's 22.05 kHz voice comes down to the telephone's 8 kHz. Linear interpolation
//! is not good enough for either: it images on the way up (recognition got measurably worse) and
//! aliases on the way down.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

/// Input frames per FFT chunk: large enough to be efficient, small enough for short clips.
const CHUNK_FRAMES: usize = 1024;

/// Converts whole mono clips from one fixed rate to another. Owns its FFT plans, so keep one per
/// thread and reuse it.
pub struct ClipResampler {
    fft: Fft<f32>,
}

impl ClipResampler {
    /// A resampler from `from_hz` to `to_hz`.
    pub fn new(from_hz: u32, to_hz: u32) -> Self {
        let fft = Fft::new(
            from_hz as usize,
            to_hz as usize,
            CHUNK_FRAMES,
            1,
            FixedSync::Input,
        )
        .expect("valid fixed resampling ratio");
        Self { fft }
    }

    /// Resamples `clip`; the output is aligned with the input (the filter delay is trimmed).
    pub fn process(&mut self, clip: &[f32]) -> Vec<f32> {
        if clip.is_empty() {
            return Vec::new();
        }
        let input = InterleavedSlice::new(clip, 1, clip.len()).expect("mono slice");
        self.fft
            .process_all(&input, clip.len(), None)
            .expect("buffers sized by process_all")
            .take_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(hz: f32, rate: u32, seconds: f32) -> Vec<f32> {
        let n = (rate as f32 * seconds) as usize;
        (0..n)
            .map(|i| (std::f32::consts::TAU * hz * i as f32 / rate as f32).sin() * 0.5)
            .collect()
    }

    fn rms(samples: &[f32]) -> f32 {
        (samples.iter().map(|s| s * s).sum::<f32>() / samples.len() as f32).sqrt()
    }

    #[test]
    fn keeps_length_ratio_and_passband_level() {
        let mut up = ClipResampler::new(8_000, 16_000);
        let input = tone(1_000.0, 8_000, 0.5);
        let output = up.process(&input);
        assert_eq!(output.len(), input.len() * 2);
        let ratio = rms(&output[800..7200]) / rms(&input[400..3600]);
        assert!((0.95..1.05).contains(&ratio), "passband gain {ratio}");
    }

    #[test]
    fn removes_what_the_lower_rate_cannot_carry() {
        let mut down = ClipResampler::new(22_050, 8_000);
        // 6 kHz is above the 4 kHz Nyquist limit of 8 kHz audio: it must not fold back in.
        let output = down.process(&tone(6_000.0, 22_050, 0.5));
        assert!(rms(&output[400..3600]) < 0.01, "aliasing {}", rms(&output));
    }
}
