//! The live calls of this process: how many, which CallSids are streaming, and how to end them all.
//!
//! Each CallActor registers when it starts and holds a [`LiveCallGuard`]; the guard's `Drop`
//! deregisters it however the actor stops, so the count cannot leak. Every other actor of a call
//! (MediaStream and the engine children) holds a [`LiveActorGuard`] the same way: it is dropped
//! with the actor itself, not on a supervisor restart. Both counts are published on watch channels
//! so shutdown and tests can await zero instead of polling.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use actix::Recipient;
use tokio::sync::watch;

use super::lateness::InboundLateness;
use crate::events::{EndCall, EndReason};
use crate::ids::CallSid;

/// Why a CallSid cannot be bound to a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    /// Another live call streams this CallSid.
    #[error("call already has a live stream")]
    AlreadyStreaming,
}

/// Identifies one registered call inside this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallId(u64);

struct Entry {
    call_sid: Option<CallSid>,
    end: Recipient<EndCall>,
}

struct Inner {
    next_id: AtomicU64,
    calls: Mutex<HashMap<CallId, Entry>>,
    count: watch::Sender<usize>,
    actors: watch::Sender<usize>,
    draining: std::sync::atomic::AtomicBool,
    /// How far behind real time their inbound audio is handled.
    lateness: InboundLateness,
}

/// Shared handle to the registry of live calls.
#[derive(Clone)]
pub struct LiveCalls {
    inner: Arc<Inner>,
}

impl Default for LiveCalls {
    fn default() -> Self {
        Self::new()
    }
}

impl LiveCalls {
    /// An empty registry.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                next_id: AtomicU64::new(1),
                calls: Mutex::new(HashMap::new()),
                count: watch::channel(0).0,
                actors: watch::channel(0).0,
                draining: false.into(),
                lateness: InboundLateness::default(),
            }),
        }
    }

    /// How far behind real time the calls' inbound audio is handled (the admission signal).
    pub fn lateness(&self) -> &InboundLateness {
        &self.inner.lateness
    }

    /// Calls alive now (registered CallActors, streaming or not yet).
    pub fn count(&self) -> usize {
        *self.inner.count.borrow()
    }

    /// Calls streaming now: those whose `start` was admitted (their CallSid claimed). A socket
    /// opened and not yet started is not one: its call is still counted by its stream token.
    pub fn streaming(&self) -> usize {
        self.lock()
            .values()
            .filter(|entry| entry.call_sid.is_some())
            .count()
    }

    /// Actors of calls other than the CallActors (MediaStreams and engine children) alive now.
    pub fn live_actors(&self) -> usize {
        *self.inner.actors.borrow()
    }

    /// Whether the server stopped taking calls.
    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::Acquire)
    }

    /// Stops taking calls: every later `start` is refused.
    pub fn start_draining(&self) {
        self.inner.draining.store(true, Ordering::Release);
    }

    /// Asks the live call streaming `call_sid` to end for `reason`; false if none does here.
    pub fn end(&self, call_sid: &CallSid, reason: EndReason) -> bool {
        let calls = self.lock();
        let entry = calls
            .values()
            .find(|entry| entry.call_sid.as_ref() == Some(call_sid));
        if let Some(entry) = entry {
            entry.end.do_send(EndCall {
                reason,
                after_goodbye: false,
            });
        }
        entry.is_some()
    }

    /// Asks every live call to end for `reason`, at once.
    pub fn end_all(&self, reason: EndReason) {
        self.send_all(reason, false);
    }

    /// Asks every live call to end for `reason` once its agent has said the closing goodbye.
    pub fn wind_down_all(&self, reason: EndReason) {
        self.send_all(reason, true);
    }

    fn send_all(&self, reason: EndReason, after_goodbye: bool) {
        for entry in self.lock().values() {
            entry.end.do_send(EndCall {
                reason: reason.clone(),
                after_goodbye,
            });
        }
    }

    /// Resolves once at most `calls` calls are alive.
    pub async fn wait_until_at_most(&self, calls: usize) {
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = self.inner.count.subscribe().wait_for(|&n| n <= calls).await;
    }

    /// Resolves once no call is alive and every actor of every call has stopped.
    pub async fn wait_until_empty(&self) {
        self.wait_until_at_most(0).await;
        let _ = self.inner.actors.subscribe().wait_for(|&n| n == 0).await;
    }

    /// Counts one more live actor until the guard is dropped.
    pub(crate) fn track_actor(&self) -> LiveActorGuard {
        self.inner.actors.send_modify(|n| *n += 1);
        LiveActorGuard(self.clone())
    }

    pub(crate) fn register(&self, end: Recipient<EndCall>) -> LiveCallGuard {
        let id = CallId(self.inner.next_id.fetch_add(1, Ordering::Relaxed));
        let mut calls = self.lock();
        calls.insert(
            id,
            Entry {
                call_sid: None,
                end,
            },
        );
        self.inner.count.send_replace(calls.len());
        LiveCallGuard {
            id,
            registry: self.clone(),
        }
    }

    /// Binds `call_sid` to call `id`, unless another live call streams it.
    ///
    /// Also while draining: the call's socket was accepted before the drain began (a new one is
    /// refused with 503 before its upgrade, where a load balancer can send it to another
    /// instance), and Twilio cannot retry a stream whose `start` is refused: the call would be lost.
    pub(crate) fn claim(&self, id: CallId, call_sid: &CallSid) -> Result<(), ClaimError> {
        let mut calls = self.lock();
        if calls
            .values()
            .any(|entry| entry.call_sid.as_ref() == Some(call_sid))
        {
            return Err(ClaimError::AlreadyStreaming);
        }
        if let Some(entry) = calls.get_mut(&id) {
            entry.call_sid = Some(call_sid.clone());
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<CallId, Entry>> {
        // A panic while holding this lock cannot leave the map inconsistent (single inserts and
        // removes), so a poisoned lock is still usable.
        self.inner
            .calls
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Keeps a call registered; deregisters it on drop.
pub struct LiveCallGuard {
    id: CallId,
    registry: LiveCalls,
}

impl LiveCallGuard {
    /// The registered call's id.
    pub fn id(&self) -> CallId {
        self.id
    }
}

impl Drop for LiveCallGuard {
    fn drop(&mut self) {
        let mut calls = self.registry.lock();
        calls.remove(&self.id);
        self.registry.inner.count.send_replace(calls.len());
    }
}

/// Counts one actor of a call as alive; owned by the actor, dropped with it.
pub struct LiveActorGuard(LiveCalls);

impl Drop for LiveActorGuard {
    fn drop(&mut self) {
        self.0.inner.actors.send_modify(|n| *n -= 1);
    }
}
