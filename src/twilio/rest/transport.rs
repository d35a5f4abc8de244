//! One attempt of a request to Twilio over awc: a form POST with HTTP Basic auth, the whole
//! exchange (connect, send, read the answer) bounded by the timeout. What went wrong is sorted for
//! the retry policy: a connection that never opened, one lost after sending, or no answer in time.
//!
//! The client is this thread's [`outbound`](crate::outbound) client: connecting and the TLS
//! handshake may each take a third of the timeout, so a connection slow to open fails as "not
//! connected" (safe to retry) rather than as an ambiguous timeout.

use awc::error::SendRequestError;

use super::retry::Failure;
use super::wire::Form;
use crate::config::TwilioRestSettings;
use crate::outbound::{self, Answer};

/// The largest answer read: Twilio's call resource is about 2 kB.
const MAX_ANSWER_BYTES: usize = 256 * 1024;

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
    let request = outbound::client(settings.timeout / 3)
        .post(format!("{}{path}", settings.api_base))
        .basic_auth(user, password.expose());
    let exchange = async {
        let response = request.send_form(form).await.map_err(classify)?;
        outbound::read_answer(response, MAX_ANSWER_BYTES)
            .await
            .map_err(|error| Failure::ConnectionLost {
                reason: error.to_string(),
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
