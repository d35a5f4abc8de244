//! Twilio's HTTP entry points: the voice webhook and the media WebSocket upgrade.

use std::time::Instant;

use actix_web::{web, HttpRequest, HttpResponse};
use phone_agent_actors::call::CallActor;
use phone_agent_actors::ids::CallSid;
use phone_agent_actors::media::admission::STREAM_TOKEN_PARAMETER;
use phone_agent_actors::media::SOCKET_QUEUE_CAPACITY;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::error::HttpError;
use super::{media_socket, AppState};
use crate::redact::mask_phone;
use crate::store::calls::{Direction, NewCall};
use crate::store::now_ms;
use crate::store::status::CallStatus;
use crate::twilio::twiml;

/// The fields of Twilio's voice webhook we use; Twilio sends many more, which are ignored.
#[derive(Debug, Deserialize)]
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

/// `POST /twilio/voice`: mint a stream token for the call and answer `<Connect><Stream>`.
pub async fn voice(
    state: web::Data<AppState>,
    form: web::Form<VoiceWebhook>,
) -> Result<HttpResponse, HttpError> {
    if state.live_calls().is_draining() {
        return Err(HttpError::Draining);
    }
    let call_sid = CallSid::parse(&form.call_sid)
        .ok_or_else(|| HttpError::bad_request("CallSid: not a Twilio CallSid"))?;
    let token = state.tokens.mint(&call_sid, Instant::now())?;
    tracing::info!(
        call_sid = %call_sid,
        from = %mask_phone(&form.from),
        to = %mask_phone(&form.to),
        "incoming call"
    );
    let outbound = form
        .direction
        .as_deref()
        .is_some_and(|direction| direction.starts_with("outbound"));
    let record = NewCall {
        call_sid: Some(call_sid.to_string()),
        direction: if outbound {
            Direction::Outbound
        } else {
            Direction::Inbound
        },
        from: form.from.clone(),
        to: form.to.clone(),
        status: form
            .call_status
            .as_deref()
            .and_then(CallStatus::parse)
            .unwrap_or(CallStatus::Ringing),
        agent: None,
        metadata: None,
        scheduled_at: None,
        timezone: None,
        machine_detection: None,
    };
    // A storage failure must not drop a caller: the call goes on, unrecorded, and it is logged.
    if let Err(error) = state.store.insert_call(&record, now_ms()).await {
        tracing::error!(call_sid = %call_sid, %error, "cannot record the call");
    }
    Ok(HttpResponse::Ok()
        .content_type("text/xml; charset=utf-8")
        .body(twiml::connect_stream(
            &state.public_host,
            STREAM_TOKEN_PARAMETER,
            &token,
        )))
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
