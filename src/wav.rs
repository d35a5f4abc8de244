//! WAV files: reading caller audio for the simulator and test sets (16-bit PCM, 8-bit G.711 mu-law,
//! 32-bit float; any rate; channels mixed to mono) and writing 16-bit PCM recordings.
//!
//! Hand-written because the common crates (hound) do not read G.711, the format telephony test
//! audio comes in; the RIFF subset here is small and fully tested.

use phone_agent_actors::audio::mulaw;

/// A mono clip.
#[derive(Debug, Clone, PartialEq)]
pub struct Clip {
    /// Samples per second.
    pub sample_rate: u32,
    /// Samples in [-1, 1].
    pub samples: Vec<f32>,
}

/// Why a WAV file could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WavError {
    /// Not a RIFF/WAVE file, or cut short.
    #[error("not a WAV file ({0})")]
    Malformed(&'static str),
    /// A WAV encoding this reader does not handle.
    #[error(
        "unsupported WAV encoding (format {format}, {bits} bits); use 16-bit PCM, mu-law or float"
    )]
    Unsupported {
        /// The `fmt ` chunk's format tag.
        format: u16,
        /// Bits per sample.
        bits: u16,
    },
}

const PCM: u16 = 1;
const FLOAT: u16 = 3;
const MULAW: u16 = 7;
const EXTENSIBLE: u16 = 0xFFFE;

/// Parses a WAV file.
pub fn read(bytes: &[u8]) -> Result<Clip, WavError> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(WavError::Malformed("no RIFF/WAVE header"));
    }
    let mut format = None;
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let declared = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes"));
        let body = &bytes[at + 8..];
        // Streamed WAVs (a pipe) may declare more data than there is: read what is there.
        let len = (declared as usize).min(body.len());
        let body = &body[..len];
        match id {
            b"fmt " => {
                if body.len() < 16 {
                    return Err(WavError::Malformed("short fmt chunk"));
                }
                let u16_at = |i: usize| u16::from_le_bytes([body[i], body[i + 1]]);
                let mut tag = u16_at(0);
                if tag == EXTENSIBLE && body.len() >= 26 {
                    tag = u16_at(24);
                }
                let rate = u32::from_le_bytes(body[4..8].try_into().expect("4 bytes"));
                format = Some((tag, u16_at(2).max(1), rate, u16_at(14)));
            }
            b"data" => {
                let (tag, channels, rate, bits) =
                    format.ok_or(WavError::Malformed("data before fmt"))?;
                if rate == 0 {
                    return Err(WavError::Malformed("zero sample rate"));
                }
                let samples = decode(body, tag, bits)?;
                return Ok(Clip {
                    sample_rate: rate,
                    samples: mix_down(&samples, usize::from(channels)),
                });
            }
            _ => {}
        }
        at += 8 + len + (len & 1);
    }
    Err(WavError::Malformed("no data chunk"))
}

fn decode(body: &[u8], tag: u16, bits: u16) -> Result<Vec<f32>, WavError> {
    Ok(match (tag, bits) {
        (PCM, 16) => body
            .chunks_exact(2)
            .map(|pair| f32::from(i16::from_le_bytes([pair[0], pair[1]])) / 32768.0)
            .collect(),
        (PCM, 8) => body
            .iter()
            .map(|&b| (f32::from(b) - 128.0) / 128.0)
            .collect(),
        (MULAW, 8) => {
            let mut samples = Vec::with_capacity(body.len());
            mulaw::decode_float_into(body, &mut samples);
            samples
        }
        (FLOAT, 32) => body
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        (format, bits) => return Err(WavError::Unsupported { format, bits }),
    })
}

fn mix_down(interleaved: &[f32], channels: usize) -> Vec<f32> {
    if channels == 1 {
        return interleaved.to_vec();
    }
    interleaved
        .chunks_exact(channels)
        .map(|frame| frame.iter().sum::<f32>() / channels as f32)
        .collect()
}

/// A 16-bit PCM WAV file of interleaved `channels`.
pub fn write_pcm16(sample_rate: u32, channels: u16, interleaved: &[i16]) -> Vec<u8> {
    let data_len = (interleaved.len() * 2) as u32;
    let block = channels * 2;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16_u32.to_le_bytes());
    out.extend_from_slice(&PCM.to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&sample_rate.to_le_bytes());
    out.extend_from_slice(&(sample_rate * u32::from(block)).to_le_bytes());
    out.extend_from_slice(&block.to_le_bytes());
    out.extend_from_slice(&16_u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for sample in interleaved {
        out.extend_from_slice(&sample.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcm16_round_trip_mixes_stereo_to_mono() {
        let file = write_pcm16(16_000, 2, &[16384, 0, -16384, -16384]);
        let clip = read(&file).unwrap();
        assert_eq!(clip.sample_rate, 16_000);
        assert_eq!(clip.samples, vec![0.25, -0.5]);
    }

    #[test]
    fn reads_the_checked_in_mulaw_set() {
        let bytes = std::fs::read("tests/data/telephony/u01.wav").unwrap();
        let clip = read(&bytes).unwrap();
        assert_eq!(clip.sample_rate, 8_000);
        assert!(clip.samples.len() > 8_000, "{} samples", clip.samples.len());
        assert!(clip.samples.iter().any(|s| s.abs() > 0.1));
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        assert_eq!(
            read(b"hello"),
            Err(WavError::Malformed("no RIFF/WAVE header"))
        );
        let mut adpcm = write_pcm16(8_000, 1, &[0; 4]);
        adpcm[20] = 2; // MS ADPCM
        assert_eq!(
            read(&adpcm),
            Err(WavError::Unsupported {
                format: 2,
                bits: 16
            })
        );
        let truncated = &write_pcm16(8_000, 1, &[])[..30];
        assert!(matches!(read(truncated), Err(WavError::Malformed(_))));
    }
}
