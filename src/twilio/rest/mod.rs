//! Twilio's REST client: places calls (`POST …/Calls.json`) and changes live ones (`POST
//! …/Calls/{Sid}.json`: hang up, cancel, transfer with TwiML).
//!
//! caller --CreateCall/CallUpdate--> [`TwilioRest`] --form POST, Basic auth--> Twilio; Twilio's
//! JSON answer --> [`CreatedCall`] or a [`TwilioError`].
//!
//! - `wire`: the form bodies and JSON answers, in Twilio's names.
//! - [`retry`]: the sans-I/O policy deciding whether and when to try again.
//! - [`error`]: [`TwilioError`], with Twilio's error codes mapped.
//! - `transport`: one attempt over awc (a client per thread, rustls, the timeout).
//!
//! Each attempt is logged at debug with method, path (account and call SIDs, not secret), status,
//! attempt and duration; never a body or a header, so neither credentials nor phone numbers.

pub mod error;
pub mod retry;
mod transport;
mod wire;

use std::fmt;
use std::time::{Duration, Instant};

use phone_agent_actors::ids::CallSid;
use ring::rand::SystemRandom;

use crate::config::TwilioRestSettings;
use crate::outbound::Answer;
use crate::redact::mask_phone;
use crate::twilio::twiml::MAX_TWIML_CHARS;
pub use error::{TwilioError, Unconfirmed};
use retry::{Decision, Failure, Idempotence, RetryPolicy};

/// A call to place.
#[derive(Clone, PartialEq, Eq)]
pub struct CreateCall {
    /// The number to call (E.164) (`To`).
    pub to: String,
    /// The caller ID: a Twilio number of the account or a verified one (E.164) (`From`).
    pub from: String,
    /// Our voice webhook, which Twilio fetches the call's TwiML from once answered (`Url`).
    pub url: String,
    /// Our status callback, told of every event: initiated, ringing, answered, completed
    /// (`StatusCallback`).
    pub status_callback: String,
    /// Answering-machine detection, when wanted (`MachineDetection`).
    pub machine_detection: Option<MachineDetection>,
    /// How long to let it ring before giving up as `no-answer`, sent in whole seconds (Twilio
    /// accepts 5 to 600; its default is 60) (`Timeout`).
    pub ring_timeout: Option<Duration>,
}

impl fmt::Debug for CreateCall {
    /// Numbers masked, as in every log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreateCall")
            .field("to", &mask_phone(&self.to))
            .field("from", &mask_phone(&self.from))
            .field("url", &self.url)
            .field("status_callback", &self.status_callback)
            .field("machine_detection", &self.machine_detection)
            .field("ring_timeout", &self.ring_timeout)
            .finish()
    }
}

/// Answering-machine detection for a new call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineDetection {
    /// When Twilio decides.
    pub mode: AmdMode,
    /// Where Twilio posts its verdict while the call goes on (`AsyncAmd=true`,
    /// `AsyncAmdStatusCallback`); without it, Twilio holds the call until it has decided and
    /// reports the verdict (`AnsweredBy`) to the voice webhook.
    pub async_callback: Option<String>,
}

/// Twilio's `MachineDetection` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmdMode {
    /// `Enable`: decide as soon as a human or machine is recognised.
    Enable,
    /// `DetectMessageEnd`: for a machine, wait for the end of its greeting (to leave a message).
    DetectMessageEnd,
}

impl AmdMode {
    /// Twilio's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enable => "Enable",
            Self::DetectMessageEnd => "DetectMessageEnd",
        }
    }

    /// The mode Twilio's name names, if it is one.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Enable, Self::DetectMessageEnd]
            .into_iter()
            .find(|mode| mode.as_str() == name)
    }
}

/// A change to a live call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallUpdate {
    /// `Status=completed`: end the call whatever its state.
    Hangup,
    /// `Status=canceled`: end a call still queued or ringing (no effect once answered).
    Cancel,
    /// `Twiml=…`: run this TwiML now (a transfer: [`crate::twilio::twiml::dial`]); at most
    /// [`MAX_TWIML_CHARS`] characters.
    Twiml(String),
}

/// A call Twilio accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedCall {
    /// The new call's SID.
    pub call_sid: CallSid,
    /// Twilio's status for it, as Twilio wrote it (`queued` for a new call).
    pub status: String,
}

/// Twilio's REST API for one account. Holds settings only (the HTTP client is per thread), so it
/// is cheap to clone and may be shared across threads; its futures are `!Send` and run on the
/// calling actix thread.
#[derive(Debug, Clone)]
pub struct TwilioRest {
    settings: TwilioRestSettings,
    policy: RetryPolicy,
    random: SystemRandom,
}

/// The API version in every path.
const API_VERSION: &str = "2010-04-01";

impl TwilioRest {
    /// A client for `settings`, retrying by [`RetryPolicy::default`].
    pub fn new(settings: TwilioRestSettings) -> Self {
        Self {
            settings,
            policy: RetryPolicy::default(),
            random: SystemRandom::new(),
        }
    }

    /// The same client retrying by `policy`.
    pub fn with_retry_policy(self, policy: RetryPolicy) -> Self {
        Self { policy, ..self }
    }

