//! The one place errors become HTTP responses: `{"error":{"code","message"}}`, generic messages.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

/// An error a handler returns; its public message is fixed text, never a cause.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The request is missing something or has a bad value; the message names the field.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// The server is draining and takes no new calls.
    #[error("shutting down")]
    Draining,
    /// Something failed on our side; details are logged, not returned.
    #[error("internal error")]
    Internal,
}

impl HttpError {
    fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Draining => "unavailable",
            Self::Internal => "internal",
        }
    }

    fn public_message(&self) -> &'static str {
        match self {
            Self::BadRequest(message) => message,
            Self::Draining => "the server is shutting down",
            Self::Internal => "internal error",
        }
    }
}

impl ResponseError for HttpError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Draining => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).json(json!({
            "error": { "code": self.code(), "message": self.public_message() }
        }))
    }
}
