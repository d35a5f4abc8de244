//! Resend's send endpoint: one email, one `POST {base_url}/emails`
//! (<https://resend.com/docs/api-reference/emails/send-email>).
//!
//! caller --[`Email`], idempotency key--> [`Resend`] --JSON POST, Bearer key--> Resend; Resend's
//! answer --> the email's id, or an [`EmailError`].
//!
//! Each send is one attempt, bounded as a whole by [`ResendSettings::timeout`]; the caller
//! decides whether to try again ([`EmailError::is_transient`]). The `Idempotency-Key` makes that
//! safe: for 24 hours Resend answers the same key and body with the first email's id and sends
//! nothing (<https://resend.com/docs/dashboard/emails/idempotency-keys>).
//!
//! The HTTP client is this thread's [`crate::outbound`] client (rustls, no redirects,
//! our `User-Agent`), so [`Resend::send`]'s future is `!Send` and runs on the calling actix
//! thread.
//!
//! Nothing secret or personal is logged or kept: one debug line per send with the status,
//! Resend's id and the duration; never the key, an address, the subject or the text. Resend's
//! error messages may repeat an address, so addresses in them are replaced before they are kept.

use std::fmt;
use std::time::{Duration, Instant};

use awc::error::SendRequestError;
use serde::{Deserialize, Serialize};

use crate::outbound::{self, Answer, RetryAfter};

/// Resend's API, where [`ResendSettings::new`] points.
pub const DEFAULT_BASE_URL: &str = "https://api.resend.com";

/// The default bound on one send (connect, send, read the answer): Resend answers in well under
/// a second, and a follow-up email can wait for the next attempt.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest answer read: Resend's answers are a few hundred bytes.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The longest `name` or `message` kept from an error answer, in characters: enough for any of
/// Resend's, short enough for a log line whatever a misconfigured base URL answers.
const MAX_ERROR_TEXT_CHARS: usize = 500;

/// What stands for an email address in a kept error message.
const ADDRESS: &str = "[address]";

/// Resend's 409 for a key whose first request is still in progress: safe to retry later.
const CONCURRENT_IDEMPOTENT_REQUESTS: &str = "concurrent_idempotent_requests";

/// Resend's API: where and with which key.
#[derive(Clone)]
pub struct ResendSettings {
    /// The API key (`re_…`), sent as `Authorization: Bearer`; never printed.
    pub api_key: String,
    /// Resend's API, [`DEFAULT_BASE_URL`] (a trailing `/` is ignored).
    pub base_url: String,
    /// The sender, `Name <address>` or a bare address, on a domain verified with Resend.
    pub from: String,
    /// The bound on one send as a whole; connecting and the TLS handshake may each take a third
    /// of it.
    pub timeout: Duration,
}

