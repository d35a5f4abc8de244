//! Reading calls for the API: pages of them, newest first, filtered; and one call in full, with
//! its transcript and the latencies of each turn.

use serde::Serialize;

use super::calls::{Call, Direction};
use super::status::CallStatus;
use super::transcripts::StoredTurn;
use super::{Store, StoreError};

/// Which calls to list; every field left `None` lets all through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallFilter {
    /// Only calls with this status.
    pub status: Option<CallStatus>,
    /// Only calls in this direction.
    pub direction: Option<Direction>,
    /// Only calls created at or after this, Unix ms.
    pub created_from: Option<i64>,
    /// Only calls created before this, Unix ms.
    pub created_until: Option<i64>,
}

/// Where a page of calls starts.
#[derive(Debug, Clone, Copy)]
pub struct CallPage<'a> {
    /// Calls after this one (the last of the previous page), as its id and creation time.
    pub before: Option<(&'a str, i64)>,
    /// At most this many.
    pub limit: i64,
}

/// One call in full.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallDetail {
    /// Its record, the extraction included.
    #[serde(flatten)]
    pub call: Call,
    /// Its turns in order, each with its latencies.
    pub transcript: Vec<StoredTurn>,
}

impl Store {
    /// The calls `filter` lets through, newest first (by creation time, then id), one page.
    pub async fn calls(
        &self,
        filter: &CallFilter,
        page: CallPage<'_>,
    ) -> Result<Vec<Call>, StoreError> {
        let (before_id, before_at) = page.before.unwrap_or(("", i64::MAX));
        sqlx::query(
            "SELECT * FROM calls WHERE ($1 IS NULL OR status = $1) \
             AND ($2 IS NULL OR direction = $2) \
             AND ($3 IS NULL OR created_at >= $3) AND ($4 IS NULL OR created_at < $4) \
             AND (created_at < $5 OR (created_at = $5 AND id < $6)) \
             ORDER BY created_at DESC, id DESC LIMIT $7",
        )
        .bind(filter.status.map(CallStatus::as_str))
        .bind(filter.direction.map(Direction::as_str))
        .bind(filter.created_from)
        .bind(filter.created_until)
        .bind(before_at)
        .bind(before_id)
        .bind(page.limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| self.call_from_row(row))
        .collect()
    }

    /// One call (by id or CallSid) with its transcript.
    pub async fn call_detail(&self, id_or_sid: &str) -> Result<Option<CallDetail>, StoreError> {
        let Some(call) = self.call(id_or_sid).await? else {
            return Ok(None);
        };
        let transcript = self.transcript(&call.id).await?;
        Ok(Some(CallDetail { call, transcript }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::calls::testing::{inbound, insert, scheduled};
    use crate::store::testing::sqlite_store;
    use crate::store::transcripts::testing::question;

    fn everything(limit: i64) -> CallPage<'static> {
        CallPage {
            before: None,
            limit,
        }
    }

    #[actix_rt::test]
    async fn pages_run_newest_first_and_resume_after_the_last() {
        let (store, _dir) = sqlite_store().await;
        for n in 0..5 {
            insert(&store, &inbound(&format!("CA{n}")), 1_000 + n).await;
        }
        insert(&store, &inbound("CA0"), 9_999).await;
        let all = CallFilter::default();
        let first = store.calls(&all, everything(2)).await.unwrap();
        assert_eq!(first.len(), 2);
        assert_eq!(first[0].call_sid.as_deref(), Some("CA4"));
        let last = first.last().unwrap();
        let rest = store
            .calls(
                &all,
                CallPage {
                    before: Some((&last.id, last.created_at)),
                    limit: 10,
                },
            )
            .await
            .unwrap();
        assert_eq!(rest.len(), 3);
        assert_eq!(
            rest[2].created_at, 1_000,
            "the repeated webhook changed nothing"
        );
    }

    #[actix_rt::test]
    async fn filters_combine() {
        let (store, _dir) = sqlite_store().await;
        let early = insert(&store, &inbound("CA1"), 1_000).await;
        let late = insert(&store, &inbound("CA2"), 2_000).await;
        let planned = insert(&store, &scheduled(9_000), 3_000).await;
        store
            .apply_status(&late, CallStatus::Completed, None, 2_500)
            .await
            .unwrap();
        let ids = |filter: CallFilter| {
            let store = store.clone();
            async move {
                store
                    .calls(&filter, everything(10))
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|call| call.id)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            ids(CallFilter {
                status: Some(CallStatus::Scheduled),
                ..CallFilter::default()
            })
            .await,
            [planned.as_str()]
        );
        assert_eq!(
            ids(CallFilter {
                direction: Some(Direction::Inbound),
                ..CallFilter::default()
            })
            .await,
            [late.as_str(), early.as_str()]
        );
        assert_eq!(
            ids(CallFilter {
                created_from: Some(1_500),
                created_until: Some(3_000),
                ..CallFilter::default()
            })
            .await,
            [late.as_str()]
        );
        assert_eq!(
            ids(CallFilter {
                status: Some(CallStatus::Completed),
                direction: Some(Direction::Outbound),
                ..CallFilter::default()
            })
            .await,
            Vec::<String>::new()
        );
    }

    #[actix_rt::test]
    async fn one_call_in_full_has_its_transcript() {
        let (store, _dir) = sqlite_store().await;
        let id = insert(&store, &inbound("CA1"), 1_000).await;
        store.append_turn(&id, &question(), 1_100).await.unwrap();
        let detail = store.call_detail("CA1").await.unwrap().unwrap();
        assert_eq!(detail.call.id, id);
        assert_eq!(detail.transcript.len(), 1);
        assert_eq!(detail.transcript[0].turn, question());
        assert!(store.call_detail("CAnone").await.unwrap().is_none());
    }
}
