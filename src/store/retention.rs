//! Retention: a periodic job removes the content of calls that ended before a cutoff (transcript,
//! extraction, metadata and the sealed data of their events, as an erasure does, but keeping the
//! numbers and the record) and deletes expired idempotency keys. It returns what it removed, for
//! the job's audit row.

use sqlx::Row as _;

use super::erasure::{remove_content, Removed};
use super::{Store, StoreError};

/// What one purge removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Calls whose content went.
    pub calls: u64,
    /// Transcript turns deleted.
    pub turns: u64,
    /// Events whose sealed data was cleared.
    pub events: u64,
    /// Expired idempotency keys deleted.
    pub idempotency_keys: u64,
}

impl Store {
    /// Removes the content of calls that ended (or, never seen to end, last changed) before
    /// `cutoff_ms`, scheduled calls aside, and the idempotency keys expired at `now_ms`.
    pub async fn purge_older_than(
        &self,
        cutoff_ms: i64,
        now_ms: i64,
    ) -> Result<Purged, StoreError> {
        let old = sqlx::query(
            "SELECT id FROM calls WHERE purged_at IS NULL AND status <> 'scheduled' \
             AND COALESCE(ended_at, updated_at) < $1",
        )
        .bind(cutoff_ms)
        .fetch_all(&self.pool)
        .await?;
        let mut purged = Purged::default();
        // One transaction per call: a long purge never holds SQLite's writer for long.
        for row in old {
            let id: String = row.try_get("id")?;
            let purge = sqlx::query(
                "UPDATE calls SET metadata = NULL, extraction = NULL, purged_at = $1, \
                 updated_at = $1 WHERE id = $2 AND purged_at IS NULL RETURNING id",
            )
            .bind(now_ms)
            .bind(&id);
            let Some((mut transaction, _)) = self.begin_change(purge).await? else {
                continue;
            };
            let Removed { turns, events } = remove_content(&mut transaction, &id).await?;
            transaction.commit().await?;
            purged.calls += 1;
            purged.turns += turns;
            purged.events += events;
        }
        purged.idempotency_keys = self.purge_idempotency_keys(now_ms).await?;
        if purged != Purged::default() {
            self.flush_erased().await?;
        }
        Ok(purged)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::store::calls::testing::{inbound, insert, scheduled};
    use crate::store::idempotency::IdempotencyClaim;
    use crate::store::status::CallStatus;
    use crate::store::testing::sqlite_store;
    use crate::store::transcripts::testing::{interrupted_reply, question};
    use phone_agent_actors::engines::Extraction;

    const DAY: i64 = 24 * 3600 * 1000;

    /// A call with metadata, an extraction and two turns, ended at `ended_at`.
    async fn ended_call(store: &Store, ended_at: i64) -> String {
        let id = insert(store, &scheduled(ended_at - 100), ended_at - 200).await;
        store
            .append_turn(&id, &question(), ended_at - 50)
            .await
            .unwrap();
        store
            .append_turn(&id, &interrupted_reply(), ended_at - 10)
            .await
            .unwrap();
        store
            .set_extraction(&id, &Extraction::default(), ended_at)
            .await
            .unwrap();
        store
            .apply_status(&id, CallStatus::Completed, None, ended_at)
            .await
            .unwrap();
        id
    }

    #[actix_rt::test]
    async fn retention_removes_exactly_the_content_of_calls_ended_before_the_cutoff() {
        let (store, _dir) = sqlite_store().await;
        let now = 100 * DAY;
        let cutoff = now - 30 * DAY;
        let old = ended_call(&store, cutoff - 1).await;
        let recent = ended_call(&store, cutoff).await;
        let waiting = insert(&store, &scheduled(now + DAY), cutoff - DAY).await;
        let stuck = insert(&store, &inbound("CA1"), cutoff - DAY).await;
        store
            .append_turn(&stuck, &question(), cutoff - DAY)
            .await
            .unwrap();
        let expired_key = store
            .claim_idempotency_key("tok_a", "old", now - DAY)
            .await
            .unwrap();
        assert_eq!(expired_key, IdempotencyClaim::Claimed);
        store
            .claim_idempotency_key("tok_a", "fresh", now - DAY + 1)
            .await
            .unwrap();

        let purged = store.purge_older_than(cutoff, now).await.unwrap();
        assert_eq!(
            purged,
            Purged {
                calls: 2,
                turns: 3,
                events: 3,
                idempotency_keys: 1
            }
        );
        let old_call = store.call(&old).await.unwrap().unwrap();
        assert_eq!((old_call.metadata, old_call.extraction), (None, None));
        assert_eq!(old_call.purged_at, Some(now));
        assert_eq!(old_call.erased_at, None);
        assert_eq!(old_call.to.as_deref(), Some("+14155550123"), "numbers stay");
        assert!(store.transcript(&old).await.unwrap().is_empty());
        assert!(store.transcript(&stuck).await.unwrap().is_empty());

        let recent_call = store.call(&recent).await.unwrap().unwrap();
        assert_eq!(recent_call.metadata, Some(json!({ "crm_id": 42 })));
        assert_eq!(store.transcript(&recent).await.unwrap().len(), 2);
        let waiting_call = store.call(&waiting).await.unwrap().unwrap();
        assert!(
            waiting_call.metadata.is_some(),
            "a call not yet placed stays"
        );
        assert_eq!(
            store
                .claim_idempotency_key("tok_a", "fresh", now)
                .await
                .unwrap(),
            IdempotencyClaim::Pending
        );
        assert_eq!(
            store.purge_older_than(cutoff, now).await.unwrap(),
            Purged::default(),
            "nothing twice"
        );
    }
}
