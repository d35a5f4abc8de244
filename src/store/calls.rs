//! Call records: inserting one, finding it by our id or Twilio's CallSid, and setting what is
//! learnt later (the CallSid, answering-machine detection, the extraction, the end reason).
//!
//! Numbers, metadata and the extraction are sealed for their column and the call's id. Calls
//! recorded before ids existed have their CallSid as id, so their numbers, sealed for
//! `calls.from_number:{call_sid}`, still open.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row as _};

use super::call_events::{CallEvent, EventKind};
use super::ids::new_call_id;
use super::status::CallStatus;
use super::{Store, StoreError};
use phone_agent_actors::engines::Extraction;

use crate::redact::MaskedPhone;

/// The end reason of a call that was in progress when its server stopped without draining
/// ([`Store::interrupt_unended_calls`]).
pub const INTERRUPTED: &str = "server_interrupted";

/// What [`Store::claim_stream`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamClaim {
    /// The stream is this instance's.
    Claimed,
    /// The call's stream was claimed before (by this instance or another), or the call ended.
    Taken,
    /// No record has this CallSid (its voice webhook could not record it).
    Unrecorded,
}

/// Who called whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Someone called us.
    Inbound,
    /// We called someone.
    Outbound,
    /// Someone talked to the agent from the browser console's softphone (no telephone network:
    /// no provider reports its status, so its end completes it).
    Browser,
}

impl Direction {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
            Direction::Browser => "browser",
        }
    }

    /// The direction of a name, if it is one.
    pub fn parse(name: &str) -> Option<Self> {
        [Direction::Inbound, Direction::Outbound, Direction::Browser]
            .into_iter()
            .find(|direction| direction.as_str() == name)
    }
}

/// Where a call's follow-up email is, as the email provider's events tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowUpStatus {
    /// Accepted by the provider.
    Sent,
    /// In the recipient's mailbox.
    Delivered,
    /// Refused by the recipient's server.
    Bounced,
    /// Marked as spam by the recipient.
    Complained,
}

impl FollowUpStatus {
    const ALL: [FollowUpStatus; 4] = [
        FollowUpStatus::Sent,
        FollowUpStatus::Delivered,
        FollowUpStatus::Bounced,
        FollowUpStatus::Complained,
    ];

    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            FollowUpStatus::Sent => "sent",
            FollowUpStatus::Delivered => "delivered",
            FollowUpStatus::Bounced => "bounced",
            FollowUpStatus::Complained => "complained",
        }
    }

    /// The status an email event type (`email.delivered`, …) reports, if it reports one.
    pub fn of_event(event_type: &str) -> Option<Self> {
        let name = event_type.strip_prefix("email.")?;
        Self::ALL.into_iter().find(|status| status.as_str() == name)
    }

    /// Its place in an email's life: a status never moves to an earlier one.
    fn rank(self) -> u8 {
        match self {
            FollowUpStatus::Sent => 1,
            FollowUpStatus::Delivered => 2,
            FollowUpStatus::Bounced | FollowUpStatus::Complained => 3,
        }
    }
}

/// A call to record. Its `Debug` masks the numbers and leaves out what the caller of the API sent.
#[derive(Clone, PartialEq)]
pub struct NewCall {
    /// Twilio's CallSid, when it already has one (inbound calls).
    pub call_sid: Option<String>,
    /// Inbound or outbound.
    pub direction: Direction,
    /// The caller (E.164).
    pub from: String,
    /// The called number (E.164).
    pub to: String,
    /// Where it starts: `scheduled`, `queued` (placing now) or as Twilio reports it.
    pub status: CallStatus,
    /// The agent that talks.
    pub agent: Option<String>,
    /// JSON from the caller of the API.
    pub metadata: Option<Value>,
    /// When to place it, Unix ms (scheduled calls).
    pub scheduled_at: Option<i64>,
    /// The callee's IANA time zone (calling hours).
    pub timezone: Option<String>,
    /// Twilio's `MachineDetection` to place it with.
    pub machine_detection: Option<String>,
    /// Where this call's events are also posted (besides the registered endpoints).
    pub webhook_url: Option<String>,
}

