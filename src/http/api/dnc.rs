//! The do-not-call list (`calls:write`): numbers never called. Numbers are masked in answers.

use actix_web::{web, HttpResponse};
use jiff::Timestamp;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::views::{DncAddedView, DncEntryView, DncListView};
use super::{ApiJson, Authorized, CallsWrite};
use crate::calls::number::E164;
use crate::http::error::{ErrorBody, HttpError};
use crate::http::AppState;

/// `POST /api/dnc` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DncBody {
    /// The number (E.164).
    #[schema(example = "+14155550100")]
    number: String,
}

/// The `{number}` of `DELETE /api/dnc/{number}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(names("number"), parameter_in = Path)]
pub struct DncNumber(
    /// The number (E.164, its `+` percent-encoded as `%2B`).
    pub String,
);

fn number(value: &str) -> Result<E164, HttpError> {
    E164::parse(value).map_err(|error| HttpError::bad_request(format!("number: {error}")))
}

/// Lists every number on the do-not-call list, masked.
#[utoipa::path(
    get,
    path = "/dnc",
    operation_id = "list_dnc",
    tag = "dnc",
    responses((status = 200, description = "The list", body = DncListView)),
    security(("bearer" = ["calls:write"])),
)]
pub async fn list(
    _: Authorized<CallsWrite>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let entries = state.records.store().dnc_list().await?;
    Ok(HttpResponse::Ok().json(DncListView {
        numbers: entries.iter().map(DncEntryView::from).collect(),
    }))
}

/// Puts a number on the do-not-call list: it is never called.
#[utoipa::path(
    post,
    path = "/dnc",
    operation_id = "add_dnc",
    tag = "dnc",
    request_body = DncBody,
    responses(
        (status = 201, description = "Added", body = DncAddedView),
        (status = 200, description = "It was on the list already", body = DncAddedView),
        (status = 400, description = "Not an E.164 number", body = ErrorBody),
    ),
    security(("bearer" = ["calls:write"])),
)]
pub async fn add(
    _: Authorized<CallsWrite>,
    state: web::Data<AppState>,
    body: ApiJson<DncBody>,
) -> Result<HttpResponse, HttpError> {
    let number = number(&body.0.number)?;
    let now = Timestamp::now().as_millisecond();
    let added = state.records.store().dnc_add(number.as_str(), now).await?;
    let body = DncAddedView {
        number: number.to_string(),
        added,
    };
    Ok(if added {
        HttpResponse::Created().json(body)
    } else {
        HttpResponse::Ok().json(body)
    })
}

/// Takes a number off the do-not-call list.
#[utoipa::path(
    delete,
    path = "/dnc/{number}",
    operation_id = "remove_dnc",
    tag = "dnc",
    params(DncNumber),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "Not an E.164 number", body = ErrorBody),
        (status = 404, description = "It was not on the list", body = ErrorBody),
    ),
    security(("bearer" = ["calls:write"])),
)]
pub async fn remove(
    _: Authorized<CallsWrite>,
    state: web::Data<AppState>,
    raw: web::Path<DncNumber>,
) -> Result<HttpResponse, HttpError> {
    let number = number(&raw.0)?;
    if !state.records.store().dnc_remove(number.as_str()).await? {
        return Err(HttpError::NotFound);
    }
    Ok(HttpResponse::NoContent().finish())
}
