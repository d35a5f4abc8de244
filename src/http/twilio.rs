//! Twilio's HTTP entry points: the voice webhook, status callbacks and the media WebSocket
//! upgrade. Past `MAX_CALLS` (streaming calls and streams on their way), or while the calls'
//! audio is handled more than `ADMISSION_LAG_MS` behind real time, the voice webhook answers with
//! an apology and a hang-up instead of a stream.
//!
//! Calls we place carry our id in the webhook URLs (`?call=call_…`, signed by Twilio with the
//! rest): a webhook that overtakes our record of the CallSid still finds its call.

use std::time::{Duration, Instant, SystemTime};

use actix_web::{web, HttpRequest, HttpResponse};
use phone_agent_actors::call::CallActor;
use phone_agent_actors::ids::CallSid;
use phone_agent_actors::media::admission::STREAM_TOKEN_PARAMETER;
use phone_agent_actors::media::SOCKET_QUEUE_CAPACITY;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::error::HttpError;
use super::{media_socket, AppState};
use crate::redact::{mask_phone, MaskedPhone};
use crate::store::calls::{Direction, NewCall, Recorded};
use crate::store::retry::retry_transient;
use crate::store::status::CallStatus;
use crate::store::{now_ms, StoreError};
use crate::twilio::twiml;

/// How long the voice webhook keeps trying to record its call on a busy database: within
/// Twilio's 15 s wait for the answer, with room to spare.
const RECORD_BUDGET: Duration = Duration::from_secs(8);

/// The fields of Twilio's voice webhook we use; Twilio sends many more, which are ignored. Its
/// `Debug` masks the numbers.
#[derive(Deserialize)]
pub struct VoiceWebhook {
    /// The call.
    #[serde(rename = "CallSid")]
    call_sid: String,
    /// Caller number (logged masked only).
    #[serde(rename = "From", default)]
    from: String,
    /// Called number (logged masked only).
    #[serde(rename = "To", default)]
    to: String,
    /// `inbound`, `outbound-api`, …
    #[serde(rename = "Direction")]
    direction: Option<String>,
    /// `ringing`, `in-progress`, …
    #[serde(rename = "CallStatus")]
    call_status: Option<String>,
}

impl std::fmt::Debug for VoiceWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoiceWebhook")
            .field("call_sid", &self.call_sid)
            .field("from", &MaskedPhone(&self.from))
            .field("to", &MaskedPhone(&self.to))
            .field("direction", &self.direction)
            .field("call_status", &self.call_status)
            .finish()
    }
}

/// The query of our webhook URLs for calls we placed.
#[derive(Debug, Deserialize)]
pub struct OurCall {
    /// Our id of the call.
    call: Option<String>,
}

/// A status callback (or an asynchronous machine-detection answer); the fields we use.
#[derive(Debug, Deserialize)]
pub struct StatusCallback {
    /// The call.
    #[serde(rename = "CallSid")]
    call_sid: String,
    /// `initiated`, `queued`, `ringing`, `in-progress`, `completed`, `busy`, `no-answer`,
    /// `failed`, `canceled`.
    #[serde(rename = "CallStatus")]
    call_status: Option<String>,
    /// Orders the callbacks of a call (they may arrive out of order).
    #[serde(rename = "SequenceNumber")]
    sequence_number: Option<String>,
    /// Machine detection: `human`, `machine_start`, `fax`, `unknown`, …
    #[serde(rename = "AnsweredBy")]
    answered_by: Option<String>,
}

/// Our status of a call for Twilio's `CallStatus` (`initiated` is the callback's name for
/// queued).
fn call_status(twilio: &str) -> Option<CallStatus> {
    match twilio {
        "initiated" => Some(CallStatus::Queued),
        other => CallStatus::parse(other),
    }
}

/// Finds the call a webhook is about: by its CallSid, or (a call we placed whose CallSid we have
/// not recorded yet) by our id, recording the CallSid. `None`: not a call of ours.
async fn our_call(
    state: &AppState,
    call_sid: &str,
    ours: &OurCall,
) -> Result<Option<String>, StoreError> {
    let store = state.records.store();
    if let Some(call) = store.call(call_sid).await? {
        return Ok(Some(call.id));
    }
    let Some(id) = &ours.call else {
        return Ok(None);
    };
    if store.set_call_sid(id, call_sid, now_ms()).await? {
        return Ok(Some(id.clone()));
    }
    Ok(None)
}

