//! Re-sealing every sealed column under the current data key (`phone-agent rekey`).
//!
//! Rotation: put the new key in service as `DATA_KEY` with the old one in `DATA_KEY_PREVIOUS`
//! (servers then seal under the new key and open under both), run `phone-agent rekey`, then drop
//! `DATA_KEY_PREVIOUS`. Rekeying goes column by column in batches, each value re-sealed for the
//! same column and row and written only if the row still holds what was read, so servers may run
//! meanwhile; the do-not-call list's rows move to the new key's lookup hash, and pending webhook
//! deliveries to a call's own URL get the new key's hash of their host. A value that opens under
//! no key of the ring stops the run with an error naming its column: nothing is lost, and the
//! run can be repeated once the missing key is in `DATA_KEY_PREVIOUS`.

use sqlx::any::AnyRow;
use sqlx::Row as _;

use super::crypto::sealed_condition;
use super::{dnc, Store, StoreError};

/// Rows read and re-sealed per query.
const BATCH: i64 = 500;

/// A column of a key that identifies a row.
#[derive(Debug, Clone, Copy)]
enum KeyColumn {
    /// A TEXT column.
    Text(&'static str),
    /// A BIGINT column.
    Int(&'static str),
}

impl KeyColumn {
    fn name(self) -> &'static str {
        match self {
            Self::Text(name) | Self::Int(name) => name,
        }
    }
}

/// A sealed column: its table, its name and the columns of the row's key, whose values, joined
/// by `:`, follow `table.column:` in the associated data it is sealed with.
#[derive(Debug)]
struct SealedColumn {
    table: &'static str,
    column: &'static str,
    key: &'static [KeyColumn],
}

use KeyColumn::{Int, Text};

/// Every sealed column but the do-not-call list's numbers (whose row key is their lookup hash).
const SEALED_COLUMNS: &[SealedColumn] = &[
    SealedColumn {
        table: "calls",
        column: "from_number",
        key: &[Text("id")],
    },
    SealedColumn {
        table: "calls",
        column: "to_number",
        key: &[Text("id")],
    },
    SealedColumn {
        table: "calls",
        column: "metadata",
        key: &[Text("id")],
    },
    SealedColumn {
        table: "calls",
        column: "extraction",
        key: &[Text("id")],
    },
    SealedColumn {
        table: "calls",
        column: "webhook_url",
        key: &[Text("id")],
    },
    SealedColumn {
        table: "call_turns",
        column: "text",
        key: &[Text("call_id"), Int("n")],
    },
    SealedColumn {
        table: "call_turns",
        column: "heard",
        key: &[Text("call_id"), Int("n")],
    },
    SealedColumn {
        table: "call_events",
        column: "data",
        key: &[Text("call_id"), Int("seq")],
    },
    SealedColumn {
        table: "idempotency_keys",
        column: "body",
        key: &[Text("token_id"), Text("key")],
    },
    SealedColumn {
        table: "webhook_endpoints",
        column: "url",
        key: &[Text("id")],
    },
    SealedColumn {
        table: "webhook_secrets",
        column: "secret",
        key: &[Text("owner")],
    },
    SealedColumn {
        table: "webhook_secrets",
        column: "previous",
        key: &[Text("owner")],
    },
    SealedColumn {
        table: "webhook_deliveries",
        column: "url",
        key: &[Text("id")],
    },
    SealedColumn {
        table: "webhook_deliveries",
        column: "payload",
        key: &[Text("id")],
    },
];

/// A row's key as read: each column's value, typed as its column.
enum KeyValue {
    Text(String),
    Int(i64),
}

impl std::fmt::Display for KeyValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Text(text) => f.write_str(text),
            Self::Int(n) => write!(f, "{n}"),
        }
    }
}

/// What a rekey changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RekeyReport {
    /// Values re-sealed, per `table.column`, in the order of the schema (columns with none
    /// left out).
    pub resealed: Vec<(String, u64)>,
    /// Do-not-call entries moved to the current key's lookup hash.
    pub dnc_moved: u64,
    /// Pending deliveries given the current key's hash of their host.
    pub receivers_moved: u64,
}

impl RekeyReport {
    /// Values changed in all.
    pub fn total(&self) -> u64 {
        self.resealed.iter().map(|(_, n)| n).sum::<u64>() + self.dnc_moved + self.receivers_moved
    }
}

