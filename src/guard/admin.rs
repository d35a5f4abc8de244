//! Token management: create, list, revoke, rotate. One implementation for the CLI (the bootstrap
//! path, straight on the store) and the API (through the [`super::auth::AuthActor`], which then
//! refreshes its cache). Every change is audited; the token itself appears only in the
//! [`Issued`] value returned to whoever asked for it.

use std::net::IpAddr;
use std::time::Duration;

use super::audit;
use super::token::{mint, NoRandomness, Scopes};
use crate::store::audit::AuditEvent;
use crate::store::crypto::CryptoError;
use crate::store::tokens::TokenRecord;
use crate::store::{now_ms, Store, StoreError};

/// The longest lifetime a token can be given, and the longest rotation overlap.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// The longest token name.
pub const MAX_NAME_CHARS: usize = 64;

/// A token to create.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// A name for people (`billing-service`).
    pub name: String,
    /// What it may do; at least one.
    pub scopes: Scopes,
    /// How long it is valid; forever when `None`.
    pub expires_in: Option<Duration>,
}

impl NewToken {
    /// Checks the request; the message names the field.
    pub fn validate(&self) -> Result<(), &'static str> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return Err("name: 1 to 64 characters");
        }
        if name.chars().any(char::is_control) {
            return Err("name: no control characters");
        }
        if self.scopes.is_empty() {
            return Err(
                "scopes: at least one of calls:read, calls:write, calls:delete, tokens:admin, webhooks:admin",
            );
        }
        if self
            .expires_in
            .is_some_and(|d| d.is_zero() || d > MAX_TOKEN_LIFETIME)
        {
            return Err("expires_in: more than 0 and at most 10 years");
        }
        Ok(())
    }
}

/// A token just created: shown once.
pub struct Issued {
    /// Its record.
    pub record: TokenRecord,
    /// The token.
    pub token: String,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

/// Who made a change, for the audit trail.
#[derive(Debug, Clone)]
pub enum ChangedBy {
    /// The operator, with `phone-agent token …` on the host.
    Cli,
    /// An API client.
    Token {
        /// The admin token's id.
        id: String,
        /// Its address.
        client: IpAddr,
    },
}

impl ChangedBy {
    /// The audit event of a change (logged as it is made).
    fn event(&self, kind: &str, subject: &str, detail: String) -> AuditEvent {
        let (by, client) = match self {
            ChangedBy::Cli => ("cli".to_owned(), None),
            ChangedBy::Token { id, client } => (id.clone(), Some(client.to_string())),
        };
        let event = AuditEvent {
            at: now_ms(),
            kind: kind.into(),
            token_id: Some(subject.to_owned()),
            client,
            detail: format!("by={by} {detail}").trim_end().to_owned(),
            count: 1,
        };
        audit::log(&event);
        event
    }
}

/// A token-management failure.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The request is invalid; the message names the field.
    #[error("{0}")]
    Invalid(&'static str),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<NoRandomness> for AdminError {
    fn from(_: NoRandomness) -> Self {
        AdminError::Store(StoreError::Crypto(CryptoError::Random))
    }
}

fn new_record(id: String, request: &NewToken, now: i64) -> TokenRecord {
    TokenRecord {
        id,
        name: request.name.trim().to_owned(),
        scopes: request.scopes,
        created_at: now,
        expires_at: request
            .expires_in
            .map(|d| now.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))),
        last_used_at: None,
        revoked_at: None,
        replaced_by: None,
    }
}

/// Creates a token.
pub async fn create(
    store: &Store,
    request: &NewToken,
    by: &ChangedBy,
) -> Result<Issued, AdminError> {
    request.validate().map_err(AdminError::Invalid)?;
    let minted = mint()?;
    let record = new_record(minted.id, request, now_ms());
    store.insert_token(&record, &minted.hash).await?;
    let detail = format!("name={:?} scopes={}", record.name, record.scopes.to_names());
    store
        .append_audit(&[by.event("token.created", &record.id, detail)])
        .await?;
    Ok(Issued {
        record,
        token: minted.secret,
    })
}

/// Every token, newest first.
pub async fn list(store: &Store) -> Result<Vec<TokenRecord>, AdminError> {
    Ok(store
        .tokens()
        .await?
        .into_iter()
        .map(|t| t.record)
        .collect())
}

