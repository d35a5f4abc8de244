//! The outbox of outbound webhooks and follow-up emails: what a call change tells the client's
//! endpoints is written in the transaction of that change, so no change is ever without its
//! messages, and a dispatcher delivers them afterwards, at least once, each with the id it was
//! given here.
//!
//! - **Enqueue** ([`Store::insert_event`] calls it): a call event of interest becomes a message
//!   (`call.started`, `call.turn`, …) with its payload frozen now (the call as it is in this
//!   transaction), one row per endpoint that wants it and one for the call's own `webhook_url`;
//!   `call.completed` of a call whose caller agreed to be contacted again also gets a follow-up
//!   email row. Payloads hold words and numbers' owners, so they are sealed, and erasing the
//!   call clears them (see `erasure`).
//! - **Claim**: a dispatcher takes due rows with a lease (`claimed_until`); while the lease
//!   runs no other server takes them. A server that dies mid-delivery leaves the lease to run out
//!   and the row is sent again with the same id (receivers deduplicate on `webhook-id`). An
//!   attempt's outcome is recorded only under the claim it was made in (its server and its
//!   `claimed_until`), so a late answer never overwrites a newer attempt's.
//! - **Finish**: delivered, retried at a later time, dead (its retry window ran out), or skipped
//!   (an email nobody can send); a dead or delivered row can be replayed.

use jiff::Timestamp;
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row as _};

use super::call_events::EventKind;
use super::calls::{context, Call};
use super::ids::random_id;
use super::status::CallStatus;
use super::{Store, StoreError};
use crate::redact::mask_phone;

/// How a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// A signed HTTP POST (Standard Webhooks).
    Webhook,
    /// The call's follow-up email, through the email provider.
    Email,
}

/// Where a message is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting for its next attempt.
    Pending,
    /// The receiver took it.
    Delivered,
    /// Every attempt failed until its retry window ran out; it can be replayed.
    Dead,
    /// Not sent: nothing to send it with (an email without a provider or an address).
    Skipped,
    /// The call was erased before it was delivered; its payload went with it.
    Erased,
}

impl DeliveryState {
    const ALL: [DeliveryState; 5] = [
        DeliveryState::Pending,
        DeliveryState::Delivered,
        DeliveryState::Dead,
        DeliveryState::Skipped,
        DeliveryState::Erased,
    ];

    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Dead => "dead",
            DeliveryState::Skipped => "skipped",
            DeliveryState::Erased => "erased",
        }
    }

    /// The state of a name, if it is one.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == name)
    }
}

/// A message and how its delivery went (no payload).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Delivery {
    /// `msg_…`: the `webhook-id`, the same at every attempt.
    pub id: String,
    /// Webhook or email.
    pub channel: Channel,
    /// The endpoint it goes to; `None`: the call's own webhook URL (or an email).
    pub endpoint_id: Option<String>,
    /// The call it is about.
    pub call_id: String,
    /// `call.started`, …
    pub event_type: String,
    /// Where it is.
    pub state: DeliveryState,
    /// Attempts made since it was created or replayed.
    pub attempts: i64,
    /// Created, Unix ms.
    pub created_at: i64,
    /// The next attempt, Unix ms (pending only).
    pub next_attempt_at: Option<i64>,
    /// The last attempt, Unix ms.
    pub last_attempt_at: Option<i64>,
    /// The HTTP status of the last attempt; `None`: no answer.
    pub last_status: Option<i64>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// Delivered, Unix ms.
    pub delivered_at: Option<i64>,
}

/// A claimed message, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedDelivery {
    /// The message.
    pub delivery: Delivery,
    /// Where to post it (webhooks).
    pub url: Option<String>,
    /// The JSON to send; `None` if the call was erased.
    pub payload: Option<String>,
    /// Retries end a window after this, Unix ms.
    pub window_start: i64,
    /// The claim's end, Unix ms: the attempt is recorded only while the claim holds.
    pub claimed_until: i64,
}

