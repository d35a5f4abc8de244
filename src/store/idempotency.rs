//! Idempotency keys of `POST /api/calls`: per API token and `Idempotency-Key`, the first answer,
//! kept [`IDEMPOTENCY_TTL`].
//!
//! A request claims its key before it places anything (`INSERT … ON CONFLICT DO NOTHING`: one
//! insert wins, on either database), then stores its answer. A second request with the same key
//! finds the answer ([`IdempotencyClaim::Answered`], to send again) or, while the first is still
//! placing the call, [`IdempotencyClaim::Pending`] (the API answers 409: retry later), so a race
//! of two identical requests places one call. A key older than the TTL counts as unused and is
//! taken over by the next claim; the retention job deletes those.

use std::time::Duration;

use serde_json::Value;
use sqlx::Row as _;

use super::{Store, StoreError};

/// How long a key holds its first answer.
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);

/// What a request learns when it claims its key.
#[derive(Debug, Clone, PartialEq)]
pub enum IdempotencyClaim {
    /// The key is this request's: go on, then [`Store::answer_idempotency_key`].
    Claimed,
    /// An earlier request with the key has not answered yet.
    Pending,
    /// The answer to the earlier request with the key.
    Answered(StoredAnswer),
}

/// A stored answer.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAnswer {
    /// Its HTTP status.
    pub status: u16,
    /// Its JSON body.
    pub body: Value,
}

fn ttl_ms() -> i64 {
    i64::try_from(IDEMPOTENCY_TTL.as_millis()).expect("a day of ms fits")
}

fn context(token_id: &str, key: &str) -> String {
    format!("idempotency_keys.body:{token_id}:{key}")
}

impl Store {
    /// Claims `key` for requests of `token_id` at `now_ms`, or says who has it.
    pub async fn claim_idempotency_key(
        &self,
        token_id: &str,
        key: &str,
        now_ms: i64,
    ) -> Result<IdempotencyClaim, StoreError> {
        // Each pass either decides or saw the row change under it (an expired claim taken over,
        // or purged): a few passes are plenty.
        for _ in 0..3 {
            let inserted = sqlx::query(
                "INSERT INTO idempotency_keys (token_id, key, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (token_id, key) DO NOTHING",
            )
            .bind(token_id)
            .bind(key)
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
            if inserted.rows_affected() == 1 {
                return Ok(IdempotencyClaim::Claimed);
            }
            let Some(row) = sqlx::query(
                "SELECT created_at, status, body FROM idempotency_keys \
                 WHERE token_id = $1 AND key = $2",
            )
            .bind(token_id)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?
            else {
                continue;
            };
            let created_at: i64 = row.try_get("created_at")?;
            if created_at > now_ms - ttl_ms() {
                return self.claim_of(&row, token_id, key);
            }
            let taken = sqlx::query(
                "UPDATE idempotency_keys SET created_at = $1, status = NULL, body = NULL \
                 WHERE token_id = $2 AND key = $3 AND created_at = $4",
            )
            .bind(now_ms)
            .bind(token_id)
            .bind(key)
            .bind(created_at)
            .execute(&self.pool)
            .await?;
            if taken.rows_affected() == 1 {
                return Ok(IdempotencyClaim::Claimed);
            }
        }
        Ok(IdempotencyClaim::Pending)
    }

    /// Stores the answer to the request that claimed `key`; false if the key is not claimed or
    /// already answered.
    pub async fn answer_idempotency_key(
        &self,
        token_id: &str,
        key: &str,
        status: u16,
        body: &Value,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE idempotency_keys SET status = $1, body = $2 \
             WHERE token_id = $3 AND key = $4 AND status IS NULL",
        )
        .bind(i64::from(status))
        .bind(self.seal(&body.to_string(), &context(token_id, key))?)
        .bind(token_id)
        .bind(key)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes the keys expired at `now_ms`; how many.
    pub(super) async fn purge_idempotency_keys(&self, now_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at <= $1")
            .bind(now_ms - ttl_ms())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    fn claim_of(
        &self,
        row: &sqlx::any::AnyRow,
        token_id: &str,
        key: &str,
    ) -> Result<IdempotencyClaim, StoreError> {
        let status: Option<i64> = row.try_get("status")?;
        let body: Option<String> = row.try_get("body")?;
        let (Some(status), Some(body)) = (status, body) else {
            return Ok(IdempotencyClaim::Pending);
        };
        let unexpected = || StoreError::Unexpected("idempotency_keys");
        Ok(IdempotencyClaim::Answered(StoredAnswer {
            status: u16::try_from(status).map_err(|_| unexpected())?,
            body: serde_json::from_str(&self.open_sealed(&body, &context(token_id, key))?)
                .map_err(|_| unexpected())?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::store::testing::sqlite_store;

    const DAY: i64 = 24 * 3600 * 1000;

    #[actix_rt::test]
    async fn the_first_answer_comes_back_for_a_day() {
        let (store, _dir) = sqlite_store().await;
        let claim = |token: &'static str, at: i64| {
            let store = store.clone();
            async move { store.claim_idempotency_key(token, "k1", at).await.unwrap() }
        };
        assert_eq!(claim("tok_a", 1_000).await, IdempotencyClaim::Claimed);
        assert_eq!(claim("tok_a", 1_001).await, IdempotencyClaim::Pending);
        assert_eq!(
            claim("tok_b", 1_002).await,
            IdempotencyClaim::Claimed,
            "keys are per token"
        );
        let body = json!({ "id": "call_x", "to": "+1415***0100" });
        assert!(store
            .answer_idempotency_key("tok_a", "k1", 201, &body)
            .await
            .unwrap());
        assert!(!store
            .answer_idempotency_key("tok_a", "k1", 500, &json!({}))
            .await
            .unwrap());
        let sealed: String =
            sqlx::query_scalar("SELECT body FROM idempotency_keys WHERE status = 201")
                .fetch_one(&store.pool)
                .await
                .unwrap();
        assert!(sealed.starts_with("v2.") && !sealed.contains("call_x"));
        let answered = IdempotencyClaim::Answered(StoredAnswer { status: 201, body });
        assert_eq!(claim("tok_a", 1_000 + DAY - 1).await, answered);
        assert_eq!(
            claim("tok_a", 1_000 + DAY).await,
            IdempotencyClaim::Claimed,
            "expired: a new request"
        );
        assert_eq!(claim("tok_a", 1_000 + DAY).await, IdempotencyClaim::Pending);
    }
}
