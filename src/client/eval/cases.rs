//! The evaluation set: cases read from a plain labels file (`tests/data/turn-eval/cases.tsv`;
//! its header says the format), and each case's audio made reproducibly from the project's own
//! voices: segments spoken and trimmed, pauses of line silence between them, noise mixed in at a
//! given SNR from a fixed-seed generator.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use phone_agent_actors::audio::mulaw;

use crate::client::caller::trim_silence;
use crate::engines::embedded::tts::Voice;
use crate::engines::embedded::{self, EmbeddedSettings, ModelError, VoiceChoice};

/// What a case tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A finished question: answered after its end.
    Complete,
    /// A question with pauses inside: not answered before its end.
    Paused,
    /// Digits or letters read out with pauses: not answered before its end.
    Dictation,
    /// Said over the agent: must not interrupt it.
    Backchannel,
    /// Said over the agent: must interrupt it.
    Interrupt,
}

impl Kind {
    /// Whether the case is said over the agent (a barge-in case).
    pub fn barges_in(self) -> bool {
        matches!(self, Self::Backchannel | Self::Interrupt)
    }
}

/// One part of what a case says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Words.
    Say(String),
    /// Line silence, ms.
    Pause(u32),
}

/// One labelled case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// Its name.
    pub id: String,
    /// What it tests.
    pub kind: Kind,
    /// The caller's voice: `piper` or `flite:<voice>`.
    pub voice: String,
    /// Noise below the speech, dB (`None`: clean).
    pub snr_db: Option<u32>,
    /// What is said.
    pub script: Vec<Segment>,
}

impl Case {
    /// Its words, joined: what the agent should have understood.
    pub fn words(&self) -> String {
        let words: Vec<&str> = self
            .script
            .iter()
            .filter_map(|segment| match segment {
                Segment::Say(text) => Some(text.as_str()),
                Segment::Pause(_) => None,
            })
            .collect();
        words.join(" ")
    }
}

/// Why the set could not be read or made.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    /// The file could not be read.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A line is malformed.
    #[error("{path}:{line}: {message}")]
    Line {
        /// The file.
        path: PathBuf,
        /// The line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A voice could not be loaded.
    #[error(transparent)]
    Voice(#[from] ModelError),
    /// A voice could not speak a segment.
    #[error("case {id}: speech synthesis: {message}")]
    Synthesis {
        /// The case.
        id: String,
        /// What went wrong.
        message: String,
    },
}

/// Reads the cases of `path`.
pub fn read(path: &Path) -> Result<Vec<Case>, CaseError> {
    let text = std::fs::read_to_string(path).map_err(|error| CaseError::File {
        path: path.to_owned(),
        message: error.to_string(),
    })?;
    parse(&text).map_err(|(line, message)| CaseError::Line {
        path: path.to_owned(),
        line,
        message,
    })
}

/// Parses a labels file; an error names the line (1-based) and what is wrong with it.
pub fn parse(text: &str) -> Result<Vec<Case>, (usize, String)> {
    let mut cases = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let [id, kind, voice, noise, script] = fields[..] else {
            return Err((index + 1, "expected 5 tab-separated fields".into()));
        };
        let kind = match kind {
            "complete" => Kind::Complete,
            "paused" => Kind::Paused,
            "dictation" => Kind::Dictation,
            "backchannel" => Kind::Backchannel,
            "interrupt" => Kind::Interrupt,
            other => return Err((index + 1, format!("unknown kind {other:?}"))),
        };
        if voice != "piper" && !voice.starts_with("flite:") {
            return Err((index + 1, format!("unknown voice {voice:?}")));
        }
        let snr_db = match noise {
            "clean" => None,
            db => Some(
                db.parse()
                    .map_err(|_| (index + 1, format!("noise {db:?}: clean or a dB figure")))?,
            ),
        };
        let script = script
            .split('|')
            .map(str::trim)
            .map(|part| match part.parse::<u32>() {
                Ok(ms) => Segment::Pause(ms),
                Err(_) => Segment::Say(part.to_owned()),
            })
            .collect();
        cases.push(Case {
            id: id.to_owned(),
            kind,
            voice: voice.to_owned(),
            snr_db,
            script,
        });
    }
    Ok(cases)
}

/// The caller's voices, loaded once each.
pub struct Voices {
    settings: EmbeddedSettings,
    loaded: HashMap<String, Voice>,
}

impl Voices {
    /// Voices from `models_dir`.
    pub fn new(models_dir: PathBuf) -> Self {
        Self {
            settings: EmbeddedSettings::single_worker(models_dir),
            loaded: HashMap::new(),
        }
    }