impl ResendSettings {
    /// Resend's own API with `api_key`, sending as `from`, bounded by [`DEFAULT_TIMEOUT`].
    pub fn new(api_key: impl Into<String>, from: impl Into<String>) -> Self {
        Self {
            api_key: api_key.into(),
            base_url: DEFAULT_BASE_URL.to_owned(),
            from: from.into(),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl fmt::Debug for ResendSettings {
    /// The base URL only: the key is secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResendSettings")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// One email to send.
#[derive(Clone, Serialize)]
pub struct Email {
    /// The recipient's address: personal data, never logged.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The body, plain text.
    pub text: String,
}

impl fmt::Debug for Email {
    /// Lengths only: the address is personal, and the subject and text are about the caller.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Email")
            .field("to", &"<redacted>")
            .field("subject_chars", &self.subject.chars().count())
            .field("text_chars", &self.text.chars().count())
            .finish()
    }
}

/// Sends emails through Resend. Holds settings only (the HTTP client is per thread), so it is
/// cheap to clone and may be shared across threads.
#[derive(Clone, Debug)]
pub struct Resend {
    settings: ResendSettings,
}

impl Resend {
    /// A client for `settings`.
    pub fn new(settings: ResendSettings) -> Self {
        Self { settings }
    }

    /// The bound on one send as a whole.
    pub fn timeout(&self) -> Duration {
        self.settings.timeout
    }

    /// Sends `email` with `idempotency_key` (1 to 256 characters, the same for every attempt of
    /// one email, e.g. `follow-up/{call_id}`); Resend's email id.
    pub async fn send(&self, email: &Email, idempotency_key: &str) -> Result<String, EmailError> {
        let started = Instant::now();
        let result = self.post(email, idempotency_key).await;
        let duration_ms = started.elapsed().as_millis() as u64;
        match result {
            Ok(answer) => {
                let status = answer.status;
                let outcome = outcome(answer, &self.settings.api_key);
                tracing::debug!(
                    status,
                    id = outcome.as_deref().ok(),
                    duration_ms,
                    "Resend send"
                );
                outcome
            }
            Err(error) => {
                tracing::debug!(%error, duration_ms, "Resend send failed");
                Err(error)
            }
        }
    }

    /// POSTs `email` once: Resend's answer whatever its status, or why there was none.
    async fn post(&self, email: &Email, idempotency_key: &str) -> Result<Answer, EmailError> {
        let settings = &self.settings;
        let body = SendEmail {
            from: &settings.from,
            to: [&email.to],
            subject: &email.subject,
            text: &email.text,
        };
        let url = format!("{}/emails", settings.base_url.trim_end_matches('/'));
        let request = outbound::client(settings.timeout / 3)
            .post(url)
            .bearer_auth(&settings.api_key)
            .insert_header(("Idempotency-Key", idempotency_key));
        let exchange = async {
            // send_json sets Content-Type: application/json.
            let response = request.send_json(&body).await.map_err(sort_send_error)?;
            outbound::read_answer(response, MAX_ANSWER_BYTES)
                .await
                .map_err(|error| EmailError::Connection(error.to_string()))
        };
        actix_rt::time::timeout(settings.timeout, exchange)
            .await
            .unwrap_or(Err(EmailError::TimedOut))
    }
}

/// Sending an email failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    /// A 4xx answer other than 429: the key (401 `missing_api_key`, 403 `invalid_api_key`), the
    /// email (422 `validation_error`), or the idempotency key (409: reused with another body).
    #[error("Resend rejected the email (HTTP {status} {name}): {message}")]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// Resend's error name, e.g. `validation_error` (empty without an error body).
        name: String,
        /// Resend's message, addresses replaced by `[address]`.
        message: String,
    },
    /// A 5xx answer: Resend failed; nothing may have been sent, and the idempotency key makes
    /// another attempt safe.
    #[error("Resend is unavailable (HTTP {status}): try again later")]
    Unavailable {
        /// The HTTP status.
        status: u16,
    },
    /// 429 `rate_limit_exceeded`: nothing was sent.
    #[error("Resend's rate limit refused the email{}: try again later", RetryAfter(*retry_after))]
    RateLimited {
        /// How long Resend asked us to wait (`retry-after`), when it said.
        retry_after: Option<Duration>,
    },
    /// The connection failed or broke before Resend's whole answer came.
    #[error("could not reach Resend ({0}): check the base URL and the network")]
    Connection(String),
    /// No complete answer within [`ResendSettings::timeout`]: the email may have been sent;
    /// another attempt with the same idempotency key will not send it twice.
    #[error("Resend did not answer in time: try again later")]
    TimedOut,
    /// An answer that is not Resend's documented one: a 2xx without an email id, or a redirect.
    #[error("Resend's answer had no email id: check the base URL")]
    BadAnswer,
}

impl EmailError {
    /// Whether sending again later may succeed (5xx, 429, connection, timeout: yes; 4xx other
    /// than 429: no, except Resend's 409 `concurrent_idempotent_requests`, which asks for
    /// exactly that).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unavailable { .. }
            | Self::RateLimited { .. }
            | Self::Connection(_)
            | Self::TimedOut => true,
            Self::Rejected { name, .. } => name == CONCURRENT_IDEMPOTENT_REQUESTS,
            Self::BadAnswer => false,
        }
    }
}

