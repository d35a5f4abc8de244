//! Outbound webhook endpoints and the secrets that sign what is sent to them.
//!
//! An endpoint is a URL a client registered with the event types it wants. Each endpoint has a
//! signing secret (`whsec_` and 24 random bytes in base64, the Standard Webhooks form), and so
//! does the account: it signs the events sent to a call's own `webhook_url`. Secrets are sealed
//! for their owner. Rotating one keeps the previous secret signing too (a second `v1,`
//! signature) for a grace period, so receivers can switch without dropping a message.

use base64::Engine as _;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row as _;

use super::ids::{random, random_id};
use super::{Store, StoreError};

/// The owner of the secret that signs events sent to calls' own webhook URLs.
pub const ACCOUNT_SECRET: &str = "account";

/// Every event type an endpoint can subscribe to.
pub const EVENT_TYPES: [&str; 6] = [
    "call.scheduled",
    "call.started",
    "call.turn",
    "call.transferred",
    "call.completed",
    "call.failed",
];

/// A registered endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Endpoint {
    /// `whep_…`.
    pub id: String,
    /// Where events are posted.
    pub url: String,
    /// The event types sent to it; empty: all of them.
    pub events: Vec<String>,
    /// The client's note.
    pub description: Option<String>,
    /// Registered, Unix ms.
    pub created_at: i64,
}

impl Endpoint {
    /// Whether events of `event_type` go to it.
    pub fn wants(&self, event_type: &str) -> bool {
        self.events.is_empty() || self.events.iter().any(|wanted| wanted == event_type)
    }
}

/// The secrets a message is signed with now: the current one, and the previous one during the
/// grace period after a rotation.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecrets {
    /// `whsec_…`.
    pub current: String,
    /// `whsec_…`, until its grace period ends.
    pub previous: Option<String>,
}

impl std::fmt::Debug for SigningSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecrets(redacted)")
    }
}

fn url_context(id: &str) -> String {
    format!("webhook_endpoints.url:{id}")
}

fn secret_context(owner: &str) -> String {
    format!("webhook_secrets.secret:{owner}")
}

fn previous_context(owner: &str) -> String {
    format!("webhook_secrets.previous:{owner}")
}

