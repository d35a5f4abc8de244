//! The audit trail: authentication outcomes, token changes, configuration changes. Never a token.

use serde::Serialize;
use sqlx::{AnyConnection, Row as _};

use super::ids::random_id;
use super::{Store, StoreError};

/// One audit event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEvent {
    /// When (the first occurrence, for counted events), Unix ms.
    pub at: i64,
    /// What: `auth.success`, `auth.failure`, `auth.lockout`, `token.created`, `token.revoked`,
    /// `token.rotated`, `config.loaded`, `ip.blocked`, `call.erased`, `webhook.refused`.
    pub kind: String,
    /// The token concerned, by id.
    pub token_id: Option<String>,
    /// The client's IP address.
    pub client: Option<String>,
    /// Details (reason, scopes, setting names); never a secret.
    pub detail: String,
    /// How many times it happened (successes are counted per token and client between flushes).
    pub count: i64,
}

impl Store {
    /// Appends events.
    pub async fn append_audit(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut transaction = self.pool.begin().await?;
        for event in events {
            insert_audit(&mut transaction, event).await?;
        }
        transaction.commit().await?;
        Ok(())
    }

    /// The latest `limit` events, newest first.
    pub async fn audit_events(&self, limit: i64) -> Result<Vec<AuditEvent>, StoreError> {
        sqlx::query(
            "SELECT at, kind, token_id, client, detail, count FROM audit_events \
             ORDER BY at DESC, id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok(AuditEvent {
                at: row.try_get("at")?,
                kind: row.try_get("kind")?,
                token_id: row.try_get("token_id")?,
                client: row.try_get("client")?,
                detail: row.try_get("detail")?,
                count: row.try_get("count")?,
            })
        })
        .collect()
    }
}

/// Inserts one event on `connection` (in the caller's transaction).
pub(super) async fn insert_audit(
    connection: &mut AnyConnection,
    event: &AuditEvent,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_events (id, at, kind, token_id, client, detail, count) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(random_id("aud_")?)
    .bind(event.at)
    .bind(&event.kind)
    .bind(&event.token_id)
    .bind(&event.client)
    .bind(&event.detail)
    .bind(event.count)
    .execute(connection)
    .await?;
    Ok(())
}
