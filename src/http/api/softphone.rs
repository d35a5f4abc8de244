//! The softphone: a call from a browser to the agent, through the same CallActor path as a Twilio
//! call.
//!
//! `POST /api/softphone` (`calls:softphone`) records a call, as the voice webhook does for a
//! Twilio call, and answers what Twilio would be told by our TwiML: a CallSid, and a single-use
//! stream token valid for a minute. The browser then opens `GET /softphone/media?token=…`, a
//! WebSocket speaking the Twilio Media Streams protocol (8 kHz mu-law in 20 ms frames, marks
//! echoed as their audio is played, `clear` on barge-in), and names the token again in its
//! `start` message, which redeems it as a Twilio stream's does. A browser cannot sign the upgrade
//! as Twilio does, so the token is checked before the upgrade instead: no actor is built for a
//! socket without one.

use std::time::{Instant, SystemTime};

use actix_web::{web, HttpRequest, HttpResponse};
use phone_agent_actors::ids::CallSid;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Authorized, CallsSoftphone};
use crate::http::error::{ErrorBody, HttpError};
use crate::http::{twilio, AppState};
use crate::store::calls::{Direction, NewCall};
use crate::store::now_ms;
use crate::store::status::CallStatus;

/// What a softphone call records as its caller: not a phone number (shown masked, as `***`).
pub const SOFTPHONE_FROM: &str = "browser";
/// What a softphone call records as the number called.
pub const SOFTPHONE_TO: &str = "console";
/// Where the softphone's media WebSocket is.
pub const MEDIA_PATH: &str = "/softphone/media";

/// A softphone call, ready for its media stream (no `Debug`: it holds the stream token).
#[derive(Serialize, ToSchema)]
pub struct SoftphoneView {
    /// Our id of the call.
    #[schema(example = "call_01jd5d0kz4m3r8w6t2y9q7v5x1")]
    call_id: String,
    /// The CallSid the stream's `start` message names.
    call_sid: String,
    /// The stream token: in the media URL's `token` query parameter and as the `token` custom
    /// parameter of `start`. Single use; valid for a minute.
    stream_token: String,
    /// Where to open the media WebSocket (`?token=` appended): the Twilio Media Streams protocol.
    #[schema(example = "/softphone/media")]
    media_path: &'static str,
}

/// Opens a call from the browser to the agent: records it and hands out its stream token.
#[utoipa::path(
    post,
    path = "/softphone",
    operation_id = "open_softphone_call",
    tag = "calls",
    responses(
        (status = 201, description = "The call, waiting for its media stream", body = SoftphoneView),
        (status = 503, description = "Shutting down, or at capacity", body = ErrorBody),
    ),
    security(("bearer" = ["calls:softphone"])),
)]
pub async fn open(
    _: Authorized<CallsSoftphone>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    if state.live_calls().is_draining() {
        return Err(HttpError::Draining);
    }
    if twilio::refusal(&state, Instant::now()).is_some() {
        return Err(HttpError::AtCapacity);
    }
    let sid = crate::twilio::random_sid("CA").map_err(|_| HttpError::internal("no randomness"))?;
    let call_sid = CallSid::parse(&sid).ok_or_else(|| HttpError::internal("a malformed sid"))?;
    let token = state.tokens.mint(&call_sid, SystemTime::now())?;
    match record(&state, &call_sid).await {
        Ok(call_id) => Ok(HttpResponse::Created().json(SoftphoneView {
            call_id,
            call_sid: sid,
            stream_token: token,
            media_path: MEDIA_PATH,
        })),
        Err(error) => {
            state.tokens.revoke(&token);
            Err(error)
        }
    }
}

/// Records the call as in progress, published to the event streams, its stream granted.
async fn record(state: &AppState, call_sid: &CallSid) -> Result<String, HttpError> {
    let call = NewCall::from_twilio(
        call_sid.as_str(),
        Direction::Browser,
        SOFTPHONE_FROM,
        SOFTPHONE_TO,
        CallStatus::InProgress,
    );
    let store = state.records.store();
    let recorded = store.insert_call(&call, now_ms()).await?;
    state.records.publish_new(&recorded.id).await?;
    store.grant_stream(&recorded.id, now_ms()).await?;
    tracing::info!(%call_sid, call_id = %recorded.id, "softphone call");
    Ok(recorded.id)
}

/// The media URL's query.
#[derive(Deserialize)]
pub struct MediaQuery {
    /// The call's stream token.
    token: String,
}

/// `GET /softphone/media?token=…`: the softphone's media WebSocket, once its token is known to be
/// outstanding (403 otherwise); then the Twilio media path exactly.
pub async fn media(
    state: web::Data<AppState>,
    query: web::Query<MediaQuery>,
    request: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    if !state.tokens.is_outstanding(&query.token, SystemTime::now()) {
        return Err(HttpError::Forbidden.into());
    }
    twilio::media(state, request, body).await
}
