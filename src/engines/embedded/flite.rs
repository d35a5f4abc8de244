//! flite, the light synthesizer (Debian `flite`; BSD-style licence): tens of milliseconds per reply
//! and a native 8 kHz voice (`kal`), for low-CPU deployments. Run as a helper process, WAV on stdout.

use std::process::{Command, Stdio};

use super::ModelError;
use crate::wav::{self, Clip};

/// The flite program.
pub const FLITE: &str = "flite";

/// A flite voice.
pub struct Flite {
    voice: String,
}

impl Flite {
    /// Checks flite runs (its voice list) and knows `voice`.
    pub fn new(voice: &str) -> Result<Self, ModelError> {
        let listed = Command::new(FLITE)
            .arg("-lv")
            .output()
            .ok()
            .filter(|output| output.status.success())
            .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
            .ok_or(ModelError::Program {
                program: FLITE,
                package: "flite",
            })?;
        if !listed.split_whitespace().any(|name| name == voice) {
            return Err(ModelError::Load {
                what: "flite voice",
                path: voice.into(),
                message: format!("unknown voice; flite has: {}", listed.trim()),
            });
        }
        Ok(Self {
            voice: voice.to_owned(),
        })
    }

    /// Speaks `text`.
    pub fn synthesize(&mut self, text: &str) -> Result<Clip, String> {
        let output = Command::new(FLITE)
            // The leading space keeps a text such as "-o" from being read as an option.
            .args([
                "-voice",
                &self.voice,
                "-t",
                &format!(" {text}"),
                "-o",
                "/dev/stdout",
            ])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map_err(|error| format!("{FLITE}: {error}"))?;
        if !output.status.success() {
            return Err(format!("{FLITE} exited with {}", output.status));
        }
        wav::read(&output.stdout).map_err(|error| format!("{FLITE}: {error}"))
    }
}
