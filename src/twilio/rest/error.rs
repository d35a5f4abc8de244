//! What can go wrong talking to Twilio's REST API, and Twilio's error codes mapped to it.
//!
//! Display texts say what happened and what to do. They never hold credentials, and never phone
//! numbers: Twilio's own `message` may repeat one, so it is not kept.

use std::fmt;
use std::time::Duration;

use super::retry::{Failure, Idempotence};
use crate::outbound::RetryAfter;

/// A request to Twilio's REST API failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TwilioError {
    /// Error 21211: the number to call is not a valid phone number.
    #[error("Twilio refused the number to call as invalid (error 21211): give it in E.164 form: +, country code, number")]
    InvalidTo,
    /// Errors 21210 and 21212: the number to call from is not one of the account's Twilio numbers
    /// or verified caller IDs, or not a valid caller ID.
    #[error("Twilio refused the number to call from (error {code}): use a Twilio number of this account or a verified caller ID")]
    UnusableFrom {
        /// 21210 (not owned or verified) or 21212 (not a valid caller ID).
        code: u32,
    },
    /// Error 20003 (or HTTP 401): Twilio did not accept our credentials.
    #[error("Twilio refused our credentials (error 20003): check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN, or TWILIO_API_KEY_SID and TWILIO_API_KEY_SECRET")]
    Authentication,
    /// Error 20404: Twilio has no such call (for a transfer: it has ended).
    #[error("Twilio has no such call (error 20404): it may have ended")]
    NotFound,
    /// HTTP 429 or error 20429 after the retries allowed: Twilio's rate limit refused the
    /// request, which did nothing.
    #[error("Twilio's rate limit refused the request (error 20429){}: nothing was done; try again later", RetryAfter(*retry_after))]
    TooManyRequests {
        /// How long Twilio asked us to wait, when it said.
        retry_after: Option<Duration>,
    },
    /// Another 4xx answer.
    #[error("Twilio rejected the request (HTTP {status}{}): see Twilio's error reference for the code", Code(*code))]
    Rejected {
        /// Twilio's error code, when its body carried one.
        code: Option<u32>,
        /// The HTTP status.
        status: u16,
    },
    /// HTTP 5xx on every attempt of a request that could be retried.
    #[error("Twilio is unavailable (HTTP {status} after {attempts} attempts): try again later")]
    Unavailable {
        /// The last status.
        status: u16,
        /// Attempts made.
        attempts: u32,
    },
    /// No complete answer within `TWILIO_REST_TIMEOUT` (not retried: the request may have
    /// reached Twilio).
    #[error(
        "Twilio did not answer within {after:?}: try again later, or raise TWILIO_REST_TIMEOUT"
    )]
    Timeout {
        /// The timeout.
        after: Duration,
    },
    /// The connection never opened, on every attempt: Twilio saw nothing.
    #[error("could not connect to Twilio ({attempts} attempts: {reason}): check TWILIO_API_BASE and the network")]
    Connect {
        /// Attempts made.
        attempts: u32,
        /// The last connector error.
        reason: String,
    },
    /// The connection broke after the request was sent, before the whole answer came.
    #[error("the connection to Twilio broke before its answer ({reason}): try again")]
    ConnectionLost {
        /// What the HTTP client said.
        reason: String,
    },
    /// A 2xx answer that is not the JSON Twilio documents.
    #[error("Twilio answered HTTP {status} with a body that is not the documented JSON: check TWILIO_API_BASE")]
    InvalidAnswer {
        /// The HTTP status.
        status: u16,
    },
    /// A call was being created and Twilio's answer does not say whether it was: a 5xx, a
    /// timeout, or a connection lost after sending. Not retried, so no call is placed twice.
    #[error("Twilio did not confirm the call ({reason}): it may or may not have been placed; check Twilio's call log before placing it again")]
    OutcomeUnknown {
        /// What happened instead of an answer.
        reason: Unconfirmed,
    },
    /// TwiML longer than Twilio's limit; nothing was sent.
    #[error(
        "the TwiML is {chars} characters long; Twilio accepts at most {}",
        crate::twilio::twiml::MAX_TWIML_CHARS
    )]
    TwimlTooLong {
        /// Its length in characters.
        chars: usize,
    },
}

/// Why a create call's outcome is unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unconfirmed {
    /// No complete answer within the timeout.
    Timeout(Duration),
    /// Twilio answered 5xx.
    ServerError(u16),
    /// The connection broke after the request was sent.
    ConnectionLost(String),
}

impl fmt::Display for Unconfirmed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout(after) => write!(f, "no answer within {after:?}"),
            Self::ServerError(status) => write!(f, "Twilio answered HTTP {status}"),
            Self::ConnectionLost(reason) => {
                write!(f, "the connection broke after sending: {reason}")
            }
        }
    }
}

