//! The one place errors become HTTP responses: `{"error":{"code","message","request_id"}}` with
//! generic public messages. The other modules' errors (guard refusals, token administration,
//! storage, stream tokens, request bodies) become an [`HttpError`] here, through `From`, and their
//! causes go to the logs, never into a response. [`super::frame`] adds the request id and gives
//! every other error status (actix's own 404/405, extractor errors) the same envelope.

use std::time::Duration;

use actix::MailboxError;
use actix_web::error::UrlencodedError;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::calls::placing::PlaceError;
use crate::guard::admin::AdminError;
use crate::guard::auth::AuthFailure;
use crate::guard::rate_limit::Refusal;
use crate::store::StoreError;
use crate::twilio::rest::TwilioError;
use crate::twilio::stream_token::RandomError;

/// An error a handler or guard returns; its public message never carries a cause.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The request is missing something or has a bad value; the message names the field.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// No valid credentials (missing, unknown, expired or revoked: the answer does not say which).
    #[error("unauthorized")]
    Unauthorized,
    /// Valid credentials without the scope, a bad Twilio signature, or a denied client.
    #[error("forbidden")]
    Forbidden,
    /// No such resource.
    #[error("not found")]
    NotFound,
    /// The body is larger than the route accepts.
    #[error("payload too large")]
    PayloadTooLarge,
    /// The body's content type is not what the route accepts.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// Over a rate limit, blocked, or locked out; retry after this long.
    #[error("too many requests")]
    TooManyRequests(Duration),
    /// The server is draining and takes no new calls.
    #[error("shutting down")]
    Draining,
    /// The server carries all the calls it can (`MAX_CALLS`, or its audio runs late).
    #[error("at capacity")]
    AtCapacity,
    /// Well-formed, but refused by a rule (do-not-call, calling hours, a number Twilio refuses);
    /// the code and message say which.
    #[error("unprocessable: {1}")]
    Unprocessable(&'static str, &'static str),
    /// The resource is not in a state that allows this; the message says what it is.
    #[error("conflict: {0}")]
    Conflict(String),
    /// Twilio refused or failed; the code and message say what to do, the cause is logged.
    #[error("telephony provider: {1}")]
    Upstream(&'static str, &'static str, Option<Duration>),
    /// This server is not set up for the request (no Twilio account, no caller id).
    #[error("not configured: {0}")]
    NotConfigured(&'static str),
    /// Something failed on our side; details are logged, not returned.
    #[error("internal error")]
    Internal,
}

impl HttpError {
    /// A bad request naming the field.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest(message.into())
    }

    /// A body that is not JSON at all (the parser's position is not repeated).
    pub fn malformed_json() -> Self {
        Self::bad_request("invalid body: malformed JSON")
    }

    /// Logs a failure on our side and answers a generic 500.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "request failed on our side");
        Self::Internal
    }

    /// The code and public message of the envelope.
    pub fn public(&self) -> (&'static str, &str) {
        match self {
            Self::BadRequest(message) => ("bad_request", message),
            Self::Unauthorized => ("unauthorized", "authentication required"),
            Self::Forbidden => ("forbidden", "not allowed"),
            Self::NotFound => ("not_found", "not found"),
            Self::PayloadTooLarge => ("payload_too_large", "request body too large"),
            Self::UnsupportedMediaType => ("unsupported_media_type", "unsupported content type"),
            Self::TooManyRequests(_) => ("too_many_requests", "too many requests; retry later"),
            Self::Draining => ("unavailable", "the server is shutting down"),
            Self::AtCapacity => ("unavailable", "the server is at capacity; try again later"),
            Self::Unprocessable(code, message) => (code, message),
            Self::Conflict(message) => ("conflict", message),
            Self::Upstream(code, message, _) => (code, message),
            Self::NotConfigured(message) => ("not_configured", message),
            Self::Internal => ("internal", "internal error"),
        }
    }
}

/// The envelope's code and message for an error status that is not an [`HttpError`].
pub fn public_for_status(status: StatusCode) -> (&'static str, &'static str) {
    match status.as_u16() {
        400 => ("bad_request", "bad request"),
        401 => ("unauthorized", "authentication required"),
        403 => ("forbidden", "not allowed"),
        404 => ("not_found", "not found"),
        405 => ("method_not_allowed", "method not allowed"),
        408 => ("timeout", "request timeout"),
        413 => ("payload_too_large", "request body too large"),
        415 => ("unsupported_media_type", "unsupported content type"),
        429 => ("too_many_requests", "too many requests; retry later"),
        503 => ("unavailable", "service unavailable"),
        500..=599 => ("internal", "internal error"),
        _ => ("error", "request failed"),
    }
}

/// The envelope every error is answered with.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody<'a> {
    /// What went wrong.
    #[schema(inline)]
    pub error: ErrorDetail<'a>,
}

/// What went wrong, for a client.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail<'a> {
    /// A stable, machine-readable code (`bad_request`, `not_found`, `invalid_to`, …).
    pub code: &'a str,
    /// A generic message for people; never a cause.
    pub message: &'a str,
    /// The request's id, as in the `X-Request-Id` header and the server's logs.
    pub request_id: Option<&'a str>,
}

/// The envelope.
pub fn envelope(code: &str, message: &str, request_id: Option<&str>) -> serde_json::Value {
    let body = ErrorBody {
        error: ErrorDetail {
            code,
            message,
            request_id,
        },
    };
    serde_json::to_value(body).unwrap_or_default()
}

