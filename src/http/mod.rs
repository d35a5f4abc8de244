//! The actix-web application: routes and shared state.
//!
//! - `POST /twilio/voice`: the voice webhook, answers TwiML ([`twilio`]).
//! - `GET /twilio/media`: the Media Streams WebSocket ([`twilio`], pumps in [`media_socket`]).
//! - `GET /health`: liveness and the live-call count; `GET /ready`: readiness (503 while draining).
//! - `GET /metrics`: per-turn latency histograms and call counters (OpenMetrics text).

pub mod error;
pub mod media_socket;
pub mod twilio;

use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, HttpResponse};
use phone_agent_actors::call::registry::LiveCalls;
use phone_agent_actors::call::CallSettings;
use serde_json::json;

use crate::twilio::stream_token::StreamTokens;
use error::HttpError;

/// Largest voice-webhook body accepted; Twilio's form posts are a few KiB.
const WEBHOOK_BODY_LIMIT: usize = 16 * 1024;

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
}

impl AppState {
    fn live_calls(&self) -> &LiveCalls {
        &self.calls.live_calls
    }
}

/// Registers every route on an app.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let form = web::FormConfig::default()
        .limit(WEBHOOK_BODY_LIMIT)
        .error_handler(|error, _| {
            tracing::info!(%error, "rejected voice webhook body");
            HttpError::BadRequest("invalid form body").into()
        });
    cfg.app_data(form)
        .route("/health", web::get().to(health))
        .route("/ready", web::get().to(ready))
        .route("/metrics", web::get().to(metrics))
        .route("/twilio/voice", web::post().to(twilio::voice))
        .route("/twilio/media", web::get().to(twilio::media));
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
