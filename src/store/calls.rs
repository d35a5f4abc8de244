//! Call records. Phone numbers are sealed; they are opened only to be masked or used.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row as _;

use super::{Store, StoreError};

/// A call as stored, with its numbers opened.
#[derive(Debug, Clone, Serialize)]
pub struct CallRecord {
    /// Twilio's CallSid.
    pub call_sid: String,
    /// `inbound` or `outbound`.
    pub direction: String,
    /// The caller (E.164).
    pub from: String,
    /// The called number (E.164).
    pub to: String,
    /// Twilio's call status as last seen.
    pub status: String,
    /// Created, Unix ms.
    pub created_at: i64,
    /// Last changed, Unix ms.
    pub updated_at: i64,
}

/// Where a page of calls starts.
#[derive(Debug, Clone, Copy)]
pub struct CallPage<'a> {
    /// Calls created before this call (the last of the previous page), if any.
    pub before: Option<(&'a str, i64)>,
    /// At most this many.
    pub limit: i64,
}

fn from_context(call_sid: &str) -> String {
    format!("calls.from_number:{call_sid}")
}

fn to_context(call_sid: &str) -> String {
    format!("calls.to_number:{call_sid}")
}

impl Store {
    /// Records a call Twilio told us about; a repeated webhook for the same call changes nothing.
    pub async fn insert_call(&self, call: &CallRecord) -> Result<(), StoreError> {
        let from = self.seal(&call.from, &from_context(&call.call_sid))?;
        let to = self.seal(&call.to, &to_context(&call.call_sid))?;
        sqlx::query(
            "INSERT INTO calls (call_sid, direction, from_number, to_number, status, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (call_sid) DO NOTHING",
        )
        .bind(&call.call_sid)
        .bind(&call.direction)
        .bind(from)
        .bind(to)
        .bind(&call.status)
        .bind(call.created_at)
        .bind(call.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// One call.
    pub async fn call(&self, call_sid: &str) -> Result<Option<CallRecord>, StoreError> {
        sqlx::query("SELECT * FROM calls WHERE call_sid = $1")
            .bind(call_sid)
            .fetch_optional(&self.pool)
            .await?
            .map(|row| self.call_record(&row))
            .transpose()
    }

    /// Calls, newest first.
    pub async fn calls(&self, page: CallPage<'_>) -> Result<Vec<CallRecord>, StoreError> {
        let (sid, at) = page.before.unwrap_or(("", i64::MAX));
        sqlx::query(
            "SELECT * FROM calls WHERE created_at < $1 OR (created_at = $1 AND call_sid < $2) \
             ORDER BY created_at DESC, call_sid DESC LIMIT $3",
        )
        .bind(at)
        .bind(sid)
        .bind(page.limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| self.call_record(row))
        .collect()
    }

    fn call_record(&self, row: &AnyRow) -> Result<CallRecord, StoreError> {
        let call_sid: String = row.try_get("call_sid")?;
        let from: String = row.try_get("from_number")?;
        let to: String = row.try_get("to_number")?;
        Ok(CallRecord {
            from: self.open_sealed(&from, &from_context(&call_sid))?,
            to: self.open_sealed(&to, &to_context(&call_sid))?,
            direction: row.try_get("direction")?,
            status: row.try_get("status")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            call_sid,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::sqlite_store;

    fn call(n: u32, created_at: i64) -> CallRecord {
        CallRecord {
            call_sid: format!("CA{n:032x}"),
            direction: "inbound".into(),
            from: "+14155550100".into(),
            to: "+14155550199".into(),
            status: "ringing".into(),
            created_at,
            updated_at: created_at,
        }
    }

    #[actix_rt::test]
    async fn calls_round_trip_and_page_newest_first() {
        let (store, _dir) = sqlite_store().await;
        for n in 0..5 {
            store
                .insert_call(&call(n, 1_000 + i64::from(n)))
                .await
                .unwrap();
        }
        store.insert_call(&call(0, 9_999)).await.unwrap();
        let first = store
            .calls(CallPage {
                before: None,
                limit: 2,
            })
            .await
            .unwrap();
        assert_eq!(first.len(), 2);
        assert_eq!(first[0].call_sid, call(4, 0).call_sid);
        assert_eq!(first[0].from, "+14155550100");
        let last = first.last().unwrap();
        let rest = store
            .calls(CallPage {
                before: Some((&last.call_sid, last.created_at)),
                limit: 10,
            })
            .await
            .unwrap();
        assert_eq!(rest.len(), 3);
        assert_eq!(
            rest[2].created_at, 1_000,
            "the repeated webhook changed nothing"
        );
        assert!(store.call("CAnone").await.unwrap().is_none());
    }
}
