//! What a client can do to a live call: hang it up, or transfer it to a person (`calls:write`).

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use utoipa::ToSchema;

use super::calls::CallId;
use super::views::CallView;
use super::{ApiJson, Authorized, CallsWrite};
use crate::calls::number::E164;
use crate::http::error::{ErrorBody, HttpError};
use crate::http::AppState;

/// `POST /api/calls/{id}/transfer` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferBody {
    /// Where to transfer the caller (E.164).
    #[schema(example = "+14155550123")]
    to: String,
}

/// Hangs up a call; its end arrives as its status changes.
#[utoipa::path(
    post,
    path = "/calls/{id}/hangup",
    operation_id = "hang_up_call",
    tag = "calls",
    params(CallId),
    responses(
        (status = 202, description = "The call is being hung up: by Twilio, or by the instance carrying it", body = CallView),
        (status = 404, description = "No such call", body = ErrorBody),
        (status = 409, description = "The call has ended, or was never placed", body = ErrorBody),
        (status = 502, description = "Twilio failed", body = ErrorBody),
    ),
    security(("bearer" = ["calls:write"])),
)]
pub async fn hang_up(
    _: Authorized<CallsWrite>,
    state: web::Data<AppState>,
    id: web::Path<CallId>,
) -> Result<HttpResponse, HttpError> {
    let call = state.records.store().call(&id.0).await?;
    let call = call.ok_or(HttpError::NotFound)?;
    state.placer.hang_up(&call).await?;
    Ok(HttpResponse::Accepted().json(CallView::from(&call)))
}

/// Transfers a live call to a person: Twilio connects the caller to `to` and the agent's media
/// stream ends.
#[utoipa::path(
    post,
    path = "/calls/{id}/transfer",
    operation_id = "transfer_call",
    tag = "calls",
    params(CallId),
    request_body = TransferBody,
    responses(
        (status = 202, description = "Twilio is transferring the call", body = CallView),
        (status = 400, description = "A bad number", body = ErrorBody),
        (status = 404, description = "No such call", body = ErrorBody),
        (status = 409, description = "The call is not live", body = ErrorBody),
        (status = 502, description = "Twilio failed", body = ErrorBody),
    ),
    security(("bearer" = ["calls:write"])),
)]
pub async fn transfer(
    _: Authorized<CallsWrite>,
    state: web::Data<AppState>,
    id: web::Path<CallId>,
    body: ApiJson<TransferBody>,
) -> Result<HttpResponse, HttpError> {
    let to =
        E164::parse(&body.0.to).map_err(|error| HttpError::bad_request(format!("to: {error}")))?;
    let call = state.records.store().call(&id.0).await?;
    let call = call.ok_or(HttpError::NotFound)?;
    state.placer.transfer(&call, &to).await?;
    Ok(HttpResponse::Accepted().json(CallView::from(&call)))
}
