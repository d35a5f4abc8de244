//! Reading call records. Phone numbers are masked in responses as in logs.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::{Authorized, CallsRead};
use crate::http::error::HttpError;
use crate::redact::mask_phone;
use crate::store::call_list::{CallFilter, CallPage};
use crate::store::calls::Call;
use crate::store::Store;

/// Most calls in one page.
const MAX_PAGE: i64 = 200;

/// `GET /api/calls` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Page size, 1 to 200 (default 50).
    limit: Option<i64>,
    /// The last call (id or CallSid) of the previous page.
    before: Option<String>,
}

fn public(call: &Call) -> serde_json::Value {
    json!({
        "call_sid": call.call_sid,
        "direction": call.direction,
        "from": call.from.as_deref().map(mask_phone),
        "to": call.to.as_deref().map(mask_phone),
        "status": call.status,
        "created_at": call.created_at,
        "updated_at": call.updated_at,
    })
}

/// `GET /api/calls?limit=&before=`: calls, newest first.
pub async fn list(
    _: Authorized<CallsRead>,
    store: web::Data<Store>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, HttpError> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(HttpError::bad_request("limit: 1 to 200"));
    }
    let cursor = match &query.before {
        None => None,
        Some(sid) => {
            let call = store.call(sid).await?;
            let call = call.ok_or_else(|| HttpError::bad_request("before: no such call"))?;
            Some((call.id, call.created_at))
        }
    };
    let page = CallPage {
        before: cursor.as_ref().map(|(id, at)| (id.as_str(), *at)),
        limit,
    };
    let calls = store.calls(&CallFilter::default(), page).await?;
    let next = (calls.len() as i64 == limit)
        .then(|| calls.last().map(|c| c.id.clone()))
        .flatten();
    Ok(HttpResponse::Ok().json(json!({
        "calls": calls.iter().map(public).collect::<Vec<_>>(),
        "next_before": next,
    })))
}

/// `GET /api/calls/{call_sid}`.
pub async fn get(
    _: Authorized<CallsRead>,
    store: web::Data<Store>,
    call_sid: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    let call = store.call(&call_sid).await?;
    let call = call.ok_or(HttpError::NotFound)?;
    Ok(HttpResponse::Ok().json(public(&call)))
}
