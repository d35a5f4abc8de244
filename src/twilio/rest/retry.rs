//! When a failed request to Twilio is tried again, and after how long: a sans-I/O policy told what
//! went wrong and how many attempts were made, answering with a delay or "give up". The client
//! sleeps; the policy never looks at a clock.
//!
//! Only failures that prove the request did nothing are retried for a request that is not
//! idempotent (creating a call): a 429 (Twilio's rate limit refused it) or a connection that never
//! opened. A 5xx, a connection lost after sending, or a timeout may hide a placed call, so a create
//! is never retried after them. Updates (hang-up, transfer) are also retried after a 5xx. Timeouts
//! and connections lost after sending are not retried at all.

use std::time::Duration;

pub use crate::jitter::Jitter;

/// Whether sending a request twice does what sending it once does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotence {
    /// A second copy has no further effect (updating a call to a status).
    Idempotent,
    /// A second copy acts again (creating a call places a second one).
    NotIdempotent,
}

/// What an attempt ended with, when it did not end with a final answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The connection never opened (refused, unreachable, name resolution, TLS handshake):
    /// Twilio saw nothing.
    NotConnected {
        /// What the connector said.
        reason: String,
    },
    /// HTTP 429: Twilio's rate limit refused the request, which did nothing.
    RateLimited {
        /// Twilio's `Retry-After`, when it sent one in seconds.
        retry_after: Option<Duration>,
    },
    /// HTTP 5xx: Twilio failed; the request may or may not have taken effect.
    ServerError {
        /// The status code.
        status: u16,
    },
    /// The connection broke after the request was (perhaps) sent.
    ConnectionLost {
        /// What the client said.
        reason: String,
    },
    /// No complete answer within the timeout.
    TimedOut,
}

/// The policy's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Wait this long, then send the request again.
    RetryAfter(Duration),
    /// The failure is final.
    GiveUp,
}

