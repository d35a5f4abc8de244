//! The live feed of call events: every stored event of every call, fanned out to subscribers
//! (`GET /api/events`, `GET /api/calls/{id}/events`).
//!
//! Publishing never waits: events go into a bounded broadcast channel, and a subscriber that falls
//! more than [`FEED_CAPACITY`] events behind is cut off (its stream ends; the client reconnects
//! with `Last-Event-ID` and resumes). The last [`FEED_CAPACITY`] events are kept, so a reconnect
//! to the all-calls feed misses nothing that recent; a call's own feed resumes from its durable
//! event log instead.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use tokio::sync::broadcast;

/// Events a subscriber may fall behind, and events kept for resuming the all-calls feed.
pub const FEED_CAPACITY: usize = 1024;

/// One event of a call, as subscribers see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeedEvent {
    /// Position in this process's feed of all calls (the SSE id on `/api/events`).
    pub position: u64,
    /// The call (our id).
    pub call_id: Arc<str>,
    /// Position in the call's own event log (the SSE id on `/api/calls/{id}/events`).
    pub seq: i64,
    /// When it happened, Unix ms.
    pub at: i64,
    /// What happened: `status`, `answered_by`, `turn`, `barge_in` or `end`.
    pub kind: String,
    /// The event's details.
    pub data: serde_json::Value,
}

struct Recent {
    events: VecDeque<Arc<FeedEvent>>,
    next_position: u64,
}

/// The feed of all calls of this process.
pub struct CallFeed {
    sender: broadcast::Sender<Arc<FeedEvent>>,
    recent: Mutex<Recent>,
}

impl Default for CallFeed {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(FEED_CAPACITY).0,
            recent: Mutex::new(Recent {
                events: VecDeque::with_capacity(FEED_CAPACITY),
                next_position: 1,
            }),
        }
    }
}

/// A subscription: the events since the position asked for, then the live ones.
pub struct Subscription {
    /// Events already published after the position asked for, oldest first.
    pub backlog: Vec<Arc<FeedEvent>>,
    /// Whether events after that position are missing from the backlog (too old to be kept).
    pub gap: bool,
    /// The position of the last event published before the subscription (0: none yet).
    pub last: u64,
    /// Events published from now on.
    pub live: broadcast::Receiver<Arc<FeedEvent>>,
}

impl CallFeed {
    /// Publishes an event of `call_id`, stored as `seq` in its log, which happened `at` (Unix
    /// ms); returns it as published.
    pub fn publish(
        &self,
        call_id: Arc<str>,
        (seq, at): (i64, i64),
        kind: &str,
        data: serde_json::Value,
    ) -> Arc<FeedEvent> {
        let mut recent = self.lock();
        let event = Arc::new(FeedEvent {
            position: recent.next_position,
            call_id,
            seq,
            at,
            kind: kind.to_owned(),
            data,
        });
        recent.next_position += 1;
        if recent.events.len() == FEED_CAPACITY {
            recent.events.pop_front();
        }
        recent.events.push_back(event.clone());
        // Sent under the lock, so a subscriber's backlog and live events neither overlap nor miss
        // one. No subscriber is not an error.
        let _ = self.sender.send(event.clone());
        event
    }

    /// How many subscriptions are open now.
    pub fn subscribers(&self) -> usize {
        self.sender.receiver_count()
    }

    /// Subscribes to events after `position` (`None`: only new ones).
    pub fn subscribe(&self, after: Option<u64>) -> Subscription {
        let recent = self.lock();
        let live = self.sender.subscribe();
        let last = recent.next_position - 1;
        let Some(after) = after else {
            return Subscription {
                backlog: Vec::new(),
                gap: false,
                last,
                live,
            };
        };
        let oldest = recent
            .events
            .front()
            .map_or(recent.next_position, |e| e.position);
        let backlog = recent
            .events
            .iter()
            .filter(|event| event.position > after)
            .cloned()
            .collect();
        Subscription {
            backlog,
            gap: after + 1 < oldest,
            last,
            live,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Recent> {
        // Pushes and pops cannot leave the buffer inconsistent: a poisoned lock is still usable.
        self.recent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn publish(feed: &CallFeed, n: i64) -> Arc<FeedEvent> {
        feed.publish("call_a".into(), (n, 1_000 + n), "turn", json!({ "n": n }))
    }

    #[actix_rt::test]
    async fn subscribers_get_the_backlog_after_their_position_then_live_events() {
        let feed = CallFeed::default();
        for n in 1..=3 {
            publish(&feed, n);
        }
        let mut subscription = feed.subscribe(Some(1));
        let backlog: Vec<u64> = subscription.backlog.iter().map(|e| e.position).collect();
        assert_eq!(backlog, [2, 3]);
        assert!(!subscription.gap);
        publish(&feed, 4);
        assert_eq!(subscription.live.recv().await.unwrap().position, 4);

        let fresh = feed.subscribe(None);
        assert!(fresh.backlog.is_empty());
    }

    #[actix_rt::test]
    async fn a_position_older_than_what_is_kept_is_a_gap() {
        let feed = CallFeed::default();
        for n in 0..FEED_CAPACITY as i64 + 5 {
            publish(&feed, n);
        }
        let subscription = feed.subscribe(Some(2));
        assert!(subscription.gap);
        assert_eq!(subscription.backlog.len(), FEED_CAPACITY);
        assert!(!feed.subscribe(Some(5)).gap, "the oldest kept is 6");
    }

    #[actix_rt::test]
    async fn a_subscriber_that_falls_behind_learns_it_lagged() {
        let feed = CallFeed::default();
        let mut slow = feed.subscribe(None).live;
        for n in 0..FEED_CAPACITY as i64 + 1 {
            publish(&feed, n);
        }
        assert!(matches!(
            slow.recv().await,
            Err(broadcast::error::RecvError::Lagged(_))
        ));
    }
}
