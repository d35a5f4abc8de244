//! Persistence: the one place with SQL.
//!
//! SQLite (a file under `DATA_DIR`, the embedded default) or PostgreSQL (`DATABASE_URL=postgres://…`,
//! for several instances), through sqlx's `Any` driver: one schema, one set of migrations
//! (`src/store/migrations`, run at start-up), `$n` placeholders that both accept. Sensitive
//! columns are sealed with the [`crypto::Keyring`]; SQLite overwrites deleted content
//! (`secure_delete`), so erased data does not linger in its files (see [`erasure`]).
//!
//! # Layout
//!
//! - [`crypto`]: sealing columns, the keyed hash for lookups; `ids`: call and row ids;
//!   [`rekey`]: re-sealing every sealed column under a new data key.
//! - [`tokens`]: API tokens (hashes only).
//! - [`calls`]: call records: insert, look up by id or CallSid, set what is learnt later;
//!   [`call_list`]: filtered pages of them and one call in full.
//! - [`status`]: the status timeline; a status never moves backwards.
//! - [`call_events`]: each call's event log (status changes, turns, the end), numbered from 1.
//! - [`transcripts`]: transcript turns and their latencies, one row per turn as it ends.
//! - [`webhook_receipts`]: inbound webhooks already processed (their replay guard).
//! - [`webhook_endpoints`]: outbound webhook endpoints and their signing secrets;
//!   [`outbox`]: the messages call changes make, written with the change, and their delivery.
//! - [`schedule`]: scheduled calls: claiming due ones, marking missed ones, cancelling.
//! - [`dnc`]: the do-not-call list.
//! - [`idempotency`]: the first answer per API token and `Idempotency-Key`.
//! - [`erasure`]: erasing a call down to a tombstone; [`retention`]: purging old content.
//! - [`audit`]: the audit trail.
//! - [`instances`]: instances sharing a PostgreSQL: each one's name, event and command
//!   notifications (`NOTIFY`), and which instance carries a call.
//!
//! Concurrency: every change to a call is one transaction that starts by updating the call's row
//! under a condition (the status rank, `claimed_by IS NULL`, …) and appends its event with the
//! sequence number that update returned; the row lock (PostgreSQL) or the single writer (SQLite)
//! orders them, so two servers on one database never both make the same change.

pub mod audit;
pub mod call_events;
pub mod call_list;
pub mod calls;
pub mod crypto;
pub mod dnc;
pub mod erasure;
pub mod idempotency;
mod ids;
pub mod instances;
pub mod outbox;
pub mod rekey;
pub mod retention;
pub mod retry;
pub mod schedule;
pub mod status;
pub mod tokens;
pub mod transcripts;
pub mod webhook_endpoints;
pub mod webhook_receipts;

use std::sync::{Arc, Once};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyConnection, AnyPool, Executor as _, Transaction};

use crypto::{CryptoError, Keyring};

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
    /// A column holds a value this version does not know (written by a newer version?).
    #[error("unexpected value in {0}")]
    Unexpected(&'static str),
    /// A phone number that is not E.164 (`+` and 7 to 15 digits, spaces and dashes aside).
    #[error("not an E.164 phone number")]
    BadNumber,
}

/// A pool of at most `connections` to the database of `options`, each connection set up for
/// `backend`.
async fn connect(
    options: &AnyConnectOptions,
    backend: Backend,
    connections: u32,
) -> Result<AnyPool, StoreError> {
    let sqlite = backend == Backend::Sqlite;
    Ok(AnyPoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(Duration::from_secs(5))
        .after_connect(move |connection, _| {
            Box::pin(async move {
                if sqlite {
                    // WAL lets readers go on while one writer writes; wait for a busy writer
                    // instead of failing at once. secure_delete overwrites deleted content with
                    // zeros, so an erased transcript leaves no trace in the file.
                    connection
                        .execute(
                            "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; \
                             PRAGMA synchronous = NORMAL; PRAGMA secure_delete = ON;",
                        )
                        .await?;
                }
                Ok(())
            })
        })
        .connect_with(options.clone())
        .await?)
}