/// Capped exponential backoff with full jitter, a bounded number of attempts, and Twilio's
/// `Retry-After` honoured up to a cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The backoff ceiling after the first attempt; it doubles per attempt. The delay is drawn
    /// uniformly between zero and the ceiling ("full jitter"), so clients that failed together do
    /// not come back together.
    pub base_delay: Duration,
    /// The highest backoff ceiling.
    pub max_delay: Duration,
    /// The longest `Retry-After` waited for; when Twilio asks for more, the 429 is final (and
    /// carries Twilio's figure), rather than trying early into the same limit.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    /// Three attempts; backoff ceilings of 500 ms, then 1 s (at most 4 s); `Retry-After` up to
    /// 10 s. The caller is usually an API request waiting for the call to be placed: a few
    /// seconds of retrying, not minutes.
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(4),
            max_retry_after: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// After `attempts` attempts (1 after the first) of a request of kind `idempotence`, the last
    /// ended with `failure`: retry after a delay, or give up. `jitter` draws the random part.
    pub fn decide(
        &self,
        idempotence: Idempotence,
        attempts: u32,
        failure: &Failure,
        jitter: &impl Jitter,
    ) -> Decision {
        let retryable = match failure {
            Failure::NotConnected { .. } | Failure::RateLimited { .. } => true,
            Failure::ServerError { .. } => idempotence == Idempotence::Idempotent,
            Failure::ConnectionLost { .. } | Failure::TimedOut => false,
        };
        if !retryable || attempts >= self.max_attempts {
            return Decision::GiveUp;
        }
        match failure {
            Failure::RateLimited {
                retry_after: Some(wait),
            } if *wait > self.max_retry_after => Decision::GiveUp,
            Failure::RateLimited {
                retry_after: Some(wait),
            } => Decision::RetryAfter(*wait),
            _ => Decision::RetryAfter(self.backoff_ceiling(attempts).mul_f64(jitter.fraction())),
        }
    }

    /// `base_delay` doubled per attempt after the first, at most `max_delay`.
    fn backoff_ceiling(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(31);
        self.base_delay
            .saturating_mul(1 << doublings)
            .min(self.max_delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Always draws the same fraction.
    struct Fixed(f64);

    impl Jitter for Fixed {
        fn fraction(&self) -> f64 {
            self.0
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy::default()
    }

    const CREATE: Idempotence = Idempotence::NotIdempotent;
    const UPDATE: Idempotence = Idempotence::Idempotent;

    fn not_connected() -> Failure {
        Failure::NotConnected {
            reason: "connection refused".into(),
        }
    }

    #[test]
    fn backoff_doubles_per_attempt_up_to_the_cap_and_the_jitter_scales_it() {
        let policy = RetryPolicy {
            max_attempts: 10,
            ..policy()
        };
        let ceilings: Vec<Decision> = (1..=5)
            .map(|attempts| policy.decide(UPDATE, attempts, &not_connected(), &Fixed(1.0)))
            .collect();
        let ms = |ms| Decision::RetryAfter(Duration::from_millis(ms));
        assert_eq!(
            ceilings,
            [ms(500), ms(1_000), ms(2_000), ms(4_000), ms(4_000)]
        );
        assert_eq!(
            policy.decide(UPDATE, 3, &not_connected(), &Fixed(0.25)),
            ms(500)
        );
        assert_eq!(
            policy.decide(UPDATE, 3, &not_connected(), &Fixed(0.0)),
            ms(0)
        );
    }

    #[test]
    fn attempts_are_bounded() {
        let failure = Failure::ServerError { status: 503 };
        assert!(matches!(
            policy().decide(UPDATE, 2, &failure, &Fixed(0.5)),
            Decision::RetryAfter(_)
        ));
        assert_eq!(
            policy().decide(UPDATE, 3, &failure, &Fixed(0.5)),
            Decision::GiveUp
        );
    }

    #[test]
    fn a_create_is_retried_only_when_twilio_proves_it_did_nothing() {
        let retried = [not_connected(), Failure::RateLimited { retry_after: None }];
        for failure in retried {
            assert!(
                matches!(
                    policy().decide(CREATE, 1, &failure, &Fixed(0.5)),
                    Decision::RetryAfter(_)
                ),
                "{failure:?}"
            );
        }
        let final_ = [
            Failure::ServerError { status: 500 },
            Failure::ServerError { status: 503 },
            Failure::ConnectionLost {
                reason: "reset".into(),
            },
            Failure::TimedOut,
        ];
        for failure in final_ {
            assert_eq!(
                policy().decide(CREATE, 1, &failure, &Fixed(0.5)),
                Decision::GiveUp,
                "{failure:?}"
            );
        }
    }

    #[test]
    fn an_update_is_retried_after_server_errors_but_not_after_a_timeout_or_a_lost_connection() {
        let decide = |failure: Failure| policy().decide(UPDATE, 1, &failure, &Fixed(0.5));
        assert_eq!(
            decide(Failure::ServerError { status: 503 }),
            Decision::RetryAfter(Duration::from_millis(250))
        );
        assert_eq!(decide(Failure::TimedOut), Decision::GiveUp);
        assert_eq!(
            decide(Failure::ConnectionLost {
                reason: "reset".into()
            }),
            Decision::GiveUp
        );
    }

    #[test]
    fn retry_after_is_honoured_up_to_its_cap() {
        let limited = |secs| Failure::RateLimited {
            retry_after: Some(Duration::from_secs(secs)),
        };
        assert_eq!(
            policy().decide(CREATE, 1, &limited(3), &Fixed(0.0)),
            Decision::RetryAfter(Duration::from_secs(3))
        );
        assert_eq!(
            policy().decide(CREATE, 1, &limited(10), &Fixed(0.0)),
            Decision::RetryAfter(Duration::from_secs(10))
        );
        assert_eq!(
            policy().decide(CREATE, 1, &limited(11), &Fixed(0.0)),
            Decision::GiveUp
        );
    }
}
