//! The store on both databases, below the HTTP surface: calls recorded before 0002 survive it,
//! and the changes two servers race on (scheduler claims, event numbers, status callbacks,
//! idempotency keys) come out right on one PostgreSQL.

mod migration;
mod races;

use phone_agent::store::crypto::DataKey;
use phone_agent::store::Store;

/// The key every store here seals with, as instances of one deployment share theirs.
pub fn key() -> DataKey {
    DataKey::from_base64("q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=").unwrap()
}

/// A store on `url` (created and migrated if new).
pub async fn open(url: &str) -> Store {
    Store::open(url, key()).await.unwrap()
}

pub use crate::support::postgres::available as postgres;