/// A due message and whom it goes to, before it is claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueDelivery {
    /// Its id.
    pub id: String,
    /// Its receiver: the endpoint's id, `host:…` for a call's own URL (a keyed hash of its host
    /// and port), or `email`.
    pub receiver: String,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Taken, with this status.
    Delivered {
        /// HTTP status (0 for an email).
        status: i64,
    },
    /// Failed; try again at `retry_at`, or never (`None`: dead).
    Failed {
        /// HTTP status, if any answer came.
        status: Option<i64>,
        /// What went wrong, for the client (no payload, no secret).
        error: String,
        /// The next attempt, Unix ms; `None`: the window ran out.
        retry_at: Option<i64>,
    },
    /// Not sent, and never will be.
    Skipped {
        /// Why.
        reason: String,
    },
}

/// Which messages to list.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    /// Only those to this endpoint.
    pub endpoint_id: Option<String>,
    /// Only those about this call (by id).
    pub call_id: Option<String>,
    /// Only those in this state.
    pub state: Option<DeliveryState>,
}

fn url_context(id: &str) -> String {
    format!("webhook_deliveries.url:{id}")
}

fn payload_context(id: &str) -> String {
    format!("webhook_deliveries.payload:{id}")
}

/// The message type a call event makes, if any, given the call after the change.
fn message_type(kind: EventKind, data: &Value, call: &Call) -> Option<&'static str> {
    match kind {
        EventKind::Status => match CallStatus::parse(data["status"].as_str()?)? {
            CallStatus::Scheduled => Some("call.scheduled"),
            CallStatus::InProgress => Some("call.started"),
            CallStatus::Failed
            | CallStatus::Busy
            | CallStatus::NoAnswer
            | CallStatus::Canceled
            | CallStatus::Missed => Some("call.failed"),
            // Twilio's end of an answered call whose conversation's end was never recorded (the
            // server died mid-call, or the media stream never came).
            CallStatus::Completed => (call.answered_at.is_some() && call.end_reason.is_none())
                .then_some("call.completed"),
            CallStatus::Queued | CallStatus::Ringing => None,
        },
        EventKind::Turn => Some("call.turn"),
        EventKind::Transferred => Some("call.transferred"),
        // The conversation's end completes a call that was answered (an unanswered one failed,
        // and its status said so): by then its extraction and every turn are stored. Unless
        // Twilio's `completed` came first and completed it (both lock the call's row: exactly one
        // of the two sees the other).
        EventKind::End => (call.answered_at.is_some() && call.status != CallStatus::Completed)
            .then_some("call.completed"),
        EventKind::AnsweredBy | EventKind::BargeIn => None,
    }
}

/// The call as messages show it: numbers masked, as in the API and logs.
fn call_summary(call: &Call) -> Value {
    json!({
        "id": call.id,
        "call_sid": call.call_sid,
        "direction": call.direction,
        "from": call.from.as_deref().map(mask_phone),
        "to": call.to.as_deref().map(mask_phone),
        "status": call.status,
        "agent": call.agent,
        "metadata": call.metadata,
        "answered_by": call.answered_by,
        "end_reason": call.end_reason,
        "started_at": call.started_at,
        "answered_at": call.answered_at,
        "ended_at": call.ended_at,
        "duration_ms": call.duration_ms,
        "scheduled_at": call.scheduled_at,
    })
}

/// The median and the largest of each reply stage the agent's turns measured.
fn latency_summary(rows: &[AnyRow]) -> Result<Value, StoreError> {
    let mut summary = serde_json::Map::new();
    summary.insert("replies".into(), json!(rows.len()));
    for stage in [
        "end_of_turn_ms",
        "first_text_ms",
        "first_audio_ms",
        "first_heard_ms",
    ] {
        let mut values = rows
            .iter()
            .map(|row| row.try_get::<Option<i64>, _>(stage))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .flatten()
            .collect::<Vec<_>>();
        values.sort_unstable();
        if let (Some(median), Some(max)) =
            (values.get((values.len().max(1) - 1) / 2), values.last())
        {
            summary.insert(stage.into(), json!({ "p50": median, "max": max }));
        }
    }
    Ok(Value::Object(summary))
}

