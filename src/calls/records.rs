//! The server's call records: the store, and the live feed every logged event is published on.
//!
//! Every write that logs an event in a call's log (a status, a turn, a barge-in, the end)
//! returns the event as logged; [`CallRecords::publish`] puts it on the feed, so subscribers see
//! exactly what a reconnecting client would read back from the log, with the same `seq`.

use std::sync::Arc;

use serde_json::json;

use super::feed::CallFeed;
use super::number::E164;
use crate::redact::mask_phone;
use crate::store::call_events::{CallEvent, EventKind};
use crate::store::{now_ms, Store, StoreError};

/// The store and the feed, shared by the HTTP handlers, the journal and the scheduler.
#[derive(Clone)]
pub struct CallRecords {
    store: Store,
    feed: Arc<CallFeed>,
}

impl CallRecords {
    /// Records in `store`, published on `feed`.
    pub fn new(store: Store, feed: Arc<CallFeed>) -> Self {
        Self { store, feed }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The same feed, recorded through `store` (a pool of another thread's own).
    pub fn with_store(&self, store: Store) -> Self {
        Self {
            store,
            feed: self.feed.clone(),
        }
    }

    /// The live feed.
    pub fn feed(&self) -> &CallFeed {
        &self.feed
    }

    /// Publishes an event the store just logged (nothing when the write logged none).
    pub fn publish(&self, logged: Option<CallEvent>) {
        if let Some(event) = logged {
            let data = event.data.unwrap_or(serde_json::Value::Null);
            let position = (event.seq, event.at);
            self.feed
                .publish(event.call_id.into(), position, event.kind.as_str(), data);
        }
    }

    /// Publishes every event of a call just recorded (its first status).
    pub async fn publish_new(&self, id: &str) -> Result<(), StoreError> {
        for event in self.store.events_after(id, 0, 100).await? {
            self.publish(Some(event));
        }
        Ok(())
    }

    /// Logs (and publishes) that the call was handed to `to`, by the `api` or the `agent`.
    pub async fn transferred(
        &self,
        id_or_sid: &str,
        to: &E164,
        by: &str,
    ) -> Result<(), StoreError> {
        let data = json!({ "to": mask_phone(to.as_str()), "by": by });
        let logged = self
            .store
            .append_event(id_or_sid, EventKind::Transferred, &data, now_ms())
            .await;
        self.published(logged).map(drop)
    }

    /// Publishes what a write logged, passing its error on.
    pub fn published(
        &self,
        logged: Result<Option<CallEvent>, StoreError>,
    ) -> Result<bool, StoreError> {
        let logged = logged?;
        let changed = logged.is_some();
        self.publish(logged);
        Ok(changed)
    }
}
