//! The relay between instances sharing a PostgreSQL (`LISTEN`): the events other instances log
//! reach this one's live feed, so an event stream opened on any instance carries every call; the
//! commands sent to this instance (see [`crate::store::instances`]) reach the calls it carries;
//! failed authentications are counted by every instance, so a lockout holds across them; and an
//! IP block started by one instance holds on all.
//!
//! A notification names an event; the event is read from the database (one read per event per
//! other instance), while this instance has an event stream open or had one within
//! [`RESUME_WINDOW`] (a client resuming its stream finds the events it missed). With nobody
//! watching, the notifications are let go unread: most deployments follow calls by webhook, and
//! the reads are most of what a second instance costs. While the listening connection is down,
//! live subscribers here miss what other instances log meanwhile; a call's own event stream
//! resumes from its durable log when its client reconnects.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use phone_agent_actors::events::EndReason;
use phone_agent_actors::ids::CallSid;
use phone_agent_actors::runtime::registry::LiveCalls;
use sqlx::postgres::{PgListener, PgNotification};
use tokio::sync::{mpsc, watch};

use super::records::CallRecords;
use crate::guard::auth::Authenticator;
use crate::guard::penalty::PeerNews;
use crate::guard::rate_limit::RateLimits;
use crate::store::instances::{CallCommand, COMMANDS_CHANNEL, EVENTS_CHANNEL, GUARD_CHANNEL};
use crate::store::StoreError;

/// News of clients waiting to be announced; past it (a flood), the others miss some.
pub const NEWS_QUEUE: usize = 1024;

/// Pause before listening again after the connection failed.
const RELISTEN_AFTER: Duration = Duration::from_secs(1);

/// How long after its last event stream closed this instance still reads the other instances'
/// events into its feed, for a client that reconnects with `Last-Event-ID`.
pub const RESUME_WINDOW: Duration = Duration::from_secs(60);

/// Whether anyone here watches the feed: a subscriber now, or one within [`RESUME_WINDOW`].
#[derive(Debug, Default)]
struct Audience {
    last_watched: Option<Instant>,
}

impl Audience {
    /// Whether an event arriving at `now` is wanted, with `subscribers` open.
    fn wants(&mut self, subscribers: usize, now: Instant) -> bool {
        if subscribers > 0 {
            self.last_watched = Some(now);
        }
        self.last_watched
            .is_some_and(|watched| now.saturating_duration_since(watched) < RESUME_WINDOW)
    }
}

/// What the relay connects: this instance's records, calls and guards, and the news of clients
/// its guards share ([`Authenticator::share_failures`], [`RateLimits::share_blocks`]).
pub struct Relayed {
    /// The records (their feed gets the other instances' events).
    pub records: CallRecords,
    /// The calls this instance carries (commands reach them).
    pub live_calls: LiveCalls,
    /// Counts the other instances' failed authentications.
    pub authenticator: Arc<Authenticator>,
    /// Applies the other instances' IP blocks.
    pub rate_limits: Arc<RateLimits>,
    /// This instance's news of clients, to announce.
    pub news: mpsc::Receiver<PeerNews>,
}

/// Starts relaying on a thread of its own, through connections of its own to the PostgreSQL at
/// `url`, until `stop` says `true`.
pub fn start(url: String, relayed: Relayed, stop: watch::Receiver<bool>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("instance-relay".into())
        .spawn(move || actix_rt::System::new().block_on(run(url, relayed, stop)))
        .map(drop)
}

async fn run(url: String, mut relayed: Relayed, mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        let listened = async {
            // Connections opened from this thread's runtime, which they need to live on.
            let records = relayed
                .records
                .with_store(relayed.records.store().own_pool(1).await?);
            listen(&url, &records, &mut relayed).await
        };
        tokio::select! {
            result = listened => if let Err(error) = result {
                tracing::warn!(%error, "not listening to other instances; trying again");
            },
            _ = stop.changed() => return,
        }
        tokio::select! {
            _ = actix_rt::time::sleep(RELISTEN_AFTER) => {}
            _ = stop.changed() => return,
        }
    }
}

async fn listen(url: &str, records: &CallRecords, relayed: &mut Relayed) -> Result<(), StoreError> {
    let mut listener = PgListener::connect(url).await?;
    listener
        .listen_all([EVENTS_CHANNEL, COMMANDS_CHANNEL, GUARD_CHANNEL])
        .await?;
    tracing::info!("listening to other instances");
    let mut audience = Audience::default();
    loop {
        tokio::select! {
            notification = listener.recv() => {
                relay(&notification?, records, relayed, &mut audience).await
            }
            Some(news) = relayed.news.recv() => records.store().announce(news).await?,
        }
    }
}

/// Acts on one notification.
async fn relay(
    notification: &PgNotification,
    records: &CallRecords,
    relayed: &Relayed,
    audience: &mut Audience,
) {
    let ours = records.store().instance();
    let mut words = notification.payload().split(' ');
    let (Some(instance), Some(what), Some(which)) = (words.next(), words.next(), words.next())
    else {
        tracing::warn!(
            channel = notification.channel(),
            "malformed notification ignored"
        );
        return;
    };
    match notification.channel() {
        EVENTS_CHANNEL if instance != ours => {
            let Ok(seq) = which.parse::<i64>() else {
                return;
            };
            if !audience.wants(records.feed().subscribers(), Instant::now()) {
                return;
            }
            match records.store().events_after(what, seq - 1, 1).await {
                Ok(events) => records.publish(events.into_iter().find(|e| e.seq == seq)),
                Err(error) => {
                    tracing::warn!(call_id = what, seq, %error, "another instance's event not relayed")
                }
            }
        }
        COMMANDS_CHANNEL if instance == ours => {
            let (Some(command), Some(call_sid)) = (CallCommand::parse(what), CallSid::parse(which))
            else {
                tracing::warn!("malformed command ignored");
                return;
            };
            let ended = match command {
                CallCommand::HangUp => relayed.live_calls.end(&call_sid, EndReason::HungUp),
            };
            tracing::info!(%call_sid, command = command.as_str(), ended, "command from another instance");
        }
        GUARD_CHANNEL if instance != ours => {
            let Ok(client) = which.parse::<IpAddr>() else {
                return;
            };
            match (what, words.next().map(str::parse::<u64>)) {
                ("auth", None) => relayed
                    .authenticator
                    .failed_elsewhere(client, Instant::now()),
                ("block", Some(Ok(ms))) => relayed.rate_limits.blocked_elsewhere(
                    client,
                    Duration::from_millis(ms),
                    Instant::now(),
                ),
                _ => tracing::warn!("malformed guard notification ignored"),
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_wanted_while_watched_and_for_the_resume_window_after() {
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let mut audience = Audience::default();
        assert!(!audience.wants(0, at(0)), "never watched");
        assert!(audience.wants(2, at(10)));
        assert!(audience.wants(0, at(10) + RESUME_WINDOW - Duration::from_millis(1)));
        assert!(
            !audience.wants(0, at(10) + RESUME_WINDOW),
            "the window has passed"
        );
        assert!(audience.wants(1, at(500)), "watched again");
    }
}
