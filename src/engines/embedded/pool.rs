//! A bounded pool of worker threads, each owning its own engine instance (an ONNX session is used
//! by one thread at a time). Inference never runs on the actors' threads, so a busy recogniser or
//! synthesizer cannot delay media pacing; when the queue is full a job is refused at once (the caller
//! degrades and counts it) instead of stalling.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use crossbeam_channel::{Sender, TrySendError};
use tokio::sync::oneshot;

type Job<E> = Box<dyn FnOnce(&mut E) + Send>;

/// Why a job did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// Every worker is busy and the queue is full.
    #[error("queue full")]
    Saturated,
    /// The pool's workers have stopped.
    #[error("workers stopped")]
    Stopped,
}

/// Tells a running job whether anyone still waits for its result.
pub struct Abandoned<'a>(&'a dyn Fn() -> bool);

impl Abandoned<'_> {
    /// Whether the result's receiver is gone (the job may stop).
    pub fn now(&self) -> bool {
        (self.0)()
    }
}

/// Worker threads sharing one bounded job queue.
pub struct WorkerPool<E> {
    name: &'static str,
    jobs: Sender<Job<E>>,
    busy: Arc<AtomicUsize>,
    workers: usize,
    refused: AtomicUsize,
}

impl<E: 'static> WorkerPool<E> {
    /// Starts one thread per engine in `engines`, with room for `queue` waiting jobs.
    pub fn start(name: &'static str, engines: Vec<E>, queue: usize) -> Self
    where
        E: Send,
    {
        let (jobs, inbox) = crossbeam_channel::bounded::<Job<E>>(queue);
        let busy = Arc::new(AtomicUsize::new(0));
        let workers = engines.len();
        for (index, mut engine) in engines.into_iter().enumerate() {
            let (inbox, busy) = (inbox.clone(), busy.clone());
            thread::Builder::new()
                .name(format!("{name}-{index}"))
                .spawn(move || {
                    for job in inbox {
                        busy.fetch_add(1, Ordering::Relaxed);
                        // A panicking job (a bug in an engine binding) loses its result, not the
                        // worker: the caller sees the receiver dropped.
                        let ran = panic::catch_unwind(AssertUnwindSafe(|| job(&mut engine)));
                        busy.fetch_sub(1, Ordering::Relaxed);
                        if ran.is_err() {
                            tracing::error!(pool = name, "engine job panicked");
                        }
                    }
                })
                .expect("spawning a worker thread");
        }
        Self {
            name,
            jobs,
            busy,
            workers,
            refused: AtomicUsize::new(0),
        }
    }

    /// Queues `work`; its result arrives on the returned receiver. A job whose receiver was dropped
    /// before a worker took it (the call moved on) is skipped without running; one that is running
    /// can poll its [`Abandoned`] probe and stop early.
    pub fn submit<R: Send + 'static>(
        &self,
        work: impl FnOnce(&mut E, &Abandoned<'_>) -> R + Send + 'static,
    ) -> Result<oneshot::Receiver<R>, PoolError> {
        let (reply, result) = oneshot::channel();
        let job: Job<E> = Box::new(move |engine| {
            if reply.is_closed() {
                return;
            }
            let output = work(engine, &Abandoned(&|| reply.is_closed()));
            let _ = reply.send(output);
        });
        match self.jobs.try_send(job) {
            Ok(()) => Ok(result),
            Err(TrySendError::Full(_)) => {
                let refused = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
                // Once per doubling: a saturated pool refuses many jobs a second.
                if refused.is_power_of_two() {
                    tracing::warn!(
                        pool = self.name,
                        refused,
                        "engine pool saturated; job refused"
                    );
                }
                Err(PoolError::Saturated)
            }
            Err(TrySendError::Disconnected(_)) => Err(PoolError::Stopped),
        }
    }

    /// Workers neither busy nor claimed by a queued job (best-effort work such as partial
    /// transcripts runs only when there are spare workers to leave free).
    pub fn spare_workers(&self) -> usize {
        self.workers
            .saturating_sub(self.busy.load(Ordering::Relaxed) + self.jobs.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn runs_jobs_on_the_workers_own_engine() {
        let pool = WorkerPool::start("test", vec![10_u32, 10], 4);
        assert_eq!(pool.spare_workers(), 2);
        let a = pool.submit(|engine, _| *engine + 1).unwrap();
        let b = pool.submit(|engine, _| *engine * 2).unwrap();
        assert_eq!((a.await.unwrap(), b.await.unwrap()), (11, 20));
    }

    #[actix_rt::test]
    async fn refuses_when_saturated_instead_of_waiting() {
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let hold = std::sync::Mutex::new(hold);
        let pool = WorkerPool::start("test", vec![()], 1);
        let (started, running) = oneshot::channel();
        let first = pool
            .submit(move |_, _| {
                let _ = started.send(());
                hold.lock().unwrap().recv().unwrap();
            })
            .unwrap();
        running.await.unwrap();
        assert_eq!(pool.spare_workers(), 0);
        let queued = pool.submit(|_, _| ()).unwrap();
        assert_eq!(pool.submit(|_, _| ()).unwrap_err(), PoolError::Saturated);
        release.send(()).unwrap();
        first.await.unwrap();
        queued.await.unwrap();
    }
}
