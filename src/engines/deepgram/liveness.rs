//! When a Deepgram stream needs a `KeepAlive`, and when its silence means it stalled (sans-I/O:
//! told the time, never asks).
//!
//! - Deepgram closes a stream that receives nothing for about 10 s, and a caller on hold or
//!   muted sends no audio: after `keepalive_interval` with nothing sent, a `KeepAlive` is due.
//! - Deepgram answers audio with `Results` (empty ones for silence) within a second or two. Once
//!   audio has gone unanswered for `stall_timeout`, counted from the first audio sent after the
//!   last message received, the stream has stalled. A `KeepAlive` asks for no answer, so a
//!   stream that only keeps alive never stalls.

use std::time::{Duration, Instant};

/// What is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Audio went unanswered for the stall timeout: the session has failed.
    Stalled,
    /// Nothing was sent for the keepalive interval: send a `KeepAlive`.
    KeepAlive,
}

/// The timers of one open stream.
#[derive(Debug)]
pub struct Liveness {
    keepalive_interval: Duration,
    stall_timeout: Duration,
    /// When audio or a `KeepAlive` last went out (or the stream opened).
    last_sent: Instant,
    /// The first audio sent since the last message received, if any.
    unanswered_since: Option<Instant>,
}

impl Liveness {
    /// A stream opened at `now`.
    pub fn new(keepalive_interval: Duration, stall_timeout: Duration, now: Instant) -> Self {
        Self {
            keepalive_interval,
            stall_timeout,
            last_sent: now,
            unanswered_since: None,
        }
    }

    /// Audio went out at `now`.
    pub fn audio_sent(&mut self, now: Instant) {
        self.last_sent = now;
        self.unanswered_since.get_or_insert(now);
    }

    /// A `KeepAlive` went out at `now`.
    pub fn keepalive_sent(&mut self, now: Instant) {
        self.last_sent = now;
    }

    /// Deepgram sent a message: everything sent before it was answered.
    pub fn message_received(&mut self) {
        self.unanswered_since = None;
    }

    /// When something is next due.
    pub fn next_deadline(&self) -> Instant {
        let keepalive = self.last_sent + self.keepalive_interval;
        match self.unanswered_since {
            Some(since) => keepalive.min(since + self.stall_timeout),
            None => keepalive,
        }
    }

    /// What is due at `now`; a stall comes first (no `KeepAlive` saves a stalled stream).
    pub fn due(&self, now: Instant) -> Option<Due> {
        if self
            .unanswered_since
            .is_some_and(|since| now >= since + self.stall_timeout)
        {
            Some(Due::Stalled)
        } else if now >= self.last_sent + self.keepalive_interval {
            Some(Due::KeepAlive)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEEPALIVE: Duration = Duration::from_secs(4);
    const STALL: Duration = Duration::from_secs(10);

    fn at(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    #[test]
    fn a_deepgram_keepalive_is_due_after_the_interval_without_audio() {
        let start = Instant::now();
        let mut liveness = Liveness::new(KEEPALIVE, STALL, start);
        assert_eq!(liveness.next_deadline(), at(start, 4_000));
        assert_eq!(liveness.due(at(start, 3_999)), None);
        assert_eq!(liveness.due(at(start, 4_000)), Some(Due::KeepAlive));
        liveness.keepalive_sent(at(start, 4_000));
        assert_eq!(liveness.next_deadline(), at(start, 8_000));
        // Audio postpones the next one: no KeepAlive while the caller talks.
        liveness.audio_sent(at(start, 5_000));
        liveness.message_received();
        assert_eq!(liveness.next_deadline(), at(start, 9_000));
        assert_eq!(liveness.due(at(start, 8_000)), None);
    }

    #[test]
    fn a_deepgram_stall_counts_from_the_first_unanswered_audio() {
        let start = Instant::now();
        let mut liveness = Liveness::new(KEEPALIVE, STALL, start);
        // Keeping alive for a minute asks for no answer: no stall.
        for second in 1..=15 {
            let now = at(start, second * 4_000);
            assert_eq!(liveness.due(now), Some(Due::KeepAlive));
            liveness.keepalive_sent(now);
        }
        // Audio resumes at 60 s: the stall clock starts there, not at the last message.
        liveness.audio_sent(at(start, 60_000));
        for frame in 1..500 {
            liveness.audio_sent(at(start, 60_000 + frame * 20));
        }
        assert_eq!(liveness.next_deadline(), at(start, 70_000));
        assert_eq!(liveness.due(at(start, 69_999)), None);
        assert_eq!(liveness.due(at(start, 70_000)), Some(Due::Stalled));
    }

    #[test]
    fn a_deepgram_message_answers_the_audio_before_it() {
        let start = Instant::now();
        let mut liveness = Liveness::new(KEEPALIVE, STALL, start);
        liveness.audio_sent(at(start, 0));
        liveness.message_received();
        liveness.audio_sent(at(start, 9_000));
        assert_eq!(liveness.due(at(start, 12_000)), None);
        assert_eq!(liveness.next_deadline(), at(start, 13_000));
        assert_eq!(liveness.due(at(start, 19_000)), Some(Due::Stalled));
    }
}