impl TwilioError {
    /// The error of a final (not retried) 4xx answer other than 429, from its status and Twilio's
    /// error code.
    pub(super) fn from_answer(status: u16, code: Option<u32>) -> Self {
        match (code, status) {
            (Some(21211), _) => Self::InvalidTo,
            (Some(code @ (21210 | 21212)), _) => Self::UnusableFrom { code },
            (Some(20003), _) | (None, 401) => Self::Authentication,
            (Some(20404), _) => Self::NotFound,
            (Some(20429), _) => Self::TooManyRequests { retry_after: None },
            (code, status) => Self::Rejected { code, status },
        }
    }

    /// The error of a `failure` the retry policy gave up on after `attempts` attempts of a
    /// request of kind `idempotence`, sent with `timeout`.
    pub(super) fn after_giving_up(
        failure: Failure,
        idempotence: Idempotence,
        attempts: u32,
        timeout: Duration,
    ) -> Self {
        let create = idempotence == Idempotence::NotIdempotent;
        let unconfirmed = |reason| Self::OutcomeUnknown { reason };
        match failure {
            Failure::NotConnected { reason } => Self::Connect { attempts, reason },
            Failure::RateLimited { retry_after } => Self::TooManyRequests { retry_after },
            Failure::ServerError { status } if create => {
                unconfirmed(Unconfirmed::ServerError(status))
            }
            Failure::ServerError { status } => Self::Unavailable { status, attempts },
            Failure::ConnectionLost { reason } if create => {
                unconfirmed(Unconfirmed::ConnectionLost(reason))
            }
            Failure::ConnectionLost { reason } => Self::ConnectionLost { reason },
            Failure::TimedOut if create => unconfirmed(Unconfirmed::Timeout(timeout)),
            Failure::TimedOut => Self::Timeout { after: timeout },
        }
    }
}

/// `, error 21216` when Twilio's body carried a code, else nothing.
struct Code(Option<u32>);

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(code) => write!(f, ", error {code}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twilio_codes_map_to_their_variants() {
        let cases = [
            (400, Some(21211), TwilioError::InvalidTo),
            (400, Some(21210), TwilioError::UnusableFrom { code: 21210 }),
            (400, Some(21212), TwilioError::UnusableFrom { code: 21212 }),
            (401, Some(20003), TwilioError::Authentication),
            (401, None, TwilioError::Authentication),
            (404, Some(20404), TwilioError::NotFound),
            (
                400,
                Some(20429),
                TwilioError::TooManyRequests { retry_after: None },
            ),
            (
                400,
                Some(21216),
                TwilioError::Rejected {
                    code: Some(21216),
                    status: 400,
                },
            ),
            (
                404,
                None,
                TwilioError::Rejected {
                    code: None,
                    status: 404,
                },
            ),
        ];
        for (status, code, expected) in cases {
            assert_eq!(TwilioError::from_answer(status, code), expected);
        }
    }

    #[test]
    fn a_create_that_may_have_happened_is_unconfirmed_and_an_update_is_not() {
        let timeout = Duration::from_secs(10);
        let give_up =
            |failure, idempotence| TwilioError::after_giving_up(failure, idempotence, 1, timeout);
        assert_eq!(
            give_up(
                Failure::ServerError { status: 500 },
                Idempotence::NotIdempotent
            ),
            TwilioError::OutcomeUnknown {
                reason: Unconfirmed::ServerError(500)
            }
        );
        assert_eq!(
            give_up(Failure::TimedOut, Idempotence::NotIdempotent),
            TwilioError::OutcomeUnknown {
                reason: Unconfirmed::Timeout(timeout)
            }
        );
        assert_eq!(
            give_up(Failure::TimedOut, Idempotence::Idempotent),
            TwilioError::Timeout { after: timeout }
        );
        assert_eq!(
            give_up(
                Failure::ServerError { status: 503 },
                Idempotence::Idempotent
            ),
            TwilioError::Unavailable {
                status: 503,
                attempts: 1
            }
        );
        let refused = || Failure::NotConnected {
            reason: "refused".into(),
        };
        assert_eq!(
            give_up(refused(), Idempotence::NotIdempotent),
            give_up(refused(), Idempotence::Idempotent)
        );
    }

    #[test]
    fn displays_say_what_to_do() {
        let unknown = TwilioError::OutcomeUnknown {
            reason: Unconfirmed::Timeout(Duration::from_secs(10)),
        };
        assert_eq!(
            unknown.to_string(),
            "Twilio did not confirm the call (no answer within 10s): it may or may not have been \
             placed; check Twilio's call log before placing it again"
        );
        let limited = TwilioError::TooManyRequests {
            retry_after: Some(Duration::from_secs(30)),
        };
        assert_eq!(
            limited.to_string(),
            "Twilio's rate limit refused the request (error 20429), retry after 30s: nothing was \
             done; try again later"
        );
        let rejected = TwilioError::Rejected {
            code: Some(21216),
            status: 400,
        };
        assert!(rejected.to_string().contains("(HTTP 400, error 21216)"));
    }
}
