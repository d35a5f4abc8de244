//! Call control over Twilio's REST API: what the agent does to the phone call itself.

use std::future::Future;
use std::pin::Pin;

use phone_agent_actors::engines::{CallControl, EngineError};
use phone_agent_actors::ids::CallSid;

use super::number::E164;
use crate::twilio::rest::{CallUpdate, TwilioRest};
use crate::twilio::twiml;

/// Transfers the agent's calls to one number: Twilio replaces the call's TwiML with `<Dial>`,
/// which ends our media stream and connects the caller.
pub struct TwilioTransfer {
    rest: TwilioRest,
    to: E164,
}

impl TwilioTransfer {
    /// Transfers through `rest` to `to`.
    pub fn new(rest: TwilioRest, to: E164) -> Self {
        Self { rest, to }
    }
}

impl CallControl for TwilioTransfer {
    fn transfer(&self, call: &CallSid) -> Pin<Box<dyn Future<Output = Result<(), EngineError>>>> {
        let (rest, call) = (self.rest.clone(), call.clone());
        let update = CallUpdate::Twiml(twiml::dial(self.to.as_str()));
        tracing::info!(call_sid = %call, to = %self.to, "transferring the call");
        Box::pin(async move {
            rest.update_call(&call, &update)
                .await
                .map_err(|error| EngineError::Connection {
                    engine: "twilio",
                    message: error.to_string(),
                })
        })
    }
}