impl From<AuthFailure> for HttpError {
    fn from(failure: AuthFailure) -> Self {
        match failure {
            AuthFailure::LockedOut(left) => Self::TooManyRequests(left),
            _ => Self::Unauthorized,
        }
    }
}

impl From<Refusal> for HttpError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Denied => Self::Forbidden,
            Refusal::Limited { retry_after, .. } | Refusal::Blocked { retry_after } => {
                Self::TooManyRequests(retry_after)
            }
        }
    }
}

impl From<AdminError> for HttpError {
    /// An invalid token request names its field; a storage failure is a generic 500.
    fn from(error: AdminError) -> Self {
        match error {
            AdminError::Invalid(message) => Self::bad_request(message),
            AdminError::Store(error) => error.into(),
        }
    }
}

impl From<StoreError> for HttpError {
    fn from(error: StoreError) -> Self {
        Self::internal(error)
    }
}

impl From<MailboxError> for HttpError {
    /// An actor that is gone or did not answer (the AuthActor during shutdown).
    fn from(error: MailboxError) -> Self {
        Self::internal(error)
    }
}

impl From<RandomError> for HttpError {
    fn from(error: RandomError) -> Self {
        tracing::error!(%error, "cannot mint a stream token");
        Self::Internal
    }
}

impl From<UrlencodedError> for HttpError {
    /// A webhook's form body: the wrong content type, too large, or not a form.
    fn from(error: UrlencodedError) -> Self {
        tracing::info!(%error, "rejected webhook form body");
        match error {
            UrlencodedError::ContentType => Self::UnsupportedMediaType,
            UrlencodedError::Overflow { .. } => Self::PayloadTooLarge,
            _ => Self::bad_request("invalid form body"),
        }
    }
}

impl From<serde_path_to_error::Error<serde_json::Error>> for HttpError {
    /// serde's data errors name the expected type, from our own schema; the path names the field.
    /// Syntax errors say only that the JSON is malformed.
    fn from(error: serde_path_to_error::Error<serde_json::Error>) -> Self {
        let path = error.path().to_string();
        let inner = error.inner();
        if !inner.is_data() {
            return Self::malformed_json();
        }
        let message = inner.to_string();
        let message = message.split(" at line ").next().unwrap_or(&message);
        if path == "." {
            Self::bad_request(format!("invalid body: {message}"))
        } else {
            Self::bad_request(format!("invalid body: {path}: {message}"))
        }
    }
}

impl From<TwilioError> for HttpError {
    /// What the client can act on; the cause (with Twilio's code) goes to the logs.
    fn from(error: TwilioError) -> Self {
        tracing::warn!(%error, "Twilio refused or failed");
        match error {
            TwilioError::InvalidTo => Self::Unprocessable(
                "invalid_to",
                "the telephony provider refused the number to call",
            ),
            TwilioError::UnusableFrom { .. } => Self::Unprocessable(
                "invalid_from",
                "the telephony provider refused the number to call from",
            ),
            TwilioError::NotFound => Self::Conflict("the call has ended".into()),
            TwilioError::TooManyRequests { retry_after } => Self::Upstream(
                "telephony_busy",
                "the telephony provider is busy; retry later",
                Some(retry_after.unwrap_or(Duration::from_secs(1))),
            ),
            TwilioError::OutcomeUnknown { .. } => Self::Upstream(
                "outcome_unknown",
                "the telephony provider did not confirm the call: it may have been placed; check \
                 the call before placing it again",
                None,
            ),
            _ => Self::Upstream(
                "telephony_unavailable",
                "the telephony provider failed; retry later",
                None,
            ),
        }
    }
}

impl From<PlaceError> for HttpError {
    fn from(error: PlaceError) -> Self {
        match error {
            PlaceError::NotConfigured => {
                Self::NotConfigured("placing and changing calls needs a Twilio account")
            }
            PlaceError::NoFrom => Self::bad_request("from: required (no default caller id)"),
            PlaceError::DoNotCall => {
                Self::Unprocessable("do_not_call", "the number is on the do-not-call list")
            }
            PlaceError::OutsideCallingHours(_) => Self::Unprocessable(
                "outside_calling_hours",
                "outside the callee's calling hours; schedule the call instead",
            ),
            PlaceError::WrongState(state) => Self::Conflict(format!("the call is {state}")),
            PlaceError::Twilio(error) => error.into(),
            PlaceError::Store(error) => error.into(),
        }
    }
}

impl ResponseError for HttpError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Draining | Self::AtCapacity => StatusCode::SERVICE_UNAVAILABLE,
            Self::Unprocessable(..) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Upstream(_, _, Some(_)) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Upstream(..) => StatusCode::BAD_GATEWAY,
            Self::NotConfigured(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        match self {
            Self::Unauthorized => {
                response.insert_header((
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"phone-agent\""),
                ));
            }
            Self::TooManyRequests(retry_after) | Self::Upstream(_, _, Some(retry_after)) => {
                response.insert_header((header::RETRY_AFTER, whole_seconds(*retry_after)));
            }
            _ => {}
        }
        let (code, message) = self.public();
        response.json(envelope(code, message, None))
    }
}

/// Seconds, rounded up (a `Retry-After` of 0 would invite an immediate retry).
pub fn whole_seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}