impl std::fmt::Debug for NewCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewCall")
            .field("call_sid", &self.call_sid)
            .field("direction", &self.direction)
            .field("from", &MaskedPhone(&self.from))
            .field("to", &MaskedPhone(&self.to))
            .field("status", &self.status)
            .field("scheduled_at", &self.scheduled_at)
            .finish_non_exhaustive()
    }
}

impl NewCall {
    /// A call Twilio told us about (the voice webhook): it has a CallSid and no schedule.
    pub fn from_twilio(
        call_sid: &str,
        direction: Direction,
        from: &str,
        to: &str,
        status: CallStatus,
    ) -> Self {
        Self {
            call_sid: Some(call_sid.to_owned()),
            direction,
            from: from.to_owned(),
            to: to.to_owned(),
            status,
            agent: None,
            metadata: None,
            scheduled_at: None,
            timezone: None,
            machine_detection: None,
            webhook_url: None,
        }
    }
}

/// A call as stored, with its sealed columns opened.
#[derive(Clone, PartialEq, Serialize)]
pub struct Call {
    /// Ours: `call_…` (calls recorded before ids existed: their CallSid).
    pub id: String,
    /// Twilio's, once assigned.
    pub call_sid: Option<String>,
    /// Inbound or outbound.
    pub direction: Direction,
    /// The caller (E.164); `None` once erased.
    pub from: Option<String>,
    /// The called number (E.164); `None` once erased.
    pub to: Option<String>,
    /// Where it is in its timeline.
    pub status: CallStatus,
    /// The agent that talks.
    pub agent: Option<String>,
    /// JSON from the caller of the API; `None` once purged.
    pub metadata: Option<Value>,
    /// What the agent took from the conversation; `None` until then and once purged.
    pub extraction: Option<Extraction>,
    /// Answering-machine detection's answer (`human`, `machine_start`, `fax`, …).
    pub answered_by: Option<String>,
    /// Why the conversation ended.
    pub end_reason: Option<String>,
    /// Recorded, Unix ms.
    pub created_at: i64,
    /// Last changed, Unix ms.
    pub updated_at: i64,
    /// Placed, or arrived, Unix ms.
    pub started_at: Option<i64>,
    /// Answered, Unix ms.
    pub answered_at: Option<i64>,
    /// Ended, Unix ms.
    pub ended_at: Option<i64>,
    /// From answer to end, ms.
    pub duration_ms: Option<i64>,
    /// When to place it, Unix ms (scheduled calls).
    pub scheduled_at: Option<i64>,
    /// The callee's IANA time zone.
    pub timezone: Option<String>,
    /// Twilio's `MachineDetection` to place it with.
    pub machine_detection: Option<String>,
    /// Where its follow-up email is: `sent`, then the provider's `delivered`, `bounced`, …
    pub follow_up_status: Option<String>,
    /// Transcript, extraction and metadata removed (retention or erasure), Unix ms.
    pub purged_at: Option<i64>,
    /// Erased down to this tombstone, Unix ms.
    pub erased_at: Option<i64>,
}

/// Masks the numbers and leaves out what was said and extracted.
impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("id", &self.id)
            .field("call_sid", &self.call_sid)
            .field("direction", &self.direction)
            .field("from", &self.from.as_deref().map(MaskedPhone))
            .field("to", &self.to.as_deref().map(MaskedPhone))
            .field("status", &self.status)
            .field("end_reason", &self.end_reason)
            .field("created_at", &self.created_at)
            .field("ended_at", &self.ended_at)
            .finish_non_exhaustive()
    }
}

/// The context a sealed column of call `id` is sealed for.
pub(super) fn context(column: &str, id: &str) -> String {
    format!("calls.{column}:{id}")
}

