//! The outermost middleware: a request id, the security headers and the error envelope on every
//! response, and one log line per failed request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage as _};
use ring::rand::SecureRandom as _;
use tracing::Instrument as _;

use super::error::{envelope, public_for_status, HttpError};

/// The response header carrying the request id (also in every error envelope and log line).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Headers on every response. The API serves JSON only, so the content security policy allows
/// nothing at all; a route serving a page would relax it for that route alone.
const SECURITY_HEADERS: [(&str, &str); 6] = [
    (
        "strict-transport-security",
        "max-age=63072000; includeSubDomains",
    ),
    (
        "content-security-policy",
        "default-src 'none'; frame-ancestors 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    ("cache-control", "no-store"),
];

/// A request's id: a per-process random prefix and a counter (unique, cheap, not secret).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

impl RequestId {
    fn next() -> Self {
        static PREFIX: OnceLock<u32> = OnceLock::new();
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let prefix = *PREFIX.get_or_init(|| {
            let mut bytes = [0u8; 4];
            let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
            u32::from_le_bytes(bytes)
        });
        Self(format!(
            "{prefix:08x}-{:x}",
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ))
    }
}

/// Request id → (everything else) → security headers and error envelope.
pub async fn frame(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let id = RequestId::next();
    request.extensions_mut().insert(id.clone());
    let span = tracing::info_span!("http", request_id = %id.0);
    // The layers inside answer every failure with a response (an `Err` here would come from
    // actix itself and is rendered by it).
    let response = next
        .call(request)
        .instrument(span.clone())
        .await?
        .map_into_boxed_body();
    let status = response.status();
    let mut response = if status.as_u16() >= 400 {
        let _entered = span.enter();
        let known = response
            .response()
            .error()
            .and_then(|error| error.as_error::<HttpError>());
        let (code, message) = known.map_or_else(|| public_for_status(status), HttpError::public);
        let body = envelope(code, message, Some(&id.0)).to_string();
        let (method, path) = (response.request().method(), response.request().path());
        match response.response().error() {
            Some(error) if status.is_server_error() => {
                tracing::error!(%method, %path, %status, %error, "request failed")
            }
            Some(error) => tracing::info!(%method, %path, %status, %error, "request refused"),
            None => tracing::info!(%method, %path, %status, "request refused"),
        }
        let mut response = response.map_body(|_, _| BoxBody::new(body));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    } else {
        response
    };
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        // A route that serves a page sets its own policy (the console); every other keeps these.
        let name = HeaderName::from_static(name);
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    if let Ok(value) = HeaderValue::from_str(&id.0) {
        headers.insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
    }
    Ok(response)
}