/// Revokes a token at once; false when there is no live token by that id.
pub async fn revoke(store: &Store, id: &str, by: &ChangedBy) -> Result<bool, AdminError> {
    let revoked = store.revoke_token(id, now_ms()).await?;
    if revoked {
        store
            .append_audit(&[by.event("token.revoked", id, String::new())])
            .await?;
    }
    Ok(revoked)
}

/// Replaces a token with a new one (same name, scopes and lifetime); the old one keeps working
/// for `overlap`. `None` when there is no live, unrotated token by that id.
pub async fn rotate(
    store: &Store,
    id: &str,
    overlap: Duration,
    by: &ChangedBy,
) -> Result<Option<Issued>, AdminError> {
    if overlap > MAX_TOKEN_LIFETIME {
        return Err(AdminError::Invalid("overlap: at most 10 years"));
    }
    let Some(old) = store.token(id).await? else {
        return Ok(None);
    };
    let request = NewToken {
        name: old.name.clone(),
        scopes: old.scopes,
        expires_in: old
            .expires_at
            .map(|end| Duration::from_millis(u64::try_from(end - old.created_at).unwrap_or(1))),
    };
    let minted = mint()?;
    let now = now_ms();
    let record = new_record(minted.id, &request, now);
    let overlap_until = now.saturating_add(i64::try_from(overlap.as_millis()).unwrap_or(i64::MAX));
    if !store
        .rotate_token(id, &record, &minted.hash, overlap_until)
        .await?
    {
        return Ok(None);
    }
    let detail = format!("replaced_by={} overlap_s={}", record.id, overlap.as_secs());
    store
        .append_audit(&[by.event("token.rotated", id, detail)])
        .await?;
    Ok(Some(Issued {
        record,
        token: minted.secret,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::token::{hash_token, hex, Scope};
    use crate::store::testing::sqlite_store;

    fn request(name: &str) -> NewToken {
        NewToken {
            name: name.into(),
            scopes: [Scope::CallsRead].into_iter().collect(),
            expires_in: Some(Duration::from_secs(3600)),
        }
    }

    #[actix_rt::test]
    async fn created_tokens_are_stored_as_hashes_and_audited_without_the_token() {
        let (store, _dir) = sqlite_store().await;
        let issued = create(&store, &request("ci"), &ChangedBy::Cli)
            .await
            .unwrap();
        let stored = store.tokens().await.unwrap();
        assert_eq!(stored[0].hash_hex, hex(&hash_token(&issued.token)));
        assert_eq!(
            stored[0].record.expires_at,
            Some(issued.record.created_at + 3_600_000)
        );
        let events = store.audit_events(10).await.unwrap();
        assert_eq!(events[0].kind, "token.created");
        assert!(events[0].detail.starts_with("by=cli"));
        assert!(!format!("{events:?}").contains(&issued.token));
        assert!(!format!("{issued:?}").contains(&issued.token));
    }

    #[actix_rt::test]
    async fn bad_requests_name_the_field() {
        let (store, _dir) = sqlite_store().await;
        let mut bad = request(" ");
        assert!(matches!(
            create(&store, &bad, &ChangedBy::Cli).await,
            Err(AdminError::Invalid(m)) if m.starts_with("name")
        ));
        bad = request("x");
        bad.scopes = Scopes::default();
        assert!(matches!(
            create(&store, &bad, &ChangedBy::Cli).await,
            Err(AdminError::Invalid(m)) if m.starts_with("scopes")
        ));
    }

    #[actix_rt::test]
    async fn rotation_keeps_name_scopes_and_lifetime() {
        let (store, _dir) = sqlite_store().await;
        let old = create(&store, &request("ci"), &ChangedBy::Cli)
            .await
            .unwrap();
        let new = rotate(
            &store,
            &old.record.id,
            Duration::from_secs(60),
            &ChangedBy::Cli,
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(new.record.name, "ci");
        assert_eq!(new.record.scopes, old.record.scopes);
        assert_eq!(
            new.record.expires_at.unwrap() - new.record.created_at,
            3_600_000
        );
        assert!(rotate(
            &store,
            &old.record.id,
            Duration::from_secs(60),
            &ChangedBy::Cli
        )
        .await
        .unwrap()
        .is_none());
        assert!(revoke(&store, &new.record.id, &ChangedBy::Cli)
            .await
            .unwrap());
        assert!(!revoke(&store, "tok_none", &ChangedBy::Cli).await.unwrap());
    }
}