impl Store {
    /// Re-seals every value not sealed under the current key (see the module's doc).
    pub async fn rekey(&self) -> Result<RekeyReport, StoreError> {
        let mut report = RekeyReport::default();
        for column in SEALED_COLUMNS {
            let resealed = self.rekey_column(column).await?;
            if resealed > 0 {
                report
                    .resealed
                    .push((format!("{}.{}", column.table, column.column), resealed));
            }
        }
        report.dnc_moved = self.rekey_dnc().await?;
        report.receivers_moved = self.rekey_receivers().await?;
        Ok(report)
    }

    /// The condition of a value that is sealed and not under the current key (plain JSON in
    /// `call_events.data` is left alone).
    fn stale(&self, column: &str) -> String {
        let id = self.key.current().id();
        format!(
            "({} AND {column} NOT LIKE 'v2.{id}.%')",
            sealed_condition(column)
        )
    }

    async fn rekey_column(&self, sealed: &SealedColumn) -> Result<u64, StoreError> {
        let SealedColumn { table, column, key } = sealed;
        let keys = key.iter().map(|k| k.name()).collect::<Vec<_>>();
        let select = format!(
            "SELECT {}, {column} FROM {table} WHERE {} LIMIT {BATCH}",
            keys.join(", "),
            self.stale(column)
        );
        let matches = keys
            .iter()
            .enumerate()
            .map(|(i, name)| format!("{name} = ${}", i + 3))
            .collect::<Vec<_>>()
            .join(" AND ");
        let update = format!("UPDATE {table} SET {column} = $1 WHERE {column} = $2 AND {matches}");
        let mut resealed = 0;
        loop {
            let rows = sqlx::query(&select).fetch_all(&self.pool).await?;
            if rows.is_empty() {
                return Ok(resealed);
            }
            let before = resealed;
            for row in &rows {
                let values = key
                    .iter()
                    .map(|k| key_value(row, *k))
                    .collect::<Result<Vec<_>, _>>()?;
                let context = format!(
                    "{table}.{column}:{}",
                    values
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(":")
                );
                let old: String = row.try_get(*column)?;
                let new = self.seal(&self.open_stale(&old, &context, table, column)?, &context)?;
                let mut query = sqlx::query(&update).bind(new).bind(old);
                for value in values {
                    query = match value {
                        KeyValue::Text(text) => query.bind(text),
                        KeyValue::Int(n) => query.bind(n),
                    };
                }
                resealed += query.execute(&self.pool).await?.rows_affected();
            }
            if resealed == before {
                // Every row of the batch changed under us: a server still sealing under an old
                // key. Stop rather than spin; a later run picks up what is left.
                tracing::warn!(
                    table,
                    column,
                    "rekey: values keep changing under an old key"
                );
                return Ok(resealed);
            }
        }
    }

    /// Opens a value to re-seal; one that opens under no key names its column in the error.
    fn open_stale(
        &self,
        sealed: &str,
        context: &str,
        table: &str,
        column: &str,
    ) -> Result<String, StoreError> {
        self.open_sealed(sealed, context).map_err(|error| {
            tracing::error!(table, column, %error, "rekey: a value opens under no key of the ring");
            error
        })
    }

    /// Moves do-not-call entries to the current key's lookup hash (and seals them for it).
    async fn rekey_dnc(&self) -> Result<u64, StoreError> {
        let select = format!(
            "SELECT number_hash, number, added_at FROM dnc_numbers WHERE {} LIMIT {BATCH}",
            self.stale("number")
        );
        let mut moved = 0;
        loop {
            let rows = sqlx::query(&select).fetch_all(&self.pool).await?;
            if rows.is_empty() {
                return Ok(moved);
            }
            for row in &rows {
                let hash: String = row.try_get("number_hash")?;
                let sealed: String = row.try_get("number")?;
                let number =
                    self.open_stale(&sealed, &dnc::context(&hash), "dnc_numbers", "number")?;
                let new_hash = self.key.lookup_hash(&number);
                let added_at: i64 = row.try_get("added_at")?;
                let resealed = self.seal(&number, &dnc::context(&new_hash))?;
                moved += self
                    .in_transaction(async |connection| {
                        let deleted = sqlx::query(
                            "DELETE FROM dnc_numbers WHERE number_hash = $1 AND number = $2",
                        )
                        .bind(&hash)
                        .bind(&sealed)
                        .execute(&mut *connection)
                        .await?;
                        if deleted.rows_affected() == 0 {
                            return Ok(0);
                        }
                        sqlx::query(
                            "INSERT INTO dnc_numbers (number_hash, number, added_at) \
                         VALUES ($1, $2, $3) ON CONFLICT (number_hash) DO NOTHING",
                        )
                        .bind(&new_hash)
                        .bind(&resealed)
                        .bind(added_at)
                        .execute(&mut *connection)
                        .await?;
                        Ok(1)
                    })
                    .await?;
            }
        }
    }
}

