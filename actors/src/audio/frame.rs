//! The 20 ms audio frame and the framer that produces frames from audio of any length.
//!
//! Twilio plays whatever it is sent, but tiny or ragged chunks sound choppy; engines hand us chunks of
//! arbitrary size. The [`Framer`] turns both into whole 160-byte frames, carrying the remainder into
//! the next chunk, and pads only an utterance's last frame with mu-law silence.

use std::time::Duration;

use super::mulaw::SILENCE;

/// Mu-law bytes in one frame: 20 ms at 8 kHz, one byte per sample.
pub const FRAME_BYTES: usize = 160;

/// Playing time of one frame.
pub const FRAME_DURATION: Duration = Duration::from_millis(20);

/// 20 ms of 8 kHz mu-law audio with its place in the stream.
#[derive(Clone, PartialEq, Eq)]
pub struct AudioFrame {
    /// Position of this frame in its stream, from 0.
    pub sequence: u64,
    /// Stream time at the frame's first sample (`sequence` × 20 ms).
    pub timestamp: Duration,
    /// The frame's mu-law samples.
    pub payload: [u8; FRAME_BYTES],
}

impl std::fmt::Debug for AudioFrame {
    // The payload is audio, not something to read in a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioFrame")
            .field("sequence", &self.sequence)
            .field("timestamp", &self.timestamp)
            .finish_non_exhaustive()
    }
}

/// Re-chunks a stream of mu-law bytes into numbered [`AudioFrame`]s.
#[derive(Debug, Default)]
pub struct Framer {
    /// Bytes of an incomplete frame, waiting for the next chunk.
    pending: Vec<u8>,
    /// Sequence number of the next frame produced.
    next_sequence: u64,
}

impl Framer {
    /// A framer whose first frame has sequence 0.
    pub fn new() -> Self {
        Self {
            pending: Vec::with_capacity(FRAME_BYTES),
            next_sequence: 0,
        }
    }

    /// Appends `chunk`, pushing every completed frame onto `out`; a partial frame is kept.
    pub fn push(&mut self, mut chunk: &[u8], out: &mut Vec<AudioFrame>) {
        if !self.pending.is_empty() {
            let wanted = FRAME_BYTES - self.pending.len();
            let taken = wanted.min(chunk.len());
            self.pending.extend_from_slice(&chunk[..taken]);
            chunk = &chunk[taken..];
            if self.pending.len() < FRAME_BYTES {
                return;
            }
            let mut payload = [0u8; FRAME_BYTES];
            payload.copy_from_slice(&self.pending);
            self.pending.clear();
            out.push(self.frame(payload));
        }
        let mut frames = chunk.chunks_exact(FRAME_BYTES);
        for bytes in &mut frames {
            let mut payload = [0u8; FRAME_BYTES];
            payload.copy_from_slice(bytes);
            out.push(self.frame(payload));
        }
        self.pending.extend_from_slice(frames.remainder());
    }

    /// Ends an utterance: the kept remainder, if any, becomes one last frame padded with silence.
    pub fn finish(&mut self) -> Option<AudioFrame> {
        if self.pending.is_empty() {
            return None;
        }
        let mut payload = [SILENCE; FRAME_BYTES];
        payload[..self.pending.len()].copy_from_slice(&self.pending);
        self.pending.clear();
        Some(self.frame(payload))
    }

    /// Drops the kept remainder without emitting it (the utterance was cancelled).
    pub fn discard(&mut self) {
        self.pending.clear();
    }

    /// Bytes kept for the next frame.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    fn frame(&mut self, payload: [u8; FRAME_BYTES]) -> AudioFrame {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        AudioFrame {
            sequence,
            timestamp: FRAME_DURATION * sequence as u32,
            payload,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn whole_frames_pass_straight_through() {
        let mut framer = Framer::new();
        let mut out = Vec::new();
        framer.push(&bytes(480), &mut out);
        assert_eq!(out.len(), 3);
        assert_eq!(framer.pending_len(), 0);
        assert_eq!(out[2].sequence, 2);
        assert_eq!(out[2].timestamp, Duration::from_millis(40));
        assert_eq!(framer.finish(), None);
    }

    #[test]
    fn ragged_chunks_keep_their_remainder_and_byte_order() {
        let audio = bytes(1000);
        let mut framer = Framer::new();
        let mut out = Vec::new();
        for chunk in audio.chunks(37) {
            framer.push(chunk, &mut out);
        }
        assert_eq!(out.len(), 6);
        assert_eq!(framer.pending_len(), 40);
        let last = framer.finish().expect("a padded frame");
        let mut joined: Vec<u8> = out.iter().flat_map(|f| f.payload).collect();
        joined.extend_from_slice(&last.payload[..40]);
        assert_eq!(joined, audio);
        assert!(last.payload[40..].iter().all(|&b| b == SILENCE));
        assert_eq!(last.sequence, 6);
    }

    #[test]
    fn only_the_last_frame_is_padded() {
        let mut framer = Framer::new();
        let mut out = Vec::new();
        framer.push(&[1; 100], &mut out);
        assert!(out.is_empty());
        framer.push(&[2; 100], &mut out);
        assert_eq!(out.len(), 1);
        assert!(out[0].payload.iter().all(|&b| b != SILENCE));
        assert_eq!(
            framer.finish().map(|f| f.payload[39..41].to_vec()),
            Some(vec![2, SILENCE])
        );
    }

    #[test]
    fn discard_drops_the_remainder() {
        let mut framer = Framer::new();
        let mut out = Vec::new();
        framer.push(&[1; 10], &mut out);
        framer.discard();
        assert_eq!(framer.finish(), None);
    }
}