/// What recording a call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The call's id.
    pub id: String,
    /// Whether this recorded it; `false`: its CallSid was recorded already.
    pub new: bool,
}

impl Store {
    /// Records a call and logs its first status. A call whose CallSid is already recorded (a
    /// repeated webhook) changes nothing and gets the existing id.
    pub async fn insert_call(&self, call: &NewCall, now_ms: i64) -> Result<Recorded, StoreError> {
        let id = new_call_id()?;
        let metadata = call.metadata.as_ref().map(Value::to_string);
        let [started, _, _] = call.status.stamps(now_ms);
        let insert = sqlx::query(
            "INSERT INTO calls (id, call_sid, direction, from_number, to_number, status, \
             status_rank, agent, metadata, created_at, updated_at, started_at, scheduled_at, \
             timezone, machine_detection, webhook_url, last_event) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11, $12, $13, $14, $15, 1) \
             ON CONFLICT (call_sid) DO NOTHING RETURNING id, last_event",
        )
        .bind(&id)
        .bind(&call.call_sid)
        .bind(call.direction.as_str())
        .bind(self.seal(&call.from, &context("from_number", &id))?)
        .bind(self.seal(&call.to, &context("to_number", &id))?)
        .bind(call.status.as_str())
        .bind(call.status.rank())
        .bind(&call.agent)
        .bind(self.seal_optional(metadata, &context("metadata", &id))?)
        .bind(now_ms)
        .bind(started)
        .bind(call.scheduled_at)
        .bind(&call.timezone)
        .bind(&call.machine_detection)
        .bind(self.seal_optional(call.webhook_url.clone(), &context("webhook_url", &id))?);
        let data = json!({ "status": call.status });
        if let Some(event) = self
            .change_with_event(insert, EventKind::Status, &data, now_ms)
            .await?
        {
            return Ok(Recorded {
                id: event.call_id,
                new: true,
            });
        }
        let id = sqlx::query_scalar("SELECT id FROM calls WHERE call_sid = $1")
            .bind(&call.call_sid)
            .fetch_one(&self.pool)
            .await?;
        Ok(Recorded { id, new: false })
    }

    /// One call, by our id or Twilio's CallSid.
    pub async fn call(&self, id_or_sid: &str) -> Result<Option<Call>, StoreError> {
        sqlx::query("SELECT * FROM calls WHERE id = $1 OR call_sid = $1")
            .bind(id_or_sid)
            .fetch_optional(&self.pool)
            .await?
            .map(|row| self.call_from_row(&row))
            .transpose()
    }

    /// Who called whom, inside the caller's transaction; `None` for an unknown call.
    pub async fn direction_in(
        &self,
        connection: &mut AnyConnection,
        id_or_sid: &str,
    ) -> Result<Option<Direction>, StoreError> {
        let name: Option<String> =
            sqlx::query_scalar("SELECT direction FROM calls WHERE id = $1 OR call_sid = $1")
                .bind(id_or_sid)
                .fetch_optional(connection)
                .await?;
        Ok(name.as_deref().and_then(Direction::parse))
    }

