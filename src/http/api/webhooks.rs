//! Outbound webhooks over the API (`webhooks:admin`): register, list and remove endpoints, rotate
//! their secrets and the account's (which signs the events sent to calls' own `webhook_url`),
//! list deliveries and replay one. A secret is in the answer that creates or rotates it, and
//! from `GET /api/webhooks/signing-secret` for the account's; never in a list.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::calls::webhook_target;
use super::{ApiJson, Authorized, WebhooksAdmin};
use crate::guard::auth::Principal;
use crate::http::error::{ErrorBody, HttpError};
use crate::http::AppState;
use crate::store::now_ms;
use crate::store::outbox::{Delivery, DeliveryFilter, DeliveryState};
use crate::store::webhook_endpoints::{Endpoint, ACCOUNT_SECRET, EVENT_TYPES};

/// How long a rotated secret keeps signing beside its replacement.
const ROTATION_GRACE_MS: i64 = 24 * 3_600_000;

/// Most deliveries in one page.
const MAX_PAGE: i64 = 200;

/// `POST /api/webhooks` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpointBody {
    /// Where to post events: `https` in production, no private addresses.
    #[schema(example = "https://hooks.example.com/phone-agent")]
    url: String,
    /// The event types to send (`call.scheduled`, `call.started`, `call.turn`,
    /// `call.transferred`, `call.completed`, `call.failed`); all when absent or empty.
    #[serde(default)]
    events: Vec<String>,
    /// A note for people.
    description: Option<String>,
}

/// An endpoint with its secret, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedEndpointView {
    /// The endpoint.
    #[serde(flatten)]
    endpoint: Endpoint,
    /// `whsec_…`: verify the `webhook-signature` of its messages with it.
    secret: String,
}

/// Every endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointListView {
    /// Oldest first.
    endpoints: Vec<Endpoint>,
}

/// A signing secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecretView {
    /// `whsec_…`.
    secret: String,
}

/// A page of deliveries.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryPageView {
    /// Newest first.
    deliveries: Vec<Delivery>,
    /// Pass as `before` for the next page; absent on the last.
    next: Option<String>,
}

/// `GET /api/webhooks/deliveries` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// Only those to this endpoint.
    endpoint_id: Option<String>,
    /// Only those about this call (id or CallSid).
    call_id: Option<String>,
    /// Only those in this state.
    #[param(value_type = Option<DeliveryState>)]
    state: Option<String>,
    /// Page size, 1 to 200 (default 50).
    limit: Option<i64>,
    /// The last delivery of the previous page.
    before: Option<String>,
}

/// The `{id}` of an endpoint's routes.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(names("id"), parameter_in = Path)]
pub struct EndpointId(
    /// `whep_…`.
    pub String,
);

/// The `{id}` of a delivery's routes.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(names("id"), parameter_in = Path)]
pub struct DeliveryId(
    /// `msg_…`.
    pub String,
);

fn audit(principal: &Principal, kind: &str, subject: &str) {
    tracing::info!(
        target: "audit",
        kind,
        token_id = %principal.token_id,
        client = %principal.client,
        subject,
        "webhook settings changed"
    );
}

/// Registers an endpoint; its signing secret is in this answer once.
#[utoipa::path(
    post,
    path = "/webhooks",
    operation_id = "create_webhook_endpoint",
    tag = "webhooks",
    request_body = CreateEndpointBody,
    responses(
        (status = 201, description = "The endpoint and its secret", body = CreatedEndpointView),
        (status = 400, description = "A bad URL or event type", body = ErrorBody),
    ),
    security(("bearer" = ["webhooks:admin"])),
)]
pub async fn create(
    Authorized(principal, _): Authorized<WebhooksAdmin>,
    state: web::Data<AppState>,
    ApiJson(body): ApiJson<CreateEndpointBody>,
) -> Result<HttpResponse, HttpError> {
    let url = webhook_target("url", &body.url, state.webhook_policy)?;
    if let Some(unknown) = body
        .events
        .iter()
        .find(|e| !EVENT_TYPES.contains(&e.as_str()))
    {
        return Err(HttpError::bad_request(format!(
            "events: unknown type {unknown:?} (known: {})",
            EVENT_TYPES.join(", ")
        )));
    }
    if body.description.as_ref().is_some_and(|d| d.len() > 256) {
        return Err(HttpError::bad_request("description: at most 256 bytes"));
    }
    let store = state.records.store();
    let (endpoint, secret) = store
        .create_endpoint(&url, &body.events, body.description.as_deref(), now_ms())
        .await?;
    audit(&principal, "webhook.endpoint_created", &endpoint.id);
    Ok(HttpResponse::Created().json(CreatedEndpointView { endpoint, secret }))
}

