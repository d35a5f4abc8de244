//! Twilio's REST error answers: the HTTP status and a JSON body
//! `{"code","message","more_info","status"}`, for every refusal the emulator makes.
//!
//! The codes are Twilio's (<https://www.twilio.com/docs/api/errors>); where Twilio documents no
//! specific code for a parameter the emulator checks, it answers [`INVALID_PARAMETER`].

use actix_web::http::header::{HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

/// Bad credentials (401).
pub const AUTHENTICATE: u32 = 20003;
/// A parameter value the emulator refuses, where Twilio names no specific code (400).
pub const INVALID_PARAMETER: u32 = 20001;
/// The method is not allowed on the resource (405).
pub const METHOD_NOT_ALLOWED: u32 = 20004;
/// No such resource, or a call that is no longer active for an update (404).
pub const NOT_FOUND: u32 = 20404;
/// Too many requests (429).
pub const TOO_MANY_REQUESTS: u32 = 20429;
/// Twilio failed (500).
pub const INTERNAL_ERROR: u32 = 20500;
/// Twilio is unavailable (503).
pub const SERVICE_UNAVAILABLE: u32 = 20503;
/// No `To` given.
pub const TO_MISSING: u32 = 21201;
/// `Url` missing, both `Url` and `Twiml` given, or not an absolute http(s) URL.
pub const INVALID_URL: u32 = 21205;
/// `From` is not one of the account's numbers.
pub const FROM_NOT_OWNED: u32 = 21210;
/// `To` is not an E.164 number.
pub const INVALID_TO: u32 = 21211;
/// `From` is not an E.164 number (an invalid caller id).
pub const INVALID_FROM: u32 = 21212;
/// No `From` given.
pub const FROM_MISSING: u32 = 21213;
/// `Twiml` is not a TwiML document.
pub const DOCUMENT_PARSE_FAILURE: u32 = 12100;

/// One refusal, as Twilio words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} (code {code}): {message}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: u16,
    /// Twilio's error code.
    pub code: u32,
    /// Twilio's message (it may quote the request's values: never logged).
    pub message: String,
    /// `Retry-After` seconds, on an injected 429 or 503.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: u16, code: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400 with `code`.
    pub fn bad_request(code: u32, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }

    /// 401, code 20003: the credentials are missing or wrong.
    pub fn authenticate() -> Self {
        Self::new(401, AUTHENTICATE, "Authenticate")
    }

    /// 404, code 20404, for `path`.
    pub fn not_found(path: &str) -> Self {
        Self::new(
            404,
            NOT_FOUND,
            format!("The requested resource {path} was not found"),
        )
    }

    /// 405, code 20004.
    pub fn method_not_allowed() -> Self {
        Self::new(405, METHOD_NOT_ALLOWED, "Method not allowed")
    }

    /// The answer to an injected fault: Twilio's code and message for the status.
    pub fn fault(status: u16, retry_after: Option<u64>) -> Self {
        let (code, message) = match status {
            429 => (TOO_MANY_REQUESTS, "Too Many Requests"),
            503 => (SERVICE_UNAVAILABLE, "Service Unavailable"),
            _ => (INTERNAL_ERROR, "Internal Server Error"),
        };
        Self {
            retry_after,
            ..Self::new(status, code, message)
        }
    }

    /// The JSON body Twilio sends.
    pub fn body(&self) -> serde_json::Value {
        json!({
            "code": self.code,
            "message": self.message,
            "more_info": format!("https://www.twilio.com/docs/errors/{}", self.code),
            "status": self.status,
        })
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if self.status == 401 {
            response.insert_header((
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"Twilio API\""),
            ));
        }
        if let Some(seconds) = self.retry_after {
            response.insert_header((RETRY_AFTER, seconds.to_string()));
        }
        response.json(self.body())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_twilios_error_shape() {
        let body = ApiError::not_found("/x").body();
        assert_eq!(body["code"], 20404);
        assert_eq!(body["status"], 404);
        assert_eq!(body["message"], "The requested resource /x was not found");
        assert_eq!(
            body["more_info"],
            "https://www.twilio.com/docs/errors/20404"
        );
    }

    #[test]
    fn faults_carry_twilios_codes() {
        assert_eq!(ApiError::fault(429, Some(2)).code, TOO_MANY_REQUESTS);
        assert_eq!(ApiError::fault(503, None).code, SERVICE_UNAVAILABLE);
        assert_eq!(ApiError::fault(500, None).code, INTERNAL_ERROR);
    }
}