impl StoreError {
    /// Whether the same change may succeed if tried again soon: no connection free in time, the
    /// connection failed, the database busy or locked past its wait, or its disk full (space is
    /// freed by an operator or a cleanup, and the change then goes through).
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::PoolTimedOut | sqlx::Error::Io(_)) => true,
            StoreError::Database(sqlx::Error::Database(error)) => {
                error.code().is_some_and(|code| is_passing_code(&code))
            }
            _ => false,
        }
    }
}

/// Whether a database error code says the condition may pass. PostgreSQL's codes are five-
/// character SQLSTATEs: `53100` is `disk_full`. SQLite's are numbers of at most four digits,
/// extended codes whose low byte is the primary code (`SQLITE_BUSY_SNAPSHOT` is 517: a transaction
/// that read, then could not write): `SQLITE_BUSY` (5), `SQLITE_LOCKED` (6), `SQLITE_FULL` (13).
fn is_passing_code(code: &str) -> bool {
    if code.len() == 5 {
        return code == "53100";
    }
    code.parse::<u32>()
        .is_ok_and(|code| matches!(code & 0xFF, 5 | 6 | 13))
}

/// The database behind the `Any` driver, where their SQL differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// The database and the key for its sealed columns. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    key: Arc<Keyring>,
    backend: Backend,
    /// This store's name among the instances sharing the database ([`Store::instance`]).
    instance: Arc<str>,
}

impl Store {
    /// Connects to `url`, creating a SQLite file (and its directory) when missing, and runs the
    /// migrations.
    pub async fn open(url: &str, key: impl Into<Keyring>) -> Result<Self, StoreError> {
        static DRIVERS: Once = Once::new();
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        let url = if let Some(path) = sqlite_path(url) {
            create_private(std::path::Path::new(path))?;
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
        let backend = if sqlite_path(&url).is_some() {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        let pool = connect(
            &options,
            backend,
            if backend == Backend::Sqlite { 4 } else { 8 },
        )
        .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self {
            pool,
            key: Arc::new(key.into()),
            backend,
            instance: instances::random_name().into(),
        })
    }

    /// The same database and key through a pool of its own, of at most `connections`, connected
    /// from the calling thread: for background work (the webhook dispatcher) that must neither
    /// wait for the calls' connections nor take theirs. SQLite's connections each run on a
    /// thread of their own, started from this one (so with its scheduling priority).
    pub async fn own_pool(&self, connections: u32) -> Result<Self, StoreError> {
        let options = self.pool.connect_options();
        Ok(Self {
            pool: connect(&options, self.backend, connections).await?,
            key: self.key.clone(),
            backend: self.backend,
            instance: self.instance.clone(),
        })
    }

    /// Starts a transaction for the `…_in` writes, which then commit (or roll back) together:
    /// the call journal writes a batch of events in one.
    pub async fn begin(&self) -> Result<Transaction<'static, Any>, StoreError> {
        Ok(self.pool.begin().await?)
    }