/// Lists the endpoints (never their secrets).
#[utoipa::path(
    get,
    path = "/webhooks",
    operation_id = "list_webhook_endpoints",
    tag = "webhooks",
    responses((status = 200, description = "The endpoints", body = EndpointListView)),
    security(("bearer" = ["webhooks:admin"])),
)]
pub async fn list(
    _: Authorized<WebhooksAdmin>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let endpoints = state.records.store().endpoints().await?;
    Ok(HttpResponse::Ok().json(EndpointListView { endpoints }))
}

/// Removes an endpoint, its secret and its deliveries; nothing more is sent to it.
#[utoipa::path(
    delete,
    path = "/webhooks/{id}",
    operation_id = "delete_webhook_endpoint",
    tag = "webhooks",
    params(EndpointId),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such endpoint", body = ErrorBody),
    ),
    security(("bearer" = ["webhooks:admin"])),
)]
pub async fn delete(
    Authorized(principal, _): Authorized<WebhooksAdmin>,
    state: web::Data<AppState>,
    id: web::Path<EndpointId>,
) -> Result<HttpResponse, HttpError> {
    if !state.records.store().delete_endpoint(&id.0).await? {
        return Err(HttpError::NotFound);
    }
    audit(&principal, "webhook.endpoint_deleted", &id.0);
    Ok(HttpResponse::NoContent().finish())
}

/// Gives an endpoint a new secret; the old one keeps signing beside it for a day.
#[utoipa::path(
    post,
    path = "/webhooks/{id}/rotate",
    operation_id = "rotate_webhook_secret",
    tag = "webhooks",
    params(EndpointId),
    responses(
        (status = 201, description = "The new secret, shown once", body = SecretView),
        (status = 404, description = "No such endpoint", body = ErrorBody),
    ),
    security(("bearer" = ["webhooks:admin"])),
)]
pub async fn rotate(
    Authorized(principal, _): Authorized<WebhooksAdmin>,
    state: web::Data<AppState>,
    id: web::Path<EndpointId>,
) -> Result<HttpResponse, HttpError> {
    if id.0 == ACCOUNT_SECRET {
        return Err(HttpError::NotFound);
    }
    rotated(&principal, &state, &id.0).await
}

/// The account's signing secret: it signs the events sent to calls' own `webhook_url`.
#[utoipa::path(
    get,
    path = "/webhooks/signing-secret",
    operation_id = "get_webhook_signing_secret",
    tag = "webhooks",
    responses((status = 200, description = "The secret", body = SecretView)),
    security(("bearer" = ["webhooks:admin"])),
)]
pub async fn signing_secret(
    Authorized(principal, _): Authorized<WebhooksAdmin>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let secrets = state.records.store().account_secret(now_ms()).await?;
    audit(&principal, "webhook.secret_read", ACCOUNT_SECRET);
    Ok(HttpResponse::Ok().json(SecretView {
        secret: secrets.current,
    }))
}

