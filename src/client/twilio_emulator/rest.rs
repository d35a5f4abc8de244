//! The REST API: the calls resource under `/2010-04-01/Accounts/{AccountSid}/`, answered as
//! strictly as Twilio answers it.
//!
//! - `POST …/Calls.json`: create a call (201 and the call resource, `queued`); its driver starts.
//! - `GET …/Calls/{CallSid}.json`: the call resource.
//! - `POST …/Calls/{CallSid}.json`: update it (hang up, cancel, new `Url`/`Twiml`); 404 (20404)
//!   once the call has ended.
//!
//! Every request is noted; a queued fault answers it first; then HTTP Basic auth is checked
//! (401, 20003); bodies are form-encoded (any other body has no fields). Unknown paths are 404
//! (20404), other methods 405 (20004); errors are Twilio's JSON.

use std::sync::Arc;

use actix_web::http::header::{AUTHORIZATION, CONTENT_TYPE};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde_json::Value;
use tokio::sync::mpsc;

use super::auth::authenticate;
use super::call::{CallMachine, Setup};
use super::clock::Now;
use super::driver;
use super::error::ApiError;
use super::observe::ReceivedRequest;
use super::params;
use super::registry::Registry;
use super::resource::call_json;
use super::settings::EmulatorSettings;
use crate::client::sim::random_sid;
use crate::redact::mask_phone;
use crate::twilio::signature::form_params;

/// What every handler shares.
pub struct Shared {
    /// Calls, requests, faults.
    pub registry: Arc<Registry>,
    /// The emulator's settings.
    pub settings: Arc<EmulatorSettings>,
}

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/2010-04-01/Accounts/{account_sid}/Calls.json")
            .route(web::post().to(create))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/2010-04-01/Accounts/{account_sid}/Calls/{call_sid}.json")
            .route(web::get().to(fetch))
            .route(web::post().to(update))
            .default_service(web::to(method_not_allowed)),
    )
    .default_service(web::to(not_found));
}

type Answer = Result<(StatusCode, Value), ApiError>;

async fn create(request: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    respond(&request, &body, &shared, |form| {
        let settings = &shared.settings;
        let call = params::new_call(form, settings.owned_numbers.as_deref())?;
        let sid = random_sid("CA");
        tracing::info!(
            call_sid = %sid,
            to = %mask_phone(&call.to),
            from = %mask_phone(&call.from),
            "call created"
        );
        let setup = Setup {
            answer: settings.callee.answer,
            ring: settings.callee.ring,
            detection: settings.callee.detection,
        };
        let account = settings.account.account_sid.clone();
        let machine = CallMachine::new(sid.clone(), account, call, setup, Now::read());
        let (actions, pending) = mpsc::unbounded_channel();
        let record = shared.registry.add(machine, actions);
        driver::spawn(sid, shared.registry.clone(), settings.clone(), pending);
        Ok((StatusCode::CREATED, call_json(&record)))
    })
}

async fn fetch(request: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    respond(&request, &body, &shared, |_| {
        let record = shared
            .registry
            .record(call_sid(&request))
            .ok_or_else(|| ApiError::not_found(request.path()))?;
        Ok((StatusCode::OK, call_json(&record)))
    })
}

async fn update(request: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    respond(&request, &body, &shared, |form| {
        let sid = call_sid(&request);
        let not_found = || ApiError::not_found(request.path());
        shared.registry.record(sid).ok_or_else(not_found)?;
        let update = params::update(form)?;
        let record = shared
            .registry
            .update(sid, update, Now::read())
            .and_then(Result::ok)
            .ok_or_else(not_found)?;
        Ok((StatusCode::OK, call_json(&record)))
    })
}

async fn method_not_allowed(
    request: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    respond(&request, &body, &shared, |_| {
        Err(ApiError::method_not_allowed())
    })
}

async fn not_found(
    request: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    respond(&request, &body, &shared, |_| {
        Err(ApiError::not_found(request.path()))
    })
}

fn call_sid(request: &HttpRequest) -> &str {
    request.match_info().get("call_sid").unwrap_or_default()
}

/// Notes the request, answers a queued fault, checks the credentials (on an account's paths),
/// then answers with `handle`'s result.
fn respond(
    request: &HttpRequest,
    body: &[u8],
    shared: &Shared,
    handle: impl FnOnce(&[(String, String)]) -> Answer,
) -> HttpResponse {
    let form = fields(request, body);
    let answer = match shared.registry.take_fault() {
        Some(fault) => Err(fault),
        None => request
            .match_info()
            .get("account_sid")
            .map_or(Ok(()), |account| {
                let authorization = request
                    .headers()
                    .get(AUTHORIZATION)
                    .and_then(|value| value.to_str().ok());
                authenticate(authorization, &shared.settings.account, account)
            })
            .and_then(|()| handle(&form)),
    };
    let response = match answer {
        Ok((status, json)) => HttpResponse::build(status).json(json),
        Err(error) => {
            tracing::debug!(
                code = error.code,
                status = error.status,
                path = request.path(),
                "refused"
            );
            error.error_response()
        }
    };
    shared.registry.received(ReceivedRequest {
        method: request.method().to_string(),
        path: request.path().to_owned(),
        params: form,
        status: response.status().as_u16(),
    });
    response
}

/// The request's fields: the form body of a POST, the query otherwise.
fn fields(request: &HttpRequest, body: &[u8]) -> Vec<(String, String)> {
    if request.method() != Method::POST {
        return form_params(request.query_string().as_bytes());
    }
    let form_encoded = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
    if form_encoded {
        form_params(body)
    } else {
        Vec::new()
    }
}
