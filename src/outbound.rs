//! The client side of our outbound connections (Twilio's REST API, the cloud speech and language
//! providers): awc over rustls with the `ring` provider and the Mozilla roots of `webpki-roots`
//! (no system certificate store needed), HTTP/1.1, no redirects (credentials go to the configured
//! base URL and nowhere else), and our `User-Agent`.
//!
//! awc's client is `!Send`, so each thread (actix arbiter) builds its own on first use and keeps
//! it: clients are cheap handles to one connection pool per thread, without awc's default cap of
//! 100 connections (each cloud call holds two provider sockets). Callers bound each exchange
//! themselves (awc's own timeout is off: it would not bound a streamed body).

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use actix_web::web::Bytes;
use awc::error::PayloadError;
use awc::http::header;
use futures_util::Stream;

/// Who we are to the services we call.
const USER_AGENT: &str = concat!("phone-agent/", env!("CARGO_PKG_VERSION"));

thread_local! {
    /// This thread's clients, by connect timeout (one or two in a server; tests use several).
    static CLIENTS: RefCell<HashMap<Duration, awc::Client>> = RefCell::new(HashMap::new());
}

/// This thread's client whose connecting and TLS handshake each take at most `connect_timeout`.
pub fn client(connect_timeout: Duration) -> awc::Client {
    CLIENTS.with(|clients| {
        clients
            .borrow_mut()
            .entry(connect_timeout)
            .or_insert_with(|| build(connect_timeout))
            .clone()
    })
}

fn build(connect_timeout: Duration) -> awc::Client {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("the ring provider supports TLS 1.3 and 1.2")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = awc::Connector::new()
        .rustls_0_23(Arc::new(tls))
        .timeout(connect_timeout)
        .handshake_timeout(connect_timeout)
        // awc's default of 100 connections counts the calls' provider WebSockets too: past 50
        // cloud calls on one worker, every new socket would wait for a permit and time out.
        .limit(0);
    awc::Client::builder()
        .connector(connector)
        .disable_redirects()
        .disable_timeout()
        .add_default_header((header::USER_AGENT, USER_AGENT))
        .finish()
}

/// A service's answer to one request, whatever its status: what the REST clients (Twilio's API,
/// the email provider's) decide on.
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// `Retry-After` in seconds, when present (an HTTP date is ignored: the backoff applies).
    pub retry_after: Option<Duration>,
    /// The body.
    pub body: Bytes,
}

/// Reads `response` whole: its status, `Retry-After` and body (at most `limit` bytes).
pub async fn read_answer<S>(
    mut response: awc::ClientResponse<S>,
    limit: usize,
) -> Result<Answer, PayloadError>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    let body = response.body().limit(limit).await?;
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse().ok())
        .map(Duration::from_secs);
    Ok(Answer {
        status: response.status().as_u16(),
        retry_after,
        body,
    })
}

/// `, retry after 3s` when the service said how long to wait, else nothing: for error messages.
pub struct RetryAfter(pub Option<Duration>);

impl fmt::Display for RetryAfter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(wait) => write!(f, ", retry after {wait:?}"),
            None => Ok(()),
        }
    }
}
