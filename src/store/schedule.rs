//! Scheduled calls, durable in the database: rows with status `scheduled` and a `scheduled_at`.
//!
//! A scheduler claims due calls before placing them: one UPDATE sets `claimed_by` on rows still
//! scheduled and unclaimed, and returns the rows it changed. On PostgreSQL the candidate rows are
//! picked `FOR UPDATE SKIP LOCKED`, so a second server skips rows the first is claiming and takes
//! others; had it waited on one, the outer condition `claimed_by IS NULL`, evaluated again once
//! the first commits, would let it go. On SQLite the single writer runs claims one after the
//! other. Either way a call is claimed once, and placed at most once. A claim is not a status:
//! the call stays `scheduled` until Twilio's answer moves it on, and a claimed call can no longer
//! be cancelled or marked missed.

use std::time::Duration;

use sqlx::Row as _;

use super::call_events::CallEvent;
use super::calls::Call;
use super::status::{CallStatus, Guard};
use super::{Backend, Store, StoreError};

impl Store {
    /// Claims for `instance_id` up to `limit` scheduled calls due at `now_ms` (erased ones
    /// aside), earliest first: no other claim, here or on another server, returns the same call.
    pub async fn claim_due(
        &self,
        now_ms: i64,
        instance_id: &str,
        limit: i64,
    ) -> Result<Vec<Call>, StoreError> {
        let skip_locked = match self.backend {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE calls SET claimed_by = $1, claimed_at = $2, updated_at = $2 \
             WHERE id IN (SELECT id FROM calls WHERE status = 'scheduled' \
             AND claimed_by IS NULL AND erased_at IS NULL AND scheduled_at <= $2 \
             ORDER BY scheduled_at, id LIMIT $3 {skip_locked}) \
             AND status = 'scheduled' AND claimed_by IS NULL RETURNING *"
        );
        let mut claimed = sqlx::query(&sql)
            .bind(instance_id)
            .bind(now_ms)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| self.call_from_row(row))
            .collect::<Result<Vec<_>, _>>()?;
        claimed.sort_by(|a, b| (a.scheduled_at, &a.id).cmp(&(b.scheduled_at, &b.id)));
        Ok(claimed)
    }

    /// Marks `missed` the unclaimed scheduled calls more than `grace` late at `now_ms` (the
    /// server was down at their time); the `status` events logged.
    pub async fn mark_missed(
        &self,
        grace: Duration,
        now_ms: i64,
    ) -> Result<Vec<CallEvent>, StoreError> {
        let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
        let late = sqlx::query(
            "SELECT id FROM calls WHERE status = 'scheduled' AND claimed_by IS NULL \
             AND scheduled_at < $1 ORDER BY scheduled_at, id",
        )
        .bind(now_ms.saturating_sub(grace_ms))
        .fetch_all(&self.pool)
        .await?;
        let mut missed = Vec::with_capacity(late.len());
        for row in late {
            let id: String = row.try_get("id")?;
            // Claimed meanwhile by a scheduler that found it in time: not missed.
            missed.extend(
                self.change_status(&id, CallStatus::Missed, None, Guard::Unclaimed, now_ms)
                    .await?,
            );
        }
        Ok(missed)
    }

    /// Cancels a scheduled call (by id or CallSid) that no scheduler has claimed yet; false
    /// otherwise (no such call, already being placed, or past scheduling).
    pub async fn cancel_scheduled(
        &self,
        id_or_sid: &str,
        now_ms: i64,
    ) -> Result<Option<CallEvent>, StoreError> {
        self.change_status(
            id_or_sid,
            CallStatus::Canceled,
            None,
            Guard::Unclaimed,
            now_ms,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::calls::testing::{inbound, insert, scheduled};
    use crate::store::testing::sqlite_store;

    #[actix_rt::test]
    async fn due_calls_are_claimed_once_earliest_first() {
        let (store, _dir) = sqlite_store().await;
        let mut due = Vec::new();
        for at in [3_000, 1_000, 2_000] {
            due.push(insert(&store, &scheduled(at), 100).await);
        }
        let later = insert(&store, &scheduled(9_000), 100).await;
        insert(&store, &inbound("CA1"), 100).await;
        let first = store.claim_due(5_000, "a", 2).await.unwrap();
        assert_eq!(
            first.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
            [due[1].as_str(), due[2].as_str()]
        );
        assert_eq!(first[0].status, CallStatus::Scheduled);
        let second = store.claim_due(5_000, "b", 10).await.unwrap();
        assert_eq!(second.iter().map(|c| &c.id).collect::<Vec<_>>(), [&due[0]]);
        assert!(store.claim_due(5_000, "a", 10).await.unwrap().is_empty());
        assert_eq!(store.claim_due(9_000, "a", 10).await.unwrap()[0].id, later);
    }

    #[actix_rt::test]
    async fn only_unclaimed_calls_are_cancelled_or_missed() {
        let (store, _dir) = sqlite_store().await;
        let claimed = insert(&store, &scheduled(1_000), 100).await;
        store.claim_due(1_000, "a", 10).await.unwrap();
        let cancelled = insert(&store, &scheduled(2_000), 100).await;
        let late = insert(&store, &scheduled(3_000), 100).await;
        let in_grace = insert(&store, &scheduled(50_000), 100).await;
        let placed = insert(&store, &inbound("CA1"), 100).await;

        assert!(store
            .cancel_scheduled(&claimed, 200)
            .await
            .unwrap()
            .is_none());
        assert!(store
            .cancel_scheduled(&placed, 200)
            .await
            .unwrap()
            .is_none());
        assert!(store
            .cancel_scheduled(&cancelled, 200)
            .await
            .unwrap()
            .is_some());
        assert!(store
            .cancel_scheduled(&cancelled, 300)
            .await
            .unwrap()
            .is_none());

        let grace = Duration::from_secs(30);
        let missed = store.mark_missed(grace, 60_000).await.unwrap();
        let ids: Vec<&str> = missed.iter().map(|event| event.call_id.as_str()).collect();
        assert_eq!(ids, [late.as_str()]);
        assert!(store.mark_missed(grace, 60_000).await.unwrap().is_empty());
        let status = |id: String| {
            let store = store.clone();
            async move { store.call(&id).await.unwrap().unwrap().status }
        };
        assert_eq!(status(claimed).await, CallStatus::Scheduled);
        assert_eq!(status(cancelled.clone()).await, CallStatus::Canceled);
        assert_eq!(status(late.clone()).await, CallStatus::Missed);
        assert_eq!(status(in_grace).await, CallStatus::Scheduled);
        let missed = store.call(&late).await.unwrap().unwrap();
        assert_eq!((missed.started_at, missed.ended_at), (None, Some(60_000)));
        let logged = store.events_after(&late, 1, 10).await.unwrap();
        assert_eq!(logged[0].data.as_ref().unwrap()["status"], "missed");
    }
}