impl Store {
    /// Writes the messages the event `seq` of `call_id` makes, in the change's transaction
    /// (which holds the call's row).
    pub(super) async fn enqueue_messages(
        &self,
        connection: &mut AnyConnection,
        call_id: &str,
        seq: i64,
        kind: EventKind,
        data: &Value,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        if matches!(kind, EventKind::AnsweredBy | EventKind::BargeIn) {
            return Ok(());
        }
        // One statement when no endpoint is registered (the common case, once per call event).
        let row = sqlx::query(
            "SELECT c.*, (SELECT COUNT(*) FROM webhook_endpoints) AS endpoint_count \
             FROM calls c WHERE c.id = $1",
        )
        .bind(call_id)
        .fetch_one(&mut *connection)
        .await?;
        let endpoints = if row.try_get::<i64, _>("endpoint_count")? > 0 {
            sqlx::query("SELECT * FROM webhook_endpoints")
                .fetch_all(&mut *connection)
                .await?
                .iter()
                .map(|row| self.endpoint_from_row(row))
                .collect::<Result<Vec<_>, _>>()?
        } else {
            Vec::new()
        };
        let own_url = self.open_optional(
            row.try_get("webhook_url")?,
            &context("webhook_url", call_id),
        )?;
        // Only the end of a call can make a follow-up email: without receivers, nothing to do
        // (and the call's sealed columns stay closed).
        let ending = matches!(kind, EventKind::End | EventKind::Status);
        if endpoints.is_empty() && own_url.is_none() && !ending {
            return Ok(());
        }
        let call = self.call_from_row(&row)?;
        // An erased call tells nobody anything more (a late callback still changes its status).
        if call.erased_at.is_some() {
            return Ok(());
        }
        let Some(message_type) = message_type(kind, data, &call) else {
            return Ok(());
        };
        let endpoints: Vec<_> = endpoints
            .into_iter()
            .filter(|endpoint| endpoint.wants(message_type))
            .collect();
        let follow_up = message_type == "call.completed"
            && call
                .extraction
                .as_ref()
                .is_some_and(|extraction| extraction.consent_to_follow_up == Some(true));
        if endpoints.is_empty() && own_url.is_none() && !follow_up {
            return Ok(());
        }
        let mut event = json!({ "call": call_summary(&call), "seq": seq });
        match message_type {
            "call.turn" => event["turn"] = data.clone(),
            "call.transferred" => event["transferred_to"] = data["to"].clone(),
            "call.completed" => {
                let turns = sqlx::query(
                    "SELECT * FROM call_turns WHERE call_id = $1 AND speaker = 'agent'",
                )
                .bind(call_id)
                .fetch_all(&mut *connection)
                .await?;
                let mut extraction = call.extraction.clone();
                if let Some(extraction) = &mut extraction {
                    extraction.phone = extraction.phone.as_deref().map(mask_phone);
                }
                event["extraction"] = json!(extraction);
                event["latency"] = latency_summary(&turns)?;
            }
            _ => {}
        }
        let timestamp = Timestamp::from_millisecond(now_ms).unwrap_or(Timestamp::UNIX_EPOCH);
        let payload = json!({
            "type": message_type,
            "timestamp": timestamp.to_string(),
            "data": event,
        })
        .to_string();
        let message = |channel, endpoint_id, url, receiver| NewMessage {
            channel,
            endpoint_id,
            url,
            receiver,
            call_id,
            seq,
            message_type,
            payload: &payload,
        };
        for endpoint in &endpoints {
            let id = endpoint.id.as_str();
            let new = message(
                Channel::Webhook,
                Some(id),
                Some(&endpoint.url),
                id.to_owned(),
            );
            self.insert_message(connection, &new, now_ms).await?;
        }
        if let Some(url) = &own_url {
            let new = message(Channel::Webhook, None, Some(url), self.url_receiver(url));
            self.insert_message(connection, &new, now_ms).await?;
        }
        if follow_up {
            let new = message(Channel::Email, None, None, EMAIL_RECEIVER.to_owned());
            self.insert_message(connection, &new, now_ms).await?;
        }
        Ok(())
    }

    /// The receiver of messages to a call's own URL: its host and port, whichever call names
    /// them, so the limit of messages in flight holds per server of the client's; as a keyed
    /// hash, so the column does not show the URL.
    fn url_receiver(&self, url: &str) -> String {
        let authority = url
            .parse::<actix_web::http::Uri>()
            .ok()
            .and_then(|uri| uri.authority().map(|a| a.as_str().to_ascii_lowercase()))
            .unwrap_or_else(|| url.to_owned());
        format!("host:{}", &self.key.lookup_hash(&authority)[..24])
    }

