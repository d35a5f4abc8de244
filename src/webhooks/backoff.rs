//! When a failed outbound message is tried again: exponential backoff with jitter inside a retry
//! window (24 hours by default), after which the message is dead. Sans-I/O: told the attempts
//! made, when the window started and the time now, it answers with the next attempt's time.

use std::time::Duration;

use crate::jitter::Jitter;

/// The longest wait between two attempts.
const MAX_DELAY: Duration = Duration::from_secs(4 * 3600);

/// How failed messages are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait after the first failure; it doubles per failure, up to four hours.
    pub base: Duration,
    /// Retries stop this long after the message was created (or replayed).
    pub window: Duration,
}

impl Backoff {
    /// After `attempts` failed attempts (1 after the first) of a message whose window started at
    /// `window_start` (Unix ms), the time of the next attempt at `now_ms`, or `None` when it
    /// would fall outside the window: the message is dead. The wait is drawn between half and
    /// all of the doubled delay, so receivers that failed together are not retried together,
    /// while a wait never collapses to nothing.
    pub fn next_attempt(
        &self,
        attempts: u32,
        window_start: i64,
        now_ms: i64,
        jitter: &impl Jitter,
    ) -> Option<i64> {
        let doubled = self
            .base
            .saturating_mul(1u32 << attempts.saturating_sub(1).min(20))
            .min(MAX_DELAY);
        let wait = doubled.mul_f64(0.5 + 0.5 * jitter.fraction().clamp(0.0, 1.0));
        let at = now_ms.saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX));
        let end = window_start.saturating_add(i64::try_from(self.window.as_millis()).ok()?);
        (at <= end).then_some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(f64);

    impl Jitter for Fixed {
        fn fraction(&self) -> f64 {
            self.0
        }
    }

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn waits_double_between_half_and_all_of_the_delay_up_to_four_hours() {
        let backoff = Backoff {
            base: Duration::from_secs(5),
            window: DAY,
        };
        let waits: Vec<i64> = (1..=4)
            .map(|n| backoff.next_attempt(n, 0, 0, &Fixed(1.0)).unwrap())
            .collect();
        assert_eq!(waits, [5_000, 10_000, 20_000, 40_000]);
        assert_eq!(backoff.next_attempt(1, 0, 0, &Fixed(0.0)), Some(2_500));
        assert_eq!(
            backoff.next_attempt(30, 0, 0, &Fixed(1.0)),
            Some(4 * 3_600_000),
            "capped"
        );
    }

    #[test]
    fn a_message_whose_next_attempt_falls_outside_the_window_is_dead() {
        let backoff = Backoff {
            base: Duration::from_secs(5),
            window: DAY,
        };
        let day_ms = 86_400_000;
        assert_eq!(
            backoff.next_attempt(1, 0, day_ms - 5_000, &Fixed(1.0)),
            Some(day_ms)
        );
        assert_eq!(
            backoff.next_attempt(1, 0, day_ms - 4_999, &Fixed(1.0)),
            None
        );
        assert_eq!(
            backoff.next_attempt(1, 1_000, day_ms - 4_999, &Fixed(1.0)),
            Some(day_ms + 1),
            "a replay starts a new window"
        );
        // With the defaults, retries go on for a day: count the attempts at the longest waits.
        let (mut now, mut attempts) = (0, 0);
        while let Some(at) = backoff.next_attempt(attempts + 1, 0, now, &Fixed(1.0)) {
            (now, attempts) = (at, attempts + 1);
        }
        assert!(now > day_ms - 4 * 3_600_000, "{now}");
        assert_eq!(attempts, 16);
    }
}