/// `POST /twilio/status`: a call's status moves on (never back: callbacks arrive out of order);
/// machine detection's answer is recorded. 204.
pub async fn status(
    state: web::Data<AppState>,
    ours: web::Query<OurCall>,
    form: web::Form<StatusCallback>,
) -> Result<HttpResponse, HttpError> {
    let Some(id) = our_call(&state, &form.call_sid, &ours).await? else {
        tracing::warn!(call_sid = %form.call_sid, "status callback for a call we do not know");
        return Ok(HttpResponse::NoContent().finish());
    };
    let (records, now) = (&state.records, now_ms());
    let store = records.store();
    let sequence = form
        .sequence_number
        .as_deref()
        .and_then(|n| n.parse::<i64>().ok());
    if let Some(status) = form.call_status.as_deref().and_then(call_status) {
        records.published(store.apply_status(&id, status, sequence, now).await)?;
    }
    if let Some(answered_by) = &form.answered_by {
        records.published(store.set_answered_by(&id, answered_by, now).await)?;
    }
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /twilio/voice`: mint a stream token for the call and answer `<Connect><Stream>`.
pub async fn voice(
    state: web::Data<AppState>,
    ours: web::Query<OurCall>,
    form: web::Form<VoiceWebhook>,
) -> Result<HttpResponse, HttpError> {
    if state.live_calls().is_draining() {
        return Err(HttpError::Draining);
    }
    let call_sid = CallSid::parse(&form.call_sid)
        .ok_or_else(|| HttpError::bad_request("CallSid: not a Twilio CallSid"))?;
    if let Some(refusal) = refusal(&state, Instant::now()) {
        return Ok(over_capacity(&state, &form, &ours, &call_sid, refusal).await);
    }
    // Minted at once, so a burst of webhooks counts each call against the capacity it checked.
    let token = state.tokens.mint(&call_sid, SystemTime::now())?;
    tracing::info!(
        call_sid = %call_sid,
        from = %mask_phone(&form.from),
        to = %mask_phone(&form.to),
        "incoming call"
    );
    // A failure that persists must not drop the caller: the call goes on, unrecorded, logged.
    let deadline = Instant::now() + RECORD_BUDGET;
    let granted = async {
        let id = record(&state, &form, &ours, &call_sid, deadline).await?;
        patiently(&call_sid, deadline, || {
            state.records.store().grant_stream(&id, now_ms())
        })
        .await
    }
    .await;
    match granted {
        Ok(true) => {}
        Ok(false) => {
            state.tokens.revoke(&token);
            tracing::warn!(call_sid = %call_sid, "voice webhook replayed: the call already had its stream");
            return Err(HttpError::Conflict(
                "this call already had its stream".into(),
            ));
        }
        Err(error) => tracing::error!(call_sid = %call_sid, %error, "cannot record the call"),
    }
    Ok(HttpResponse::Ok()
        .content_type("text/xml; charset=utf-8")
        .body(twiml::connect_stream(
            &state.public_host,
            STREAM_TOKEN_PARAMETER,
            &token,
        )))
}

/// Why the server cannot carry one more call.
#[derive(Debug, Clone, Copy)]
pub(in crate::http) enum Refusal {
    /// `MAX_CALLS` calls are streaming or about to.
    MaxCalls(usize),
    /// The calls' inbound audio is handled later than `ADMISSION_LAG_MS` behind real time.
    Lagging(Duration),
}

/// Whether a new call must be refused at `now`, and why.
pub(in crate::http) fn refusal(state: &AppState, now: Instant) -> Option<Refusal> {
    // Streaming calls and those whose stream is on its way (a token minted, not yet used): a
    // socket whose `start` is not yet admitted still holds its token, so it counts once.
    let carried = state.live_calls().streaming() + state.tokens.outstanding(SystemTime::now());
    if let Some(max) = state.max_calls.filter(|&max| carried >= max) {
        return Some(Refusal::MaxCalls(max));
    }
    let lag = state.live_calls().lateness().p90(now);
    state
        .admission_lag
        .is_some_and(|limit| lag > limit)
        .then_some(Refusal::Lagging(lag))
}

/// A call the server cannot carry: recorded as ended `over_capacity` and answered with an
/// apology, so the calls already up keep their real time.
async fn over_capacity(
    state: &AppState,
    form: &VoiceWebhook,
    ours: &OurCall,
    call_sid: &CallSid,
    refusal: Refusal,
) -> HttpResponse {
    let refused = state.calls.metrics.call_ended("over_capacity");
    // An overload refuses many calls a second: one line each at debug, and a warning at the first
    // and each time the total doubles.
    let loud = refused.is_power_of_two();
    match refusal {
        Refusal::MaxCalls(max) if loud => {
            tracing::warn!(%call_sid, max_calls = max, refused, "call refused: at capacity (MAX_CALLS)")
        }
        Refusal::Lagging(lag) if loud => tracing::warn!(
            %call_sid,
            lag_ms = lag.as_millis() as u64,
            refused,
            "call refused: at capacity (calls' audio handled late past ADMISSION_LAG_MS)"
        ),
        _ => tracing::debug!(%call_sid, ?refusal, refused, "call refused: at capacity"),
    }
    let deadline = Instant::now() + RECORD_BUDGET;
    let recorded = async {
        let id = record(state, form, ours, call_sid, deadline).await?;
        let ended = patiently(call_sid, deadline, || {
            state
                .records
                .store()
                .record_end(&id, "over_capacity", now_ms())
        })
        .await;
        state.records.published(ended)
    };
    if let Err(error) = recorded.await {
        tracing::error!(%call_sid, %error, "cannot record the refused call");
    }
    HttpResponse::Ok()
        .content_type("text/xml; charset=utf-8")
        .body(twiml::busy())
}

/// Runs a write of `call_sid`'s record until it succeeds, fails for a lasting reason, or
/// `deadline` (one [`RECORD_BUDGET`] for all of a webhook's writes) passes: a busy database delays
/// the webhook's answer (Twilio waits 15 s for it) rather than losing the record.
async fn patiently<T, Fut>(
    call_sid: &CallSid,
    deadline: Instant,
    write: impl FnMut() -> Fut,
) -> Result<T, StoreError>
where
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let budget = deadline.saturating_duration_since(Instant::now());
    retry_transient(budget, write, |error| {
        tracing::warn!(%call_sid, %error, "recording the call: the database cannot take it yet, trying again")
    })
    .await
}

/// Records the call a voice webhook is about, waiting out a busy database until `deadline`, and
/// publishes it if this recorded it (a repeated webhook's call, or one we placed, was published
/// when it was recorded): its id.
async fn record(
    state: &AppState,
    form: &VoiceWebhook,
    ours: &OurCall,
    call_sid: &CallSid,
    deadline: Instant,
) -> Result<String, StoreError> {
    let recorded = patiently(call_sid, deadline, || record_call(state, form, ours)).await?;
    if recorded.new {
        patiently(call_sid, deadline, || {
            state.records.publish_new(&recorded.id)
        })
        .await?;
    }
    Ok(recorded.id)
}

/// Records the call a voice webhook is about, unless it is one we placed (already recorded).
async fn record_call(
    state: &AppState,
    form: &VoiceWebhook,
    ours: &OurCall,
) -> Result<Recorded, StoreError> {
    if let Some(id) = our_call(state, &form.call_sid, ours).await? {
        return Ok(Recorded { id, new: false });
    }
    let outbound = form
        .direction
        .as_deref()
        .is_some_and(|direction| direction.starts_with("outbound"));
    let direction = if outbound {
        Direction::Outbound
    } else {
        Direction::Inbound
    };
    let status = form
        .call_status
        .as_deref()
        .and_then(call_status)
        .unwrap_or(CallStatus::Ringing);
    let call = NewCall::from_twilio(&form.call_sid, direction, &form.from, &form.to, status);
    state.records.store().insert_call(&call, now_ms()).await
}

/// `GET /twilio/media`: upgrade to a WebSocket and start the call's actors.
pub async fn media(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    if state.live_calls().is_draining() {
        return Err(HttpError::Draining.into());
    }
    let (response, session, messages) = actix_ws::handle(&request, body)?;
    let max = state.calls.media.max_message_bytes;
    let messages = messages
        .max_frame_size(max)
        .aggregate_continuations()
        .max_continuation_size(max);
    let (commands, outbound) = mpsc::channel(SOCKET_QUEUE_CAPACITY);
    let pongs = commands.downgrade();
    let call = CallActor::start(state.calls.clone(), commands);
    actix_web::rt::spawn(media_socket::read(call.media, messages, pongs));
    actix_web::rt::spawn(media_socket::write(
        outbound,
        session,
        state.media_write_timeout,
    ));
    Ok(response)
}
