//! Stub receivers for running one actor alone: every event it emits is recorded, in order, for the
//! test to read back (the shape of pipecat's `run_test`: feed one processor, assert what comes out).

use std::collections::BTreeMap;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::mpsc;

use crate::engines::CallContext;
use crate::events::{ChildGaveUp, ChildKind};
use crate::ids::{CallSid, StreamSid};
use crate::runtime::registry::LiveCalls;
use crate::runtime::supervision::{ChildSupervision, RestartPolicy};

/// How long a test waits for an event before failing.
const EVENT_TIMEOUT: Duration = Duration::from_secs(5);

/// An actor that records every `M` it receives.
struct Recorder<M> {
    events: mpsc::UnboundedSender<M>,
}

impl<M: Unpin + 'static> Actor for Recorder<M> {
    type Context = Context<Self>;
}

impl<M> Handler<M> for Recorder<M>
where
    M: Message<Result = ()> + Send + Unpin + 'static,
{
    type Result = ();

    fn handle(&mut self, msg: M, _: &mut Context<Self>) {
        // The test may have stopped reading; what it did not read does not matter then.
        let _ = self.events.send(msg);
    }
}

/// What a recorder received, in order.
pub struct Recorded<M>(mpsc::UnboundedReceiver<M>);

impl<M> Recorded<M> {
    /// The next event; fails the test after [`EVENT_TIMEOUT`].
    pub async fn next(&mut self) -> M {
        tokio::time::timeout(EVENT_TIMEOUT, self.0.recv())
            .await
            .expect("event in time")
            .expect("recorder alive")
    }

    /// The next event if one is already here.
    pub fn try_next(&mut self) -> Option<M> {
        self.0.try_recv().ok()
    }
}

/// A stub receiver of `M` (on the current arbiter) and what it records.
pub fn recorder<M>() -> (Recipient<M>, Recorded<M>)
where
    M: Message<Result = ()> + Send + Unpin + 'static,
{
    let (events, recorded) = mpsc::unbounded_channel();
    (Recorder { events }.start().recipient(), Recorded(recorded))
}

/// The call every test child serves.
pub fn call_context() -> CallContext {
    CallContext {
        call_sid: CallSid::parse(&format!("CA{:032x}", 1)).expect("valid CallSid"),
        stream_sid: StreamSid::new(format!("MZ{:032x}", 1)),
        custom_parameters: BTreeMap::new(),
    }
}

/// Supervision of a `kind` child with a fast restart policy; its give-up is recorded.
pub fn supervision(kind: ChildKind) -> (ChildSupervision, Recorded<ChildGaveUp>) {
    let policy = RestartPolicy {
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(4),
        max_failures: 2,
        window: Duration::from_secs(60),
    };
    let (gave_up, recorded) = recorder();
    let alive = LiveCalls::new().track_actor();
    let supervision = ChildSupervision::new(kind, policy, gave_up, tracing::Span::none(), alive);
    (supervision, recorded)
}