/// Gives the account a new signing secret; the old one keeps signing beside it for a day.
#[utoipa::path(
    post,
    path = "/webhooks/signing-secret/rotate",
    operation_id = "rotate_webhook_signing_secret",
    tag = "webhooks",
    responses((status = 201, description = "The new secret", body = SecretView)),
    security(("bearer" = ["webhooks:admin"])),
)]
pub async fn rotate_signing_secret(
    Authorized(principal, _): Authorized<WebhooksAdmin>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    rotated(&principal, &state, ACCOUNT_SECRET).await
}

async fn rotated(
    principal: &Principal,
    state: &AppState,
    owner: &str,
) -> Result<HttpResponse, HttpError> {
    let store = state.records.store();
    let secret = store
        .rotate_secret(owner, ROTATION_GRACE_MS, now_ms())
        .await?
        .ok_or(HttpError::NotFound)?;
    audit(principal, "webhook.secret_rotated", owner);
    Ok(HttpResponse::Created().json(SecretView { secret }))
}

/// Lists deliveries, newest first, a page at a time: state, attempts and the last error of each.
#[utoipa::path(
    get,
    path = "/webhooks/deliveries",
    operation_id = "list_webhook_deliveries",
    tag = "webhooks",
    params(DeliveryQuery),
    responses(
        (status = 200, description = "A page of deliveries", body = DeliveryPageView),
        (status = 400, description = "A bad filter or cursor", body = ErrorBody),
    ),
    security(("bearer" = ["webhooks:admin"])),
)]
pub async fn deliveries(
    _: Authorized<WebhooksAdmin>,
    state: web::Data<AppState>,
    query: web::Query<DeliveryQuery>,
) -> Result<HttpResponse, HttpError> {
    let store = state.records.store();
    let limit = query.limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(HttpError::bad_request("limit: 1 to 200"));
    }
    let call_id = match &query.call_id {
        None => None,
        Some(id) => Some(
            store
                .call(id)
                .await?
                .map_or_else(|| id.clone(), |call| call.id),
        ),
    };
    let filter = DeliveryFilter {
        endpoint_id: query.endpoint_id.clone(),
        call_id,
        state: query
            .state
            .as_deref()
            .map(|s| {
                DeliveryState::parse(s).ok_or_else(|| HttpError::bad_request("state: unknown"))
            })
            .transpose()?,
    };
    let before = match &query.before {
        None => None,
        Some(id) => Some(
            store
                .delivery(id)
                .await?
                .ok_or_else(|| HttpError::bad_request("before: no such delivery"))?,
        ),
    };
    let deliveries = store.deliveries(&filter, before.as_ref(), limit).await?;
    let next = (deliveries.len() as i64 == limit)
        .then(|| deliveries.last().map(|d| d.id.clone()))
        .flatten();
    Ok(HttpResponse::Ok().json(DeliveryPageView { deliveries, next }))
}

/// Sends a delivered or dead message again, now, with the same `webhook-id` and payload.
#[utoipa::path(
    post,
    path = "/webhooks/deliveries/{id}/replay",
    operation_id = "replay_webhook_delivery",
    tag = "webhooks",
    params(DeliveryId),
    responses(
        (status = 202, description = "Queued again", body = Delivery),
        (status = 404, description = "No such delivery", body = ErrorBody),
        (status = 409, description = "Pending, skipped or erased: nothing to replay", body = ErrorBody),
    ),
    security(("bearer" = ["webhooks:admin"])),
)]
pub async fn replay(
    Authorized(principal, _): Authorized<WebhooksAdmin>,
    state: web::Data<AppState>,
    id: web::Path<DeliveryId>,
) -> Result<HttpResponse, HttpError> {
    let store = state.records.store();
    match store.replay_delivery(&id.0, now_ms()).await? {
        Some(delivery) => {
            audit(&principal, "webhook.delivery_replayed", &id.0);
            Ok(HttpResponse::Accepted().json(delivery))
        }
        None if store.delivery(&id.0).await?.is_some() => Err(HttpError::Conflict(
            "only a delivered or dead message can be replayed".into(),
        )),
        None => Err(HttpError::NotFound),
    }
}
