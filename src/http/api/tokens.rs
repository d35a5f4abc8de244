//! Token management over the API (`tokens:admin`), through the AuthActor so its cache follows at
//! once. A created or rotated token is in the response body once and nowhere else.

use std::time::Duration;

use actix::Addr;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::{ApiJson, Authorized, TokensAdmin};
use crate::guard::admin::{ChangedBy, Issued, NewToken};
use crate::guard::auth::{AuthActor, CreateToken, ListTokens, Principal, RevokeToken, RotateToken};
use crate::guard::token::Scopes;
use crate::http::error::HttpError;

/// Default overlap of a rotation: both tokens work for a day.
pub const DEFAULT_ROTATION_OVERLAP: Duration = Duration::from_secs(24 * 3600);

/// `POST /api/tokens` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenBody {
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
pub struct RotateTokenBody {
    /// How long the old token keeps working, in seconds (default a day).
    overlap_seconds: Option<u64>,
}

fn by(principal: &Principal) -> ChangedBy {
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
    let tokens = actor.send(ListTokens).await??;
    Ok(HttpResponse::Ok().json(json!({ "tokens": tokens })))
}

/// `POST /api/tokens`: 201 with the new token, shown once.
pub async fn create(
    Authorized(principal, _): Authorized<TokensAdmin>,
    actor: web::Data<Addr<AuthActor>>,
    ApiJson(body): ApiJson<CreateTokenBody>,
) -> Result<HttpResponse, HttpError> {
    let token = NewToken {
        name: body.name,
        scopes: body.scopes,
        expires_in: body.expires_in_seconds.map(Duration::from_secs),
    };
    let message = CreateToken {
        token,
        by: by(&principal),
    };
    Ok(issued(actor.send(message).await??))
}

/// `DELETE /api/tokens/{id}`: 204, or 404 when there is no live token by that id.
pub async fn revoke(
    Authorized(principal, _): Authorized<TokensAdmin>,
    actor: web::Data<Addr<AuthActor>>,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    let message = RevokeToken {
        id: id.into_inner(),
        by: by(&principal),
    };
    if actor.send(message).await?? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(HttpError::NotFound)
    }
}

/// `POST /api/tokens/{id}/rotate`: 201 with the replacement; the old token works for the overlap.
pub async fn rotate(
    Authorized(principal, _): Authorized<TokensAdmin>,
    actor: web::Data<Addr<AuthActor>>,
    id: web::Path<String>,
    ApiJson(body): ApiJson<RotateTokenBody>,
) -> Result<HttpResponse, HttpError> {
    let message = RotateToken {
        id: id.into_inner(),
        overlap: body
            .overlap_seconds
            .map_or(DEFAULT_ROTATION_OVERLAP, Duration::from_secs),
        by: by(&principal),
    };
    let replacement = actor.send(message).await??;
    replacement.map(issued).ok_or(HttpError::NotFound)
}