/// The body of `POST /emails`, in Resend's names.
#[derive(Serialize)]
struct SendEmail<'a> {
    from: &'a str,
    to: [&'a str; 1],
    subject: &'a str,
    text: &'a str,
}

/// Resend's answer to a send.
#[derive(Deserialize)]
struct Sent {
    id: String,
}

/// Resend's error body (`statusCode` repeats the HTTP status and is not read).
#[derive(Default, Deserialize)]
struct ErrorBody {
    name: Option<String>,
    message: Option<String>,
}

/// The send error, sorted.
fn sort_send_error(error: SendRequestError) -> EmailError {
    match error {
        SendRequestError::Timeout => EmailError::TimedOut,
        other => EmailError::Connection(other.to_string()),
    }
}

/// What `answer` means: the email's id or the error. `api_key` is struck from any text kept.
fn outcome(answer: Answer, api_key: &str) -> Result<String, EmailError> {
    match answer.status {
        200..=299 => serde_json::from_slice::<Sent>(&answer.body)
            .ok()
            .map(|sent| sent.id)
            .filter(|id| !id.is_empty())
            .ok_or(EmailError::BadAnswer),
        429 => Err(EmailError::RateLimited {
            retry_after: answer.retry_after,
        }),
        status @ 400..=499 => {
            let body: ErrorBody = serde_json::from_slice(&answer.body).unwrap_or_default();
            let keep = |text: Option<String>| clean(&text.unwrap_or_default(), api_key);
            Err(EmailError::Rejected {
                status,
                name: keep(body.name),
                message: keep(body.message),
            })
        }
        status @ 500..=599 => Err(EmailError::Unavailable { status }),
        _ => Err(EmailError::BadAnswer),
    }
}

/// `text` fit to keep: the key struck, addresses replaced, at most [`MAX_ERROR_TEXT_CHARS`].
fn clean(text: &str, api_key: &str) -> String {
    let text = if api_key.is_empty() {
        text.to_owned()
    } else {
        text.replace(api_key, "<redacted>")
    };
    let text = without_addresses(&text);
    match text.char_indices().nth(MAX_ERROR_TEXT_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text,
    }
}