    /// Gives pending messages to a call's own URL the current key's hash of their host (after
    /// a new data key: `phone-agent rekey`); how many changed.
    pub(super) async fn rekey_receivers(&self) -> Result<u64, StoreError> {
        let mut moved = 0;
        let mut after = String::new();
        loop {
            let rows = sqlx::query(
                "SELECT id, receiver, url FROM webhook_deliveries \
                 WHERE state = 'pending' AND receiver LIKE 'host:%' AND url IS NOT NULL \
                 AND id > $1 ORDER BY id LIMIT 500",
            )
            .bind(&after)
            .fetch_all(&self.pool)
            .await?;
            let Some(last) = rows.last() else {
                return Ok(moved);
            };
            after = last.try_get("id")?;
            for row in &rows {
                let id: String = row.try_get("id")?;
                let old: String = row.try_get("receiver")?;
                let url = self.open_sealed(&row.try_get::<String, _>("url")?, &url_context(&id))?;
                let new = self.url_receiver(&url);
                if new != old {
                    moved += sqlx::query(
                        "UPDATE webhook_deliveries SET receiver = $1 WHERE id = $2 AND receiver = $3",
                    )
                    .bind(new)
                    .bind(&id)
                    .bind(old)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                }
            }
        }
    }

    async fn insert_message(
        &self,
        connection: &mut AnyConnection,
        message: &NewMessage<'_>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let id = random_id("msg_")?;
        let url = message
            .url
            .map(|url| self.seal(url, &url_context(&id)))
            .transpose()?;
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, channel, endpoint_id, receiver, call_id, event_seq, \
             type, url, payload, state, created_at, window_start, next_attempt_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, $10, $10)",
        )
        .bind(&id)
        .bind(message.channel.as_str())
        .bind(message.endpoint_id)
        .bind(&message.receiver)
        .bind(message.call_id)
        .bind(message.seq)
        .bind(message.message_type)
        .bind(url)
        .bind(self.seal(message.payload, &payload_context(&id))?)
        .bind(now_ms)
        .execute(connection)
        .await?;
        Ok(())
    }

    /// Due messages (pending, their time come, not claimed by a live lease), oldest first, at
    /// most `limit`, leaving out those to the receivers named in `busy` (see
    /// [`DueDelivery::receiver`]).
    pub async fn due_deliveries(
        &self,
        now_ms: i64,
        limit: i64,
        busy: &[String],
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let mut sql = "SELECT id, receiver FROM webhook_deliveries \
             WHERE state = 'pending' AND next_attempt_at <= $1 \
             AND (claimed_until IS NULL OR claimed_until < $1)"
            .to_owned();
        if !busy.is_empty() {
            sql.push_str(&format!(
                " AND receiver NOT IN ({})",
                placeholders(3, busy.len())
            ));
        }
        sql.push_str(" ORDER BY next_attempt_at LIMIT $2");
        let mut query = sqlx::query(&sql).bind(now_ms).bind(limit);
        for receiver in busy {
            query = query.bind(receiver);
        }
        query
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| {
                Ok(DueDelivery {
                    id: row.try_get("id")?,
                    receiver: row.try_get("receiver")?,
                })
            })
            .collect()
    }

    /// Claims the due messages among `ids` for `instance` until `now_ms + lease_ms`, in one
    /// statement: those claimed (not those another server claimed first, or no longer due). A
    /// claimed message whose sealed columns do not open (another data key?) is dead at once,
    /// rather than claimed again and again.
    pub async fn claim_deliveries(
        &self,
        ids: &[&str],
        instance: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "UPDATE webhook_deliveries SET claimed_by = $1, claimed_until = $2 \
             WHERE id IN ({}) AND state = 'pending' AND next_attempt_at <= $3 \
             AND (claimed_until IS NULL OR claimed_until < $3) RETURNING *",
            placeholders(4, ids.len())
        );
        let claimed_until = now_ms + lease_ms;
        let mut query = sqlx::query(&sql)
            .bind(instance)
            .bind(claimed_until)
            .bind(now_ms);
        for id in ids {
            query = query.bind(*id);
        }
        let mut claimed = Vec::new();
        for row in query.fetch_all(&self.pool).await? {
            let delivery = delivery_from_row(&row)?;
            let id = delivery.id.clone();
            let opened = (|| {
                Ok::<_, StoreError>((
                    self.open_optional(row.try_get("url")?, &url_context(&id))?,
                    self.open_optional(row.try_get("payload")?, &payload_context(&id))?,
                ))
            })();
            match opened {
                Ok((url, payload)) => claimed.push(ClaimedDelivery {
                    url,
                    payload,
                    window_start: row.try_get("window_start")?,
                    claimed_until,
                    delivery,
                }),
                Err(error) => {
                    tracing::error!(delivery = %id, %error, "an outbound message does not open: dead");
                    let dead = Attempt::Failed {
                        status: None,
                        error: "its sealed content does not open".into(),
                        retry_at: None,
                    };
                    self.finish_attempt(&id, instance, claimed_until, &dead, now_ms)
                        .await?;
                }
            }
        }
        Ok(claimed)
    }

    /// Records how the attempt on a message claimed by `instance` until `claimed_until` ended;
    /// false if that claim was lost (its lease ran out and a server, this one included, claimed
    /// it again).
    pub async fn finish_attempt(
        &self,
        id: &str,
        instance: &str,
        claimed_until: i64,
        attempt: &Attempt,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let (state, status, error, next, delivered) = match attempt {
            Attempt::Delivered { status } => (
                DeliveryState::Delivered,
                Some(*status),
                None,
                None,
                Some(now_ms),
            ),
            Attempt::Failed {
                status,
                error,
                retry_at: Some(at),
            } => (
                DeliveryState::Pending,
                *status,
                Some(error),
                Some(*at),
                None,
            ),
            Attempt::Failed {
                status,
                error,
                retry_at: None,
            } => (DeliveryState::Dead, *status, Some(error), None, None),
            Attempt::Skipped { reason } => (DeliveryState::Skipped, None, Some(reason), None, None),
        };
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET state = $1, attempts = attempts + 1, \
             last_attempt_at = $2, last_status = $3, last_error = $4, \
             next_attempt_at = COALESCE($5, next_attempt_at), delivered_at = $6, \
             claimed_by = NULL, claimed_until = NULL \
             WHERE id = $7 AND claimed_by = $8 AND claimed_until = $9 AND state = 'pending'",
        )
        .bind(state.as_str())
        .bind(now_ms)
        .bind(status)
        .bind(error)
        .bind(next)
        .bind(delivered)
        .bind(id)
        .bind(instance)
        .bind(claimed_until)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Messages matching `filter`, newest first, at most `limit`, older than the message
    /// `before` when given.
    pub async fn deliveries(
        &self,
        filter: &DeliveryFilter,
        before: Option<&Delivery>,
        limit: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        let (before_at, before_id) =
            before.map_or((None, None), |d| (Some(d.created_at), Some(d.id.clone())));
        sqlx::query(
            "SELECT * FROM webhook_deliveries WHERE ($1 IS NULL OR endpoint_id = $1) \
             AND ($2 IS NULL OR call_id = $2) AND ($3 IS NULL OR state = $3) \
             AND ($4 IS NULL OR created_at < $4 OR (created_at = $4 AND id < $5)) \
             ORDER BY created_at DESC, id DESC LIMIT $6",
        )
        .bind(filter.endpoint_id.as_deref())
        .bind(filter.call_id.as_deref())
        .bind(filter.state.map(DeliveryState::as_str))
        .bind(before_at)
        .bind(before_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(delivery_from_row)
        .collect()
    }

    /// One message.
    pub async fn delivery(&self, id: &str) -> Result<Option<Delivery>, StoreError> {
        sqlx::query("SELECT * FROM webhook_deliveries WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(delivery_from_row)
            .transpose()
    }

    /// Sends a delivered or dead message again, now, with the same id and payload and a new
    /// retry window; the message, or `None` if there is none that can be replayed (pending,
    /// skipped, erased).
    pub async fn replay_delivery(
        &self,
        id: &str,
        now_ms: i64,
    ) -> Result<Option<Delivery>, StoreError> {
        sqlx::query(
            "UPDATE webhook_deliveries SET state = 'pending', attempts = 0, window_start = $1, \
             next_attempt_at = $1, claimed_by = NULL, claimed_until = NULL, delivered_at = NULL \
             WHERE id = $2 AND state IN ('delivered', 'dead') AND payload IS NOT NULL \
             RETURNING *",
        )
        .bind(now_ms)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(delivery_from_row)
        .transpose()
    }
}

/// The receiver of every follow-up email.
const EMAIL_RECEIVER: &str = "email";

/// `$first, $first+1, …`: `n` numbered placeholders, for an `IN (…)` list.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A message to write.
struct NewMessage<'a> {
    channel: Channel,
    endpoint_id: Option<&'a str>,
    url: Option<&'a str>,
    receiver: String,
    call_id: &'a str,
    seq: i64,
    message_type: &'static str,
    payload: &'a str,
}

