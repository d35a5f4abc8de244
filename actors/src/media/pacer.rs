//! Outbound pacing: send audio to Twilio at real time plus a small lead, marks in order.
//!
//! Twilio buffers whatever it is sent (minutes of it). If we sent synthesized audio as fast as it is
//! made, a barge-in `clear` would have seconds to flush and the marks would say nothing about what
//! the caller heard. The pacer keeps at most `lead` of audio ahead of the playhead. Sans-I/O: the
//! caller tells it the time and sends what [`Pacer::poll`] returns.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::audio::{FRAME_BYTES, FRAME_DURATION};
use crate::ids::MarkName;

/// One outbound item, in playing order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// 20 ms of mu-law audio.
    Frame(Box<[u8; FRAME_BYTES]>),
    /// A mark that follows the frames queued before it.
    Mark(MarkName),
}

/// Queue of outbound audio with a model of Twilio's playhead.
#[derive(Debug)]
pub struct Pacer {
    lead: Duration,
    queue: VecDeque<Outgoing>,
    /// Frames in `queue`.
    frames: usize,
    /// When Twilio will have played everything sent so far; `None` when nothing is playing.
    playhead: Option<Instant>,
    /// Paused (barge-in's soft stage): nothing is sent; Twilio plays what it has.
    paused: bool,
}

impl Pacer {
    /// A pacer that lets audio go out at most `lead` before it plays.
    pub fn new(lead: Duration) -> Self {
        Self {
            lead,
            queue: VecDeque::new(),
            frames: 0,
            playhead: None,
            paused: false,
        }
    }

    /// Stops sending until [`Pacer::resume`]; what was sent still plays.
    pub fn pause(&mut self) {
        self.paused = true;
    }

    /// Sends again, from where it paused.
    pub fn resume(&mut self) {
        self.paused = false;
    }

    /// Queues one frame behind everything already queued.
    pub fn push_frame(&mut self, payload: [u8; FRAME_BYTES]) {
        self.queue.push_back(Outgoing::Frame(Box::new(payload)));
        self.frames += 1;
    }

    /// Queues a mark behind the frames already queued.
    pub fn push_mark(&mut self, mark: MarkName) {
        self.queue.push_back(Outgoing::Mark(mark));
    }

    /// Moves every item that may be sent at `now` into `out`, in order.
    pub fn poll(&mut self, now: Instant, out: &mut Vec<Outgoing>) {
        if self.paused {
            return;
        }
        while let Some(front) = self.queue.front() {
            if let Outgoing::Frame(_) = front {
                let starts = self.playhead.map_or(now, |p| p.max(now));
                if starts.saturating_duration_since(now) > self.lead {
                    break;
                }
                self.playhead = Some(starts + FRAME_DURATION);
                self.frames -= 1;
            }
            out.extend(self.queue.pop_front());
        }
    }

    /// When [`Pacer::poll`] will next have something to send; `None` when the queue is empty.
    ///
    /// Call it after [`Pacer::poll`]: a frame left queued then is waiting for the playhead.
    pub fn next_send_at(&self) -> Option<Instant> {
        if self.paused {
            return None;
        }
        self.queue.front()?;
        // A queued frame waits only while the playhead is more than `lead` ahead.
        let playhead = self.playhead?;
        Some(playhead.checked_sub(self.lead).unwrap_or(playhead))
    }

    /// Drops everything queued (barge-in) and forgets the playhead, as Twilio does on `clear`;
    /// a pause ends. Returns how many frames were dropped.
    pub fn clear(&mut self) -> usize {
        self.queue.clear();
        self.playhead = None;
        self.paused = false;
        std::mem::take(&mut self.frames)
    }

