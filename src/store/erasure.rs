//! Erasing a call: its numbers, transcript, extraction, metadata, the sealed data of its events
//! and the payloads of its outbound messages go (undelivered ones are never sent); a tombstone stays (id, CallSid, direction, status, times, `erased_at`), with an audit row
//! written in the same transaction.
//!
//! Turn rows are deleted and the rest set to NULL. Deleted is not gone from a database file by
//! itself: SQLite runs with `secure_delete` (freed space is zeroed) and, after an erasure, its
//! write-ahead log, which still holds the pages as they were, is checkpointed and truncated.
//! PostgreSQL keeps dead row versions until VACUUM reclaims them.

use sqlx::AnyConnection;

use super::audit::{insert_audit, AuditEvent};
use super::crypto::sealed_condition;
use super::{Store, StoreError};

/// What went with a call's content.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Removed {
    /// Transcript turns deleted.
    pub turns: u64,
    /// Events whose sealed data was cleared.
    pub events: u64,
}

impl Store {
    /// Erases the call (by id or CallSid) down to its tombstone and appends `audit`, in one
    /// transaction; false (and nothing written) when there is no such call or it was erased.
    pub async fn erase_call(
        &self,
        id_or_sid: &str,
        audit: &AuditEvent,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let erase = sqlx::query(
            "UPDATE calls SET from_number = NULL, to_number = NULL, metadata = NULL, \
             extraction = NULL, purged_at = COALESCE(purged_at, $1), erased_at = $1, \
             updated_at = $1 WHERE (id = $2 OR call_sid = $2) AND erased_at IS NULL RETURNING id",
        )
        .bind(now_ms)
        .bind(id_or_sid);
        let Some((mut transaction, row)) = self.begin_change(erase).await? else {
            return Ok(false);
        };
        let id: String = sqlx::Row::try_get(&row, "id")?;
        remove_content(&mut transaction, &id).await?;
        insert_audit(&mut transaction, audit).await?;
        transaction.commit().await?;
        self.flush_erased().await?;
        Ok(true)
    }
}