    /// `case` as the caller says it: 8 kHz mu-law, from its first word to its last.
    pub fn audio(&mut self, case: &Case) -> Result<Vec<u8>, CaseError> {
        if !self.loaded.contains_key(&case.voice) {
            let mut settings = self.settings.clone();
            settings.voice = match case.voice.strip_prefix("flite:") {
                Some(name) => VoiceChoice::Flite(name.to_owned()),
                None => VoiceChoice::Piper,
            };
            let voice = embedded::load_voice(&settings)?;
            self.loaded.insert(case.voice.clone(), voice);
        }
        let voice = self.loaded.get_mut(&case.voice).expect("loaded above");
        let mut audio = Vec::new();
        for segment in &case.script {
            match segment {
                Segment::Say(text) => {
                    let spoken = voice.speak(text).map_err(|message| CaseError::Synthesis {
                        id: case.id.clone(),
                        message,
                    })?;
                    audio.extend_from_slice(trim_silence(&spoken));
                }
                Segment::Pause(ms) => {
                    audio.resize(audio.len() + *ms as usize * 8, mulaw::SILENCE);
                }
            }
        }
        if let Some(snr_db) = case.snr_db {
            add_noise(&mut audio, snr_db);
        }
        Ok(audio)
    }
}

/// Mixes white noise into `audio` (8 kHz mu-law), `snr_db` below the speech's level (the RMS of
/// its voiced samples), from a fixed seed: the same case always sounds the same.
fn add_noise(audio: &mut [u8], snr_db: u32) {
    let mut samples = Vec::with_capacity(audio.len());
    mulaw::decode_float_into(audio, &mut samples);
    let voiced: Vec<f32> = samples.iter().copied().filter(|s| s.abs() > 0.01).collect();
    let speech_rms =
        (voiced.iter().map(|s| s * s).sum::<f32>() / voiced.len().max(1) as f32).sqrt();
    let noise_rms = speech_rms / 10_f32.powf(snr_db as f32 / 20.0);
    // Uniform noise in [-a, a] has RMS a / sqrt(3).
    let amplitude = noise_rms * 3_f32.sqrt();
    let mut state: u32 = 0x2545_F491;
    for sample in &mut samples {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let uniform = state as f32 / u32::MAX as f32 * 2.0 - 1.0;
        *sample = (*sample + uniform * amplitude).clamp(-1.0, 1.0);
    }
    let mut encoded = Vec::with_capacity(audio.len());
    mulaw::encode_float_into(&samples, &mut encoded);
    audio.copy_from_slice(&encoded);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_labels_file_is_read_and_bad_lines_are_named() {
        let cases =
            parse("# a comment\nd1\tdictation\tflite:slt\t20\tfive five | 1500 | one\n").unwrap();
        assert_eq!(
            cases,
            [Case {
                id: "d1".into(),
                kind: Kind::Dictation,
                voice: "flite:slt".into(),
                snr_db: Some(20),
                script: vec![
                    Segment::Say("five five".into()),
                    Segment::Pause(1500),
                    Segment::Say("one".into())
                ],
            }]
        );
        assert_eq!(cases[0].words(), "five five one");
        assert_eq!(parse("x\tcomplete\tpiper\tclean").unwrap_err().0, 1);
        assert!(parse("\n\nx\tshouting\tpiper\tclean\thi")
            .unwrap_err()
            .1
            .contains("kind"));
        assert!(parse("x\tcomplete\tespeak\tclean\thi").is_err());
    }

    #[test]
    fn the_shipped_set_parses() {
        let cases = parse(include_str!("../../../tests/data/turn-eval/cases.tsv")).unwrap();
        assert!(cases.len() >= 20);
        for kind in [
            Kind::Complete,
            Kind::Paused,
            Kind::Dictation,
            Kind::Backchannel,
            Kind::Interrupt,
        ] {
            assert!(cases.iter().any(|case| case.kind == kind), "{kind:?}");
        }
    }

    #[test]
    fn noise_lands_at_the_asked_level() {
        let mut audio = Vec::new();
        let tone: Vec<f32> = (0..8_000).map(|n| 0.3 * (n as f32 * 0.2).sin()).collect();
        mulaw::encode_float_into(&tone, &mut audio);
        let clean = audio.clone();
        add_noise(&mut audio, 20);
        let decode = |codes: &[u8]| {
            let mut out = Vec::new();
            mulaw::decode_float_into(codes, &mut out);
            out
        };
        let (clean, noisy) = (decode(&clean), decode(&audio));
        let power = |x: &[f32]| x.iter().map(|s| s * s).sum::<f32>() / x.len() as f32;
        let noise: Vec<f32> = noisy.iter().zip(&clean).map(|(n, c)| n - c).collect();
        let snr = 10.0 * (power(&clean) / power(&noise)).log10();
        assert!((18.0..22.0).contains(&snr), "{snr} dB");
    }
}
