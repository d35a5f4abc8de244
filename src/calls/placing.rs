//! Placing outbound calls: the checks a call must pass (the do-not-call list, calling hours), its
//! record, and Twilio's create-call request; and what a live call can be asked to do (hang up,
//! transfer).
//!
//! Twilio is told to fetch the TwiML from `https://PUBLIC_HOST/twilio/voice?call={id}` and to
//! report to `…/twilio/status?call={id}`: our id rides in the URLs (signed by Twilio with them), so
//! a callback that overtakes our record of the CallSid still finds its call.

use jiff::tz::TimeZone;
use jiff::Timestamp;
use phone_agent_actors::events::EndReason;
use phone_agent_actors::ids::CallSid;
use phone_agent_actors::runtime::registry::LiveCalls;
use serde_json::Value;

use super::hours::CallingHours;
use super::number::E164;
use super::records::CallRecords;
use crate::config::CallManagementSettings;
use crate::store::calls::{Call, Direction, NewCall};
use crate::store::instances::CallCommand;
use crate::store::status::CallStatus;
use crate::store::{now_ms, StoreError};
use crate::twilio::rest::{
    AmdMode, CallUpdate, CreateCall, MachineDetection, TwilioError, TwilioRest,
};
use crate::twilio::twiml;

/// Why a call cannot be placed or changed.
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    /// Placing or changing calls needs Twilio's REST API, which is not configured.
    #[error("Twilio's REST API is not configured (TWILIO_ACCOUNT_SID)")]
    NotConfigured,
    /// No caller id: the request names none and `TWILIO_FROM` is unset.
    #[error("no number to call from")]
    NoFrom,
    /// The number is on the do-not-call list.
    #[error("the number is on the do-not-call list")]
    DoNotCall,
    /// Outside the callee's calling hours; they open at this time.
    #[error("outside calling hours")]
    OutsideCallingHours(Timestamp),
    /// The call is not in a state that allows this.
    #[error("the call is {0}")]
    WrongState(&'static str),
    /// Twilio refused or failed.
    #[error(transparent)]
    Twilio(#[from] TwilioError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An outbound call a client asks for.
#[derive(Debug, Clone)]
pub struct CallRequest {
    /// Whom to call.
    pub to: E164,
    /// The caller id; `TWILIO_FROM` when `None`.
    pub from: Option<E164>,
    /// The agent that talks.
    pub agent: Option<String>,
    /// The client's own data, kept with the call.
    pub metadata: Option<Value>,
    /// When to place it; now when `None`.
    pub scheduled_at: Option<Timestamp>,
    /// The callee's time zone (calling hours); `DEFAULT_TIMEZONE` when `None`.
    pub timezone: Option<TimeZone>,
    /// Answering-machine detection.
    pub machine_detection: Option<AmdMode>,
    /// Where this call's events are also posted (checked against SSRF by the caller).
    pub webhook_url: Option<String>,
}

/// Places and changes calls through Twilio.
#[derive(Clone)]
pub struct Placer {
    records: CallRecords,
    rest: Option<TwilioRest>,
    settings: CallManagementSettings,
    public_host: String,
    live_calls: LiveCalls,
}

impl Placer {
    /// A placer recording in `records`, reaching Twilio through `rest` (none: it cannot place),
    /// with our webhooks on `public_host`; `live_calls` are this server's streaming calls.
    pub fn new(
        records: CallRecords,
        rest: Option<TwilioRest>,
        settings: CallManagementSettings,
        public_host: String,
        live_calls: LiveCalls,
    ) -> Self {
        Self {
            records,
            rest,
            settings,
            public_host,
            live_calls,
        }
    }

    /// Records the call asked for at `now` and places it, or schedules it (at the next opening of
    /// the callee's calling hours, if its time is outside them). A call for now outside calling
    /// hours is refused, as is a number on the do-not-call list.
    pub async fn request(&self, request: CallRequest, now: Timestamp) -> Result<Call, PlaceError> {
        let rest = self.rest.as_ref().ok_or(PlaceError::NotConfigured)?;
        let from = request
            .from
            .or_else(|| self.settings.default_from.clone())
            .ok_or(PlaceError::NoFrom)?;
        let store = self.records.store();
        if store.dnc_contains(request.to.as_str()).await? {
            return Err(PlaceError::DoNotCall);
        }
        let zone = request
            .timezone
            .unwrap_or_else(|| self.settings.default_timezone.clone());
        let allowed = |at: Timestamp| match &self.settings.calling_hours {
            Some(hours) => CallingHours::next_allowed(hours, at, &zone),
            None => at,
        };
        let scheduled_at = match request.scheduled_at {
            Some(at) => Some(allowed(at.max(now))),
            None if allowed(now) != now => {
                return Err(PlaceError::OutsideCallingHours(allowed(now)))
            }
            None => None,
        };
        let new = NewCall {
            call_sid: None,
            direction: Direction::Outbound,
            from: from.as_str().to_owned(),
            to: request.to.as_str().to_owned(),
            status: if scheduled_at.is_some() {
                CallStatus::Scheduled
            } else {
                CallStatus::Queued
            },
            agent: request.agent,
            metadata: request.metadata,
            scheduled_at: scheduled_at.map(Timestamp::as_millisecond),
            timezone: zone.iana_name().map(str::to_owned),
            machine_detection: request
                .machine_detection
                .map(|mode| mode.as_str().to_owned()),
            webhook_url: request.webhook_url,
        };
        let now_ms = now.as_millisecond();
        let id = store.insert_call(&new, now_ms).await?.id;
        self.records.publish_new(&id).await?;
        if scheduled_at.is_none() {
            let call = store
                .call(&id)
                .await?
                .ok_or(StoreError::Unexpected("call"))?;
            self.create(rest, &call, now_ms).await?;
        }
        store
            .call(&id)
            .await?
            .ok_or(PlaceError::Store(StoreError::Unexpected("call")))
    }

    /// Places a scheduled call the scheduler claimed at `now_ms`; a number put on the
    /// do-not-call list meanwhile is not called (the call is canceled).
    pub async fn place_scheduled(&self, call: &Call, now_ms: i64) -> Result<(), PlaceError> {
        let rest = self.rest.as_ref().ok_or(PlaceError::NotConfigured)?;
        let store = self.records.store();
        let to = call.to.as_deref().unwrap_or_default();
        if store.dnc_contains(to).await? {
            let canceled = store.apply_status(&call.id, CallStatus::Canceled, None, now_ms);
            self.records.published(canceled.await)?;
            self.records
                .published(store.record_end(&call.id, "do_not_call", now_ms).await)?;
            return Err(PlaceError::DoNotCall);
        }
        let queued = store.apply_status(&call.id, CallStatus::Queued, None, now_ms);
        self.records.published(queued.await)?;
        self.create(rest, call, now_ms).await
    }

    /// Hangs up a live call: this server ends its media stream if it streams it, and Twilio is
    /// told (a call still ringing is canceled).
    pub async fn hang_up(&self, call: &Call) -> Result<(), PlaceError> {
        let sid = call.call_sid.as_deref().and_then(CallSid::parse);
        let ended_here = sid
            .as_ref()
            .is_some_and(|sid| self.live_calls.end(sid, EndReason::HungUp));
        match call.status {
            CallStatus::Scheduled => return Err(PlaceError::WrongState("scheduled: cancel it")),
            status if status.rank() >= CallStatus::Completed.rank() => {
                return Err(PlaceError::WrongState("over"))
            }
            _ => {}
        }
        let ended = match (&sid, ended_here) {
            (Some(sid), false) => self.tell_owner(sid, CallCommand::HangUp).await?,
            _ => ended_here,
        };
        // A browser call has no telephone line to hang up: ending its stream is all there is.
        if call.direction == Direction::Browser {
            return match ended {
                true => Ok(()),
                false => Err(PlaceError::WrongState("not live")),
            };
        }
        let (Some(rest), Some(sid)) = (&self.rest, sid) else {
            return if ended {
                Ok(())
            } else {
                Err(PlaceError::NotConfigured)
            };
        };
        let update = if call.status == CallStatus::InProgress {
            CallUpdate::Hangup
        } else {
            CallUpdate::Cancel
        };
        Ok(rest.update_call(&sid, &update).await?)
    }

    /// Sends `command` to the instance carrying the call `sid`, if another instance does (its
    /// lease still running); whether one was told.
    async fn tell_owner(&self, sid: &CallSid, command: CallCommand) -> Result<bool, StoreError> {
        let store = self.records.store();
        if !store.is_shared() {
            return Ok(false);
        }
        match store.live_owner(sid.as_str(), now_ms()).await? {
            Some(owner) if owner != store.instance() => {
                store.send_command(&owner, command, sid.as_str()).await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Transfers a call in progress to `to`.
    pub async fn transfer(&self, call: &Call, to: &E164) -> Result<(), PlaceError> {
        if call.direction == Direction::Browser {
            return Err(PlaceError::WrongState(
                "a browser call, which has no line to transfer",
            ));
        }
        let rest = self.rest.as_ref().ok_or(PlaceError::NotConfigured)?;
        if call.status != CallStatus::InProgress {
            return Err(PlaceError::WrongState("not in progress"));
        }
        let sid = call
            .call_sid
            .as_deref()
            .and_then(CallSid::parse)
            .ok_or(PlaceError::WrongState("not placed yet"))?;
        tracing::info!(call_id = %call.id, to = %to, "transferring the call");
        rest.update_call(&sid, &CallUpdate::Twiml(twiml::dial(to.as_str())))
            .await?;
        self.records.transferred(&call.id, to, "api").await?;
        Ok(())
    }

    /// Asks Twilio to place `call`; records its CallSid, or that it failed.
    async fn create(&self, rest: &TwilioRest, call: &Call, now_ms: i64) -> Result<(), PlaceError> {
        let store = self.records.store();
        let status_callback = self.webhook("status", &call.id);
        let request = CreateCall {
            to: call.to.clone().unwrap_or_default(),
            from: call.from.clone().unwrap_or_default(),
            url: self.webhook("voice", &call.id),
            machine_detection: call
                .machine_detection
                .as_deref()
                .and_then(AmdMode::parse)
                .map(|mode| MachineDetection {
                    mode,
                    async_callback: Some(status_callback.clone()),
                }),
            status_callback,
            ring_timeout: None,
        };
        match rest.create_call(&request).await {
            Ok(created) => {
                store
                    .set_call_sid(&call.id, created.call_sid.as_str(), now_ms)
                    .await?;
                tracing::info!(call_id = %call.id, call_sid = %created.call_sid, to = %mask(call), "call placed");
                Ok(())
            }
            Err(error) => {
                tracing::warn!(call_id = %call.id, %error, "placing the call failed");
                let reason = match &error {
                    TwilioError::OutcomeUnknown { .. } => "outcome_unknown",
                    _ => "twilio_refused",
                };
                if !matches!(error, TwilioError::OutcomeUnknown { .. }) {
                    let failed = store.apply_status(&call.id, CallStatus::Failed, None, now_ms);
                    self.records.published(failed.await)?;
                }
                self.records
                    .published(store.record_end(&call.id, reason, now_ms).await)?;
                Err(error.into())
            }
        }
    }

    /// The URL of one of our Twilio webhooks for call `id`.
    fn webhook(&self, name: &str, id: &str) -> String {
        format!("https://{}/twilio/{name}?call={id}", self.public_host)
    }
}

/// The callee, masked, for logs.
fn mask(call: &Call) -> String {
    crate::redact::mask_phone(call.to.as_deref().unwrap_or_default())
}
