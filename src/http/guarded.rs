//! The guard middleware: rate limits for everyone, bearer tokens on `/api/`, Twilio signatures on
//! `/twilio/`.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpMessage as _};
use futures_util::StreamExt as _;

use super::error::{whole_seconds, HttpError};
use crate::guard::client_ip::client_ip;
use crate::guard::rate_limit::{EndpointClass, Headroom};
use crate::guard::Guard;
use crate::store::now_ms;
use crate::twilio::signature::{SignedRequest, TwilioSigner, SIGNATURE_HEADER};

/// The client's address as the guards saw it (in the request's extensions).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

/// Rate limits (per IP, then per token), then authentication on `/api/`; adds the `RateLimit-*`
/// headers of the tighter limit to the response. The clock is read here, once per request, and
/// every guard decides at that time.
pub async fn guard(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let guard = request
        .app_data::<web::Data<Guard>>()
        .expect("the guard is registered")
        .clone();
    // No peer address happens only for in-memory test requests.
    let client = client_ip(request.peer_addr(), request.headers(), guard.proxy_trust)
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    request.extensions_mut().insert(ClientIp(client));
    // What the router routes by: the path with its percent-encoding undone (but `%2F`, `%25`,
    // `%2B`), so `/%61pi/tokens` is guarded as the `/api/tokens` it reaches.
    let routed = request.match_info().as_str().to_owned();
    let class = EndpointClass::of(request.method(), &routed);
    let now = Instant::now();
    let mut headroom = match guard.rate_limits.check_ip(client, class, now) {
        Ok(headroom) => headroom,
        Err(refusal) => return Ok(request.error_response(HttpError::from(refusal))),
    };
    if routed.starts_with("/api/") {
        let authorization = request
            .headers()
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes);
        let principal = match guard
            .authenticator
            .authenticate(authorization, client, now, now_ms)
        {
            Ok(principal) => principal,
            Err(failure) => return Ok(request.error_response(HttpError::from(failure))),
        };
        match guard
            .rate_limits
            .check_token(principal.limit_key, client, class, now)
        {
            Ok(for_token) => headroom = for_token.map(|h| h.tighter(headroom)),
            Err(refusal) => return Ok(request.error_response(HttpError::from(refusal))),
        }
        request.extensions_mut().insert(principal);
    }
    let mut response = next.call(request).await?.map_into_boxed_body();
    if let Some(headroom) = headroom {
        rate_limit_headers(response.headers_mut(), headroom);
    }
    Ok(response)
}

fn rate_limit_headers(headers: &mut header::HeaderMap, headroom: Headroom) {
    let values = [
        ("ratelimit-limit", u64::from(headroom.limit)),
        ("ratelimit-remaining", u64::from(headroom.remaining)),
        ("ratelimit-reset", whole_seconds(headroom.reset)),
    ];
    for (name, value) in values {
        headers.insert(HeaderName::from_static(name), HeaderValue::from(value));
    }
}

/// What the Twilio signature check needs: the signer (none: validation is off) and the public
/// host the URLs are rebuilt with.
pub struct TwilioValidation {
    /// Checks signatures; `None` with `TWILIO_VALIDATE=false`.
    pub signer: Option<TwilioSigner>,
    /// `PUBLIC_HOST`.
    pub public_host: String,
    /// Largest body read for the check.
    pub body_limit: usize,
}

/// Checks `X-Twilio-Signature` on the public URL (`wss://` for the media socket upgrade,
/// `https://` otherwise); 403 without a valid one. The body is read (up to the limit, 413 past
/// it) and put back for the handler.
pub async fn twilio_signature(
    mut request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let validation = request
        .app_data::<web::Data<TwilioValidation>>()
        .expect("Twilio validation is registered")
        .clone();
    let Some(signer) = &validation.signer else {
        return Ok(next.call(request).await?.map_into_boxed_body());
    };
    let Some(signature) = request
        .headers()
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        tracing::warn!(path = request.path(), "Twilio request without a signature");
        return Ok(request.error_response(HttpError::Forbidden));
    };
    let upgrade = request
        .headers()
        .get(header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    // Only a GET can be a WebSocket upgrade. Any other request's body must be read and signed,
    // and an upgrading connection's body never ends: refused, not skipped.
    if upgrade && request.method() != actix_web::http::Method::GET {
        tracing::warn!(path = request.path(), method = %request.method(), "Twilio request upgrading with a body");
        return Ok(
            request.error_response(HttpError::bad_request("a WebSocket upgrade must be a GET"))
        );
    }
    // An upgrade's payload is the WebSocket itself: only the URL is signed, nothing is read.
    let body = if upgrade {
        web::Bytes::new()
    } else {
        let mut body = web::BytesMut::new();
        let mut payload = request.take_payload();
        while let Some(chunk) = payload.next().await {
            let Ok(chunk) = chunk else {
                return Ok(request.error_response(HttpError::bad_request("unreadable body")));
            };
            if body.len() + chunk.len() > validation.body_limit {
                return Ok(request.error_response(HttpError::PayloadTooLarge));
            }
            body.extend_from_slice(&chunk);
        }
        body.freeze()
    };
    let scheme = if upgrade { "wss" } else { "https" };
    let url = format!(
        "{scheme}://{}{}",
        validation.public_host,
        request.uri().path_and_query().map_or("/", |pq| pq.as_str())
    );
    let form = request
        .content_type()
        .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        .then_some(&body[..]);
    let signed = SignedRequest {
        url: &url,
        form,
        raw: &body,
    };
    if !signer.verify(signed, &signature) {
        tracing::warn!(path = request.path(), "Twilio request with a bad signature");
        return Ok(request.error_response(HttpError::Forbidden));
    }
    if !upgrade {
        request.set_payload(Payload::from(body));
    }
    Ok(next.call(request).await?.map_into_boxed_body())
}
