//! Persistence: the one place with SQL.
//!
//! SQLite (a file under `DATA_DIR`, the embedded default) or PostgreSQL (`DATABASE_URL=postgres://…`,
//! for several instances), through sqlx's `Any` driver: one schema, one set of migrations
//! (`src/store/migrations`, run at start-up), `$n` placeholders that both accept. Sensitive
//! columns are sealed with the [`crypto::DataKey`].
//!
//! - [`tokens`]: API tokens (hashes only).
//! - [`calls`]: call records.
//! - [`audit`]: the audit trail.

pub mod audit;
pub mod calls;
pub mod crypto;
pub mod tokens;

use std::sync::{Arc, Once};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor as _};

use crypto::{CryptoError, DataKey};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("src/store/migrations");

/// A storage failure. Its text is for logs; the HTTP edge answers a generic 500.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A sealed column did not open, or sealing failed.
    #[error("sealed column: {0}")]
    Crypto(#[from] CryptoError),
    /// The SQLite file's directory could not be created.
    #[error("data directory: {0}")]
    Io(#[from] std::io::Error),
    /// `DATABASE_URL` names no database we speak.
    #[error("unsupported DATABASE_URL scheme (expected sqlite: or postgres:)")]
    Scheme,
}

/// The database and the key for its sealed columns. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    key: Arc<DataKey>,
}

impl Store {
    /// Connects to `url`, creating a SQLite file (and its directory) when missing, and runs the
    /// migrations.
    pub async fn open(url: &str, key: DataKey) -> Result<Self, StoreError> {
        static DRIVERS: Once = Once::new();
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        let url = if let Some(path) = sqlite_path(url) {
            if let Some(dir) = std::path::Path::new(path).parent() {
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(dir)?;
                }
            }
            if url.contains('?') {
                url.to_owned()
            } else {
                format!("{url}?mode=rwc")
            }
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            url.to_owned()
        } else {
            return Err(StoreError::Scheme);
        };
        let options: AnyConnectOptions = url.parse()?;
        let sqlite = sqlite_path(&url).is_some();
        let pool = AnyPoolOptions::new()
            .max_connections(if sqlite { 4 } else { 8 })
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |connection, _| {
                Box::pin(async move {
                    if sqlite {
                        // WAL lets readers go on while one writer writes; wait for a busy
                        // writer instead of failing at once.
                        connection
                            .execute(
                                "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; \
                                 PRAGMA synchronous = NORMAL;",
                            )
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self {
            pool,
            key: Arc::new(key),
        })
    }

    /// Closes every connection; later calls fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    fn seal(&self, value: &str, context: &str) -> Result<String, StoreError> {
        Ok(self.key.seal(value, context)?)
    }

    fn open_sealed(&self, value: &str, context: &str) -> Result<String, StoreError> {
        Ok(self.key.open(value, context)?)
    }
}

/// The file path of a `sqlite:` URL, if it is one.
pub fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    Some(rest.split('?').next().unwrap_or(rest))
}

/// Now, in Unix milliseconds (the stored time format).
pub fn now_ms() -> i64 {
    to_ms(SystemTime::now())
}

/// A time in Unix milliseconds.
pub fn to_ms(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| {
        i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
    })
}

/// A random id: `prefix` and 96 bits in hex.
fn random_id(prefix: &str) -> Result<String, StoreError> {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 12];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| CryptoError::Random)?;
    Ok(format!("{prefix}{}", crate::guard::token::hex(&bytes)))
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// A fixed key.
    pub fn key() -> DataKey {
        DataKey::from_base64(&base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            [9u8; 32],
        ))
        .unwrap()
    }

    /// A store on a fresh SQLite file; keep the directory alive as long as the store.
    pub async fn sqlite_store() -> (Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/test.db", dir.path().display());
        (Store::open(&url, key()).await.unwrap(), dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(sqlite_path("sqlite://data/pa.db"), Some("data/pa.db"));
        assert_eq!(
            sqlite_path("sqlite:data/pa.db?mode=rwc"),
            Some("data/pa.db")
        );
        assert_eq!(sqlite_path("postgres://x/y"), None);
    }

    #[actix_rt::test]
    async fn opening_twice_migrates_once() {
        let (store, dir) = testing::sqlite_store().await;
        store.close().await;
        let url = format!("sqlite://{}/test.db", dir.path().display());
        Store::open(&url, testing::key()).await.unwrap();
    }

    #[actix_rt::test]
    async fn unknown_schemes_are_refused() {
        assert!(matches!(
            Store::open("mysql://x/y", testing::key()).await,
            Err(StoreError::Scheme)
        ));
    }
}
