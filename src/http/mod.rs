//! The actix-web application: middleware, routes and shared state.
//!
//! Every request passes [`frame::frame`] (request id, security headers, error envelope), then
//! [`guarded::guard`] (rate limits; bearer tokens on `/api/`); `/twilio/` also passes
//! [`guarded::twilio_signature`].
//!
//! - `POST /twilio/voice`: the voice webhook, answers TwiML ([`twilio`]).
//! - `POST /twilio/status`: call status and machine-detection callbacks ([`twilio`]).
//! - `GET /twilio/media`: the Media Streams WebSocket ([`twilio`], pumps in [`media_socket`]).
//! - `POST /webhooks/resend`: the email provider's signed delivery events ([`webhooks`]).
//! - `/api/…`: the bearer-token API ([`api`]).
//! - `/console/`: the browser console, a client of that API ([`console`]).
//! - `GET /softphone/media`: the console softphone's Media Streams WebSocket ([`api::softphone`]).
//! - `GET /health`: liveness and the live-call count; `GET /ready`: readiness (503 while draining).
//! - `GET /metrics`: per-turn latency histograms and call counters (OpenMetrics text).

pub mod api;
pub mod body_deadline;
pub mod console;
pub mod error;
pub mod frame;
pub mod guarded;
pub mod media_socket;
pub mod sse;
pub mod twilio;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use actix_web::middleware::from_fn;
use actix_web::{web, HttpResponse};
use phone_agent_actors::call::CallSettings;
use phone_agent_actors::runtime::registry::LiveCalls;
use serde_json::json;

use crate::calls::placing::Placer;
use crate::calls::records::CallRecords;
use crate::twilio::stream_token::StreamTokens;
use crate::webhooks::target::TargetPolicy;
use error::HttpError;

/// Largest Twilio webhook body accepted; Twilio's form posts are a few KiB.
pub const WEBHOOK_BODY_LIMIT: usize = 16 * 1024;

/// What handlers share.
pub struct AppState {
    /// Host Twilio reaches us at.
    pub public_host: String,
    /// Minted stream tokens.
    pub tokens: Arc<StreamTokens>,
    /// Everything a new call needs.
    pub calls: CallSettings,
    /// Socket write timeout.
    pub media_write_timeout: Duration,
    /// Call records and their live feed.
    pub records: CallRecords,
    /// Places and changes calls through Twilio.
    pub placer: Placer,
    /// The agents calls may ask for, by name.
    pub agents: Vec<String>,
    /// Largest `metadata` a call may carry, in bytes of JSON.
    pub call_metadata_max_bytes: usize,
    /// Where outbound webhooks may go.
    pub webhook_policy: TargetPolicy,
    /// Most calls carried at once (`MAX_CALLS`); `None`: no limit.
    pub max_calls: Option<usize>,
    /// Past this lateness of the calls' inbound audio new calls are refused
    /// (`ADMISSION_LAG_MS`); `None`: never.
    pub admission_lag: Option<Duration>,
}

impl AppState {
    fn live_calls(&self) -> &LiveCalls {
        &self.calls.live_calls
    }
}

/// Registers every route and the guard middleware (the app wraps [`frame::frame`] outermost).
pub fn configure(cfg: &mut web::ServiceConfig) {
    let form = web::FormConfig::default()
        .limit(WEBHOOK_BODY_LIMIT)
        .error_handler(|error, _| HttpError::from(error).into());
    cfg.service(
        web::scope("")
            .wrap(from_fn(guarded::guard))
            .app_data(form)
            .service(web::resource("/health").get(health))
            .service(web::resource("/ready").get(ready))
            .service(web::resource("/metrics").get(metrics))
            .service(
                web::scope("/twilio")
                    .wrap(from_fn(guarded::twilio_signature))
                    .service(web::resource("/voice").post(twilio::voice))
                    .service(web::resource("/status").post(twilio::status))
                    .service(web::resource("/media").get(twilio::media)),
            )
            .service(web::resource(api::softphone::MEDIA_PATH).get(api::softphone::media))
            .service(
                web::scope("/webhooks")
                    .app_data(web::PayloadConfig::new(webhooks::WEBHOOK_EVENT_LIMIT))
                    .service(web::resource("/resend").post(webhooks::resend)),
            )
            .configure(api::configure)
            .configure(console::configure)
            .default_service(web::to(not_found)),
    );
}

async fn not_found() -> Result<HttpResponse, HttpError> {
    Err(HttpError::NotFound)
}

async fn health(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok", "live_calls": state.live_calls().count() }))
}

/// OpenMetrics text; no phone numbers or call ids, only aggregates.
async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.calls.metrics.render())
}

async fn ready(state: web::Data<AppState>) -> HttpResponse {
    if state.live_calls().is_draining() {
        HttpResponse::ServiceUnavailable().json(json!({ "ready": false }))
    } else {
        HttpResponse::Ok().json(json!({ "ready": true }))
    }
}
