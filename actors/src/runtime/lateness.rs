//! How far behind real time the calls' inbound audio is handled: the server's measured capacity.
//!
//! Twilio stamps each `media` message with its audio's time since the stream began
//! (`media.timestamp`, ms). [`StreamClock`] compares that with when the MediaStream handles the
//! frame: the smallest difference seen is the stream's network delay; anything above it is how
//! far behind the server is. A server past its capacity reads sockets late, and every stream's
//! frames fall behind together; one caller's network hiccup delays only that caller's frames.
//! [`InboundLateness`] gathers every stream's frames over the last second in a coarse histogram;
//! its 90th percentile is what the voice webhook compares with `ADMISSION_LAG_MS`. The logic
//! takes `now`: tests drive it with made-up instants.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How far a stream's baseline rises per frame, in µs: 2 µs a frame (50 a second) is 100 ppm, more
/// than two clocks drift apart, so a server clock running faster than Twilio's does not make a
/// long call look ever later. A server falling behind does so by milliseconds a second.
const BASELINE_LEAK_US: i64 = 2;

/// One stream's clock: Twilio's timestamps against the times its frames are handled.
#[derive(Debug, Default)]
pub struct StreamClock {
    /// When the first timestamped frame was handled.
    origin: Option<Instant>,
    /// The smallest (handled − stamped) seen, in µs, rising by [`BASELINE_LEAK_US`] a frame: the
    /// stream's own delay.
    baseline_us: Option<i64>,
}

impl StreamClock {
    /// A frame stamped `timestamp_ms` handled at `now`: how far behind its stream's best it is.
    pub fn behind(&mut self, now: Instant, timestamp_ms: u64) -> Duration {
        let origin = *self.origin.get_or_insert(now);
        let handled_us = now.saturating_duration_since(origin).as_micros() as i64;
        let offset_us = handled_us - (timestamp_ms as i64).saturating_mul(1000);
        let baseline_us = self.baseline_us.map_or(offset_us, |baseline| {
            (baseline + BASELINE_LEAK_US).min(offset_us)
        });
        self.baseline_us = Some(baseline_us);
        Duration::from_micros((offset_us - baseline_us) as u64)
    }
}

/// Upper bounds of the histogram's buckets, in ms (the last bucket is everything above).
const BOUNDS_MS: [u64; 13] = [1, 2, 5, 10, 15, 20, 25, 30, 50, 100, 250, 1000, 5000];

/// A histogram covers half a second; the last two are kept.
const HALF: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy, Default)]
struct Histogram {
    /// Which half second since the origin.
    index: u64,
    counts: [u32; BOUNDS_MS.len() + 1],
}

/// Every stream's frames over the last second, by how far behind they were handled.
#[derive(Debug)]
pub struct InboundLateness {
    origin: Instant,
    /// The current half second and the one before.
    histograms: Mutex<[Histogram; 2]>,
}

impl Default for InboundLateness {
    fn default() -> Self {
        Self::new(Instant::now())
    }
}

impl InboundLateness {
    /// Nothing recorded yet; time counted from `origin`.
    pub fn new(origin: Instant) -> Self {
        Self {
            origin,
            histograms: Mutex::new([Histogram::default(); 2]),
        }
    }

    fn index(&self, now: Instant) -> u64 {
        (now.saturating_duration_since(self.origin).as_millis() / HALF.as_millis()) as u64
    }

    /// A frame handled `behind` its stream's best, at `now`.
    pub fn record(&self, now: Instant, behind: Duration) {
        let index = self.index(now);
        let bucket = BOUNDS_MS
            .iter()
            .position(|&bound| behind <= Duration::from_millis(bound))
            .unwrap_or(BOUNDS_MS.len());
        let mut histograms = self
            .histograms
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if histograms[0].index != index {
            let previous = if histograms[0].index + 1 == index {
                histograms[0]
            } else {
                Histogram::default()
            };
            *histograms = [
                Histogram {
                    index,
                    ..Histogram::default()
                },
                previous,
            ];
        }
        histograms[0].counts[bucket] += 1;
    }

