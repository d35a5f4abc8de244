//! In-band frame markers that survive re-chunking.
//!
//! A peer may send audio back in chunks of any size (pipecat re-chunks to 40 ms), so a frame's
//! number cannot ride on frame boundaries. Each 20 ms frame sent starts with a marker: four sync
//! bytes, then the frame's number as eight bytes `0x10 | nibble`, most significant first; the rest is
//! mu-law silence (`0xFF`). None of these bytes is `0x7F` (mu-law's negative zero, which a decode and
//! re-encode turns into `0xFF`), so a server that decodes to PCM and encodes again at 8 kHz hands the
//! marker back byte for byte. [`MarkerScanner`] finds markers in the audio that comes back, however
//! it is cut.

/// Bytes in one 20 ms frame of 8 kHz mu-law.
pub const FRAME_BYTES: usize = 160;

/// The bytes a marker starts with.
const SYNC: [u8; 4] = [0x8E, 0x9D, 0xAC, 0xBB];

/// A marker's length: sync and eight nibbles.
const MARKER_BYTES: usize = SYNC.len() + 8;

/// A frame of silence carrying `number`'s marker.
pub fn frame(number: u32) -> [u8; FRAME_BYTES] {
    let mut frame = [0xFF; FRAME_BYTES];
    frame[..SYNC.len()].copy_from_slice(&SYNC);
    for (i, byte) in frame[SYNC.len()..MARKER_BYTES].iter_mut().enumerate() {
        *byte = 0x10 | ((number >> (28 - 4 * i)) & 0xF) as u8;
    }
    frame
}

/// Finds markers in a stream of audio chunks, across chunk boundaries.
#[derive(Debug, Default)]
pub struct MarkerScanner {
    /// The end of the previous chunk that may hold the start of a marker.
    tail: Vec<u8>,
}

impl MarkerScanner {
    /// Scans `chunk` (the audio after the previous one) and calls `found` with each marker's number.
    pub fn feed(&mut self, chunk: &[u8], mut found: impl FnMut(u32)) {
        let joined;
        let audio = if self.tail.is_empty() {
            chunk
        } else {
            joined = [self.tail.as_slice(), chunk].concat();
            &joined
        };
        let mut at = 0;
        while at + MARKER_BYTES <= audio.len() {
            match read_marker(&audio[at..at + MARKER_BYTES]) {
                Some(number) => {
                    found(number);
                    at += MARKER_BYTES;
                }
                None => at += 1,
            }
        }
        let keep_from = at.max(audio.len().saturating_sub(MARKER_BYTES - 1));
        self.tail = audio[keep_from..].to_vec();
    }
}

/// The number of the marker `bytes` holds, if it is one.
fn read_marker(bytes: &[u8]) -> Option<u32> {
    if bytes[..SYNC.len()] != SYNC {
        return None;
    }
    bytes[SYNC.len()..].iter().try_fold(0_u32, |number, &byte| {
        (byte & 0xF0 == 0x10).then_some(number << 4 | u32::from(byte & 0x0F))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(chunks: &[&[u8]]) -> Vec<u32> {
        let mut scanner = MarkerScanner::default();
        let mut found = Vec::new();
        for chunk in chunks {
            scanner.feed(chunk, |n| found.push(n));
        }
        found
    }

    #[test]
    fn markers_are_found_whatever_the_chunking() {
        let numbers = [0, 1, 0xDEAD_BEEF, 41, u32::MAX];
        let stream: Vec<u8> = numbers.iter().flat_map(|&n| frame(n)).collect();
        for size in [1, 5, 11, 12, 13, 80, 160, 320, 333, stream.len()] {
            let chunks: Vec<&[u8]> = stream.chunks(size).collect();
            assert_eq!(scan(&chunks), numbers, "chunks of {size} bytes");
        }
    }

    #[test]
    fn a_marker_survives_a_mu_law_round_trip() {
        // G.711 mu-law decode then encode (the reference algorithm, written out here): every byte
        // a frame holds comes back unchanged.
        fn decode(byte: u8) -> i16 {
            let byte = !byte;
            let magnitude = ((i16::from(byte & 0x0F) << 3) + 0x84) << ((byte >> 4) & 0x07);
            if byte & 0x80 != 0 {
                0x84 - magnitude
            } else {
                magnitude - 0x84
            }
        }
        fn encode(sample: i16) -> u8 {
            let sign = if sample < 0 { 0x80 } else { 0 };
            let magnitude = (i32::from(sample).abs().min(32635) + 0x84) as u32;
            let exponent = (31 - magnitude.leading_zeros()).saturating_sub(7).min(7);
            let mantissa = (magnitude >> (exponent + 3)) & 0x0F;
            !(sign | (exponent << 4) as u8 | mantissa as u8)
        }
        let sent = frame(0x0123_4567);
        let back: Vec<u8> = sent.iter().map(|&b| encode(decode(b))).collect();
        assert_eq!(back, sent);
        assert_eq!(scan(&[&back]), [0x0123_4567]);
    }

    #[test]
    fn silence_and_noise_are_not_markers() {
        let noise: Vec<u8> = (0..2000_u32).map(|i| (i * 7919 % 251) as u8).collect();
        assert!(scan(&[&noise, &[0xFF; 500]]).is_empty());
        let mut broken = frame(7);
        broken[6] = 0x20;
        assert!(scan(&[&broken]).is_empty());
    }
}