    /// Places a call. Retried only when Twilio's answer proves no call was made (429, or no
    /// connection); otherwise a failure that may hide a placed call is
    /// [`TwilioError::OutcomeUnknown`].
    pub async fn create_call(&self, call: &CreateCall) -> Result<CreatedCall, TwilioError> {
        let path = format!("{}/Calls.json", self.account_path());
        let form = wire::create_call_form(call);
        let answer = self.send(&path, &form, Idempotence::NotIdempotent).await?;
        let invalid = TwilioError::InvalidAnswer {
            status: answer.status,
        };
        let resource: wire::CallResource =
            serde_json::from_slice(&answer.body).map_err(|_| invalid.clone())?;
        let call_sid = CallSid::parse(&resource.sid).ok_or(invalid)?;
        Ok(CreatedCall {
            call_sid,
            status: resource.status,
        })
    }

    /// Changes a live call; retried after 429, 5xx or no connection. Hanging up or cancelling a
    /// call Twilio no longer knows (404, error 20404) succeeds: it has already ended.
    pub async fn update_call(
        &self,
        call_sid: &CallSid,
        update: &CallUpdate,
    ) -> Result<(), TwilioError> {
        if let CallUpdate::Twiml(twiml) = update {
            let chars = twiml.chars().count();
            if chars > MAX_TWIML_CHARS {
                return Err(TwilioError::TwimlTooLong { chars });
            }
        }
        let path = format!("{}/Calls/{call_sid}.json", self.account_path());
        let form = wire::update_call_form(update);
        match self.send(&path, &form, Idempotence::Idempotent).await {
            Ok(_) => Ok(()),
            Err(TwilioError::NotFound)
                if matches!(update, CallUpdate::Hangup | CallUpdate::Cancel) =>
            {
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    /// `/2010-04-01/Accounts/{AccountSid}`.
    fn account_path(&self) -> String {
        format!("/{API_VERSION}/Accounts/{}", self.settings.account_sid)
    }

    /// POSTs `form` to `path` until a 2xx answer (returned), a final error, or the policy gives
    /// up.
    async fn send(
        &self,
        path: &str,
        form: &wire::Form,
        idempotence: Idempotence,
    ) -> Result<Answer, TwilioError> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let started = Instant::now();
            let result = transport::post(&self.settings, path, form).await;
            let duration_ms = started.elapsed().as_millis() as u64;
            let failure = match result {
                Ok(answer) => {
                    tracing::debug!(
                        method = "POST",
                        path,
                        status = answer.status,
                        attempt = attempts,
                        duration_ms,
                        "Twilio REST request"
                    );
                    match sort_answer(answer) {
                        Sorted::Done(answer) => return Ok(answer),
                        Sorted::Final(error) => return Err(error),
                        Sorted::Failed(failure) => failure,
                    }
                }
                Err(failure) => {
                    tracing::debug!(
                        method = "POST",
                        path,
                        failure = ?failure,
                        attempt = attempts,
                        duration_ms,
                        "Twilio REST request failed"
                    );
                    failure
                }
            };
            match self
                .policy
                .decide(idempotence, attempts, &failure, &self.random)
            {
                Decision::RetryAfter(delay) => actix_rt::time::sleep(delay).await,
                Decision::GiveUp => {
                    return Err(TwilioError::after_giving_up(
                        failure,
                        idempotence,
                        attempts,
                        self.settings.timeout,
                    ))
                }
            }
        }
    }
}

/// What an answer means for the request.
enum Sorted {
    /// 2xx: done.
    Done(Answer),
    /// 429 or 5xx: perhaps worth another attempt.
    Failed(Failure),
    /// Any other status: Twilio's final word.
    Final(TwilioError),
}

fn sort_answer(answer: Answer) -> Sorted {
    match answer.status {
        200..=299 => Sorted::Done(answer),
        429 => Sorted::Failed(Failure::RateLimited {
            retry_after: answer.retry_after,
        }),
        500..=599 => Sorted::Failed(Failure::ServerError {
            status: answer.status,
        }),
        status => {
            let code = serde_json::from_slice::<wire::ErrorBody>(&answer.body)
                .ok()
                .and_then(|body| body.code);
            Sorted::Final(TwilioError::from_answer(status, code))
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A call with no options, for the tests of this module and its children.
    pub(in crate::twilio::rest) fn plain_call() -> CreateCall {
        CreateCall {
            to: "+14155550100".into(),
            from: "+14155550199".into(),
            url: "https://agent.example.com/twilio/voice".into(),
            status_callback: "https://agent.example.com/twilio/status".into(),
            machine_detection: None,
            ring_timeout: None,
        }
    }

    #[test]
    fn the_client_may_be_shared_across_threads() {
        fn shareable<T: Clone + Send + Sync>() {}
        shareable::<TwilioRest>();
    }

    #[test]
    fn debug_masks_the_numbers() {
        let printed = format!("{:?}", plain_call());
        assert!(!printed.contains("+14155550100") && !printed.contains("+14155550199"));
        assert!(printed.contains("+1******0100"));
    }
}
