//! Call control over Twilio's REST API: what the agent does to the phone call itself.

use std::future::Future;
use std::pin::Pin;

use phone_agent_actors::engines::{CallControl, EngineError};
use phone_agent_actors::ids::CallSid;

use super::number::E164;
use super::records::CallRecords;
use crate::twilio::rest::{CallUpdate, TwilioRest};
use crate::twilio::twiml;

/// Transfers the agent's calls to one number: Twilio replaces the call's TwiML with `<Dial>`,
/// which ends our media stream and connects the caller. A transfer is logged on the call.
pub struct TwilioTransfer {
    rest: TwilioRest,
    to: E164,
    records: CallRecords,
}

impl TwilioTransfer {
    /// Transfers through `rest` to `to`, logging each transfer in `records`.
    pub fn new(rest: TwilioRest, to: E164, records: CallRecords) -> Self {
        Self { rest, to, records }
    }
}

impl CallControl for TwilioTransfer {
    fn transfer(&self, call: &CallSid) -> Pin<Box<dyn Future<Output = Result<(), EngineError>>>> {
        let (rest, call, records) = (self.rest.clone(), call.clone(), self.records.clone());
        let to = self.to.clone();
        let update = CallUpdate::Twiml(twiml::dial(self.to.as_str()));
        tracing::info!(call_sid = %call, to = %self.to, "transferring the call");
        Box::pin(async move {
            rest.update_call(&call, &update)
                .await
                .map_err(|error| EngineError::Connection {
                    engine: "twilio",
                    message: error.to_string(),
                })?;
            // The caller is on their way to a person: a failed log line does not undo that.
            if let Err(error) = records.transferred(call.as_str(), &to, "agent").await {
                tracing::error!(call_sid = %call, %error, "cannot record the transfer");
            }
            Ok(())
        })
    }
}
