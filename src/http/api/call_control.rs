//! What a client can do to a live call: hang it up, or transfer it to a person (`calls:write`).

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::calls::public;
use super::{ApiJson, Authorized, CallsWrite};
use crate::calls::number::E164;
use crate::http::error::HttpError;
use crate::http::AppState;

/// `POST /api/calls/{id}/transfer` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferBody {
    /// Where to transfer the caller (E.164).
    to: String,
}

/// `POST /api/calls/{id}/hangup`: 202; the call's end arrives as its status changes.
pub async fn hang_up(
    _: Authorized<CallsWrite>,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    let call = state.records.store().call(&id).await?;
    let call = call.ok_or(HttpError::NotFound)?;
    state.placer.hang_up(&call).await?;
    Ok(HttpResponse::Accepted().json(public(&call)))
}

/// `POST /api/calls/{id}/transfer`: 202; Twilio connects the caller to `to` and our media
/// stream ends.
pub async fn transfer(
    _: Authorized<CallsWrite>,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: ApiJson<TransferBody>,
) -> Result<HttpResponse, HttpError> {
    let to =
        E164::parse(&body.0.to).map_err(|error| HttpError::bad_request(format!("to: {error}")))?;
    let call = state.records.store().call(&id).await?;
    let call = call.ok_or(HttpError::NotFound)?;
    state.placer.transfer(&call, &to).await?;
    Ok(HttpResponse::Accepted().json(public(&call)))
}
