//! API token rows: hashes, names, scopes, times. The token itself is never stored.

use serde::Serialize;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, Row as _};

use super::{Store, StoreError};
use crate::guard::token::{hex, Scopes, TokenHash};

/// What is known about a token (never the token).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TokenRecord {
    /// `tok_…`.
    pub id: String,
    /// What the operator called it.
    pub name: String,
    /// What it may do.
    #[schema(value_type = Vec<crate::guard::token::Scope>)]
    pub scopes: Scopes,
    /// Created, Unix ms.
    pub created_at: i64,
    /// No longer valid from, Unix ms.
    pub expires_at: Option<i64>,
    /// Last authenticated a request (updated every few seconds), Unix ms.
    pub last_used_at: Option<i64>,
    /// Revoked at, Unix ms.
    pub revoked_at: Option<i64>,
    /// The token that replaced it in a rotation.
    pub replaced_by: Option<String>,
}

/// A record and the hash it is found by (for the authentication cache).
#[derive(Debug, Clone)]
pub struct HashedToken {
    /// The record.
    pub record: TokenRecord,
    /// Lowercase hex SHA-256 of the token.
    pub hash_hex: String,
}

const COLUMNS: &str =
    "id, name, scopes, created_at, expires_at, last_used_at, revoked_at, replaced_by, token_hash";

fn record(row: &AnyRow) -> Result<HashedToken, StoreError> {
    let scopes: String = row.try_get("scopes")?;
    Ok(HashedToken {
        record: TokenRecord {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            // Stored scopes were validated when written; an unknown one grants nothing.
            scopes: Scopes::parse(&scopes).unwrap_or_default(),
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
            last_used_at: row.try_get("last_used_at")?,
            revoked_at: row.try_get("revoked_at")?,
            replaced_by: row.try_get("replaced_by")?,
        },
        hash_hex: row.try_get("token_hash")?,
    })
}

