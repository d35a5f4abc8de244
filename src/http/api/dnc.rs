//! The do-not-call list (`calls:write`): numbers never called. Numbers are masked in answers.

use actix_web::{web, HttpResponse};
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::json;

use super::{ApiJson, Authorized, CallsWrite};
use crate::calls::number::E164;
use crate::http::error::HttpError;
use crate::http::AppState;
use crate::redact::mask_phone;

/// `POST /api/dnc` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DncBody {
    /// The number (E.164).
    number: String,
}

fn number(value: &str) -> Result<E164, HttpError> {
    E164::parse(value).map_err(|error| HttpError::bad_request(format!("number: {error}")))
}

/// `GET /api/dnc`: every number on the list, masked.
pub async fn list(
    _: Authorized<CallsWrite>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let entries = state.records.store().dnc_list().await?;
    let numbers: Vec<_> = entries
        .iter()
        .map(|entry| json!({ "number": mask_phone(&entry.number), "added_at": entry.added_at }))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "numbers": numbers })))
}

/// `POST /api/dnc`: 201 when added, 200 when it was on the list already.
pub async fn add(
    _: Authorized<CallsWrite>,
    state: web::Data<AppState>,
    body: ApiJson<DncBody>,
) -> Result<HttpResponse, HttpError> {
    let number = number(&body.0.number)?;
    let now = Timestamp::now().as_millisecond();
    let added = state.records.store().dnc_add(number.as_str(), now).await?;
    let body = json!({ "number": number.to_string(), "added": added });
    Ok(if added {
        HttpResponse::Created().json(body)
    } else {
        HttpResponse::Ok().json(body)
    })
}

/// `DELETE /api/dnc/{number}`: 204, or 404 when it was not on the list.
pub async fn remove(
    _: Authorized<CallsWrite>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    let number = number(&path)?;
    if !state.records.store().dnc_remove(number.as_str()).await? {
        return Err(HttpError::NotFound);
    }
    Ok(HttpResponse::NoContent().finish())
}
