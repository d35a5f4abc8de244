//! The emulator's shared state: every call's state machine and what was observed of it, the
//! requests received, the faults still to inject. REST handlers and call drivers (on the HTTP
//! worker) and observers (tests, the command line) meet here; every change bumps a watch counter
//! that observers wait on. Actions a call's machine asks for are forwarded to its driver.
//!
//! The lock is held only to read or change state, never across an await.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use tokio::sync::{mpsc, watch};

use super::call::{Action, CallMachine, CallRecord, Input, NotActive, Status};
use super::clock::Now;
use super::error::ApiError;
use super::observe::{CallView, Delivery, Fault, ReceivedRequest};
use super::params::CallUpdate;
use crate::client::caller::session::Recording;

/// Where a call's driver takes its actions from. Unbounded: a call asks for a handful of actions
/// in its life, each batch in answer to one event.
pub type ActionSender = mpsc::UnboundedSender<Vec<Action>>;

/// All calls and requests.
pub struct Registry {
    inner: Mutex<Inner>,
    changes: watch::Sender<u64>,
}

#[derive(Default)]
struct Inner {
    calls: Vec<Slot>,
    requests: Vec<ReceivedRequest>,
    faults: VecDeque<Fault>,
}

struct Slot {
    machine: CallMachine,
    deliveries: Vec<Delivery>,
    conversation: Option<Recording>,
    driver: ActionSender,
}

impl Inner {
    fn slot(&mut self, sid: &str) -> Option<&mut Slot> {
        self.calls
            .iter_mut()
            .find(|slot| slot.machine.record().sid == sid)
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            inner: Mutex::default(),
            changes: watch::Sender::new(0),
        }
    }
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn changed(&self) {
        self.changes.send_modify(|version| *version += 1);
    }

    /// Adds a new call whose driver reads `driver`; returns its record.
    pub fn add(&self, machine: CallMachine, driver: ActionSender) -> CallRecord {
        let record = machine.record().clone();
        self.lock().calls.push(Slot {
            machine,
            deliveries: Vec::new(),
            conversation: None,
            driver,
        });
        self.changed();
        record
    }

    /// Tells call `sid` what happened; its actions go to its driver.
    pub fn handle(&self, sid: &str, input: Input, now: Now) {
        let mut inner = self.lock();
        if let Some(slot) = inner.slot(sid) {
            let before = slot.machine.record().status;
            let actions = slot.machine.handle(input, now);
            forward(slot, before, actions);
        }
        drop(inner);
        self.changed();
    }

    /// Applies a REST update to call `sid`: `None` when there is no such call.
    pub fn update(
        &self,
        sid: &str,
        update: CallUpdate,
        now: Now,
    ) -> Option<Result<CallRecord, NotActive>> {
        let mut inner = self.lock();
        let slot = inner.slot(sid)?;
        let before = slot.machine.record().status;
        let result = slot.machine.update(update, now).map(|actions| {
            forward(slot, before, actions);
            slot.machine.record().clone()
        });
        drop(inner);
        self.changed();
        Some(result)
    }

    /// The record of call `sid`.
    pub fn record(&self, sid: &str) -> Option<CallRecord> {
        self.lock()
            .slot(sid)
            .map(|slot| slot.machine.record().clone())
    }

    /// When call `sid` next needs a tick.
    pub fn next_deadline(&self, sid: &str) -> Option<Instant> {
        self.lock()
            .slot(sid)
            .and_then(|slot| slot.machine.next_deadline())
    }

    /// Whether call `sid` is over (or unknown).
    pub fn is_ended(&self, sid: &str) -> bool {
        self.lock()
            .slot(sid)
            .is_none_or(|slot| slot.machine.is_ended())
    }

    /// Notes a request made about call `sid`.
    pub fn delivered(&self, sid: &str, delivery: Delivery) {
        if let Some(slot) = self.lock().slot(sid) {
            slot.deliveries.push(delivery);
        }
        self.changed();
    }

    /// Keeps the callee's side of call `sid`'s stream.
    pub fn conversation(&self, sid: &str, recording: Recording) {
        if let Some(slot) = self.lock().slot(sid) {
            slot.conversation = Some(recording);
        }
        self.changed();
    }

    /// Notes a request the REST API answered.
    pub fn received(&self, request: ReceivedRequest) {
        self.lock().requests.push(request);
        self.changed();
    }

    /// Queues a fault for the next requests.
    pub fn inject(&self, fault: Fault) {
        self.lock().faults.push_back(fault);
    }

    /// The answer of the next queued fault, if one is left.
    pub fn take_fault(&self) -> Option<ApiError> {
        let mut inner = self.lock();
        let fault = inner.faults.front_mut()?;
        let error = ApiError::fault(fault.status, fault.retry_after);
        fault.count = fault.count.saturating_sub(1);
        if fault.count == 0 {
            inner.faults.pop_front();
        }
        Some(error)
    }

    /// Every call, oldest first.
    pub fn calls(&self) -> Vec<CallView> {
        self.lock()
            .calls
            .iter()
            .map(|slot| CallView {
                record: slot.machine.record().clone(),
                deliveries: slot.deliveries.clone(),
                conversation: slot.conversation.clone(),
            })
            .collect()
    }

    /// Every request received, oldest first.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.lock().requests.clone()
    }

    /// A receiver that sees every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

/// Sends `actions` to the slot's driver, and logs the call's status if it moved from `before`.
fn forward(slot: &Slot, before: Status, actions: Vec<Action>) {
    let record = slot.machine.record();
    if record.status != before {
        tracing::info!(call_sid = %record.sid, status = record.status.as_str(), "call status");
    }
    if !actions.is_empty() {
        // A driver that has finished wants nothing more: its call is over.
        let _ = slot.driver.send(actions);
    }
}