fn insert<'a>(token: &'a TokenRecord, hash: &TokenHash) -> Query<'a, Any, AnyArguments<'a>> {
    sqlx::query(
        "INSERT INTO api_tokens (id, name, token_hash, scopes, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&token.id)
    .bind(&token.name)
    .bind(hex(hash))
    .bind(token.scopes.to_names())
    .bind(token.created_at)
    .bind(token.expires_at)
}

impl Store {
    /// Stores a new token's record and hash.
    pub async fn insert_token(
        &self,
        token: &TokenRecord,
        hash: &TokenHash,
    ) -> Result<(), StoreError> {
        insert(token, hash).execute(&self.pool).await?;
        Ok(())
    }

    /// Every token, newest first, with hashes.
    pub async fn tokens(&self) -> Result<Vec<HashedToken>, StoreError> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM api_tokens ORDER BY created_at DESC, id"
        ))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(record)
        .collect()
    }

    /// One token by id.
    pub async fn token(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        sqlx::query(&format!("SELECT {COLUMNS} FROM api_tokens WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(|row| record(&row).map(|hashed| hashed.record))
            .transpose()
    }

    /// Revokes a token; false when there is no such token or it was already revoked.
    pub async fn revoke_token(&self, id: &str, at: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(at)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes the tokens revoked or expired before `cutoff_ms` (they can never authenticate
    /// again): how many.
    pub async fn purge_dead_tokens(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM api_tokens WHERE revoked_at < $1 OR expires_at < $1")
            .bind(cutoff_ms)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Stores `replacement` and makes `old` expire at `overlap_until` (or earlier, if it already
    /// would), in one transaction; false (and nothing stored) when `old` is not a live token.
    pub async fn rotate_token(
        &self,
        old: &str,
        replacement: &TokenRecord,
        hash: &TokenHash,
        overlap_until: i64,
    ) -> Result<bool, StoreError> {
        let mut transaction = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE api_tokens SET replaced_by = $1, \
             expires_at = CASE WHEN expires_at IS NULL OR expires_at > $2 THEN $2 ELSE expires_at END \
             WHERE id = $3 AND revoked_at IS NULL AND replaced_by IS NULL \
             AND (expires_at IS NULL OR expires_at > $4)",
        )
        .bind(&replacement.id)
        .bind(overlap_until)
        .bind(old)
        .bind(replacement.created_at)
        .execute(&mut *transaction)
        .await?;
        if updated.rows_affected() != 1 {
            return Ok(false);
        }
        insert(replacement, hash).execute(&mut *transaction).await?;
        transaction.commit().await?;
        Ok(true)
    }

    /// Records when tokens last authenticated a request.
    pub async fn touch_tokens(&self, used: &[(String, i64)]) -> Result<(), StoreError> {
        for (id, at) in used {
            sqlx::query(
                "UPDATE api_tokens SET last_used_at = $1 \
                 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)",
            )
            .bind(*at)
            .bind(id)
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::token::{mint, Scope};
    use crate::store::testing::sqlite_store;

    fn record(id: &str, created_at: i64, expires_at: Option<i64>) -> TokenRecord {
        TokenRecord {
            id: id.into(),
            name: "ci".into(),
            scopes: [Scope::CallsRead].into_iter().collect(),
            created_at,
            expires_at,
            last_used_at: None,
            revoked_at: None,
            replaced_by: None,
        }
    }

    #[actix_rt::test]
    async fn tokens_are_stored_as_hashes_and_listed() {
        let (store, _dir) = sqlite_store().await;
        let minted = mint().unwrap();
        store
            .insert_token(&record(&minted.id, 1, None), &minted.hash)
            .await
            .unwrap();
        let all = store.tokens().await.unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].hash_hex, hex(&minted.hash));
        assert_eq!(all[0].record.scopes.to_names(), "calls:read");
        store
            .touch_tokens(&[(minted.id.clone(), 50)])
            .await
            .unwrap();
        assert!(store.revoke_token(&minted.id, 60).await.unwrap());
        assert!(!store.revoke_token(&minted.id, 70).await.unwrap());
        let stored = store.token(&minted.id).await.unwrap().unwrap();
        assert_eq!(
            (stored.last_used_at, stored.revoked_at),
            (Some(50), Some(60))
        );
    }

    #[actix_rt::test]
    async fn tokens_dead_before_the_cutoff_are_purged_and_no_other() {
        let (store, _dir) = sqlite_store().await;
        let mut ids = Vec::new();
        for expires_at in [None, Some(500), Some(2_000), None] {
            let minted = mint().unwrap();
            store
                .insert_token(&record(&minted.id, 1, expires_at), &minted.hash)
                .await
                .unwrap();
            ids.push(minted.id);
        }
        assert!(store.revoke_token(&ids[3], 900).await.unwrap());
        assert_eq!(store.purge_dead_tokens(1_000).await.unwrap(), 2);
        let left: Vec<String> = store
            .tokens()
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.record.id)
            .collect();
        assert_eq!(left.len(), 2);
        assert!(left.contains(&ids[0]) && left.contains(&ids[2]), "{left:?}");
    }

    #[actix_rt::test]
    async fn rotation_shortens_the_old_token_and_only_once() {
        let (store, _dir) = sqlite_store().await;
        let old = mint().unwrap();
        store
            .insert_token(&record(&old.id, 1, Some(10_000)), &old.hash)
            .await
            .unwrap();
        let new = mint().unwrap();
        assert!(store
            .rotate_token(&old.id, &record(&new.id, 100, None), &new.hash, 5_000)
            .await
            .unwrap());
        let shortened = store.token(&old.id).await.unwrap().unwrap();
        assert_eq!(shortened.expires_at, Some(5_000));
        assert_eq!(shortened.replaced_by.as_deref(), Some(new.id.as_str()));
        let again = mint().unwrap();
        assert!(!store
            .rotate_token(&old.id, &record(&again.id, 200, None), &again.hash, 9_000)
            .await
            .unwrap());
        assert!(store.token(&again.id).await.unwrap().is_none());
    }
}
