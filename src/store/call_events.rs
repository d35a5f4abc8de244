//! Each call's event log: the timeline on its record, and what Server-Sent Events replay after a
//! `Last-Event-ID`.
//!
//! Events are numbered 1, 2, 3… per call from the call row's `last_event`, which the change
//! itself increments (`UPDATE … SET last_event = last_event + 1 … RETURNING`) in the transaction
//! that inserts the event. The row lock (PostgreSQL) or the single writer (SQLite) holds the next
//! change until this one commits, so numbers have no gaps and become visible in order: a reader
//! that has seen seq n never later finds a new event below n. Kinds that hold words (turns,
//! barge-ins) are sealed and erased with the transcript.

use serde::Serialize;
use serde_json::Value;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, Row as _, Transaction};

use super::{Store, StoreError};

/// What an event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The status changed: `{"status"}`.
    Status,
    /// Answering-machine detection answered: `{"answered_by"}`.
    AnsweredBy,
    /// A transcript turn ended: the turn (sealed).
    Turn,
    /// The caller talked over the agent: what was heard (sealed).
    BargeIn,
    /// The conversation ended: `{"reason"}`.
    End,
    /// The call was handed to a person: `{"to"}` (masked), `{"by"}` (`api` or `agent`).
    Transferred,
}

impl EventKind {
    const ALL: [EventKind; 6] = [
        EventKind::Status,
        EventKind::AnsweredBy,
        EventKind::Turn,
        EventKind::BargeIn,
        EventKind::End,
        EventKind::Transferred,
    ];

    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Status => "status",
            EventKind::AnsweredBy => "answered_by",
            EventKind::Turn => "turn",
            EventKind::BargeIn => "barge_in",
            EventKind::End => "end",
            EventKind::Transferred => "transferred",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// Whether its data can hold what was said, and so is sealed and erased.
    fn is_sealed(self) -> bool {
        matches!(self, EventKind::Turn | EventKind::BargeIn)
    }
}

/// One event of a call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallEvent {
    /// The call's id.
    pub call_id: String,
    /// Its number in the call's log, from 1.
    pub seq: i64,
    /// When, Unix ms.
    pub at: i64,
    /// What.
    pub kind: EventKind,
    /// Details; `None` once erased.
    pub data: Option<Value>,
}

fn data_context(call_id: &str, seq: i64) -> String {
    format!("call_events.data:{call_id}:{seq}")
}

impl Store {
    /// Appends an event the server reports itself (a barge-in, …) to the call (by id or
    /// CallSid); the event as logged, or `None` when there is no such call or it was erased.
    /// Status changes and turns log theirs as they are stored.
    pub async fn append_event(
        &self,
        id_or_sid: &str,
        kind: EventKind,
        data: &Value,
        now_ms: i64,
    ) -> Result<Option<CallEvent>, StoreError> {
        self.in_transaction(async |connection| {
            self.append_event_in(connection, id_or_sid, kind, data, now_ms)
                .await
        })
        .await
    }

    /// [`Self::append_event`] inside the caller's transaction ([`Self::begin`]).
    pub async fn append_event_in(
        &self,
        connection: &mut AnyConnection,
        id_or_sid: &str,
        kind: EventKind,
        data: &Value,
        now_ms: i64,
    ) -> Result<Option<CallEvent>, StoreError> {
        let update = sqlx::query(
            "UPDATE calls SET last_event = last_event + 1, updated_at = $1 \
             WHERE (id = $2 OR call_sid = $2) AND erased_at IS NULL RETURNING id, last_event",
        )
        .bind(now_ms)
        .bind(id_or_sid);
        self.change_with_event_in(connection, update, kind, data, now_ms)
            .await
    }

    /// The call's events after `after_seq`, oldest first, at most `limit`.
    pub async fn events_after(
        &self,
        id_or_sid: &str,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<CallEvent>, StoreError> {
        sqlx::query(
            "SELECT e.call_id, e.seq, e.at, e.kind, e.data FROM call_events e \
             JOIN calls c ON c.id = e.call_id WHERE (c.id = $1 OR c.call_sid = $1) \
             AND e.seq > $2 ORDER BY e.seq LIMIT $3",
        )
        .bind(id_or_sid)
        .bind(after_seq)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| self.event(row))
        .collect()
    }