    /// Frames waiting to be sent.
    pub fn queued_frames(&self) -> usize {
        self.frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::UtteranceId;

    const LEAD: Duration = Duration::from_millis(100);

    fn mark(chunk: u32) -> MarkName {
        MarkName {
            utterance: UtteranceId(1),
            chunk,
        }
    }

    fn frames(out: &[Outgoing]) -> usize {
        out.iter()
            .filter(|o| matches!(o, Outgoing::Frame(_)))
            .count()
    }

    #[test]
    fn sends_lead_worth_at_once_then_one_frame_per_20ms() {
        let start = Instant::now();
        let mut pacer = Pacer::new(LEAD);
        for _ in 0..50 {
            pacer.push_frame([0; FRAME_BYTES]);
        }
        let mut out = Vec::new();
        pacer.poll(start, &mut out);
        // Frames starting at +0, +20, … +100 ms are within the lead.
        assert_eq!(frames(&out), 6);
        assert_eq!(
            pacer.next_send_at(),
            Some(start + Duration::from_millis(20))
        );

        out.clear();
        pacer.poll(start + Duration::from_millis(19), &mut out);
        assert!(out.is_empty());
        pacer.poll(start + Duration::from_millis(20), &mut out);
        assert_eq!(frames(&out), 1);

        // Over one second, real time: one second more of frames, no more.
        out.clear();
        for ms in (40..=1000).step_by(20) {
            pacer.poll(start + Duration::from_millis(ms), &mut out);
        }
        assert_eq!(frames(&out), 43);
        assert_eq!(pacer.queued_frames(), 0);
    }

    #[test]
    fn marks_follow_their_frames_without_waiting() {
        let start = Instant::now();
        let mut pacer = Pacer::new(LEAD);
        pacer.push_frame([1; FRAME_BYTES]);
        pacer.push_mark(mark(0));
        let mut out = Vec::new();
        pacer.poll(start, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1], Outgoing::Mark(mark(0)));
        assert_eq!(pacer.next_send_at(), None);
    }

    #[test]
    fn an_idle_gap_restarts_the_playhead_at_now() {
        let start = Instant::now();
        let mut pacer = Pacer::new(LEAD);
        pacer.push_frame([1; FRAME_BYTES]);
        let mut out = Vec::new();
        pacer.poll(start, &mut out);
        let later = start + Duration::from_secs(5);
        for _ in 0..10 {
            pacer.push_frame([1; FRAME_BYTES]);
        }
        out.clear();
        pacer.poll(later, &mut out);
        assert_eq!(frames(&out), 6);
    }

    #[test]
    fn a_pause_holds_everything_and_resume_goes_on_at_real_time() {
        let start = Instant::now();
        let mut pacer = Pacer::new(LEAD);
        for _ in 0..20 {
            pacer.push_frame([1; FRAME_BYTES]);
        }
        let mut out = Vec::new();
        pacer.poll(start, &mut out);
        assert_eq!(frames(&out), 6);
        pacer.pause();
        out.clear();
        pacer.poll(start + Duration::from_millis(500), &mut out);
        assert!(out.is_empty());
        assert_eq!(pacer.next_send_at(), None);
        // Twilio played the 120 ms it had long ago: resuming sends a lead's worth again.
        pacer.resume();
        pacer.poll(start + Duration::from_millis(900), &mut out);
        assert_eq!(frames(&out), 6);
        assert_eq!(pacer.queued_frames(), 8);
    }

    #[test]
    fn clear_drops_the_queue_and_the_playhead() {
        let start = Instant::now();
        let mut pacer = Pacer::new(LEAD);
        for chunk in 0..20 {
            pacer.push_frame([1; FRAME_BYTES]);
            pacer.push_mark(mark(chunk));
        }
        let mut out = Vec::new();
        pacer.poll(start, &mut out);
        assert_eq!(pacer.clear(), 14);
        assert_eq!(pacer.next_send_at(), None);
        pacer.push_frame([2; FRAME_BYTES]);
        out.clear();
        pacer.poll(start + Duration::from_millis(1), &mut out);
        assert_eq!(frames(&out), 1, "nothing is playing after clear");
    }
}