    /// Runs `write` in a transaction of its own, committed if it succeeds.
    pub(crate) async fn in_transaction<T>(
        &self,
        write: impl AsyncFnOnce(&mut AnyConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut transaction = self.begin().await?;
        let value = write(&mut transaction).await?;
        transaction.commit().await?;
        Ok(value)
    }

    /// The keys signing stream tokens, the current data key's first (see
    /// [`crypto::DataKey::stream_token_key`]): every instance sharing the data key has them.
    pub fn stream_token_keys(&self) -> Vec<ring::hmac::Key> {
        self.key
            .keys()
            .map(|key| key.stream_token_key().clone())
            .collect()
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

    /// Seals a column that may be NULL.
    fn seal_optional(
        &self,
        value: Option<String>,
        context: &str,
    ) -> Result<Option<String>, StoreError> {
        value.map(|value| self.seal(&value, context)).transpose()
    }

    /// Opens a sealed column that may be NULL.
    fn open_optional(
        &self,
        value: Option<String>,
        context: &str,
    ) -> Result<Option<String>, StoreError> {
        value
            .map(|value| self.open_sealed(&value, context))
            .transpose()
    }

    /// After an erasure: makes SQLite copy the write-ahead log into the database file (where
    /// `secure_delete` has zeroed what was deleted) and truncate it, since the log still holds
    /// the pages as they were before. PostgreSQL has nothing to do here.
    async fn flush_erased(&self) -> Result<(), StoreError> {
        if self.backend == Backend::Sqlite {
            let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(&self.pool)
                .await?;
            if busy != 0 {
                // A reader kept an old snapshot through the busy timeout: the log keeps the
                // old pages until a later checkpoint resets it and new writes reuse it.
                tracing::warn!(
                    "erased data stays in the SQLite write-ahead log until a later checkpoint"
                );
            }
        }
        Ok(())
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

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// A fixed key.
    pub fn key() -> crypto::DataKey {
        key_of(9)
    }

    /// The key of 32 bytes `byte`.
    pub fn key_of(byte: u8) -> crypto::DataKey {
        crypto::DataKey::from_base64(&base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            [byte; 32],
        ))
        .unwrap()
    }

    /// A bare ringing inbound call row whose id is `call_sid` (as a call recorded before ids
    /// existed), with no numbers and nothing logged: for the modules below `calls`.
    pub async fn bare_call(store: &Store, call_sid: &str) {
        sqlx::query(
            "INSERT INTO calls (id, call_sid, direction, status, status_rank, created_at, \
             updated_at) VALUES ($1, $1, 'inbound', 'ringing', 2, 0, 0)",
        )
        .bind(call_sid)
        .execute(&store.pool)
        .await
        .unwrap();
    }

    /// The audit row of a client erasing `subject`, at 900.
    pub fn erasure_audit(subject: &str) -> audit::AuditEvent {
        audit::AuditEvent {
            at: 900,
            kind: "call.erased".into(),
            token_id: Some("tok_1".into()),
            client: Some("127.0.0.1".into()),
            detail: format!("call={subject}"),
            count: 1,
        }
    }

    /// A store on a fresh SQLite file; keep the directory alive as long as the store.
    pub async fn sqlite_store() -> (Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/test.db", dir.path().display());
        (Store::open(&url, key()).await.unwrap(), dir)
    }
}

/// Creates a new SQLite file (and its directory) readable by its owner alone: 0600 in a 0700
/// directory, so the database holds what it holds away from other users of the host. SQLite gives
/// its journal and WAL files the database file's mode. An existing file is left as it is.
fn create_private(path: &std::path::Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        create_private_dir(dir)?;
    }
    match create_private_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::AlreadyExists => Err(error),
        _ => Ok(()),
    }
}

/// Creates the file at `path`, which must not exist yet, with mode 0600 (owner only).
pub(crate) fn create_private_file(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Creates `dir` and its missing parents with mode 0700 (owner only); an existing one is left as
/// it is.
pub(crate) fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    if dir.as_os_str().is_empty() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_locked_and_full_pass_and_nothing_else_does() {
        // SQLite (sqlite.org/rescode.html) and PostgreSQL (appendix A of its manual).
        let passing = ["5", "517", "6", "262", "13", "53100"];
        let lasting = [
            "1", "19", "2067", "11", "14", "23505", "40001", "42P01", "08006",
        ];
        assert!(passing.into_iter().all(is_passing_code));
        assert!(!lasting.into_iter().any(is_passing_code));
    }

    #[cfg(unix)]
    #[actix_rt::test]
    async fn a_new_database_and_its_directory_are_the_owners_alone() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let url = format!("sqlite://{}/pa.db", data.display());
        let store = Store::open(&url, testing::key()).await.unwrap();
        store.audit_events(1).await.unwrap();
        let mode = |name: &str| {
            let path = data.join(name);
            std::fs::metadata(&path).map(|m| m.permissions().mode() & 0o777)
        };
        assert_eq!(mode("").unwrap(), 0o700);
        assert_eq!(mode("pa.db").unwrap(), 0o600);
        if let Ok(wal) = mode("pa.db-wal") {
            assert_eq!(wal, 0o600, "the WAL takes the database's mode");
        }
    }

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
