//! One call's frames: when each was sent, which came back, and the latency each return measures.
//!
//! With one-frame turns (loopback's default) every frame's round trip is a latency. With turns of
//! N frames (`LOOPBACK_TURN_FRAMES` on the server, `--turn-frames` here) a reply can only start
//! once its turn is whole, so the latency is the voice-to-voice one: from the turn's last frame
//! sent to its first frame back. The logic takes `now`: tests drive it with made-up instants.

use std::time::{Duration, Instant};

/// What a marker found in the audio that came back means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Echo {
    /// A frame never sent, or back already.
    Stray,
    /// A frame back for the first time, with the latency it measures, if it measures one.
    Back(Option<Duration>),
}

/// One call's frames.
#[derive(Debug)]
pub struct Echoes {
    turn_frames: usize,
    sent_at: Vec<Instant>,
    back: Vec<bool>,
    echoed: u64,
}

impl Echoes {
    /// No frame sent yet; turns of `turn_frames` frames (at least one).
    pub fn new(turn_frames: usize) -> Self {
        Self {
            turn_frames: turn_frames.max(1),
            sent_at: Vec::new(),
            back: Vec::new(),
            echoed: 0,
        }
    }

    /// Notes a frame sent at `now`; its number.
    pub fn sent(&mut self, now: Instant) -> u32 {
        self.sent_at.push(now);
        self.back.push(false);
        (self.sent_at.len() - 1) as u32
    }

    /// Frames sent.
    pub fn sent_count(&self) -> u64 {
        self.sent_at.len() as u64
    }

    /// Frames back.
    pub fn echoed_count(&self) -> u64 {
        self.echoed
    }

    /// Whether the frames sent so far make whole turns (a call stops sending only then, or its
    /// last turn would never be answered).
    pub fn whole_turns(&self) -> bool {
        self.sent_at.len().is_multiple_of(self.turn_frames)
    }

    /// Frame `number` came back at `now`.
    pub fn echoed(&mut self, number: u32, now: Instant) -> Echo {
        let number = number as usize;
        match self.back.get_mut(number) {
            Some(back) if !*back => *back = true,
            _ => return Echo::Stray,
        }
        self.echoed += 1;
        if !number.is_multiple_of(self.turn_frames) {
            return Echo::Back(None);
        }
        let last_of_turn = number + self.turn_frames - 1;
        let latency = self
            .sent_at
            .get(last_of_turn)
            .map(|&sent| now.saturating_duration_since(sent));
        Echo::Back(latency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn with_one_frame_turns_each_round_trip_is_a_latency() {
        let start = Instant::now();
        let mut echoes = Echoes::new(1);
        assert_eq!(echoes.sent(start), 0);
        assert_eq!(echoes.sent(start + 20 * MS), 1);
        assert_eq!(echoes.echoed(1, start + 23 * MS), Echo::Back(Some(3 * MS)));
        assert_eq!(echoes.echoed(1, start + 24 * MS), Echo::Stray, "once only");
        assert_eq!(echoes.echoed(7, start + 24 * MS), Echo::Stray, "never sent");
        assert_eq!(echoes.echoed(0, start + 25 * MS), Echo::Back(Some(25 * MS)));
        assert_eq!((echoes.sent_count(), echoes.echoed_count()), (2, 2));
    }

    #[test]
    fn with_longer_turns_the_latency_runs_from_the_turns_end_to_its_first_frame_back() {
        let start = Instant::now();
        let mut echoes = Echoes::new(3);
        for i in 0..3 {
            echoes.sent(start + 20 * i * MS);
            assert_eq!(echoes.whole_turns(), i == 2);
        }
        // The turn ended at 40 ms; its first frame is back at 45 ms, the others carry no latency.
        assert_eq!(echoes.echoed(0, start + 45 * MS), Echo::Back(Some(5 * MS)));
        assert_eq!(echoes.echoed(1, start + 65 * MS), Echo::Back(None));
        assert_eq!(echoes.echoed(2, start + 85 * MS), Echo::Back(None));
        assert_eq!(echoes.echoed_count(), 3);
    }
}
