//! The status timeline of a call, and the one way a status changes.
//!
//! `scheduled → queued → ringing → in-progress → completed | busy | no-answer | failed |
//! canceled`, plus `missed` (a scheduled call found too late after a restart). Twilio's status
//! callbacks arrive out of order, so a status moves only forwards: [`CallStatus::rank`] orders
//! them and the UPDATE itself compares ranks (never read-then-write), so two servers applying
//! callbacks at once end at the latest. Every change appends a `status` event to the call's log.

use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::AnyConnection;

use super::call_events::{CallEvent, EventKind};
use super::{Store, StoreError};

/// Where a call is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CallStatus {
    /// Waiting for its `scheduled_at`.
    Scheduled,
    /// Handed to Twilio, not yet ringing.
    Queued,
    /// Ringing.
    Ringing,
    /// Answered and going on.
    InProgress,
    /// Ended after being answered.
    Completed,
    /// The callee was busy.
    Busy,
    /// Nobody answered.
    NoAnswer,
    /// Twilio could not place it.
    Failed,
    /// Cancelled before it was answered (or, scheduled, before it was placed).
    Canceled,
    /// Scheduled, but found too late to place (the server was down at its time).
    Missed,
}

impl CallStatus {
    /// Every status, in timeline order.
    pub const ALL: [CallStatus; 10] = [
        CallStatus::Scheduled,
        CallStatus::Queued,
        CallStatus::Ringing,
        CallStatus::InProgress,
        CallStatus::Completed,
        CallStatus::Busy,
        CallStatus::NoAnswer,
        CallStatus::Failed,
        CallStatus::Canceled,
        CallStatus::Missed,
    ];

    /// Its place in the timeline: a status replaces only a lower rank. The ends share the top
    /// rank, so the first end reported stays.
    pub fn rank(self) -> i64 {
        match self {
            CallStatus::Scheduled => 0,
            CallStatus::Queued => 1,
            CallStatus::Ringing => 2,
            CallStatus::InProgress => 3,
            CallStatus::Completed
            | CallStatus::Busy
            | CallStatus::NoAnswer
            | CallStatus::Failed
            | CallStatus::Canceled
            | CallStatus::Missed => 4,
        }
    }

    /// Its name (`in-progress`), as Twilio spells the ones it shares.
    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Scheduled => "scheduled",
            CallStatus::Queued => "queued",
            CallStatus::Ringing => "ringing",
            CallStatus::InProgress => "in-progress",
            CallStatus::Completed => "completed",
            CallStatus::Busy => "busy",
            CallStatus::NoAnswer => "no-answer",
            CallStatus::Failed => "failed",
            CallStatus::Canceled => "canceled",
            CallStatus::Missed => "missed",
        }
    }

    /// The status of a name, if it is one.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == name)
    }

    /// Which of the call's times reaching this status sets, if not set yet: started (placed or
    /// arrived), answered, ended.
    pub(super) fn stamps(self, now_ms: i64) -> [Option<i64>; 3] {
        let at = |yes: bool| yes.then_some(now_ms);
        let rank = self.rank();
        [at((1..=3).contains(&rank)), at(rank == 3), at(rank == 4)]
    }
}

/// Which calls a status change may apply to, beyond the call named.
#[derive(Debug, Clone, Copy)]
pub(super) enum Guard {
    /// Only if the status is later (and, with a Twilio SequenceNumber, the callback newer).
    Later,
    /// Only if still scheduled and not claimed by a scheduler.
    Unclaimed,
}

impl Guard {
    fn sql(self) -> &'static str {
        match self {
            Guard::Later => {
                "status_rank < $2 AND ($3 IS NULL OR status_sequence IS NULL OR status_sequence < $3)"
            }
            Guard::Unclaimed => "status = 'scheduled' AND claimed_by IS NULL",
        }
    }
}

impl Store {
    /// Moves the call (by id or CallSid) to `status` if that is later in the timeline and, when
    /// Twilio's `sequence_number` is given, newer than the last one applied; the `status` event
    /// appended if it changed.
    pub async fn apply_status(
        &self,
        id_or_sid: &str,
        status: CallStatus,
        sequence_number: Option<i64>,
        now_ms: i64,
    ) -> Result<Option<CallEvent>, StoreError> {
        self.change_status(id_or_sid, status, sequence_number, Guard::Later, now_ms)
            .await
    }

    /// [`Self::apply_status`] inside the caller's transaction ([`Self::begin`]).
    pub async fn apply_status_in(
        &self,
        connection: &mut AnyConnection,
        id_or_sid: &str,
        status: CallStatus,
        sequence_number: Option<i64>,
        now_ms: i64,
    ) -> Result<Option<CallEvent>, StoreError> {
        self.change_status_in(
            connection,
            id_or_sid,
            status,
            sequence_number,
            Guard::Later,
            now_ms,
        )
        .await
    }

