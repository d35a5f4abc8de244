//! Calls as resources: list, read, place or schedule, cancel and erase. Routes take our id
//! (`call_…`) or Twilio's CallSid. Phone numbers are masked in responses as in logs.

use actix_web::{web, HttpRequest, HttpResponse};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use super::views::{CallDetailView, CallPageView, CallView, ExtractionView, TurnView};
use super::{ApiJson, Authorized, CallsDelete, CallsRead, CallsWrite};
use crate::calls::number::E164;
use crate::calls::placing::CallRequest;
use crate::http::error::{envelope, ErrorBody, HttpError};
use crate::http::AppState;
use crate::store::audit::AuditEvent;
use crate::store::call_list::{CallFilter, CallPage};
use crate::store::calls::Direction;
use crate::store::idempotency::IdempotencyClaim;
use crate::store::status::CallStatus;
use crate::twilio::rest::AmdMode;
use crate::webhooks::target::{check_url, TargetPolicy};

/// The `{id}` of a call's routes: our id (`call_…`) or Twilio's CallSid.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(names("id"), parameter_in = Path)]
pub struct CallId(
    /// Our id (`call_…`) or Twilio's CallSid.
    pub String,
);

/// Most calls in one page.
const MAX_PAGE: i64 = 200;

/// The header that makes `POST /api/calls` safe to retry.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// Longest idempotency key accepted.
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// `GET /api/calls` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Page size, 1 to 200 (default 50).
    limit: Option<i64>,
    /// The last call (id or CallSid) of the previous page.
    before: Option<String>,
    /// Only calls with this status.
    #[param(value_type = Option<CallStatus>)]
    status: Option<String>,
    /// Only `inbound`, `outbound` or `browser` (console softphone) calls.
    #[param(value_type = Option<Direction>)]
    direction: Option<String>,
    /// Only calls created at or after this time (RFC 3339).
    from: Option<String>,
    /// Only calls created before this time (RFC 3339).
    until: Option<String>,
}

/// `POST /api/calls` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceBody {
    /// Whom to call (E.164).
    #[schema(example = "+14155550100")]
    to: String,
    /// The caller id (E.164); `TWILIO_FROM` when absent.
    from: Option<String>,
    /// The agent that talks.
    agent: Option<String>,
    /// The client's own JSON object, kept with the call (`CALL_METADATA_MAX_BYTES`).
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
    /// When to call (RFC 3339); now when absent.
    scheduled_at: Option<String>,
    /// The callee's IANA time zone (calling hours).
    timezone: Option<String>,
    /// Answering-machine detection: `enable` or `detect_message_end`.
    machine_detection: Option<MachineDetection>,
    /// Where this call's events are also posted, signed with the account's secret
    /// (`GET /api/webhooks/signing-secret`); `https` in production, no private addresses.
    #[schema(example = "https://hooks.example.com/calls")]
    webhook_url: Option<String>,
}

/// The answering-machine detection a call is placed with.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum MachineDetection {
    /// Tell a person from a machine.
    Enable,
    /// Also wait for a machine's greeting to end.
    DetectMessageEnd,
}

/// Lists calls, newest first, filtered, a page at a time.
#[utoipa::path(
    get,
    path = "/calls",
    operation_id = "list_calls",
    tag = "calls",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of calls", body = CallPageView),
        (status = 400, description = "A bad filter or cursor", body = ErrorBody),
    ),
    security(("bearer" = ["calls:read"])),
)]
pub async fn list(
    _: Authorized<CallsRead>,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, HttpError> {
    let store = state.records.store();
    let limit = query.limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(HttpError::bad_request("limit: 1 to 200"));
    }
    let filter = CallFilter {
        status: query
            .status
            .as_deref()
            .map(|s| CallStatus::parse(s).ok_or_else(|| HttpError::bad_request("status: unknown")))
            .transpose()?,
        direction: query
            .direction
            .as_deref()
            .map(|d| {
                Direction::parse(d).ok_or_else(|| {
                    HttpError::bad_request("direction: inbound, outbound or browser")
                })
            })
            .transpose()?,
        created_from: time_ms("from", query.from.as_deref())?,
        created_until: time_ms("until", query.until.as_deref())?,
    };
    let cursor = match &query.before {
        None => None,
        Some(id) => {
            let call = store.call(id).await?;
            let call = call.ok_or_else(|| HttpError::bad_request("before: no such call"))?;
            Some((call.id, call.created_at))
        }
    };
    let page = CallPage {
        before: cursor.as_ref().map(|(id, at)| (id.as_str(), *at)),
        limit,
    };
    let calls = store.calls(&filter, page).await?;
    let next = (calls.len() as i64 == limit)
        .then(|| calls.last().map(|c| c.id.clone()))
        .flatten();
    Ok(HttpResponse::Ok().json(CallPageView {
        calls: calls.iter().map(CallView::from).collect(),
        next_before: next,
    }))
}

