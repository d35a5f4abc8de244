//! When a call may try its provider's connection again: capped exponential backoff with full
//! jitter, told the time (sans-I/O). Failures in a row also tell a call when to give the stage to
//! its embedded engine.

use std::time::{Duration, Instant};

use crate::jitter::Jitter;

/// The reconnection state of one call's provider connection.
#[derive(Debug, Clone)]
pub struct Reconnect {
    base: Duration,
    max: Duration,
    failures: u32,
    retry_at: Option<Instant>,
}

impl Reconnect {
    /// Backoff ceilings of `base`, doubling per failure in a row, at most `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            failures: 0,
            retry_at: None,
        }
    }

    /// Whether a connection may be tried at `now`.
    pub fn may_try(&self, now: Instant) -> bool {
        self.retry_at.is_none_or(|at| now >= at)
    }

    /// A connection failed at `now`: the next try waits a jittered share of the ceiling.
    pub fn failed(&mut self, now: Instant, jitter: &impl Jitter) {
        let ceiling = self
            .base
            .saturating_mul(1 << self.failures.min(31))
            .min(self.max);
        self.failures += 1;
        self.retry_at = Some(now + ceiling.mul_f64(jitter.fraction()));
    }

    /// The connection works: failures are forgotten.
    pub fn succeeded(&mut self) {
        self.failures = 0;
        self.retry_at = None;
    }

    /// When the next try may be made (`None`: now).
    pub fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }

    /// Failures in a row.
    pub fn failures(&self) -> u32 {
        self.failures
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

    #[test]
    fn waits_a_jittered_doubling_ceiling_up_to_the_cap_and_forgets_on_success() {
        let now = Instant::now();
        let mut reconnect = Reconnect::new(Duration::from_millis(100), Duration::from_millis(300));
        assert!(reconnect.may_try(now));
        reconnect.failed(now, &Fixed(1.0));
        assert!(!reconnect.may_try(now + Duration::from_millis(99)));
        assert!(reconnect.may_try(now + Duration::from_millis(100)));
        reconnect.failed(now, &Fixed(0.5));
        assert!(reconnect.may_try(now + Duration::from_millis(100)));
        reconnect.failed(now, &Fixed(1.0));
        assert!(!reconnect.may_try(now + Duration::from_millis(299)));
        reconnect.failed(now, &Fixed(1.0));
        assert!(
            reconnect.may_try(now + Duration::from_millis(300)),
            "capped"
        );
        assert_eq!(reconnect.failures(), 4);
        reconnect.succeeded();
        assert!(reconnect.may_try(now));
        assert_eq!(reconnect.failures(), 0);
    }
}
