//! Inbound webhooks already processed, by message id: the replay guard of `POST /webhooks/…`.
//!
//! A receipt is an `INSERT … ON CONFLICT DO NOTHING` (one insert wins, on either database): the
//! first delivery of a message inserts it, a repeat finds it. Receipts older than
//! [`RECEIPT_TTL`] are deleted as new ones come; a message that old is refused by its timestamp
//! anyway.

use std::time::Duration;

use super::{Store, StoreError};

/// How long a receipt is kept: twice the signatures' tolerance (a timestamp may be that far in
/// the future as well as in the past).
pub const RECEIPT_TTL: Duration = Duration::from_secs(10 * 60);

impl Store {
    /// Records that `message_id` arrived at `now_ms`: true the first time, false for a repeat.
    pub async fn first_receipt(&self, message_id: &str, now_ms: i64) -> Result<bool, StoreError> {
        let ttl = i64::try_from(RECEIPT_TTL.as_millis()).expect("minutes of ms fit");
        sqlx::query("DELETE FROM webhook_receipts WHERE received_at < $1")
            .bind(now_ms - ttl)
            .execute(&self.pool)
            .await?;
        let inserted = sqlx::query(
            "INSERT INTO webhook_receipts (message_id, received_at) VALUES ($1, $2) \
             ON CONFLICT (message_id) DO NOTHING",
        )
        .bind(message_id)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(inserted.rows_affected() == 1)
    }

    /// Forgets that `message_id` arrived (its processing failed): its next delivery is processed.
    pub async fn forget_receipt(&self, message_id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM webhook_receipts WHERE message_id = $1")
            .bind(message_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
