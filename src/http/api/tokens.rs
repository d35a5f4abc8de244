//! Token management over the API (`tokens:admin`), through the AuthActor so its cache follows at
//! once. A created or rotated token is in the response body once and nowhere else.

use std::time::Duration;

use actix::Addr;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::{ApiJson, Authorized, TokensAdmin};
use crate::guard::admin::{AdminError, ChangedBy, Issued, NewToken};
use crate::guard::auth::{AuthActor, ManageTokens, TokenChange};
use crate::guard::token::Scopes;
use crate::http::error::HttpError;

/// Default overlap of a rotation: both tokens work for a day.
pub const DEFAULT_ROTATION_OVERLAP: Duration = Duration::from_secs(24 * 3600);

/// `POST /api/tokens` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// A name for people.
    name: String,
    /// At least one scope.
    scopes: Scopes,
    /// Lifetime in seconds; forever when absent.
    expires_in_seconds: Option<u64>,
}

/// `POST /api/tokens/{id}/rotate` body (may be left out).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateToken {
    /// How long the old token keeps working, in seconds (default a day).
    overlap_seconds: Option<u64>,
}

async fn manage(actor: &Addr<AuthActor>, request: ManageTokens) -> Result<TokenChange, HttpError> {
    match actor.send(request).await {
        Ok(Ok(change)) => Ok(change),
        Ok(Err(AdminError::Invalid(message))) => Err(HttpError::bad_request(message)),
        Ok(Err(AdminError::Store(error))) => Err(HttpError::internal(error)),
        Err(error) => Err(HttpError::internal(error)),
    }
}

fn by(principal: &crate::guard::auth::Principal) -> ChangedBy {
    ChangedBy::Token {
        id: principal.token_id.to_string(),
        client: principal.client,
    }
}

fn issued(issued: Issued) -> HttpResponse {
    HttpResponse::Created().json(json!({ "token": issued.token, "record": issued.record }))
}

/// `GET /api/tokens`: every token (never the tokens themselves).
pub async fn list(
    _: Authorized<TokensAdmin>,
    actor: web::Data<Addr<AuthActor>>,
) -> Result<HttpResponse, HttpError> {
    match manage(&actor, ManageTokens::List).await? {
        TokenChange::Listed(tokens) => Ok(HttpResponse::Ok().json(json!({ "tokens": tokens }))),
        _ => Err(HttpError::Internal),
    }
}

/// `POST /api/tokens`: 201 with the new token, shown once.
pub async fn create(
    Authorized(principal, _): Authorized<TokensAdmin>,
    actor: web::Data<Addr<AuthActor>>,
    ApiJson(body): ApiJson<CreateToken>,
) -> Result<HttpResponse, HttpError> {
    let request = NewToken {
        name: body.name,
        scopes: body.scopes,
        expires_in: body.expires_in_seconds.map(Duration::from_secs),
    };
    match manage(&actor, ManageTokens::Create(request, by(&principal))).await? {
        TokenChange::Issued(token) => Ok(issued(token)),
        _ => Err(HttpError::Internal),
    }
}

/// `DELETE /api/tokens/{id}`: 204, or 404 when there is no live token by that id.
pub async fn revoke(
    Authorized(principal, _): Authorized<TokensAdmin>,
    actor: web::Data<Addr<AuthActor>>,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    match manage(
        &actor,
        ManageTokens::Revoke(id.into_inner(), by(&principal)),
    )
    .await?
    {
        TokenChange::Revoked(true) => Ok(HttpResponse::NoContent().finish()),
        TokenChange::Revoked(false) => Err(HttpError::NotFound),
        _ => Err(HttpError::Internal),
    }
}

/// `POST /api/tokens/{id}/rotate`: 201 with the replacement; the old token works for the overlap.
pub async fn rotate(
    Authorized(principal, _): Authorized<TokensAdmin>,
    actor: web::Data<Addr<AuthActor>>,
    id: web::Path<String>,
    ApiJson(body): ApiJson<RotateToken>,
) -> Result<HttpResponse, HttpError> {
    let overlap = body
        .overlap_seconds
        .map_or(DEFAULT_ROTATION_OVERLAP, Duration::from_secs);
    let request = ManageTokens::Rotate(id.into_inner(), overlap, by(&principal));
    match manage(&actor, request).await? {
        TokenChange::Issued(token) => Ok(issued(token)),
        TokenChange::NotFound => Err(HttpError::NotFound),
        _ => Err(HttpError::Internal),
    }
}