impl Channel {
    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Webhook => "webhook",
            Channel::Email => "email",
        }
    }
}

fn delivery_from_row(row: &AnyRow) -> Result<Delivery, StoreError> {
    let channel = match row.try_get::<String, _>("channel")?.as_str() {
        "webhook" => Channel::Webhook,
        "email" => Channel::Email,
        _ => return Err(StoreError::Unexpected("webhook_deliveries.channel")),
    };
    let state: String = row.try_get("state")?;
    let state =
        DeliveryState::parse(&state).ok_or(StoreError::Unexpected("webhook_deliveries.state"))?;
    Ok(Delivery {
        id: row.try_get("id")?,
        channel,
        endpoint_id: row.try_get("endpoint_id")?,
        call_id: row.try_get("call_id")?,
        event_type: row.try_get("type")?,
        state,
        attempts: row.try_get("attempts")?,
        created_at: row.try_get("created_at")?,
        next_attempt_at: (state == DeliveryState::Pending)
            .then(|| row.try_get("next_attempt_at"))
            .transpose()?,
        last_attempt_at: row.try_get("last_attempt_at")?,
        last_status: row.try_get("last_status")?,
        last_error: row.try_get("last_error")?,
        delivered_at: row.try_get("delivered_at")?,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::store::calls::testing::{insert, scheduled};
    use crate::store::testing::{erasure_audit, sqlite_store};
    use crate::store::transcripts::testing::answered_with_a_reply;
    use phone_agent_actors::engines::Extraction;

    const HOOK: &str = "https://hooks.example.com/calls";

    /// A scheduled call with its own webhook URL, answered, with a question and a reply.
    async fn answered_call(store: &Store) -> String {
        let mut call = scheduled(1_000);
        call.webhook_url = Some(HOOK.into());
        answered_with_a_reply(store, &call).await
    }

    /// Claims one message, as a dispatcher does.
    async fn claim(store: &Store, id: &str, instance: &str, now: i64) -> Option<ClaimedDelivery> {
        store
            .claim_deliveries(&[id], instance, now, 500)
            .await
            .unwrap()
            .pop()
    }

    async fn all(store: &Store) -> Vec<Delivery> {
        let mut all = store
            .deliveries(&DeliveryFilter::default(), None, 100)
            .await
            .unwrap();
        all.reverse();
        all
    }

    #[actix_rt::test]
    async fn call_changes_enqueue_their_messages_with_frozen_sealed_payloads() {
        let (store, _dir) = sqlite_store().await;
        let (endpoint, _) = store
            .create_endpoint(HOOK, &["call.completed".into()], None, 50)
            .await
            .unwrap();
        let id = answered_call(&store).await;
        let consent = Extraction {
            intent: Some("book_appointment".into()),
            phone: Some("+14155550177".into()),
            consent_to_follow_up: Some(true),
            ..Extraction::default()
        };
        store.set_extraction(&id, &consent, 600).await.unwrap();
        store.record_end(&id, "agent_ended", 700).await.unwrap();

        let mut deliveries = all(&store).await;
        // Messages of one event are written in one instant, in no particular order.
        deliveries.sort_by_key(|d| (d.created_at, d.channel.as_str(), d.endpoint_id.clone()));
        let kinds: Vec<(&str, Channel, Option<&str>)> = deliveries
            .iter()
            .map(|d| (d.event_type.as_str(), d.channel, d.endpoint_id.as_deref()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("call.scheduled", Channel::Webhook, None),
                ("call.started", Channel::Webhook, None),
                ("call.turn", Channel::Webhook, None),
                ("call.turn", Channel::Webhook, None),
                ("call.completed", Channel::Email, None),
                ("call.completed", Channel::Webhook, None),
                (
                    "call.completed",
                    Channel::Webhook,
                    Some(endpoint.id.as_str())
                ),
            ]
        );
        assert!(deliveries.iter().all(|d| d.state == DeliveryState::Pending));

        let completed = &deliveries[6];
        let claimed = claim(&store, &completed.id, "a", 700).await.unwrap();
        assert_eq!(claimed.url.as_deref(), Some(HOOK));
        let message: Value = serde_json::from_str(claimed.payload.as_deref().unwrap()).unwrap();
        assert_eq!(message["type"], "call.completed");
        assert_eq!(message["timestamp"], "1970-01-01T00:00:00.7Z");
        let data = &message["data"];
        assert_eq!(data["call"]["id"], json!(id));
        assert_eq!(data["call"]["to"], "+1******0123", "numbers masked");
        assert_eq!(data["call"]["end_reason"], "agent_ended");
        assert_eq!(data["extraction"]["intent"], "book_appointment");
        assert_eq!(data["extraction"]["phone"], "+1******0177", "masked too");
        assert_eq!(data["latency"]["replies"], 1);
        assert!(data["latency"]["first_audio_ms"]["p50"].is_i64(), "{data}");

        let stored: Vec<String> = sqlx::query_scalar("SELECT payload FROM webhook_deliveries")
            .fetch_all(&store.pool)
            .await
            .unwrap();
        assert!(stored
            .iter()
            .all(|p| p.starts_with("v2.") && !p.contains("prices")));
    }

    #[actix_rt::test]
    async fn without_receivers_nothing_is_enqueued_and_unanswered_calls_fail() {
        let (store, _dir) = sqlite_store().await;
        let id = insert(&store, &scheduled(1_000), 100).await;
        store
            .apply_status(&id, CallStatus::InProgress, None, 200)
            .await
            .unwrap();
        assert!(all(&store).await.is_empty());

        store.create_endpoint(HOOK, &[], None, 300).await.unwrap();
        let unanswered = insert(&store, &scheduled(1_000), 400).await;
        store
            .apply_status(&unanswered, CallStatus::NoAnswer, None, 500)
            .await
            .unwrap();
        store
            .record_end(&unanswered, "no_answer", 600)
            .await
            .unwrap();
        let kinds: Vec<String> = all(&store)
            .await
            .into_iter()
            .map(|d| d.event_type)
            .collect();
        assert_eq!(
            kinds,
            ["call.scheduled", "call.failed"],
            "no completion without an answer"
        );
    }

    #[actix_rt::test]
    async fn a_call_completes_once_whether_its_end_or_twilios_completed_comes_first() {
        let (store, _dir) = sqlite_store().await;
        store
            .create_endpoint(HOOK, &["call.completed".into()], None, 50)
            .await
            .unwrap();
        let completed = |id: String| {
            let store = store.clone();
            async move {
                let filter = DeliveryFilter {
                    call_id: Some(id),
                    ..DeliveryFilter::default()
                };
                let all = store.deliveries(&filter, None, 10).await.unwrap();
                all.iter()
                    .filter(|d| d.event_type == "call.completed")
                    .count()
            }
        };
        let ended_first = answered_call(&store).await;
        store
            .record_end(&ended_first, "agent_ended", 700)
            .await
            .unwrap();
        store
            .apply_status(&ended_first, CallStatus::Completed, None, 800)
            .await
            .unwrap();
        assert_eq!(
            completed(ended_first).await,
            2,
            "to the endpoint and the call's URL"
        );

        // The server died mid-call: Twilio's completed completes it; a late end adds nothing.
        let cut_off = answered_call(&store).await;
        store
            .apply_status(&cut_off, CallStatus::Completed, None, 800)
            .await
            .unwrap();
        store.record_end(&cut_off, "shutdown", 900).await.unwrap();
        assert_eq!(completed(cut_off).await, 2);
    }

    #[actix_rt::test]
    async fn an_erased_call_makes_no_more_messages() {
        let (store, _dir) = sqlite_store().await;
        store.create_endpoint(HOOK, &[], None, 50).await.unwrap();
        let id = answered_call(&store).await;
        let before = all(&store).await.len();
        store
            .erase_call(&id, &erasure_audit(&id), 900)
            .await
            .unwrap();
        store
            .apply_status(&id, CallStatus::Completed, None, 1_000)
            .await
            .unwrap();
        assert_eq!(all(&store).await.len(), before);
    }

    #[actix_rt::test]
    async fn a_claim_holds_for_its_lease_and_attempts_retry_die_and_replay() {
        let (store, _dir) = sqlite_store().await;
        answered_call(&store).await;
        let first = all(&store).await.remove(0);
        let due = store.due_deliveries(1_000, 10, &[]).await.unwrap();
        assert_eq!(due.len(), 4);
        assert!(due[0].receiver.starts_with("host:"), "{}", due[0].receiver);
        assert!(
            due.iter().all(|d| d.receiver == due[0].receiver),
            "one host"
        );
        let busy = [due[0].receiver.clone()];
        assert!(store
            .due_deliveries(1_000, 10, &busy)
            .await
            .unwrap()
            .is_empty());

        assert!(claim(&store, &first.id, "a", 1_000).await.is_some());
        assert!(claim(&store, &first.id, "b", 1_400).await.is_none());
        assert_eq!(store.due_deliveries(1_400, 10, &[]).await.unwrap().len(), 3);
        // The lease ran out (server a died): b takes it, and a's late answer is not recorded,
        // nor one of b's under an older claim.
        assert_eq!(
            claim(&store, &first.id, "b", 1_501)
                .await
                .map(|c| c.claimed_until),
            Some(2_001)
        );
        let failed = Attempt::Failed {
            status: Some(500),
            error: "HTTP 500".into(),
            retry_at: Some(5_000),
        };
        for (server, claim) in [("a", 1_500), ("b", 1_500)] {
            let done = store.finish_attempt(&first.id, server, claim, &failed, 1_600);
            assert!(
                !done.await.unwrap(),
                "{server} under the claim until {claim}"
            );
        }
        let done = store.finish_attempt(&first.id, "b", 2_001, &failed, 1_600);
        assert!(done.await.unwrap());
        let retried = store.delivery(&first.id).await.unwrap().unwrap();
        assert_eq!(
            (retried.state, retried.attempts),
            (DeliveryState::Pending, 1)
        );
        assert_eq!(
            (retried.next_attempt_at, retried.last_status),
            (Some(5_000), Some(500))
        );
        assert!(claim(&store, &first.id, "b", 4_999).await.is_none());

        claim(&store, &first.id, "b", 5_000).await.unwrap();
        let dead = Attempt::Failed {
            status: None,
            error: "timed out".into(),
            retry_at: None,
        };
        store
            .finish_attempt(&first.id, "b", 5_500, &dead, 5_100)
            .await
            .unwrap();
        let dead = store.delivery(&first.id).await.unwrap().unwrap();
        assert_eq!((dead.state, dead.attempts), (DeliveryState::Dead, 2));
        assert_eq!(dead.last_error.as_deref(), Some("timed out"));

        let replayed = store
            .replay_delivery(&first.id, 9_000)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (replayed.state, replayed.attempts),
            (DeliveryState::Pending, 0)
        );
        let claimed = claim(&store, &first.id, "c", 9_000).await.unwrap();
        assert_eq!(
            (claimed.delivery.id.as_str(), claimed.window_start),
            (first.id.as_str(), 9_000)
        );
        let delivered = Attempt::Delivered { status: 204 };
        store
            .finish_attempt(&first.id, "c", claimed.claimed_until, &delivered, 9_100)
            .await
            .unwrap();
        let delivered = store.delivery(&first.id).await.unwrap().unwrap();
        assert_eq!(
            (delivered.state, delivered.delivered_at),
            (DeliveryState::Delivered, Some(9_100))
        );
        assert!(store
            .replay_delivery("msg_none", 9_200)
            .await
            .unwrap()
            .is_none());
    }

    #[actix_rt::test]
    async fn erasing_a_call_clears_its_payloads_and_its_pending_messages_go_unsent() {
        let (store, _dir) = sqlite_store().await;
        let id = answered_call(&store).await;
        let audit = erasure_audit(&id);
        assert!(store.erase_call(&id, &audit, 900).await.unwrap());
        assert!(all(&store)
            .await
            .iter()
            .all(|d| d.state == DeliveryState::Erased));
        assert!(store
            .due_deliveries(1_000, 10, &[])
            .await
            .unwrap()
            .is_empty());
        let payloads: Vec<Option<String>> =
            sqlx::query_scalar("SELECT payload FROM webhook_deliveries")
                .fetch_all(&store.pool)
                .await
                .unwrap();
        assert!(payloads.iter().all(Option::is_none));
    }
}