    /// Records the CallSid Twilio assigned to a call we placed; false if the call has one.
    pub async fn set_call_sid(
        &self,
        id: &str,
        call_sid: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE calls SET call_sid = $1, updated_at = $2 WHERE id = $3 AND call_sid IS NULL",
        )
        .bind(call_sid)
        .bind(now_ms)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Stamps call `id` as given its media stream at `now_ms`: `false` if it already was, or has
    /// ended (a replayed voice webhook must not start the call's agent again).
    pub async fn grant_stream(&self, id: &str, now_ms: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE calls SET stream_granted_at = $1 \
             WHERE id = $2 AND stream_granted_at IS NULL AND ended_at IS NULL",
        )
        .bind(now_ms)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Claims the stream of the call `call_sid` for `instance` at `now_ms`, with a lease until
    /// `lease_until` (ms): once per call, across every instance sharing the database.
    pub async fn claim_stream(
        &self,
        call_sid: &str,
        instance: &str,
        now_ms: i64,
        lease_until: i64,
    ) -> Result<StreamClaim, StoreError> {
        let done = sqlx::query(
            "UPDATE calls SET stream_started_at = $1, owner = $2, lease_until = $3 \
             WHERE call_sid = $4 AND stream_started_at IS NULL AND ended_at IS NULL",
        )
        .bind(now_ms)
        .bind(instance)
        .bind(lease_until)
        .bind(call_sid)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 1 {
            return Ok(StreamClaim::Claimed);
        }
        let known: Option<i64> = sqlx::query_scalar("SELECT 1 FROM calls WHERE call_sid = $1")
            .bind(call_sid)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match known {
            Some(_) => StreamClaim::Taken,
            None => StreamClaim::Unrecorded,
        })
    }

    /// Extends to `lease_until` (ms) the lease of every unended call `instance` owns: one write
    /// per instance, however many calls it carries. The number of calls renewed.
    pub async fn renew_leases(&self, instance: &str, lease_until: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE calls SET lease_until = $1 WHERE owner = $2 AND end_reason IS NULL",
        )
        .bind(lease_until)
        .bind(instance)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// The unended calls whose owner's lease ran out before `now_ms`: their instance stopped
    /// without ending them (killed, crashed, cut off from the database).
    pub async fn lapsed_calls(&self, now_ms: i64) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM calls WHERE end_reason IS NULL AND lease_until < $1 ORDER BY id",
        )
        .bind(now_ms)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Records answering-machine detection's answer and logs it: the event, or `None` if it is
    /// the answer already recorded (or there is no such call).
    pub async fn set_answered_by(
        &self,
        id_or_sid: &str,
        answered_by: &str,
        now_ms: i64,
    ) -> Result<Option<CallEvent>, StoreError> {
        let update = sqlx::query(
            "UPDATE calls SET answered_by = $1, updated_at = $2, last_event = last_event + 1 \
             WHERE (id = $3 OR call_sid = $3) AND (answered_by IS NULL OR answered_by <> $1) \
             RETURNING id, last_event",
        )
        .bind(answered_by)
        .bind(now_ms)
        .bind(id_or_sid);
        let data = json!({ "answered_by": answered_by });
        self.change_with_event(update, EventKind::AnsweredBy, &data, now_ms)
            .await
    }

    /// Records why the conversation ended (and that it did, if no status said so yet) and logs
    /// it: the event, or `None` if an end was already recorded.
    pub async fn record_end(
        &self,
        id_or_sid: &str,
        reason: &str,
        now_ms: i64,
    ) -> Result<Option<CallEvent>, StoreError> {
        self.in_transaction(async |connection| {
            self.record_end_in(connection, id_or_sid, reason, now_ms)
                .await
        })
        .await
    }

    /// [`Self::record_end`] inside the caller's transaction ([`Self::begin`]).
    pub async fn record_end_in(
        &self,
        connection: &mut AnyConnection,
        id_or_sid: &str,
        reason: &str,
        now_ms: i64,
    ) -> Result<Option<CallEvent>, StoreError> {
        let update = sqlx::query(
            "UPDATE calls SET end_reason = $1, ended_at = COALESCE(ended_at, $2), updated_at = $2, \
             last_event = last_event + 1 \
             WHERE (id = $3 OR call_sid = $3) AND end_reason IS NULL RETURNING id, last_event",
        )
        .bind(reason)
        .bind(now_ms)
        .bind(id_or_sid);
        let data = json!({ "reason": reason });
        self.change_with_event_in(connection, update, EventKind::End, &data, now_ms)
            .await
    }

    /// Ends, with reason [`INTERRUPTED`], every call in progress whose end was never recorded:
    /// at start-up, the calls a server stopped without draining (killed, crashed, power lost)
    /// left live. Their ids; each end is logged (and makes its `call.completed` message).
    pub async fn interrupt_unended_calls(&self, now_ms: i64) -> Result<Vec<String>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM calls WHERE status = $1 AND end_reason IS NULL ORDER BY id",
        )
        .bind(CallStatus::InProgress.as_str())
        .fetch_all(&self.pool)
        .await?;
        for id in &ids {
            self.record_end(id, INTERRUPTED, now_ms).await?;
        }
        Ok(ids)
    }

    /// Stores what the agent took from the conversation (replacing an earlier extraction); false
    /// if there is no such call or its content was purged.
    pub async fn set_extraction(
        &self,
        id_or_sid: &str,
        extraction: &Extraction,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let lock = sqlx::query(
            "UPDATE calls SET updated_at = $1 WHERE (id = $2 OR call_sid = $2) \
             AND purged_at IS NULL RETURNING id",
        )
        .bind(now_ms)
        .bind(id_or_sid);
        let Some((mut transaction, row)) = self.begin_change(lock).await? else {
            return Ok(false);
        };
        let id: String = row.try_get("id")?;
        let extraction = serde_json::to_string(extraction).expect("an Extraction is JSON");
        sqlx::query("UPDATE calls SET extraction = $1 WHERE id = $2")
            .bind(self.seal(&extraction, &context("extraction", &id))?)
            .bind(&id)
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(true)
    }

    /// Records the follow-up email sent for the call: status `sent`, unless the provider already
    /// reported more of this email (a send repeated under its idempotency key).
    pub async fn set_follow_up_email(
        &self,
        id: &str,
        email_id: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE calls SET follow_up_status = CASE WHEN follow_up_email_id = $1 \
             THEN COALESCE(follow_up_status, 'sent') ELSE 'sent' END, \
             follow_up_email_id = $1, updated_at = $2 WHERE id = $3",
        )
        .bind(email_id)
        .bind(now_ms)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Moves the status of the follow-up email `email_id` to `status` (`delivered`, `bounced`,
    /// `complained`) if that is later than the one recorded: events may arrive out of order. The
    /// call's id, or `None` when no call sent that email or the status is not later.
    pub async fn update_follow_up_status(
        &self,
        email_id: &str,
        status: FollowUpStatus,
        now_ms: i64,
    ) -> Result<Option<String>, StoreError> {
        let ranks: String = FollowUpStatus::ALL
            .iter()
            .map(|known| format!(" WHEN '{}' THEN {}", known.as_str(), known.rank()))
            .collect();
        let sql = format!(
            "UPDATE calls SET follow_up_status = $1, updated_at = $2 WHERE follow_up_email_id = $3 \
             AND (follow_up_status IS NULL OR CASE follow_up_status{ranks} ELSE 0 END < $4) \
             RETURNING id"
        );
        let query = sqlx::query_scalar(&sql)
            .bind(status.as_str())
            .bind(now_ms)
            .bind(email_id)
            .bind(i64::from(status.rank()));
        Ok(query.fetch_optional(&self.pool).await?)
    }

    /// A call from a `SELECT * FROM calls` row.
    pub(super) fn call_from_row(&self, row: &AnyRow) -> Result<Call, StoreError> {
        let id: String = row.try_get("id")?;
        let open = |column: &'static str| -> Result<Option<String>, StoreError> {
            self.open_optional(row.try_get(column)?, &context(column, &id))
        };
        let json = |column: &'static str| -> Result<Option<Value>, StoreError> {
            open(column)?
                .map(|text| serde_json::from_str(&text))
                .transpose()
                .map_err(|_| StoreError::Unexpected(column))
        };
        let extraction = json("extraction")?
            .map(serde_json::from_value)
            .transpose()
            .map_err(|_| StoreError::Unexpected("extraction"))?;
        let direction: String = row.try_get("direction")?;
        let status: String = row.try_get("status")?;
        let answered_at: Option<i64> = row.try_get("answered_at")?;
        let ended_at: Option<i64> = row.try_get("ended_at")?;
        Ok(Call {
            call_sid: row.try_get("call_sid")?,
            direction: Direction::parse(&direction).ok_or(StoreError::Unexpected("direction"))?,
            from: open("from_number")?,
            to: open("to_number")?,
            status: CallStatus::parse(&status).ok_or(StoreError::Unexpected("status"))?,
            agent: row.try_get("agent")?,
            metadata: json("metadata")?,
            extraction,
            answered_by: row.try_get("answered_by")?,
            end_reason: row.try_get("end_reason")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            started_at: row.try_get("started_at")?,
            answered_at,
            ended_at,
            duration_ms: answered_at.zip(ended_at).map(|(from, to)| to - from),
            scheduled_at: row.try_get("scheduled_at")?,
            timezone: row.try_get("timezone")?,
            machine_detection: row.try_get("machine_detection")?,
            follow_up_status: row.try_get("follow_up_status")?,
            purged_at: row.try_get("purged_at")?,
            erased_at: row.try_get("erased_at")?,
            id,
        })
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// An inbound call as the voice webhook records it.
    pub fn inbound(call_sid: &str) -> NewCall {
        let (from, to) = ("+14155550100", "+14155550199");
        NewCall::from_twilio(call_sid, Direction::Inbound, from, to, CallStatus::Ringing)
    }

    /// An outbound call to place at `scheduled_at`.
    pub fn scheduled(scheduled_at: i64) -> NewCall {
        NewCall {
            call_sid: None,
            direction: Direction::Outbound,
            from: "+14155550199".into(),
            to: "+14155550123".into(),
            status: CallStatus::Scheduled,
            agent: Some("default".into()),
            metadata: Some(json!({ "crm_id": 42 })),
            scheduled_at: Some(scheduled_at),
            timezone: Some("America/Los_Angeles".into()),
            machine_detection: Some("Enable".into()),
            webhook_url: None,
        }
    }

    /// Inserts `call` at `now_ms`; its id.
    pub async fn insert(store: &Store, call: &NewCall, now_ms: i64) -> String {
        store.insert_call(call, now_ms).await.unwrap().id
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use crate::store::testing::sqlite_store;

    #[actix_rt::test]
    async fn calls_are_found_by_id_or_call_sid_and_a_repeated_webhook_changes_nothing() {
        let (store, _dir) = sqlite_store().await;
        let id = insert(&store, &inbound("CA1"), 100).await;
        assert!(id.starts_with("call_"), "{id}");
        let again = store.insert_call(&inbound("CA1"), 200).await.unwrap();
        assert_eq!(
            again,
            Recorded {
                id: id.clone(),
                new: false
            }
        );
        let by_sid = store.call("CA1").await.unwrap().unwrap();
        assert_eq!(store.call(&id).await.unwrap().unwrap(), by_sid);
        assert_eq!(by_sid.from.as_deref(), Some("+14155550100"));
        assert_eq!((by_sid.created_at, by_sid.started_at), (100, Some(100)));
        assert_eq!(store.events_after(&id, 0, 10).await.unwrap().len(), 1);
        assert!(store.call("CAnone").await.unwrap().is_none());
    }

    #[actix_rt::test]
    async fn no_debug_of_a_call_shows_a_raw_number() {
        let (store, _dir) = sqlite_store().await;
        let new = inbound("CA1");
        let id = insert(&store, &new, 100).await;
        store.dnc_add("+14155550100", 100).await.unwrap();
        let printed = format!(
            "{new:?} {:?} {:?}",
            store.call(&id).await.unwrap().unwrap(),
            store.dnc_list().await.unwrap()
        );
        assert!(!printed.contains("4155550"), "{printed}");
        assert!(printed.contains("+1******0100"), "{printed}");
    }

    #[actix_rt::test]
    async fn a_placed_call_gets_its_call_sid_once_and_keeps_what_it_was_given() {
        let (store, _dir) = sqlite_store().await;
        let id = insert(&store, &scheduled(5_000), 100).await;
        let call = store.call(&id).await.unwrap().unwrap();
        assert_eq!(call.call_sid, None);
        assert_eq!(call.started_at, None, "a scheduled call has not started");
        assert_eq!(call.metadata, Some(json!({ "crm_id": 42 })));
        assert_eq!(
            (call.scheduled_at, call.timezone.as_deref()),
            (Some(5_000), Some("America/Los_Angeles"))
        );
        assert_eq!(call.machine_detection.as_deref(), Some("Enable"));
        assert!(store.set_call_sid(&id, "CA9", 200).await.unwrap());
        assert!(!store.set_call_sid(&id, "CA8", 300).await.unwrap());
        assert_eq!(store.call("CA9").await.unwrap().unwrap().id, id);
    }

    #[actix_rt::test]
    async fn answering_machine_extraction_and_end_are_recorded() {
        let (store, _dir) = sqlite_store().await;
        let id = insert(&store, &inbound("CA1"), 100).await;
        assert!(store
            .set_answered_by("CA1", "machine_start", 200)
            .await
            .unwrap()
            .is_some());
        assert!(store
            .set_answered_by("CA1", "machine_start", 250)
            .await
            .unwrap()
            .is_none());
        let extraction = Extraction {
            name: Some("Ana".into()),
            phone: Some("4155550100".into()),
            intent: Some("booking".into()),
            next_step: Some("call back".into()),
            consent_to_follow_up: Some(true),
        };
        assert!(store.set_extraction("CA1", &extraction, 300).await.unwrap());
        assert!(store
            .record_end(&id, "agent_goodbye", 400)
            .await
            .unwrap()
            .is_some());
        assert!(store
            .record_end(&id, "caller_hung_up", 500)
            .await
            .unwrap()
            .is_none());
        let call = store.call(&id).await.unwrap().unwrap();
        assert_eq!(call.answered_by.as_deref(), Some("machine_start"));
        assert_eq!(call.extraction, Some(extraction));
        assert_eq!(call.end_reason.as_deref(), Some("agent_goodbye"));
        assert_eq!(call.ended_at, Some(400));
        let kinds: Vec<_> = store
            .events_after(&id, 0, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|event| event.kind)
            .collect();
        assert_eq!(
            kinds,
            [EventKind::Status, EventKind::AnsweredBy, EventKind::End]
        );
        let sealed: String = sqlx::query_scalar("SELECT extraction FROM calls")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert!(!sealed.contains("Ana"));
    }

    #[actix_rt::test]
    async fn calls_left_in_progress_are_ended_as_interrupted_and_no_other() {
        let (store, _dir) = sqlite_store().await;
        let live = insert(&store, &inbound("CA1"), 100).await;
        let ended = insert(&store, &inbound("CA2"), 100).await;
        let ringing = insert(&store, &inbound("CA3"), 100).await;
        for id in [&live, &ended] {
            store
                .apply_status(id, CallStatus::InProgress, None, 200)
                .await
                .unwrap();
        }
        store
            .record_end(&ended, "agent_goodbye", 300)
            .await
            .unwrap();

        assert_eq!(
            store.interrupt_unended_calls(900).await.unwrap(),
            [live.as_str()]
        );
        let call = store.call(&live).await.unwrap().unwrap();
        assert_eq!(
            (call.end_reason.as_deref(), call.ended_at),
            (Some(INTERRUPTED), Some(900))
        );
        let last = store
            .events_after(&live, 0, 10)
            .await
            .unwrap()
            .pop()
            .unwrap();
        assert_eq!(last.kind, EventKind::End);
        for (id, reason) in [(&ended, Some("agent_goodbye")), (&ringing, None)] {
            let call = store.call(id).await.unwrap().unwrap();
            assert_eq!(call.end_reason.as_deref(), reason);
        }
        assert!(store.interrupt_unended_calls(950).await.unwrap().is_empty());
    }
}
