//! The do-not-call list. Numbers are sealed like every number, so a number is found by its keyed
//! hash ([`DataKey::lookup_hash`](super::crypto::DataKey::lookup_hash)) of its normalized E.164
//! form: `+1 (415) 555-0100` and `+14155550100` are one entry. While previous data keys are in
//! the ring, a number is looked for under each key's hash; `phone-agent rekey` moves every entry
//! to the current key's hash.

use serde::Serialize;
use sqlx::Row as _;

use super::{Store, StoreError};
use crate::redact::MaskedPhone;

/// A number on the list.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct DncEntry {
    /// The number (E.164).
    pub number: String,
    /// Added, Unix ms.
    pub added_at: i64,
}

impl std::fmt::Debug for DncEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DncEntry")
            .field("number", &MaskedPhone(&self.number))
            .field("added_at", &self.added_at)
            .finish()
    }
}

/// `number` in E.164 (`+` and 7 to 15 digits, the first not 0), with spaces, dashes, dots and
/// parentheses dropped.
pub fn normalize_e164(number: &str) -> Result<String, StoreError> {
    let normalized: String = number
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let digits = normalized.strip_prefix('+').ok_or(StoreError::BadNumber)?;
    let valid = (7..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    valid.then_some(normalized).ok_or(StoreError::BadNumber)
}

/// The associated data of the number sealed in the row of `hash`.
pub(super) fn context(hash: &str) -> String {
    format!("dnc_numbers.number:{hash}")
}

impl Store {
    /// Puts a number on the list; false if it was there already.
    pub async fn dnc_add(&self, number: &str, now_ms: i64) -> Result<bool, StoreError> {
        let number = normalize_e164(number)?;
        if self.dnc_contains(&number).await? {
            return Ok(false);
        }
        let hash = self.key.lookup_hash(&number);
        let done = sqlx::query(
            "INSERT INTO dnc_numbers (number_hash, number, added_at) VALUES ($1, $2, $3) \
             ON CONFLICT (number_hash) DO NOTHING",
        )
        .bind(&hash)
        .bind(self.seal(&number, &context(&hash))?)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Takes a number off the list; false if it was not on it.
    pub async fn dnc_remove(&self, number: &str) -> Result<bool, StoreError> {
        let mut removed = false;
        for hash in self.key.lookup_hashes(&normalize_e164(number)?) {
            let done = sqlx::query("DELETE FROM dnc_numbers WHERE number_hash = $1")
                .bind(hash)
                .execute(&self.pool)
                .await?;
            removed |= done.rows_affected() == 1;
        }
        Ok(removed)
    }

    /// Whether a number is on the list (under the hash of any key of the ring).
    pub async fn dnc_contains(&self, number: &str) -> Result<bool, StoreError> {
        for hash in self.key.lookup_hashes(&normalize_e164(number)?) {
            let found: Option<i64> =
                sqlx::query_scalar("SELECT added_at FROM dnc_numbers WHERE number_hash = $1")
                    .bind(hash)
                    .fetch_optional(&self.pool)
                    .await?;
            if found.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The whole list, newest first.
    pub async fn dnc_list(&self) -> Result<Vec<DncEntry>, StoreError> {
        sqlx::query(
            "SELECT number_hash, number, added_at FROM dnc_numbers \
             ORDER BY added_at DESC, number_hash",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            let hash: String = row.try_get("number_hash")?;
            let number: String = row.try_get("number")?;
            Ok(DncEntry {
                number: self.open_sealed(&number, &context(&hash))?,
                added_at: row.try_get("added_at")?,
            })
        })
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::sqlite_store;

    #[test]
    fn numbers_are_normalized_to_e164() {
        assert_eq!(normalize_e164("+1 (415) 555-0100").unwrap(), "+14155550100");
        assert_eq!(normalize_e164("+44.20.7946.0958").unwrap(), "+442079460958");
        for bad in [
            "14155550100",
            "+1415555010O",
            "+0123456789",
            "+123456",
            "+1234567890123456",
            "",
        ] {
            assert!(normalize_e164(bad).is_err(), "{bad}");
        }
    }

    #[actix_rt::test]
    async fn numbers_are_added_found_listed_and_removed_by_their_normal_form() {
        let (store, _dir) = sqlite_store().await;
        assert!(store.dnc_add("+1 415 555 0100", 100).await.unwrap());
        assert!(!store.dnc_add("+14155550100", 200).await.unwrap());
        assert!(store.dnc_add("+442079460958", 300).await.unwrap());
        assert!(store.dnc_contains("+1-415-555-0100").await.unwrap());
        assert!(!store.dnc_contains("+14155550101").await.unwrap());
        assert!(matches!(
            store.dnc_contains("4155550100").await,
            Err(StoreError::BadNumber)
        ));
        assert_eq!(
            store.dnc_list().await.unwrap(),
            [
                DncEntry {
                    number: "+442079460958".into(),
                    added_at: 300
                },
                DncEntry {
                    number: "+14155550100".into(),
                    added_at: 100
                }
            ]
        );
        let stored: String = sqlx::query_scalar("SELECT number FROM dnc_numbers LIMIT 1")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert!(stored.starts_with("v2."));
        assert!(store.dnc_remove("+1 415 555 0100").await.unwrap());
        assert!(!store.dnc_remove("+14155550100").await.unwrap());
        assert!(!store.dnc_contains("+14155550100").await.unwrap());
    }
}