/// Each word with an `@` becomes [`ADDRESS`], punctuation around it kept: `(ann@example.com).`
/// becomes `([address]).`.
fn without_addresses(text: &str) -> String {
    text.split_inclusive(char::is_whitespace)
        .map(|word| {
            let inner = word.find(char::is_alphanumeric).zip(
                word.char_indices()
                    .rev()
                    .find(|(_, c)| c.is_alphanumeric())
                    .map(|(at, c)| at + c.len_utf8()),
            );
            match inner {
                Some((start, end)) if word.contains('@') => {
                    format!("{}{ADDRESS}{}", &word[..start], &word[end..])
                }
                _ => word.to_owned(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use actix_web::web::Bytes;

    use super::*;

    const KEY: &str = "re_123456789_abcdefghijklmnop";

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status,
            retry_after: None,
            body: Bytes::copy_from_slice(body.as_bytes()),
        }
    }

    #[test]
    fn the_client_may_be_shared_across_threads() {
        fn shareable<T: Clone + Send + Sync>() {}
        shareable::<Resend>();
    }

    #[test]
    fn debug_shows_the_base_url_and_never_the_key() {
        let settings = ResendSettings::new(KEY, "Bright Smile Dental <care@brightsmile.example>");
        for printed in [
            format!("{settings:?}"),
            format!("{:?}", Resend::new(settings.clone())),
        ] {
            assert!(!printed.contains(KEY), "{printed}");
            assert!(!printed.contains("re_"), "{printed}");
            assert!(printed.contains(DEFAULT_BASE_URL), "{printed}");
        }
    }

    #[test]
    fn debug_of_an_email_hides_the_address() {
        let email = Email {
            to: "ann@example.com".into(),
            subject: "Your appointment".into(),
            text: "See you on Tuesday.".into(),
        };
        let printed = format!("{email:?}");
        assert!(!printed.contains("ann@example.com"), "{printed}");
        assert!(!printed.contains("Tuesday"), "{printed}");
    }

    #[test]
    fn the_wire_body_names_fields_as_resend_does() {
        let body = SendEmail {
            from: "Ava <ava@example.com>",
            to: ["ann@example.com"],
            subject: "Hi",
            text: "Hello",
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({
                "from": "Ava <ava@example.com>",
                "to": ["ann@example.com"],
                "subject": "Hi",
                "text": "Hello",
            })
        );
    }

    #[test]
    fn answers_map_to_ids_and_errors() {
        let id = "49a3999c-0ce1-4ea6-ab68-afcd6dc2e794";
        assert_eq!(
            outcome(answer(200, &format!(r#"{{"id":"{id}"}}"#)), KEY),
            Ok(id.to_owned())
        );
        for (status, body) in [
            (200, "{}"),
            (200, r#"{"id":""}"#),
            (200, "<html>"),
            (302, ""),
        ] {
            assert_eq!(
                outcome(answer(status, body), KEY),
                Err(EmailError::BadAnswer)
            );
        }
        assert_eq!(
            outcome(
                answer(
                    422,
                    r#"{"statusCode":422,"name":"validation_error","message":"Invalid `to` field."}"#
                ),
                KEY
            ),
            Err(EmailError::Rejected {
                status: 422,
                name: "validation_error".into(),
                message: "Invalid `to` field.".into(),
            })
        );
        assert_eq!(
            outcome(answer(404, "not json"), KEY),
            Err(EmailError::Rejected {
                status: 404,
                name: String::new(),
                message: String::new(),
            })
        );
        let limited = Answer {
            retry_after: Some(Duration::from_secs(2)),
            ..answer(429, "{}")
        };
        assert_eq!(
            outcome(limited, KEY),
            Err(EmailError::RateLimited {
                retry_after: Some(Duration::from_secs(2))
            })
        );
        assert_eq!(
            outcome(answer(503, "{}"), KEY),
            Err(EmailError::Unavailable { status: 503 })
        );
    }

    #[test]
    fn kept_messages_lose_addresses_and_the_key() {
        let message = format!(
            "You can only send testing emails to your own email address (owner@example.org). \
             Key {KEY} is\nfor <ann@example.com>, not\tbob@example.net."
        );
        assert_eq!(
            clean(&message, KEY),
            "You can only send testing emails to your own email address ([address]). \
             Key <redacted> is\nfor <[address]>, not\t[address]."
        );
        let long = "x".repeat(MAX_ERROR_TEXT_CHARS + 10);
        assert_eq!(clean(&long, KEY).chars().count(), MAX_ERROR_TEXT_CHARS + 1);
    }

    #[test]
    fn only_what_may_pass_is_transient() {
        let rejected = |status, name: &str| EmailError::Rejected {
            status,
            name: name.into(),
            message: String::new(),
        };
        let transient = [
            EmailError::Unavailable { status: 500 },
            EmailError::RateLimited { retry_after: None },
            EmailError::Connection("refused".into()),
            EmailError::TimedOut,
            rejected(409, CONCURRENT_IDEMPOTENT_REQUESTS),
        ];
        let lasting = [
            rejected(401, "missing_api_key"),
            rejected(403, "invalid_api_key"),
            rejected(409, "invalid_idempotent_request"),
            rejected(422, "validation_error"),
            EmailError::BadAnswer,
        ];
        assert!(transient.iter().all(EmailError::is_transient));
        assert!(!lasting.iter().any(EmailError::is_transient));
    }

    #[test]
    fn displays_say_what_happened() {
        let limited = EmailError::RateLimited {
            retry_after: Some(Duration::from_secs(1)),
        };
        assert_eq!(
            limited.to_string(),
            "Resend's rate limit refused the email, retry after 1s: try again later"
        );
        let rejected = EmailError::Rejected {
            status: 403,
            name: "invalid_api_key".into(),
            message: "API key is invalid".into(),
        };
        assert_eq!(
            rejected.to_string(),
            "Resend rejected the email (HTTP 403 invalid_api_key): API key is invalid"
        );
    }
}