/// Reads a call with its transcript, extraction and per-turn latencies.
#[utoipa::path(
    get,
    path = "/calls/{id}",
    operation_id = "get_call",
    tag = "calls",
    params(CallId),
    responses(
        (status = 200, description = "The call", body = CallDetailView),
        (status = 404, description = "No such call", body = ErrorBody),
    ),
    security(("bearer" = ["calls:read"])),
)]
pub async fn get(
    _: Authorized<CallsRead>,
    state: web::Data<AppState>,
    id: web::Path<CallId>,
) -> Result<HttpResponse, HttpError> {
    let detail = state.records.store().call_detail(&id.0).await?;
    let detail = detail.ok_or(HttpError::NotFound)?;
    Ok(HttpResponse::Ok().json(CallDetailView {
        call: CallView::from(&detail.call),
        extraction: detail.call.extraction.as_ref().map(ExtractionView::from),
        transcript: detail.transcript.iter().map(TurnView::from).collect(),
    }))
}

/// Places a call now, or schedules it. With an `Idempotency-Key`, the same key within 24 h
/// answers the first answer again and places nothing.
#[utoipa::path(
    post,
    path = "/calls",
    operation_id = "place_call",
    tag = "calls",
    params(
        ("Idempotency-Key" = Option<String>, Header,
            description = "Makes the request safe to retry: 1 to 255 visible characters"),
    ),
    request_body = PlaceBody,
    responses(
        (status = 201, description = "Placed (queued) or scheduled", body = CallView),
        (status = 400, description = "A bad field, named in the message", body = ErrorBody),
        (status = 409, description = "A request with this key is still being processed",
            body = ErrorBody),
        (status = 422, description = "Refused: do-not-call, calling hours, a number Twilio \
            refuses", body = ErrorBody),
        (status = 502, description = "Twilio failed", body = ErrorBody),
        (status = 503, description = "No Twilio account, or Twilio asks to retry later",
            body = ErrorBody),
    ),
    security(("bearer" = ["calls:write"])),
)]
pub async fn place(
    Authorized(principal, _): Authorized<CallsWrite>,
    state: web::Data<AppState>,
    request: HttpRequest,
    body: ApiJson<PlaceBody>,
) -> Result<HttpResponse, HttpError> {
    let key = idempotency_key(&request)?;
    let store = state.records.store();
    let token = principal.token_id.to_string();
    let now = Timestamp::now();
    if let Some(key) = &key {
        match store
            .claim_idempotency_key(&token, key, now.as_millisecond())
            .await?
        {
            IdempotencyClaim::Claimed => {}
            IdempotencyClaim::Pending => {
                return Err(HttpError::Conflict(
                    "a request with this Idempotency-Key is still being processed".into(),
                ))
            }
            IdempotencyClaim::Answered(answer) => {
                let status = actix_web::http::StatusCode::from_u16(answer.status)
                    .map_err(HttpError::internal)?;
                return Ok(HttpResponse::build(status).json(answer.body));
            }
        }
    }
    let answer = match call_request(&state, body.0) {
        Ok(request) => state
            .placer
            .request(request, now)
            .await
            .map_err(HttpError::from),
        Err(error) => Err(error),
    };
    let (status, body) = match &answer {
        Ok(call) => (201, json!(CallView::from(call))),
        Err(error) => {
            let (code, message) = error.public();
            (
                actix_web::ResponseError::status_code(error).as_u16(),
                envelope(code, message, None),
            )
        }
    };
    if let Some(key) = &key {
        store
            .answer_idempotency_key(&token, key, status, &body)
            .await?;
    }
    answer.map(|_| HttpResponse::Created().json(body))
}

/// Cancels a scheduled call: it is not placed.
#[utoipa::path(
    post,
    path = "/calls/{id}/cancel",
    operation_id = "cancel_call",
    tag = "calls",
    params(CallId),
    responses(
        (status = 200, description = "Canceled", body = CallView),
        (status = 404, description = "No such call", body = ErrorBody),
        (status = 409, description = "The call is no longer scheduled", body = ErrorBody),
    ),
    security(("bearer" = ["calls:write"])),
)]
pub async fn cancel(
    _: Authorized<CallsWrite>,
    state: web::Data<AppState>,
    id: web::Path<CallId>,
) -> Result<HttpResponse, HttpError> {
    let store = state.records.store();
    let now = Timestamp::now().as_millisecond();
    if !state
        .records
        .published(store.cancel_scheduled(&id.0, now).await)?
    {
        return Err(match store.call(&id.0).await? {
            None => HttpError::NotFound,
            Some(_) => HttpError::Conflict("only a call still scheduled can be canceled".into()),
        });
    }
    let call = store.call(&id.0).await?.ok_or(HttpError::NotFound)?;
    Ok(HttpResponse::Ok().json(CallView::from(&call)))
}