/// A new signing secret.
fn new_secret() -> Result<String, StoreError> {
    let bytes = random::<24>()?;
    Ok(format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}

impl Store {
    /// Registers an endpoint for `events` (empty: all); the endpoint and its signing secret,
    /// which is shown to the client this once.
    pub async fn create_endpoint(
        &self,
        url: &str,
        events: &[String],
        description: Option<&str>,
        now_ms: i64,
    ) -> Result<(Endpoint, String), StoreError> {
        let id = random_id("whep_")?;
        let secret = new_secret()?;
        let stored_events = if events.is_empty() {
            "*".to_owned()
        } else {
            events.join(" ")
        };
        let mut transaction = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO webhook_endpoints (id, url, events, description, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&id)
        .bind(self.seal(url, &url_context(&id))?)
        .bind(stored_events)
        .bind(description)
        .bind(now_ms)
        .execute(&mut *transaction)
        .await?;
        sqlx::query("INSERT INTO webhook_secrets (owner, secret, rotated_at) VALUES ($1, $2, $3)")
            .bind(&id)
            .bind(self.seal(&secret, &secret_context(&id))?)
            .bind(now_ms)
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        let endpoint = Endpoint {
            id,
            url: url.to_owned(),
            events: events.to_vec(),
            description: description.map(str::to_owned),
            created_at: now_ms,
        };
        Ok((endpoint, secret))
    }

    /// Every endpoint, oldest first.
    pub async fn endpoints(&self) -> Result<Vec<Endpoint>, StoreError> {
        sqlx::query("SELECT * FROM webhook_endpoints ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| self.endpoint_from_row(row))
            .collect()
    }

    /// One endpoint.
    pub async fn endpoint(&self, id: &str) -> Result<Option<Endpoint>, StoreError> {
        sqlx::query("SELECT * FROM webhook_endpoints WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(|row| self.endpoint_from_row(&row))
            .transpose()
    }

    /// Removes an endpoint, its secret and its deliveries (sent or not); false if there was no
    /// such endpoint.
    pub async fn delete_endpoint(&self, id: &str) -> Result<bool, StoreError> {
        let mut transaction = self.pool.begin().await?;
        let deleted = sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1")
            .bind(id)
            .execute(&mut *transaction)
            .await?
            .rows_affected();
        if deleted == 0 {
            // Nothing else either: `account` names the account's secret, not an endpoint.
            return Ok(false);
        }
        for table in [
            "webhook_secrets WHERE owner",
            "webhook_deliveries WHERE endpoint_id",
        ] {
            sqlx::query(&format!("DELETE FROM {table} = $1"))
                .bind(id)
                .execute(&mut *transaction)
                .await?;
        }
        transaction.commit().await?;
        Ok(true)
    }

    /// Gives `owner` (an endpoint's id, or [`ACCOUNT_SECRET`]) a new secret; the old one keeps
    /// signing for `grace_ms`. The new secret, or `None` for an unknown endpoint.
    pub async fn rotate_secret(
        &self,
        owner: &str,
        grace_ms: i64,
        now_ms: i64,
    ) -> Result<Option<String>, StoreError> {
        if owner == ACCOUNT_SECRET {
            self.account_secret(now_ms).await?;
        }
        let Some(old) = self.signing_secrets(owner, now_ms).await? else {
            return Ok(None);
        };
        let secret = new_secret()?;
        sqlx::query(
            "UPDATE webhook_secrets SET secret = $1, previous = $2, previous_until = $3, \
             rotated_at = $4 WHERE owner = $5",
        )
        .bind(self.seal(&secret, &secret_context(owner))?)
        .bind(self.seal(&old.current, &previous_context(owner))?)
        .bind(now_ms + grace_ms)
        .bind(now_ms)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(Some(secret))
    }

    /// The secrets that sign `owner`'s messages at `now_ms`; `None` if it has none.
    pub async fn signing_secrets(
        &self,
        owner: &str,
        now_ms: i64,
    ) -> Result<Option<SigningSecrets>, StoreError> {
        let Some(row) = sqlx::query("SELECT * FROM webhook_secrets WHERE owner = $1")
            .bind(owner)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let previous_until: Option<i64> = row.try_get("previous_until")?;
        let previous = match previous_until {
            Some(until) if until > now_ms => {
                self.open_optional(row.try_get("previous")?, &previous_context(owner))?
            }
            _ => None,
        };
        Ok(Some(SigningSecrets {
            current: self
                .open_sealed(&row.try_get::<String, _>("secret")?, &secret_context(owner))?,
            previous,
        }))
    }

    /// The account's secret (signing events sent to calls' own webhook URLs), made on first
    /// use (a read after that: the dispatcher asks every few hundred milliseconds).
    pub async fn account_secret(&self, now_ms: i64) -> Result<SigningSecrets, StoreError> {
        if let Some(secrets) = self.signing_secrets(ACCOUNT_SECRET, now_ms).await? {
            return Ok(secrets);
        }
        sqlx::query(
            "INSERT INTO webhook_secrets (owner, secret, rotated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (owner) DO NOTHING",
        )
        .bind(ACCOUNT_SECRET)
        .bind(self.seal(&new_secret()?, &secret_context(ACCOUNT_SECRET))?)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        self.signing_secrets(ACCOUNT_SECRET, now_ms)
            .await?
            .ok_or(StoreError::Unexpected("webhook_secrets"))
    }

    pub(super) fn endpoint_from_row(&self, row: &AnyRow) -> Result<Endpoint, StoreError> {
        let id: String = row.try_get("id")?;
        let events: String = row.try_get("events")?;
        Ok(Endpoint {
            url: self.open_sealed(&row.try_get::<String, _>("url")?, &url_context(&id))?,
            events: match events.as_str() {
                "*" => Vec::new(),
                listed => listed.split(' ').map(str::to_owned).collect(),
            },
            description: row.try_get("description")?,
            created_at: row.try_get("created_at")?,
            id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::sqlite_store;

    #[actix_rt::test]
    async fn endpoints_keep_their_url_events_and_a_sealed_secret() {
        let (store, _dir) = sqlite_store().await;
        let events = vec!["call.completed".to_owned()];
        let (endpoint, secret) = store
            .create_endpoint("https://hooks.example.com/a", &events, Some("crm"), 100)
            .await
            .unwrap();
        assert!(secret.starts_with("whsec_"), "{secret}");
        assert!(endpoint.wants("call.completed") && !endpoint.wants("call.turn"));
        assert_eq!(
            store.endpoint(&endpoint.id).await.unwrap(),
            Some(endpoint.clone())
        );
        let (all, _) = store
            .create_endpoint("https://hooks.example.com/b", &[], None, 200)
            .await
            .unwrap();
        assert!(all.wants("call.turn"));
        assert_eq!(store.endpoints().await.unwrap(), [endpoint.clone(), all]);

        let stored: Vec<String> = sqlx::query_scalar("SELECT secret FROM webhook_secrets")
            .fetch_all(&store.pool)
            .await
            .unwrap();
        assert!(stored
            .iter()
            .all(|s| s.starts_with("v2.") && !s.contains(&secret[6..])));
        let secrets = store
            .signing_secrets(&endpoint.id, 100)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((secrets.current, secrets.previous), (secret, None));

        store.account_secret(100).await.unwrap();
        assert!(!store.delete_endpoint(ACCOUNT_SECRET).await.unwrap());
        assert!(store
            .signing_secrets(ACCOUNT_SECRET, 100)
            .await
            .unwrap()
            .is_some());
        assert!(store.delete_endpoint(&endpoint.id).await.unwrap());
        assert!(!store.delete_endpoint(&endpoint.id).await.unwrap());
        assert_eq!(
            store.signing_secrets(&endpoint.id, 100).await.unwrap(),
            None
        );
    }

    #[actix_rt::test]
    async fn a_rotated_secret_signs_alongside_the_new_one_for_the_grace_period() {
        let (store, _dir) = sqlite_store().await;
        let (endpoint, old) = store
            .create_endpoint("https://hooks.example.com/a", &[], None, 100)
            .await
            .unwrap();
        let new = store
            .rotate_secret(&endpoint.id, 1_000, 500)
            .await
            .unwrap()
            .unwrap();
        assert_ne!(new, old);
        let during = store
            .signing_secrets(&endpoint.id, 1_499)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (during.current.as_str(), during.previous),
            (new.as_str(), Some(old))
        );
        let after = store
            .signing_secrets(&endpoint.id, 1_500)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((after.current, after.previous), (new, None));
        assert_eq!(
            store.rotate_secret("whep_none", 1_000, 500).await.unwrap(),
            None
        );

        let account = store.account_secret(100).await.unwrap();
        assert_eq!(
            store.account_secret(200).await.unwrap(),
            account,
            "made once"
        );
        let rotated = store.rotate_secret(ACCOUNT_SECRET, 0, 300).await.unwrap();
        assert_eq!(
            store.account_secret(400).await.unwrap().current,
            rotated.unwrap()
        );
    }
}
