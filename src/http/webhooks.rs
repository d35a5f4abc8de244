//! `POST /webhooks/resend`: the email provider's delivery events, signed with the product's own
//! scheme or Standard Webhooks (see [`crate::webhooks::signature`]).
//!
//! In order: the body is read whole (up to [`WEBHOOK_EVENT_LIMIT`], 413 past it); its signature
//! is checked on those raw bytes, before anything parses them (a refusal is logged and audited as
//! `webhook.refused` with the reason, never the body, and answered with the generic 401); a
//! message seen before is acknowledged (200, `"duplicate": true`) and not processed again, also
//! across a restart; then the event is read. Email events (`email.sent`, `email.delivered`,
//! `email.bounced`, `email.complained`) move the status of the follow-up email they name (by the
//! provider's email id) forward; other types are acknowledged and logged. The route is rate
//! limited as the `webhooks` class by the guard in front of every route.

use std::sync::Arc;

use actix_web::{web, HttpMessage as _, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::error::HttpError;
use super::guarded::ClientIp;
use crate::guard::audit::AuditLog;
use crate::store::audit::AuditEvent;
use crate::store::calls::FollowUpStatus;
use crate::store::{now_ms, Store};
use crate::webhooks::signature::WebhookKeys;
use phone_agent_actors::runtime::metrics::CallMetrics;

/// Largest inbound webhook body accepted: the provider's events are a few KiB.
pub const WEBHOOK_EVENT_LIMIT: usize = 64 * 1024;

/// What the inbound webhook routes share.
pub struct InboundWebhooks {
    /// The configured secrets.
    pub keys: WebhookKeys,
    /// Where refusals are recorded.
    pub audit: Arc<AuditLog>,
    /// Where every webhook is counted, by outcome.
    pub metrics: Arc<CallMetrics>,
}

/// The fields of an event we read; the rest is ignored.
#[derive(Debug, Deserialize)]
struct InboundEvent {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    data: EventData,
}

#[derive(Debug, Default, Deserialize)]
struct EventData {
    email_id: Option<String>,
}

/// `POST /webhooks/resend`.
pub async fn resend(
    request: HttpRequest,
    body: web::Bytes,
    inbound: web::Data<InboundWebhooks>,
    store: web::Data<Store>,
) -> Result<HttpResponse, HttpError> {
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
    let now = now_ms();
    let verified = match inbound.keys.verify(header, &body, now / 1000) {
        Ok(verified) => verified,
        Err(error) => {
            let client = request.extensions().get::<ClientIp>().map(|ip| ip.0);
            inbound.audit.record(AuditEvent {
                at: now,
                kind: "webhook.refused".into(),
                token_id: None,
                client: client.map(|ip| ip.to_string()),
                detail: error.to_string(),
                count: 1,
            });
            inbound.metrics.webhook("in", "refused");
            return Err(HttpError::Unauthorized);
        }
    };
    let scheme = verified.scheme.as_str();
    let event: InboundEvent =
        serde_json::from_slice(&body).map_err(|_| HttpError::malformed_json())?;
    if !store.first_receipt(&verified.message_id, now).await? {
        tracing::info!(scheme, kind = %event.kind, "webhook delivered again: acknowledged, not processed");
        inbound.metrics.webhook("in", "duplicate");
        return Ok(HttpResponse::Ok().json(json!({ "received": true, "duplicate": true })));
    }
    inbound.metrics.webhook("in", "accepted");
    match (FollowUpStatus::of_event(&event.kind), &event.data.email_id) {
        (Some(status), Some(email_id)) => {
            let updated = match store.update_follow_up_status(email_id, status, now).await {
                Ok(updated) => updated,
                Err(error) => {
                    // Not processed: the provider's retry must not find it already received.
                    if let Err(error) = store.forget_receipt(&verified.message_id).await {
                        tracing::error!(%error, "cannot forget a webhook receipt: its retry will be acknowledged unprocessed");
                    }
                    return Err(error.into());
                }
            };
            match updated {
                Some(call_id) => {
                    tracing::info!(scheme, kind = %event.kind, %call_id, "follow-up email status updated")
                }
                None => {
                    tracing::info!(scheme, kind = %event.kind, "email event for no follow-up email we sent, or an older status: acknowledged")
                }
            }
        }
        _ => {
            tracing::info!(scheme, kind = %event.kind, "webhook event of a type we do not act on: acknowledged")
        }
    }
    Ok(HttpResponse::Ok().json(json!({ "received": true })))
}
