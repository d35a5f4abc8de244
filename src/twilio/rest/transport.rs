//! One attempt of a request to Twilio over awc: a form POST with HTTP Basic auth, the whole
//! exchange (connect, send, read the answer) bounded by the timeout. What went wrong is sorted for
//! the retry policy: a connection that never opened, one lost after sending, or no answer in time.
//!
//! awc's client is `!Send`, so each thread (actix arbiter) builds its own on first use: rustls with
//! the `ring` provider and the Mozilla roots of `webpki-roots` (no system certificate store
//! needed), HTTP/1.1, no redirects (the credentials go to `TWILIO_API_BASE` and nowhere else).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::web::Bytes;
use awc::error::SendRequestError;
use awc::http::header;

use super::retry::Failure;
use super::wire::Form;
use crate::config::TwilioRestSettings;

/// The largest answer read: Twilio's call resource is about 2 kB.
const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// Twilio's answer to one attempt, whatever its status.
pub(super) struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// `Retry-After` in seconds, when present (an HTTP date is ignored: the backoff applies).
    pub retry_after: Option<Duration>,
    /// The body, JSON when Twilio wrote it.
    pub body: Bytes,
}

/// POSTs `form` to `TWILIO_API_BASE` + `path` once.
pub(super) async fn post(
    settings: &TwilioRestSettings,
    path: &str,
    form: &Form,
) -> Result<Answer, Failure> {
    let Some((user, password)) = settings.credentials.basic(&settings.account_sid) else {
        // The server resolves a generated token before it builds the client.
        return Err(Failure::NotConnected {
            reason: "no credentials".into(),
        });
    };
    let request = client(settings.timeout)
        .post(format!("{}{path}", settings.api_base))
        .basic_auth(user, password.expose());
    let exchange = async {
        let mut response = request.send_form(form).await.map_err(classify)?;
        let body = response
            .body()
            .limit(MAX_ANSWER_BYTES)
            .await
            .map_err(|error| Failure::ConnectionLost {
                reason: error.to_string(),
            })?;
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
    };
    actix_rt::time::timeout(settings.timeout, exchange)
        .await
        .unwrap_or(Err(Failure::TimedOut))
}

/// A send error, sorted by whether Twilio may have seen the request.
fn classify(error: SendRequestError) -> Failure {
    match error {
        // Resolution, TCP connect, TLS handshake: nothing was sent.
        SendRequestError::Connect(error) => Failure::NotConnected {
            reason: error.to_string(),
        },
        SendRequestError::Timeout => Failure::TimedOut,
        other => Failure::ConnectionLost {
            reason: other.to_string(),
        },
    }
}

thread_local! {
    /// This thread's clients, by timeout (one in a server; tests use several).
    static CLIENTS: RefCell<HashMap<Duration, awc::Client>> = RefCell::new(HashMap::new());
}

/// This thread's client for `timeout` (awc clients are cheap handles to one connection pool).
fn client(timeout: Duration) -> awc::Client {
    CLIENTS.with(|clients| {
        clients
            .borrow_mut()
            .entry(timeout)
            .or_insert_with(|| build_client(timeout))
            .clone()
    })
}

/// Connecting and the TLS handshake may each take a third of `timeout`: a connection that is
/// slow to open fails as "not connected" (safe to retry) rather than as an ambiguous timeout.
fn build_client(timeout: Duration) -> awc::Client {
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
        .timeout(timeout / 3)
        .handshake_timeout(timeout / 3);
    awc::Client::builder()
        .connector(connector)
        .disable_redirects()
        // The exchange's own timeout bounds the answer's body too; awc's would not.
        .disable_timeout()
        .add_default_header((header::USER_AGENT, USER_AGENT))
        .finish()
}

/// Who we are to Twilio.
const USER_AGENT: &str = concat!("phone-agent/", env!("CARGO_PKG_VERSION"));