    /// Runs `update` (an UPDATE or INSERT of one call row that increments `last_event` and
    /// returns `id` and `last_event`) and, if it touched a row, appends the event numbered by it,
    /// in one transaction: the event as logged (its data open), for the live feed.
    pub(super) async fn change_with_event<'q>(
        &self,
        update: Query<'q, Any, AnyArguments<'q>>,
        kind: EventKind,
        data: &Value,
        now_ms: i64,
    ) -> Result<Option<CallEvent>, StoreError> {
        self.in_transaction(async |connection| {
            self.change_with_event_in(connection, update, kind, data, now_ms)
                .await
        })
        .await
    }

    /// [`Self::change_with_event`] inside the caller's transaction.
    pub(super) async fn change_with_event_in<'q>(
        &self,
        connection: &mut AnyConnection,
        update: Query<'q, Any, AnyArguments<'q>>,
        kind: EventKind,
        data: &Value,
        now_ms: i64,
    ) -> Result<Option<CallEvent>, StoreError> {
        let Some(row) = update.fetch_optional(&mut *connection).await? else {
            return Ok(None);
        };
        let id: String = row.try_get("id")?;
        let seq = row.try_get("last_event")?;
        self.insert_event(connection, &id, seq, kind, data, now_ms)
            .await?;
        Ok(Some(CallEvent {
            call_id: id,
            seq,
            at: now_ms,
            kind,
            data: Some(data.clone()),
        }))
    }

    /// Starts a change's transaction with `update` (a statement on one call row, returning at
    /// least its `id`): the transaction and the row returned; `None` (and nothing done) when it
    /// touched no row. The row stays locked until the transaction ends.
    pub(super) async fn begin_change<'q>(
        &self,
        update: Query<'q, Any, AnyArguments<'q>>,
    ) -> Result<Option<(Transaction<'static, Any>, AnyRow)>, StoreError> {
        let mut transaction = self.pool.begin().await?;
        Ok(update
            .fetch_optional(&mut *transaction)
            .await?
            .map(|row| (transaction, row)))
    }

    /// Inserts event `seq` of a call, sealing its data if its kind says so, and the outbound
    /// messages it makes (see [`super::outbox`]).
    pub(super) async fn insert_event(
        &self,
        connection: &mut AnyConnection,
        call_id: &str,
        seq: i64,
        kind: EventKind,
        data: &Value,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let plain = data;
        let data = data.to_string();
        let data = if kind.is_sealed() {
            self.seal(&data, &data_context(call_id, seq))?
        } else {
            data
        };
        sqlx::query(
            "INSERT INTO call_events (call_id, seq, at, kind, data) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(call_id)
        .bind(seq)
        .bind(now_ms)
        .bind(kind.as_str())
        .bind(data)
        .execute(&mut *connection)
        .await?;
        self.announce_event_in(connection, call_id, seq).await?;
        self.enqueue_messages(connection, call_id, seq, kind, plain, now_ms)
            .await
    }

    fn event(&self, row: &AnyRow) -> Result<CallEvent, StoreError> {
        let call_id: String = row.try_get("call_id")?;
        let seq = row.try_get("seq")?;
        let kind: String = row.try_get("kind")?;
        let kind = EventKind::parse(&kind).ok_or(StoreError::Unexpected("call_events.kind"))?;
        let data: Option<String> = row.try_get("data")?;
        let data = if kind.is_sealed() {
            self.open_optional(data, &data_context(&call_id, seq))?
        } else {
            data
        };
        let data = data
            .map(|text| serde_json::from_str(&text))
            .transpose()
            .map_err(|_| StoreError::Unexpected("call_events.data"))?;
        Ok(CallEvent {
            call_id,
            seq,
            at: row.try_get("at")?,
            kind,
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::store::testing::{bare_call, sqlite_store};

    #[actix_rt::test]
    async fn events_are_numbered_per_call_and_read_after_a_seq() {
        let (store, _dir) = sqlite_store().await;
        bare_call(&store, "CA1").await;
        bare_call(&store, "CA2").await;
        let status = json!({ "status": "ringing" });
        assert_eq!(
            store
                .append_event("CA1", EventKind::Status, &status, 100)
                .await
                .unwrap()
                .map(|event| event.seq),
            Some(1)
        );
        let heard = json!({ "heard": "Our prices are" });
        assert_eq!(
            store
                .append_event("CA1", EventKind::BargeIn, &heard, 200)
                .await
                .unwrap()
                .map(|event| event.seq),
            Some(2)
        );
        let end = json!({ "reason": "caller_hung_up" });
        assert_eq!(
            store
                .append_event("CA1", EventKind::End, &end, 300)
                .await
                .unwrap()
                .map(|event| event.seq),
            Some(3)
        );
        assert_eq!(
            store
                .append_event("CA2", EventKind::End, &end, 300)
                .await
                .unwrap()
                .map(|event| event.seq),
            Some(1),
            "numbers are per call"
        );
        assert_eq!(
            store
                .append_event("CAnone", EventKind::End, &end, 300)
                .await
                .unwrap()
                .map(|event| event.seq),
            None
        );
        let after_one = store.events_after("CA1", 1, 10).await.unwrap();
        assert_eq!(
            after_one,
            [
                CallEvent {
                    call_id: "CA1".into(),
                    seq: 2,
                    at: 200,
                    kind: EventKind::BargeIn,
                    data: Some(heard),
                },
                CallEvent {
                    call_id: "CA1".into(),
                    seq: 3,
                    at: 300,
                    kind: EventKind::End,
                    data: Some(end),
                }
            ]
        );
        assert_eq!(store.events_after("CA1", 0, 1).await.unwrap().len(), 1);
        assert!(store.events_after("CA1", 3, 10).await.unwrap().is_empty());
    }

    #[actix_rt::test]
    async fn words_are_sealed_and_statuses_are_not() {
        let (store, _dir) = sqlite_store().await;
        bare_call(&store, "CA1").await;
        let status = json!({ "status": "ringing" });
        store
            .append_event("CA1", EventKind::Status, &status, 100)
            .await
            .unwrap();
        let heard = json!({ "heard": "Our prices are" });
        store
            .append_event("CA1", EventKind::BargeIn, &heard, 200)
            .await
            .unwrap();
        let stored: Vec<(String, String)> =
            sqlx::query_as("SELECT kind, data FROM call_events ORDER BY seq")
                .fetch_all(&store.pool)
                .await
                .unwrap();
        assert_eq!(
            stored[0],
            ("status".into(), r#"{"status":"ringing"}"#.into())
        );
        assert!(stored[1].1.starts_with("v2."), "{}", stored[1].1);
        assert!(!stored[1].1.contains("prices"));
    }
}
