//! What the simulated caller says: `--say` text, `--wav` files, or a script of both.

use std::path::PathBuf;

/// What the caller says, as options (flattened into `phone-agent call` and the Twilio emulator).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TurnArgs {
    /// Say this (repeatable; turns are taken in order, after any --wav).
    #[arg(long = "say", value_name = "TEXT")]
    pub say: Vec<String>,
    /// Play this WAV file as a turn (repeatable; any rate, PCM, mu-law or float).
    #[arg(long = "wav", value_name = "FILE")]
    pub wav: Vec<PathBuf>,
    /// A conversation: one turn per line (`wav: file` plays a file; other lines are said).
    #[arg(long, value_name = "FILE")]
    pub script: Option<PathBuf>,
}

impl TurnArgs {
    /// The turns: `--wav` files, then `--say` texts, then the script's lines (none when nothing
    /// was given).
    pub fn turns(&self) -> std::io::Result<Vec<CallerTurn>> {
        let mut turns: Vec<CallerTurn> = self.wav.iter().cloned().map(CallerTurn::Wav).collect();
        turns.extend(self.say.iter().cloned().map(CallerTurn::Say));
        if let Some(path) = &self.script {
            turns.extend(parse_script(&std::fs::read_to_string(path)?));
        }
        Ok(turns)
    }
}

/// One thing the caller says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerTurn {
    /// Text, spoken by the embedded synthesizer.
    Say(String),
    /// A WAV file (any rate and encoding the reader knows), converted to 8 kHz mu-law.
    Wav(PathBuf),
}

/// Parses a conversation script: one caller turn per line; `wav: path` plays a file, `say: text`
/// or any other line is spoken; blank lines and lines starting with `#` are skipped.
pub fn parse_script(text: &str) -> Vec<CallerTurn> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            if let Some(path) = line.strip_prefix("wav:") {
                CallerTurn::Wav(PathBuf::from(path.trim()))
            } else {
                CallerTurn::Say(line.strip_prefix("say:").unwrap_or(line).trim().to_owned())
            }
        })
        .collect()
}

impl CallerTurn {
    /// How the turn is shown in the transcript.
    pub fn label(&self) -> String {
        match self {
            CallerTurn::Say(text) => text.clone(),
            CallerTurn::Wav(path) => format!("[{}]", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_lines_become_turns() {
        let turns = parse_script(
            "# a booking\nI'd like to book an appointment\n\nsay: My name is Sarah\nwav: tests/data/telephony/u03.wav\n",
        );
        assert_eq!(
            turns,
            vec![
                CallerTurn::Say("I'd like to book an appointment".into()),
                CallerTurn::Say("My name is Sarah".into()),
                CallerTurn::Wav("tests/data/telephony/u03.wav".into()),
            ]
        );
    }
}
