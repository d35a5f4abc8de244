//! The bearer-token API under `/api/`. The guard middleware has authenticated the token (401
//! otherwise); each handler names the scope it needs with an [`Authorized`] extractor (403
//! without it), which runs before the body is read.
//!
//! - [`calls`]: `GET /api/calls` (filters, paging), `GET /api/calls/{id}` (`calls:read`);
//!   `POST /api/calls` (place or schedule, `Idempotency-Key`), `POST /api/calls/{id}/cancel`
//!   (`calls:write`); `DELETE /api/calls/{id}` (erase, `calls:delete`).
//! - [`call_control`]: `POST /api/calls/{id}/hangup`, `POST /api/calls/{id}/transfer`
//!   (`calls:write`).
//! - [`events`]: `GET /api/calls/{id}/events`, `GET /api/events`: Server-Sent Events
//!   (`calls:read`).
//! - [`dnc`]: `GET|POST /api/dnc`, `DELETE /api/dnc/{number}` (`calls:write`).
//! - [`tokens`]: `GET|POST /api/tokens`, `DELETE /api/tokens/{id}`,
//!   `POST /api/tokens/{id}/rotate` (`tokens:admin`).
//! - [`webhooks`]: `GET|POST /api/webhooks`, `DELETE /api/webhooks/{id}`,
//!   `POST /api/webhooks/{id}/rotate`, `GET /api/webhooks/signing-secret`,
//!   `POST /api/webhooks/signing-secret/rotate`, `GET /api/webhooks/deliveries`,
//!   `POST /api/webhooks/deliveries/{id}/replay` (`webhooks:admin`).
//! - [`openapi`]: `GET /api/openapi.json`, this list as an OpenAPI 3.1 document (any token).
//!
//! Each route is registered from its handler's `#[utoipa::path]` ([`documented`]), so the
//! document describes exactly the routes served; [`views`] are the answers' types.

pub mod call_control;
pub mod calls;
pub mod dnc;
pub mod documented;
pub mod events;
pub mod openapi;
pub mod softphone;
pub mod tokens;
pub mod views;
pub mod webhooks;

use std::future::{ready, Ready};
use std::marker::PhantomData;

use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{web, FromRequest, HttpMessage as _, HttpRequest};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use utoipa_actix_web::scope::Scope as DocumentedScope;

use super::error::HttpError;
use crate::guard::auth::Principal;
use crate::guard::token::Scope;
use documented::DocumentedResource as Resource;

/// Largest JSON body the API accepts.
const JSON_BODY_LIMIT: usize = 16 * 1024;

/// A scope a route requires.
pub trait RequiredScope {
    /// The scope.
    const SCOPE: Scope;
}

macro_rules! scope_markers {
    ($($(#[$doc:meta])* $marker:ident => $scope:ident,)*) => {$(
        $(#[$doc])*
        pub struct $marker;
        impl RequiredScope for $marker {
            const SCOPE: Scope = Scope::$scope;
        }
    )*};
}

scope_markers! {
    /// `calls:read`.
    CallsRead => CallsRead,
    /// `calls:write`.
    CallsWrite => CallsWrite,
    /// `calls:delete`.
    CallsDelete => CallsDelete,
    /// `tokens:admin`.
    TokensAdmin => TokensAdmin,
    /// `webhooks:admin`.
    WebhooksAdmin => WebhooksAdmin,
    /// `calls:softphone`.
    CallsSoftphone => CallsSoftphone,
}

/// The request's principal, known to carry `S`'s scope.
pub struct Authorized<S: RequiredScope>(pub Principal, PhantomData<S>);

impl<S: RequiredScope> FromRequest for Authorized<S> {
    type Error = HttpError;
    type Future = Ready<Result<Self, HttpError>>;

    fn from_request(request: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let principal = request.extensions().get::<Principal>().cloned();
        ready(match principal {
            None => Err(HttpError::Unauthorized),
            Some(principal) if principal.can(S::SCOPE) => Ok(Self(principal, PhantomData)),
            Some(principal) => {
                tracing::info!(
                    target: "audit",
                    kind = "auth.forbidden",
                    token_id = %principal.token_id,
                    client = %principal.client,
                    scope = S::SCOPE.name(),
                    path = request.path(),
                    "token lacks the scope"
                );
                Err(HttpError::Forbidden)
            }
        })
    }
}

/// Registers the API routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(routes());
}

/// The API's routes, each with its operation for the OpenAPI document.
fn routes() -> DocumentedScope<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    utoipa_actix_web::scope("/api")
        .app_data(web::PayloadConfig::new(JSON_BODY_LIMIT))
        .service(
            Resource::new(calls::__path_list, calls::list).and(calls::__path_place, calls::place),
        )
        .service(
            Resource::new(calls::__path_get, calls::get).and(calls::__path_erase, calls::erase),
        )
        .service(Resource::new(calls::__path_cancel, calls::cancel))
        .service(Resource::new(
            call_control::__path_hang_up,
            call_control::hang_up,
        ))
        .service(Resource::new(
            call_control::__path_transfer,
            call_control::transfer,
        ))
        .service(Resource::new(events::__path_of_call, events::of_call))
        .service(Resource::new(events::__path_all, events::all))
        .service(Resource::new(dnc::__path_list, dnc::list).and(dnc::__path_add, dnc::add))
        .service(Resource::new(dnc::__path_remove, dnc::remove))
        .service(
            Resource::new(tokens::__path_list, tokens::list)
                .and(tokens::__path_create, tokens::create),
        )
        .service(Resource::new(tokens::__path_revoke, tokens::revoke))
        .service(Resource::new(tokens::__path_rotate, tokens::rotate))
        // The literal paths before `/webhooks/{id}`, which would take them.
        .service(
            Resource::new(webhooks::__path_list, webhooks::list)
                .and(webhooks::__path_create, webhooks::create),
        )
        .service(Resource::new(
            webhooks::__path_signing_secret,
            webhooks::signing_secret,
        ))
        .service(Resource::new(
            webhooks::__path_rotate_signing_secret,
            webhooks::rotate_signing_secret,
        ))
        .service(Resource::new(
            webhooks::__path_deliveries,
            webhooks::deliveries,
        ))
        .service(Resource::new(webhooks::__path_replay, webhooks::replay))
        .service(Resource::new(webhooks::__path_delete, webhooks::delete))
        .service(Resource::new(webhooks::__path_rotate, webhooks::rotate))
        .service(Resource::new(softphone::__path_open, softphone::open))
        .service(Resource::new(openapi::__path_document, openapi::document))
}

/// A JSON body deserialised into `T` (whose fields are `deny_unknown_fields`): 415 unless it is
/// `application/json`, 413 past the route's limit, 400 naming the field that is wrong. An empty
/// body without a content type reads as `{}`, so bodies whose fields are all optional may be left
/// out.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for ApiJson<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, actix_web::Error>>;

    fn from_request(request: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let content_type = request.content_type().to_ascii_lowercase();
        let body = web::Bytes::from_request(request, payload);
        Box::pin(async move {
            let body = body.await?;
            let json: &[u8] = if body.is_empty() && content_type.is_empty() {
                b"{}"
            } else if content_type != "application/json" {
                return Err(HttpError::UnsupportedMediaType.into());
            } else {
                &body
            };
            let mut deserializer = serde_json::Deserializer::from_slice(json);
            let value =
                serde_path_to_error::deserialize(&mut deserializer).map_err(HttpError::from)?;
            deserializer
                .end()
                .map_err(|_| HttpError::malformed_json())?;
            Ok(ApiJson(value))
        })
    }
}