    /// The one status UPDATE in a transaction of its own: see [`Self::change_status_in`].
    pub(super) async fn change_status(
        &self,
        id_or_sid: &str,
        status: CallStatus,
        sequence_number: Option<i64>,
        guard: Guard,
        now_ms: i64,
    ) -> Result<Option<CallEvent>, StoreError> {
        self.in_transaction(async |connection| {
            self.change_status_in(
                connection,
                id_or_sid,
                status,
                sequence_number,
                guard,
                now_ms,
            )
            .await
        })
        .await
    }

    /// The one status UPDATE: conditional on `guard`, stamping the times the status sets,
    /// allocating the event's seq in the same statement.
    async fn change_status_in(
        &self,
        connection: &mut AnyConnection,
        id_or_sid: &str,
        status: CallStatus,
        sequence_number: Option<i64>,
        guard: Guard,
        now_ms: i64,
    ) -> Result<Option<CallEvent>, StoreError> {
        let [started, answered, ended] = status.stamps(now_ms);
        let sql = format!(
            "UPDATE calls SET status = $1, status_rank = $2, \
             status_sequence = COALESCE($3, status_sequence), \
             started_at = COALESCE(started_at, $4), answered_at = COALESCE(answered_at, $5), \
             ended_at = COALESCE(ended_at, $6), updated_at = $7, last_event = last_event + 1 \
             WHERE (id = $8 OR call_sid = $8) AND {} RETURNING id, last_event",
            guard.sql()
        );
        let update = sqlx::query(&sql)
            .bind(status.as_str())
            .bind(status.rank())
            .bind(sequence_number)
            .bind(started)
            .bind(answered)
            .bind(ended)
            .bind(now_ms)
            .bind(id_or_sid);
        let data = json!({ "status": status });
        self.change_with_event_in(connection, update, EventKind::Status, &data, now_ms)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{bare_call, sqlite_store};

    #[test]
    fn names_round_trip_and_ranks_follow_the_timeline() {
        for status in CallStatus::ALL {
            assert_eq!(CallStatus::parse(status.as_str()), Some(status));
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                status.as_str(),
                "serde spells it the same"
            );
        }
        assert_eq!(CallStatus::parse("initiated"), None);
        let ranks: Vec<i64> = CallStatus::ALL.iter().map(|s| s.rank()).collect();
        assert!(ranks.windows(2).all(|pair| pair[0] <= pair[1]));
        assert_eq!(CallStatus::Completed.rank(), CallStatus::Missed.rank());
    }

    #[actix_rt::test]
    async fn a_status_never_moves_backwards_and_each_change_is_logged() {
        let (store, _dir) = sqlite_store().await;
        bare_call(&store, "CA1").await;
        assert!(store
            .apply_status("CA1", CallStatus::InProgress, None, 200)
            .await
            .unwrap()
            .is_some());
        assert!(store
            .apply_status("CA1", CallStatus::Ringing, None, 300)
            .await
            .unwrap()
            .is_none());
        assert!(store
            .apply_status("CA1", CallStatus::Completed, None, 400)
            .await
            .unwrap()
            .is_some());
        assert!(
            store
                .apply_status("CA1", CallStatus::Busy, None, 500)
                .await
                .unwrap()
                .is_none(),
            "the first end stays"
        );
        let call = store.call("CA1").await.unwrap().unwrap();
        assert_eq!(call.status, CallStatus::Completed);
        assert_eq!(
            (call.started_at, call.answered_at, call.ended_at),
            (Some(200), Some(200), Some(400))
        );
        assert_eq!(call.duration_ms, Some(200));
        assert_eq!(call.updated_at, 400);
        let statuses: Vec<_> = store
            .events_after("CA1", 0, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|event| (event.seq, event.data.unwrap()["status"].clone()))
            .collect();
        assert_eq!(
            statuses,
            [(1, json!("in-progress")), (2, json!("completed"))]
        );
    }

    #[actix_rt::test]
    async fn an_older_sequence_number_changes_nothing() {
        let (store, _dir) = sqlite_store().await;
        bare_call(&store, "CA1").await;
        assert!(store
            .apply_status("CA1", CallStatus::InProgress, Some(5), 200)
            .await
            .unwrap()
            .is_some());
        assert!(store
            .apply_status("CA1", CallStatus::Completed, Some(4), 300)
            .await
            .unwrap()
            .is_none());
        assert!(store
            .apply_status("CA1", CallStatus::Completed, Some(6), 400)
            .await
            .unwrap()
            .is_some());
        assert!(store
            .apply_status("CAnone", CallStatus::Completed, None, 500)
            .await
            .unwrap()
            .is_none());
    }
}
