//! The API's OpenAPI 3.1 document, built from the routes themselves (see [`super::documented`]):
//! served at `GET /api/openapi.json`, printed by `phone-agent openapi`, and checked into
//! `docs/openapi.json` (a test fails when that copy is stale).

use std::sync::OnceLock;

use actix_web::HttpResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, RefOr, Response, ResponseBuilder};
use utoipa::{OpenApi, PartialSchema, ToSchema};
use utoipa_actix_web::OpenApiFactory as _;

use crate::http::error::ErrorBody;

/// The document's frame; the paths and their schemas come from the routes.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "phone-agent",
        description = "Places, schedules, follows, transfers, hangs up and erases phone calls \
            answered by an AI voice agent. Every request carries a bearer token (`Authorization: \
            Bearer pa_…`) with the scopes the operation names. Errors are answered with one \
            envelope, `{\"error\":{\"code\",\"message\",\"request_id\"}}`. Phone numbers are \
            masked in answers."
    ),
    tags(
        (name = "calls", description = "Calls as resources: place, schedule, read, control, erase"),
        (name = "events", description = "Server-Sent Events of calls as they happen"),
        (name = "dnc", description = "The do-not-call list"),
        (name = "tokens", description = "API tokens"),
        (name = "webhooks", description = "Call events posted to your endpoints, signed per \
            Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature), and their \
            deliveries"),
        (name = "meta", description = "This document"),
    )
)]
struct Frame;

/// The name of the bearer-token security scheme the operations refer to.
const BEARER: &str = "bearer";

/// The document.
pub fn spec() -> Document {
    let routes = super::routes();
    let mut document = Frame::openapi();
    document.paths = routes.paths();
    let mut schemas = Vec::new();
    routes.schemas(&mut schemas);
    let components = document.components.get_or_insert_with(Default::default);
    components.schemas.extend(schemas);
    components
        .schemas
        .insert(ErrorBody::name().into(), ErrorBody::schema());
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    add_guard_responses(&mut document);
    document
}

/// The answers every operation may get from the guard before its handler runs.
fn add_guard_responses(document: &mut Document) {
    let guard = [
        ("401", "No valid token"),
        ("403", "The token lacks the operation's scope"),
        ("429", "Over a rate limit, or locked out; see `Retry-After`"),
    ];
    for item in document.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            // An operation any token may use has no scope to lack.
            let security = serde_json::to_value(&operation.security).unwrap_or_default();
            let scoped = security
                .as_array()
                .into_iter()
                .flatten()
                .any(|requirement| {
                    requirement
                        .as_object()
                        .into_iter()
                        .flat_map(|schemes| schemes.values())
                        .any(|scopes| scopes.as_array().is_some_and(|s| !s.is_empty()))
                });
            for (status, description) in guard {
                if status == "403" && !scoped {
                    continue;
                }
                operation
                    .responses
                    .responses
                    .entry(status.into())
                    .or_insert_with(|| error_response(description));
            }
        }
    }
}

/// A response with the error envelope.
fn error_response(description: &str) -> RefOr<Response> {
    let content = ContentBuilder::new()
        .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
            ErrorBody::name(),
        ))))
        .build();
    ResponseBuilder::new()
        .description(description)
        .content("application/json", content)
        .build()
        .into()
}

/// The document as pretty JSON, built once.
pub fn json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| spec().to_pretty_json().unwrap_or_default() + "\n")
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi_document",
    tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API")),
    security(("bearer" = [])),
)]
pub async fn document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(json())
}
