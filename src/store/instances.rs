//! Instances sharing one PostgreSQL, coordinated by the database itself.
//!
//! Each opened [`Store`] has a name of its own ([`Store::instance`]), which its claims carry
//! (scheduled calls, outbox messages, the calls it streams). On PostgreSQL:
//! - every event logged in a call's record is announced with `NOTIFY` on [`EVENTS_CHANNEL`], in
//!   the transaction that logs it (so only once it commits);
//! - commands for a call go to the instance carrying it on [`COMMANDS_CHANNEL`];
//! - failed authentications and IP blocks go to every instance on [`GUARD_CHANNEL`], so a lockout
//!   counts them all and a block holds everywhere.
//!
//! A notification names things only (instance, call, event number, client address): the events
//! themselves, sealed where they hold words, are read from the database. On SQLite there is one
//! instance and nothing to announce.

use ring::rand::{SecureRandom, SystemRandom};
use sqlx::AnyConnection;

use super::{Backend, Store, StoreError};
use crate::guard::penalty::PeerNews;

/// The channel announcing events logged: `<instance> <call id> <seq>`.
pub const EVENTS_CHANNEL: &str = "phone_agent_call_events";

/// The channel carrying commands for a call: `<owner instance> <command> <CallSid>`.
pub const COMMANDS_CHANNEL: &str = "phone_agent_call_commands";

/// The channel carrying news of clients ([`PeerNews`]), for every instance to act on:
/// `<instance> auth <client address>`, `<instance> block <client address> <ms>`.
pub const GUARD_CHANNEL: &str = "phone_agent_guard";

/// A command for the instance carrying a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallCommand {
    /// End the call (the API's hang-up).
    HangUp,
}

impl CallCommand {
    /// Its name in a notification.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HangUp => "hangup",
        }
    }

    /// The command named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        (name == "hangup").then_some(Self::HangUp)
    }
}

/// A random name (16 hex digits), so two instances never share one (their leases, commands and
/// relayed events would be confused). Should the system's random source fail, the process id and
/// the time in nanoseconds stand in.
pub(super) fn random_name() -> String {
    let mut bytes = [0u8; 8];
    if SystemRandom::new().fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.subsec_nanos());
        bytes[..4].copy_from_slice(&std::process::id().to_be_bytes());
        bytes[4..].copy_from_slice(&nanos.to_be_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Store {
    /// This store's name among the instances sharing its database.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Whether other instances may share the database (PostgreSQL).
    pub fn is_shared(&self) -> bool {
        self.backend == Backend::Postgres
    }

    /// Announces, inside the transaction logging it, that event `seq` of `call_id` was logged.
    pub(super) async fn announce_event_in(
        &self,
        connection: &mut AnyConnection,
        call_id: &str,
        seq: i64,
    ) -> Result<(), StoreError> {
        if !self.is_shared() {
            return Ok(());
        }
        let payload = format!("{} {call_id} {seq}", self.instance);
        notify(connection, EVENTS_CHANNEL, &payload).await
    }

    /// Sends `command` for the call `call_sid` to the instance `owner`.
    pub async fn send_command(
        &self,
        owner: &str,
        command: CallCommand,
        call_sid: &str,
    ) -> Result<(), StoreError> {
        let payload = format!("{owner} {} {call_sid}", command.as_str());
        let mut connection = self.pool.acquire().await?;
        notify(&mut connection, COMMANDS_CHANNEL, &payload).await
    }

    /// Tells the other instances `news` of a client.
    pub async fn announce(&self, news: PeerNews) -> Result<(), StoreError> {
        let instance = &self.instance;
        let payload = match news {
            PeerNews::AuthFailure(client) => format!("{instance} auth {client}"),
            PeerNews::Blocked(client, length) => {
                format!("{instance} block {client} {}", length.as_millis())
            }
        };
        let mut connection = self.pool.acquire().await?;
        notify(&mut connection, GUARD_CHANNEL, &payload).await
    }

    /// The instance carrying the call `call_sid` at `now_ms`: its stream's owner, if the call has
    /// not ended and the owner's lease still runs.
    pub async fn live_owner(
        &self,
        call_sid: &str,
        now_ms: i64,
    ) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT owner FROM calls WHERE call_sid = $1 AND end_reason IS NULL \
             AND owner IS NOT NULL AND lease_until >= $2",
        )
        .bind(call_sid)
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await?)
    }
}

async fn notify(
    connection: &mut AnyConnection,
    channel: &str,
    payload: &str,
) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(channel)
        .bind(payload)
        .execute(connection)
        .await?;
    Ok(())
}
