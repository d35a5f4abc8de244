//! The restart policy the CallActor gives its children: capped exponential backoff and a budget.
//!
//! Sans-I/O: a child asks [`RestartBudget::on_failure`] with the current time and gets the delay
//! before it reopens its engine, or the verdict to give up (the CallActor then ends the call).

use std::time::{Duration, Instant};

use actix::prelude::*;

use super::registry::LiveActorGuard;
use crate::engines::EngineError;
use crate::events::{ChildGaveUp, ChildKind};

/// How children are restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Delay before the first restart.
    pub initial_backoff: Duration,
    /// Longest delay between restarts; doubling stops here.
    pub max_backoff: Duration,
    /// Failures tolerated within `window` before giving up.
    pub max_failures: u32,
    /// Failures older than this are forgotten.
    pub window: Duration,
}

impl Default for RestartPolicy {
    /// 200 ms doubling to 5 s; give up after 5 failures within a minute.
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            max_failures: 5,
            window: Duration::from_secs(60),
        }
    }
}

/// What to do after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartDecision {
    /// Reopen the engine after this delay.
    RestartAfter(Duration),
    /// The budget is spent.
    GiveUp,
}

/// A child's record of recent failures.
#[derive(Debug, Clone)]
pub struct RestartBudget {
    policy: RestartPolicy,
    failures: Vec<Instant>,
}

impl RestartBudget {
    /// A budget with no failures.
    pub fn new(policy: RestartPolicy) -> Self {
        Self {
            policy,
            failures: Vec::new(),
        }
    }

    /// Records a failure at `now` and decides.
    pub fn on_failure(&mut self, now: Instant) -> RestartDecision {
        let window = self.policy.window;
        self.failures.retain(|&at| now.duration_since(at) < window);
        self.failures.push(now);
        let count = self.failures.len() as u32;
        if count > self.policy.max_failures {
            return RestartDecision::GiveUp;
        }
        let factor = 2u32.saturating_pow(count - 1);
        let delay = self.policy.initial_backoff.saturating_mul(factor);
        RestartDecision::RestartAfter(delay.min(self.policy.max_backoff))
    }
}

/// Tell a child the call is over: it stops for good (its CallActor has dropped its address, so
/// the supervisor does not restart it).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct StopChild;

/// The supervision state every child of a call keeps across restarts.
///
/// A child runs under [`actix::Supervisor`], so its address stays valid while its engine session is
/// replaced. On an engine failure the child calls [`ChildSupervision::failed`] and stops its context;
/// actix calls `restarting`, then `started`, where [`ChildSupervision::open_after_backoff`] reopens the
/// engine after the budget's delay. What is lost on a restart: the engine session and the work in
/// flight in it (a partial transcript, a reply being streamed, queued clauses).
pub struct ChildSupervision {
    kind: ChildKind,
    budget: RestartBudget,
    call: Recipient<ChildGaveUp>,
    backoff: Option<Duration>,
    gave_up: bool,
    stopping: bool,
    span: tracing::Span,
    _alive: LiveActorGuard,
}

impl ChildSupervision {
    /// Supervision of a `kind` child reporting to `call`; `alive` counts the child as a live actor
    /// until the child itself (not merely its session) is gone.
    pub(crate) fn new(
        kind: ChildKind,
        policy: RestartPolicy,
        call: Recipient<ChildGaveUp>,
        span: tracing::Span,
        alive: LiveActorGuard,
    ) -> Self {
        Self {
            kind,
            budget: RestartBudget::new(policy),
            call,
            backoff: None,
            gave_up: false,
            stopping: false,
            span,
            _alive: alive,
        }
    }

    /// Records an engine failure; the caller then stops its context so the supervisor restarts it.
    pub fn failed(&mut self, error: EngineError) {
        if self.stopping || self.gave_up {
            return;
        }
        match self.budget.on_failure(Instant::now()) {
            RestartDecision::RestartAfter(delay) => {
                tracing::warn!(parent: &self.span, child = ?self.kind, %error, ?delay, "engine failed: restarting");
                self.backoff = Some(delay);
            }
            RestartDecision::GiveUp => {
                tracing::error!(parent: &self.span, child = ?self.kind, %error, "engine failed too often: giving up");
                self.gave_up = true;
                self.call.do_send(ChildGaveUp {
                    child: self.kind,
                    error,
                });
            }
        }
    }

    /// The call's span, for the child's log lines.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// The call is over: the next stop is final.
    pub fn stop(&mut self) {
        self.stopping = true;
    }

    /// Whether the child is stopping for good (engine streams ending now are not failures).
    pub fn is_stopping(&self) -> bool {
        self.stopping
    }

    /// Runs `open` now on first start, after the backoff on a restart, never after giving up.
    pub fn open_after_backoff<A>(&mut self, ctx: &mut Context<A>, open: fn(&mut A, &mut Context<A>))
    where
        A: Actor<Context = Context<A>>,
    {
        if self.gave_up || self.stopping {
            return;
        }
        // Deferred even without backoff: `open` needs the actor, which is borrowed here.
        let delay = self.backoff.take().unwrap_or(Duration::ZERO);
        ctx.run_later(delay, open);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_then_gives_up() {
        let policy = RestartPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
            max_failures: 4,
            window: Duration::from_secs(60),
        };
        let mut budget = RestartBudget::new(policy);
        let now = Instant::now();
        let delays: Vec<_> = (0..4).map(|_| budget.on_failure(now)).collect();
        assert_eq!(
            delays,
            [100, 200, 400, 500].map(|ms| RestartDecision::RestartAfter(Duration::from_millis(ms)))
        );
        assert_eq!(budget.on_failure(now), RestartDecision::GiveUp);
    }

    #[test]
    fn old_failures_are_forgotten() {
        let mut budget = RestartBudget::new(RestartPolicy::default());
        let start = Instant::now();
        for _ in 0..5 {
            budget.on_failure(start);
        }
        let later = start + Duration::from_secs(61);
        assert_eq!(
            budget.on_failure(later),
            RestartDecision::RestartAfter(Duration::from_millis(200))
        );
    }
}
