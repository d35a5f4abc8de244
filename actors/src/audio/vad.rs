//! Energy-based voice-activity detection with hysteresis, frame by frame.
//!
//! Sans-I/O: feed each frame's linear samples, get whether speech is going on. Speech starts after
//! a few consecutive loud frames (so a click does not count) and ends after a hangover of quiet
//! frames (so the pause between words does not split an utterance).

/// Tuning of an [`EnergyVad`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadConfig {
    /// A frame at or above this RMS level, in dBFS, is voiced.
    pub threshold_dbfs: f32,
    /// Consecutive voiced frames before speech starts.
    pub start_frames: u32,
    /// Consecutive unvoiced frames before speech ends.
    pub hangover_frames: u32,
}

impl Default for VadConfig {
    /// -40 dBFS, 3 frames (60 ms) to start, 15 frames (300 ms) to end.
    fn default() -> Self {
        Self {
            threshold_dbfs: -40.0,
            start_frames: 3,
            hangover_frames: 15,
        }
    }
}

/// What one frame changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VadTransition {
    /// Speech began with this frame.
    SpeechStarted,
    /// Speech ended with this frame.
    SpeechEnded,
}

/// Energy VAD state for one audio stream.
#[derive(Debug, Clone)]
pub struct EnergyVad {
    config: VadConfig,
    speaking: bool,
    /// Consecutive frames that disagree with `speaking`.
    run: u32,
}

impl EnergyVad {
    /// A detector that starts in silence.
    pub fn new(config: VadConfig) -> Self {
        Self {
            config,
            speaking: false,
            run: 0,
        }
    }

    /// Whether speech is going on after the frames seen so far.
    pub fn is_speaking(&self) -> bool {
        self.speaking
    }

    /// Feeds one frame of linear samples; returns a transition if this frame caused one.
    pub fn push(&mut self, samples: &[i16]) -> Option<VadTransition> {
        let voiced = rms_dbfs(samples) >= self.config.threshold_dbfs;
        if voiced == self.speaking {
            self.run = 0;
            return None;
        }
        self.run += 1;
        let needed = if self.speaking {
            self.config.hangover_frames
        } else {
            self.config.start_frames
        };
        if self.run < needed {
            return None;
        }
        self.run = 0;
        self.speaking = voiced;
        Some(if voiced {
            VadTransition::SpeechStarted
        } else {
            VadTransition::SpeechEnded
        })
    }
}

/// Root-mean-square level of `samples` in dB relative to full scale; silence is `-inf`.
pub fn rms_dbfs(samples: &[i16]) -> f32 {
    if samples.is_empty() {
        return f32::NEG_INFINITY;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    let rms = (sum / samples.len() as f64).sqrt();
    (20.0 * (rms / f64::from(i16::MAX)).log10()) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(amplitude: f64) -> Vec<i16> {
        (0..160)
            .map(|i| (amplitude * (i as f64 * 0.3).sin()) as i16)
            .collect()
    }

    #[test]
    fn levels() {
        assert_eq!(rms_dbfs(&[0; 160]), f32::NEG_INFINITY);
        assert!((rms_dbfs(&[i16::MAX; 160]) - 0.0).abs() < 0.01);
        assert!((rms_dbfs(&tone(3276.7)) + 23.0).abs() < 0.5);
    }

    #[test]
    fn speech_needs_consecutive_loud_frames_and_ends_after_hangover() {
        let mut vad = EnergyVad::new(VadConfig::default());
        let loud = tone(5000.0);
        let quiet = vec![0i16; 160];
        assert_eq!(vad.push(&loud), None);
        assert_eq!(vad.push(&quiet), None, "a click is not speech");
        assert_eq!(vad.push(&loud), None);
        assert_eq!(vad.push(&loud), None);
        assert_eq!(vad.push(&loud), Some(VadTransition::SpeechStarted));
        assert!(vad.is_speaking());
        for _ in 0..14 {
            assert_eq!(vad.push(&quiet), None);
        }
        assert_eq!(vad.push(&quiet), Some(VadTransition::SpeechEnded));
        assert!(!vad.is_speaking());
    }
}
