//! Admission of a media stream: the `start` message is checked before any audio is processed.
//!
//! The stream token (minted by the voice webhook, carried in `<Parameter name="token">`) must be
//! valid, unused and bound to the `start`'s CallSid, and the call must not already be streaming
//! (Twilio can open a second socket for the same call after a network handover): not on this
//! server ([`Admission::admit`], at once) and not on any other server sharing its records
//! ([`Admission::claim`], which may wait for the database).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use crate::ids::CallSid;
use crate::runtime::registry::{CallId, ClaimError, LiveCalls};

/// Name of the `<Parameter>` that carries the stream token.
pub const STREAM_TOKEN_PARAMETER: &str = "token";

/// Why a stream was refused. Logged in detail; the peer only hears "stream rejected".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    /// `start.callSid` is not a Twilio CallSid.
    #[error("malformed CallSid")]
    MalformedCallSid,
    /// No `token` custom parameter.
    #[error("no stream token")]
    MissingToken,
    /// The token is unknown, already used, expired, or minted for another call.
    #[error("stream token invalid, used, expired or for another call")]
    InvalidToken,
    /// Another socket is already streaming this call.
    #[error("call already has a live stream")]
    AlreadyStreaming,
}

impl From<ClaimError> for AdmissionError {
    fn from(error: ClaimError) -> Self {
        match error {
            ClaimError::AlreadyStreaming => Self::AlreadyStreaming,
        }
    }
}

/// What [`StreamAuthorizer::claim`] resolves to.
pub type ClaimFuture = Pin<Box<dyn Future<Output = Result<(), AdmissionError>>>>;

/// Checks stream tokens; implemented by the server, which mints them.
pub trait StreamAuthorizer: Send + Sync + 'static {
    /// Consumes `token` if it is valid for `call_sid` at `now` (wall-clock time: a token may have
    /// been minted by another server). A token is good for one `start` only.
    fn redeem(
        &self,
        call_sid: &CallSid,
        token: &str,
        now: SystemTime,
    ) -> Result<(), AdmissionError>;

    /// Claims the stream of `call_sid` among every server sharing this one's records; fails with
    /// [`AdmissionError::AlreadyStreaming`] if a socket on any of them has it. By default there is
    /// no other server, and the claim on this one ([`Admission::admit`]) is all.
    fn claim(&self, _call_sid: &CallSid) -> ClaimFuture {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// Everything a MediaStream needs to admit its `start`.
#[derive(Clone)]
pub struct Admission {
    authorizer: Arc<dyn StreamAuthorizer>,
    live_calls: LiveCalls,
    call_id: CallId,
}

impl Admission {
    /// Admission for the call registered as `call_id`.
    pub(crate) fn new(
        authorizer: Arc<dyn StreamAuthorizer>,
        live_calls: LiveCalls,
        call_id: CallId,
    ) -> Self {
        Self {
            authorizer,
            live_calls,
            call_id,
        }
    }

    /// The server's live calls.
    pub fn live_calls(&self) -> &LiveCalls {
        &self.live_calls
    }

    /// Validates the CallSid and token at `now`, then claims the CallSid for this call on this
    /// server.
    pub fn admit(
        &self,
        call_sid: &str,
        token: Option<&str>,
        now: SystemTime,
    ) -> Result<CallSid, AdmissionError> {
        let call_sid = CallSid::parse(call_sid).ok_or(AdmissionError::MalformedCallSid)?;
        let token = token.ok_or(AdmissionError::MissingToken)?;
        self.authorizer.redeem(&call_sid, token, now)?;
        self.live_calls.claim(self.call_id, &call_sid)?;
        Ok(call_sid)
    }

    /// Claims an admitted call's stream among all servers (see [`StreamAuthorizer::claim`]).
    pub fn claim(&self, call_sid: &CallSid) -> ClaimFuture {
        self.authorizer.claim(call_sid)
    }
}