    /// The 90th percentile of how far behind frames were handled in the last second (at most a
    /// second and a half) before `now`, as the upper bound of its bucket; zero with no frames.
    pub fn p90(&self, now: Instant) -> Duration {
        let index = self.index(now);
        let histograms = *self
            .histograms
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut counts = [0_u64; BOUNDS_MS.len() + 1];
        for histogram in histograms.iter().filter(|h| h.index + 1 >= index) {
            for (total, &count) in counts.iter_mut().zip(&histogram.counts) {
                *total += u64::from(count);
            }
        }
        let frames: u64 = counts.iter().sum();
        if frames == 0 {
            return Duration::ZERO;
        }
        let mut seen = 0;
        for (bucket, &count) in counts.iter().enumerate() {
            seen += count;
            if seen * 10 >= frames * 9 {
                let bound = BOUNDS_MS.get(bucket).copied().unwrap_or(u64::MAX / 1000);
                return Duration::from_millis(bound);
            }
        }
        Duration::ZERO
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const US: Duration = Duration::from_micros(1);

    #[test]
    fn a_clock_drifting_100_ppm_fast_does_not_make_a_long_call_late() {
        let start = Instant::now();
        let mut clock = StreamClock::default();
        // An hour of frames, the server's clock gaining 2 µs a frame on Twilio's (100 ppm).
        let mut worst = Duration::ZERO;
        for frame in 0..180_000_u64 {
            let handled = start + Duration::from_micros(frame * 20_002);
            worst = worst.max(clock.behind(handled, frame * 20));
        }
        assert!(worst <= 2 * US, "{worst:?}");
        // A real stall still shows at once.
        let handled = start + Duration::from_micros(180_000 * 20_002) + 40 * MS;
        assert!(clock.behind(handled, 180_000 * 20) >= 39 * MS);
    }

    #[test]
    fn a_stream_is_behind_by_what_exceeds_its_best_delay() {
        let start = Instant::now();
        let mut clock = StreamClock::default();
        // Frames 20 ms apart arriving on time, then a stall: frames 3 and 4 handled together.
        assert_eq!(clock.behind(start, 1000), Duration::ZERO);
        assert_eq!(clock.behind(start + 20 * MS, 1020), Duration::ZERO);
        assert_eq!(clock.behind(start + 41 * MS, 1040), MS - 2 * US);
        assert_eq!(clock.behind(start + 95 * MS, 1060), 35 * MS - 4 * US);
        assert_eq!(clock.behind(start + 95 * MS, 1080), 15 * MS - 6 * US);
        // A frame quicker than any before lowers the baseline.
        assert_eq!(clock.behind(start + 99 * MS, 1100), Duration::ZERO);
        assert_eq!(clock.behind(start + 119 * MS, 1120), Duration::ZERO);
    }

    #[test]
    fn the_90th_percentile_of_the_last_second_is_the_signal() {
        let start = Instant::now();
        let lateness = InboundLateness::new(start);
        assert_eq!(lateness.p90(start), Duration::ZERO);
        // One call in a hundred late: noise.
        for call in 0..100 {
            let behind = if call == 7 { 400 * MS } else { MS };
            lateness.record(start + 100 * MS, behind);
        }
        assert_eq!(lateness.p90(start + 100 * MS), MS);
        // Then every frame 40 ms behind for half a second: the signal.
        for _ in 0..1000 {
            lateness.record(start + 600 * MS, 40 * MS);
        }
        assert_eq!(lateness.p90(start + 600 * MS), 50 * MS);
        // Still within the last second, then forgotten.
        assert_eq!(lateness.p90(start + 1400 * MS), 50 * MS);
        assert_eq!(lateness.p90(start + 2000 * MS), Duration::ZERO);
        lateness.record(start + 5000 * MS, 2 * MS);
        assert_eq!(
            lateness.p90(start + 5000 * MS),
            2 * MS,
            "a gap forgets what came before"
        );
    }
}
