//! Token management over the API (`tokens:admin`), through the AuthActor so its cache follows at
//! once. A created or rotated token is in the response body once and nowhere else.

use std::time::Duration;

use actix::Addr;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::views::{IssuedTokenView, TokenListView};
use super::{ApiJson, Authorized, TokensAdmin};
use crate::guard::admin::{ChangedBy, Issued, NewToken};
use crate::guard::auth::{AuthActor, CreateToken, ListTokens, Principal, RevokeToken, RotateToken};
use crate::guard::token::{Scope, Scopes};
use crate::http::error::{ErrorBody, HttpError};

/// Default overlap of a rotation: both tokens work for a day.
pub const DEFAULT_ROTATION_OVERLAP: Duration = Duration::from_secs(24 * 3600);

/// `POST /api/tokens` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenBody {
    /// A name for people.
    name: String,
    /// At least one scope.
    #[schema(value_type = Vec<Scope>)]
    scopes: Scopes,
    /// Lifetime in seconds; forever when absent.
    expires_in_seconds: Option<u64>,
}

/// `POST /api/tokens/{id}/rotate` body (may be left out).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateTokenBody {
    /// How long the old token keeps working, in seconds (default a day).
    overlap_seconds: Option<u64>,
}

/// The `{id}` of a token's routes.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(names("id"), parameter_in = Path)]
pub struct TokenId(
    /// The token's id (`tok_…`).
    pub String,
);

fn by(principal: &Principal) -> ChangedBy {
    ChangedBy::Token {
        id: principal.token_id.to_string(),
        client: principal.client,
    }
}

fn issued(issued: Issued) -> HttpResponse {
    HttpResponse::Created().json(IssuedTokenView {
        token: issued.token,
        record: issued.record,
    })
}

/// Lists every token's record (never the tokens themselves).
#[utoipa::path(
    get,
    path = "/tokens",
    operation_id = "list_tokens",
    tag = "tokens",
    responses((status = 200, description = "The tokens", body = TokenListView)),
    security(("bearer" = ["tokens:admin"])),
)]
pub async fn list(
    _: Authorized<TokensAdmin>,
    actor: web::Data<Addr<AuthActor>>,
) -> Result<HttpResponse, HttpError> {
    let tokens = actor.send(ListTokens).await??;
    Ok(HttpResponse::Ok().json(TokenListView { tokens }))
}

/// Creates a token, shown in this answer once.
#[utoipa::path(
    post,
    path = "/tokens",
    operation_id = "create_token",
    tag = "tokens",
    request_body = CreateTokenBody,
    responses(
        (status = 201, description = "The new token", body = IssuedTokenView),
        (status = 400, description = "A bad field, named in the message", body = ErrorBody),
    ),
    security(("bearer" = ["tokens:admin"])),
)]
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

/// Revokes a token at once.
#[utoipa::path(
    delete,
    path = "/tokens/{id}",
    operation_id = "revoke_token",
    tag = "tokens",
    params(TokenId),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No live token by that id", body = ErrorBody),
    ),
    security(("bearer" = ["tokens:admin"])),
)]
pub async fn revoke(
    Authorized(principal, _): Authorized<TokensAdmin>,
    actor: web::Data<Addr<AuthActor>>,
    id: web::Path<TokenId>,
) -> Result<HttpResponse, HttpError> {
    let message = RevokeToken {
        id: id.into_inner().0,
        by: by(&principal),
    };
    if actor.send(message).await?? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(HttpError::NotFound)
    }
}

/// Replaces a token; the old one keeps working for the overlap (the body may be left out).
#[utoipa::path(
    post,
    path = "/tokens/{id}/rotate",
    operation_id = "rotate_token",
    tag = "tokens",
    params(TokenId),
    request_body = RotateTokenBody,
    responses(
        (status = 201, description = "The replacement, shown once", body = IssuedTokenView),
        (status = 404, description = "No live token by that id", body = ErrorBody),
    ),
    security(("bearer" = ["tokens:admin"])),
)]
pub async fn rotate(
    Authorized(principal, _): Authorized<TokensAdmin>,
    actor: web::Data<Addr<AuthActor>>,
    id: web::Path<TokenId>,
    ApiJson(body): ApiJson<RotateTokenBody>,
) -> Result<HttpResponse, HttpError> {
    let message = RotateToken {
        id: id.into_inner().0,
        overlap: body
            .overlap_seconds
            .map_or(DEFAULT_ROTATION_OVERLAP, Duration::from_secs),
        by: by(&principal),
    };
    let replacement = actor.send(message).await??;
    replacement.map(issued).ok_or(HttpError::NotFound)
}