/// One key column's value of `row`.
fn key_value(row: &AnyRow, column: KeyColumn) -> Result<KeyValue, StoreError> {
    Ok(match column {
        Text(name) => KeyValue::Text(row.try_get(name)?),
        Int(name) => KeyValue::Int(row.try_get(name)?),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::store::calls::testing::scheduled;
    use crate::store::crypto::{CryptoError, Keyring};
    use crate::store::idempotency::IdempotencyClaim;
    use crate::store::status::CallStatus;
    use crate::store::testing::{key, key_of, sqlite_store};
    use crate::store::transcripts::testing::{answered_with_a_reply, barged_in_and_extracted};
    use crate::store::webhook_endpoints::ACCOUNT_SECRET;

    /// A store with something in every sealed column: a call with its own webhook URL,
    /// metadata, extraction, turns (one interrupted), a barge-in, an endpoint with a rotated
    /// secret, the account's rotated secret, deliveries, an answered idempotency key and a
    /// do-not-call entry. The call's id.
    async fn everything_sealed(store: &Store) -> String {
        store
            .create_endpoint("https://hooks.example.com/all", &[], None, 50)
            .await
            .unwrap();
        let mut call = scheduled(1_000);
        call.webhook_url = Some("https://crm.example.com/calls?t=1".into());
        let id = answered_with_a_reply(store, &call).await;
        barged_in_and_extracted(store, &id).await;
        let endpoint = store.endpoints().await.unwrap().remove(0).id;
        for owner in [endpoint.as_str(), ACCOUNT_SECRET] {
            store.rotate_secret(owner, 1_000_000, 700).await.unwrap();
        }
        store
            .claim_idempotency_key("tok_1", "order-7", 800)
            .await
            .unwrap();
        let answer = json!({ "id": id, "to": "+14155550123" });
        assert!(store
            .answer_idempotency_key("tok_1", "order-7", 201, &answer)
            .await
            .unwrap());
        store.dnc_add("+14155550142", 900).await.unwrap();
        id
    }

    /// Everything `everything_sealed` put in, as `store` reads it back (deliveries claimed at
    /// `now_ms`, which sends them again after a lease of 1 ms).
    async fn read_back(store: &Store, id: &str, now_ms: i64) -> serde_json::Value {
        let detail = store.call_detail(id).await.unwrap().unwrap();
        let events = store.events_after(id, 0, 100).await.unwrap();
        let endpoints = store.endpoints().await.unwrap();
        let mut secrets = Vec::new();
        for owner in [endpoints[0].id.as_str(), ACCOUNT_SECRET] {
            let signing = store.signing_secrets(owner, 800).await.unwrap().unwrap();
            secrets.push((signing.current, signing.previous));
        }
        let due = store.due_deliveries(now_ms, 100, &[]).await.unwrap();
        let ids: Vec<&str> = due.iter().map(|d| d.id.as_str()).collect();
        let mut claimed: Vec<_> = store
            .claim_deliveries(&ids, "test", now_ms, 1)
            .await
            .unwrap()
            .into_iter()
            .map(|c| (c.delivery.id, c.url, c.payload))
            .collect();
        claimed.sort();
        let IdempotencyClaim::Answered(answer) = store
            .claim_idempotency_key("tok_1", "order-7", 900)
            .await
            .unwrap()
        else {
            panic!("the key's answer is stored")
        };
        json!({
            "detail": detail,
            "events": events,
            "endpoints": endpoints,
            "secrets": secrets,
            "deliveries": claimed,
            "receivers": due.iter().map(|d| &d.receiver).collect::<Vec<_>>(),
            "answer": answer.body,
            "dnc": store.dnc_list().await.unwrap(),
        })
    }

    fn url(dir: &tempfile::TempDir) -> String {
        format!("sqlite://{}/test.db", dir.path().display())
    }

    #[actix_rt::test]
    async fn rekeying_reseals_every_column_under_the_new_key_alone() {
        let (old, dir) = sqlite_store().await;
        let id = everything_sealed(&old).await;
        let before = read_back(&old, &id, 10_000).await;
        let deliveries = before["deliveries"].as_array().unwrap().len() as u64;
        assert!(deliveries >= 4, "{before}");

        // The new key alone cannot read what the old one sealed.
        let new_only = Store::open(&url(&dir), key_of(10)).await.unwrap();
        assert!(matches!(
            new_only.call(&id).await,
            Err(StoreError::Crypto(CryptoError::UnknownKey(kid))) if kid == key().id()
        ));

        let ring = Keyring::new(key_of(10), vec![key()]);
        let rotating = Store::open(&url(&dir), ring).await.unwrap();
        assert!(rotating.dnc_contains("+14155550142").await.unwrap());
        assert!(!rotating.dnc_add("+14155550142", 950).await.unwrap());
        let report = rotating.rekey().await.unwrap();
        let resealed: std::collections::BTreeMap<_, _> = report.resealed.iter().cloned().collect();
        for column in SEALED_COLUMNS {
            let name = format!("{}.{}", column.table, column.column);
            assert!(
                resealed.get(&name).is_some_and(|&n| n > 0),
                "{name}: {report:?}"
            );
        }
        assert_eq!(resealed["calls.from_number"], 1);
        assert_eq!(resealed["call_turns.text"], 2);
        assert_eq!(resealed["webhook_deliveries.payload"], deliveries);
        assert_eq!(report.dnc_moved, 1);
        assert_eq!(
            report.receivers_moved,
            deliveries / 2,
            "each event goes to the endpoint and to the call's URL, whose receiver moves"
        );
        assert_eq!(rotating.rekey().await.unwrap().total(), 0, "nothing left");

        let after = read_back(&new_only, &id, 20_000).await;
        assert_eq!(after["detail"], before["detail"]);
        assert_eq!(after["events"], before["events"]);
        assert_eq!(after["secrets"], before["secrets"]);
        assert_eq!(after["deliveries"], before["deliveries"]);
        assert_eq!(after["answer"], before["answer"]);
        assert_eq!(after["dnc"], before["dnc"]);
        assert_ne!(
            after["receivers"], before["receivers"],
            "hashed under the new key"
        );
        assert!(new_only.dnc_contains("+14155550142").await.unwrap());
        assert!(new_only.dnc_remove("+14155550142").await.unwrap());
        assert!(matches!(
            old.call(&id).await,
            Err(StoreError::Crypto(CryptoError::UnknownKey(_)))
        ));
    }

    #[actix_rt::test]
    async fn every_sealed_value_in_the_schema_is_in_a_rekeyed_column() {
        let (store, _dir) = sqlite_store().await;
        everything_sealed(&store).await;
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_%' ESCAPE '\\'",
        )
        .fetch_all(&store.pool)
        .await
        .unwrap();
        let mut found = Vec::new();
        for table in tables {
            let columns: Vec<String> =
                sqlx::query_scalar(&format!("SELECT name FROM pragma_table_info('{table}')"))
                    .fetch_all(&store.pool)
                    .await
                    .unwrap();
            for column in columns {
                let sealed: i64 = sqlx::query_scalar(&format!(
                    "SELECT count(*) FROM {table} WHERE CAST({column} AS TEXT) LIKE 'v2.%'"
                ))
                .fetch_one(&store.pool)
                .await
                .unwrap();
                if sealed > 0 {
                    found.push(format!("{table}.{column}"));
                }
            }
        }
        let mut known: Vec<String> = SEALED_COLUMNS
            .iter()
            .map(|c| format!("{}.{}", c.table, c.column))
            .chain(["dnc_numbers.number".to_owned()])
            .collect();
        found.sort();
        known.sort();
        assert_eq!(found, known);
    }

    #[actix_rt::test]
    async fn a_value_under_a_missing_key_stops_the_run_and_keeps_the_rest() {
        let (old, dir) = sqlite_store().await;
        let id = everything_sealed(&old).await;
        let lost_key = Store::open(&url(&dir), key_of(11)).await.unwrap();
        let error = lost_key.rekey().await.unwrap_err();
        assert!(
            matches!(&error, StoreError::Crypto(CryptoError::UnknownKey(kid)) if kid == key().id()),
            "{error}"
        );
        assert!(old.call(&id).await.unwrap().is_some(), "nothing was lost");
        let status = old.call(&id).await.unwrap().unwrap().status;
        assert_eq!(status, CallStatus::InProgress);
    }
}