/// Deletes the call's turns and clears the sealed data of its events, in the caller's
/// transaction (which has already locked the call's row).
pub(super) async fn remove_content(
    connection: &mut AnyConnection,
    call_id: &str,
) -> Result<Removed, StoreError> {
    let turns = sqlx::query("DELETE FROM call_turns WHERE call_id = $1")
        .bind(call_id)
        .execute(&mut *connection)
        .await?
        .rows_affected();
    let erase_events = format!(
        "UPDATE call_events SET data = NULL WHERE call_id = $1 AND {}",
        sealed_condition("data")
    );
    let events = sqlx::query(&erase_events)
        .bind(call_id)
        .execute(&mut *connection)
        .await?
        .rows_affected();
    // Messages not yet delivered go unsent: what they said was the call's content.
    sqlx::query(
        "UPDATE webhook_deliveries SET payload = NULL, \
         state = CASE WHEN state = 'pending' THEN 'erased' ELSE state END WHERE call_id = $1",
    )
    .bind(call_id)
    .execute(&mut *connection)
    .await?;
    Ok(Removed { turns, events })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::call_events::EventKind;
    use crate::store::calls::testing::scheduled;
    use crate::store::status::CallStatus;
    use crate::store::testing::{erasure_audit as audit, sqlite_store};
    use crate::store::transcripts::testing::{
        answered_with_a_reply, barged_in_and_extracted, question,
    };

    /// A call with everything an erasure removes: numbers, metadata, extraction, turns, a
    /// barge-in. Its id.
    async fn full_call(store: &Store, call_sid: &str) -> String {
        let id = answered_with_a_reply(store, &scheduled(1_000)).await;
        store.set_call_sid(&id, call_sid, 500).await.unwrap();
        barged_in_and_extracted(store, &id).await;
        id
    }

    #[actix_rt::test]
    async fn an_erased_call_is_a_tombstone_with_an_audit_row() {
        let (store, _dir) = sqlite_store().await;
        let id = full_call(&store, "CA1").await;
        assert!(store.erase_call("CA1", &audit("CA1"), 900).await.unwrap());
        assert!(!store.erase_call(&id, &audit(&id), 950).await.unwrap());

        let call = store.call(&id).await.unwrap().unwrap();
        assert_eq!((call.from, call.to), (None, None));
        assert_eq!((call.metadata, call.extraction), (None, None));
        assert_eq!((call.erased_at, call.purged_at), (Some(900), Some(900)));
        assert_eq!(call.call_sid.as_deref(), Some("CA1"));
        assert_eq!(call.status, CallStatus::InProgress);
        assert_eq!(call.answered_at, Some(300));
        assert!(store.transcript(&id).await.unwrap().is_empty());
        let events = store.events_after(&id, 0, 10).await.unwrap();
        assert_eq!(events.len(), 5, "the timeline stays");
        for event in events {
            let sealed = matches!(event.kind, EventKind::Turn | EventKind::BargeIn);
            assert_eq!(event.data.is_none(), sealed, "{event:?}");
        }
        assert_eq!(
            store.append_turn(&id, &question(), 1_000).await.unwrap(),
            None
        );
        let audited = store.audit_events(10).await.unwrap();
        assert_eq!(
            audited,
            [audit("CA1")],
            "one audit row, for the one erasure"
        );
    }

    /// Every file of the SQLite database: the file, its write-ahead log and index.
    fn database_files(dir: &std::path::Path) -> Vec<u8> {
        let mut bytes = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("test.db")
            {
                bytes.extend(std::fs::read(path).unwrap());
            }
        }
        bytes
    }

    fn contains(haystack: &[u8], needle: &str) -> bool {
        haystack
            .windows(needle.len())
            .any(|window| window == needle.as_bytes())
    }

    /// The sealed values stored for one call, as the database holds them.
    async fn sealed_values(store: &Store, id: &str) -> Vec<String> {
        let queries = [
            "SELECT from_number FROM calls WHERE id = $1",
            "SELECT to_number FROM calls WHERE id = $1",
            "SELECT metadata FROM calls WHERE id = $1",
            "SELECT extraction FROM calls WHERE id = $1",
            "SELECT text FROM call_turns WHERE call_id = $1",
            "SELECT heard FROM call_turns WHERE call_id = $1",
            &format!(
                "SELECT data FROM call_events WHERE call_id = $1 AND {}",
                sealed_condition("data")
            ),
            "SELECT payload FROM webhook_deliveries WHERE call_id = $1",
        ];
        let mut values = Vec::new();
        for query in queries {
            let found: Vec<Option<String>> = sqlx::query_scalar(query)
                .bind(id)
                .fetch_all(&store.pool)
                .await
                .unwrap();
            values.extend(found.into_iter().flatten());
        }
        values
    }

    #[actix_rt::test]
    async fn erased_data_is_not_in_the_database_files() {
        let (store, dir) = sqlite_store().await;
        let erased = full_call(&store, "CA1").await;
        let kept = full_call(&store, "CA2").await;
        let erased_values = sealed_values(&store, &erased).await;
        let kept_values = sealed_values(&store, &kept).await;
        assert_eq!(erased_values.len(), 10, "{erased_values:?}");
        let before = database_files(dir.path());
        assert!(
            erased_values.iter().all(|value| contains(&before, value)),
            "the test reads where the values are"
        );

        assert!(store
            .erase_call(&erased, &audit(&erased), 900)
            .await
            .unwrap());
        let after = database_files(dir.path());
        for value in &erased_values {
            assert!(!contains(&after, value), "{value} is still in the files");
        }
        assert!(kept_values.iter().all(|value| contains(&after, value)));
        for plaintext in [
            "4155550100",
            "4155550199",
            "4155550123",
            "prices",
            "Ana Lima",
        ] {
            assert!(!contains(&after, plaintext), "{plaintext} in the files");
        }
    }
}