/// Erases a call's numbers, transcript, extraction and metadata, keeping a tombstone; audited.
#[utoipa::path(
    delete,
    path = "/calls/{id}",
    operation_id = "erase_call",
    tag = "calls",
    params(CallId),
    responses(
        (status = 204, description = "Erased"),
        (status = 404, description = "No such call", body = ErrorBody),
    ),
    security(("bearer" = ["calls:delete"])),
)]
pub async fn erase(
    Authorized(principal, _): Authorized<CallsDelete>,
    state: web::Data<AppState>,
    id: web::Path<CallId>,
) -> Result<HttpResponse, HttpError> {
    let now = Timestamp::now().as_millisecond();
    let audit = AuditEvent {
        at: now,
        kind: "call.erased".into(),
        token_id: Some(principal.token_id.to_string()),
        client: Some(principal.client.to_string()),
        detail: format!("call {} erased", id.0),
        count: 1,
    };
    if !state.records.store().erase_call(&id.0, &audit, now).await? {
        return Err(HttpError::NotFound);
    }
    Ok(HttpResponse::NoContent().finish())
}

/// The call a body asks for, checked.
fn call_request(state: &AppState, body: PlaceBody) -> Result<CallRequest, HttpError> {
    let number = |field: &str, value: &str| {
        E164::parse(value).map_err(|error| HttpError::bad_request(format!("{field}: {error}")))
    };
    let metadata = match body.metadata {
        None => None,
        Some(Value::Object(map)) => {
            let size = serde_json::to_string(&map).map_or(usize::MAX, |text| text.len());
            if size > state.call_metadata_max_bytes {
                return Err(HttpError::bad_request(format!(
                    "metadata: at most {} bytes of JSON",
                    state.call_metadata_max_bytes
                )));
            }
            Some(Value::Object(map))
        }
        Some(_) => return Err(HttpError::bad_request("metadata: a JSON object")),
    };
    if let Some(agent) = &body.agent {
        if !state.agents.iter().any(|known| known == agent) {
            return Err(HttpError::bad_request("agent: unknown agent"));
        }
    }
    Ok(CallRequest {
        to: number("to", &body.to)?,
        from: body
            .from
            .as_deref()
            .map(|f| number("from", f))
            .transpose()?,
        agent: body.agent,
        metadata,
        scheduled_at: body
            .scheduled_at
            .as_deref()
            .map(|at| {
                at.parse::<Timestamp>().map_err(|_| {
                    HttpError::bad_request(
                        "scheduled_at: an RFC 3339 time, such as 2026-01-02T15:04:05Z",
                    )
                })
            })
            .transpose()?,
        timezone: body
            .timezone
            .as_deref()
            .map(|zone| {
                TimeZone::get(zone).map_err(|_| {
                    HttpError::bad_request("timezone: an IANA time zone, such as America/New_York")
                })
            })
            .transpose()?,
        machine_detection: body.machine_detection.map(|mode| match mode {
            MachineDetection::Enable => AmdMode::Enable,
            MachineDetection::DetectMessageEnd => AmdMode::DetectMessageEnd,
        }),
        webhook_url: body
            .webhook_url
            .as_deref()
            .map(|url| webhook_target("webhook_url", url, state.webhook_policy))
            .transpose()?,
    })
}

/// A client's webhook URL in the body's `field`, checked against SSRF (again at each delivery,
/// after resolving it).
pub fn webhook_target(field: &str, url: &str, policy: TargetPolicy) -> Result<String, HttpError> {
    let target = check_url(url, policy)
        .map_err(|error| HttpError::bad_request(format!("{field}: {error}")))?;
    Ok(target.as_str().to_owned())
}

/// The request's `Idempotency-Key`, if it sends one.
fn idempotency_key(request: &HttpRequest) -> Result<Option<String>, HttpError> {
    let Some(value) = request.headers().get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|key| (1..=MAX_IDEMPOTENCY_KEY).contains(&key.len()))
        .ok_or_else(|| HttpError::bad_request("Idempotency-Key: 1 to 255 visible characters"))?;
    Ok(Some(key.to_owned()))
}

/// An RFC 3339 time of a query parameter, in Unix ms.
fn time_ms(name: &str, value: Option<&str>) -> Result<Option<i64>, HttpError> {
    value
        .map(|text| {
            text.parse::<Timestamp>()
                .map(Timestamp::as_millisecond)
                .map_err(|_| HttpError::bad_request(format!("{name}: an RFC 3339 time")))
        })
        .transpose()
}
