//! Background passes on the server's main arbiter (the scheduler, retention, lease upkeep), run
//! at a period until the server stops them.

use std::future::Future;
use std::time::Duration;

use actix_rt::task::JoinHandle;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

/// Runs `pass` every `period`, the first at once, until `stop` turns true or its sender is gone.
/// A pass under way is finished, not cut: the handle resolves once the last one has ended, so the
/// server can wait for it before its database connections go.
pub fn every<F, P>(period: Duration, mut stop: watch::Receiver<bool>, mut pass: F) -> JoinHandle<()>
where
    F: FnMut() -> P + 'static,
    P: Future<Output = ()> + 'static,
{
    actix_rt::spawn(async move {
        let mut ticks = actix_rt::time::interval(period);
        // A pass slower than the period delays the next; it does not make passes pile up.
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                changed = stop.changed() => if changed.is_err() || *stop.borrow() { return },
                _ = ticks.tick() => pass().await,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use super::*;

    #[actix_rt::test]
    async fn passes_run_at_the_period_until_stopped_and_the_last_one_is_finished() {
        tokio::time::pause();
        let (stop, stopped) = watch::channel(false);
        let (passes, finished) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
        let (counted, done) = (passes.clone(), finished.clone());
        let handle = every(Duration::from_secs(10), stopped, move || {
            counted.set(counted.get() + 1);
            let done = done.clone();
            async move {
                tokio::time::sleep(Duration::from_secs(3)).await;
                done.set(done.get() + 1);
            }
        });
        // Passes at 0, 10 and 20 s; stopped at 21 s, during the third.
        tokio::time::sleep(Duration::from_secs(21)).await;
        stop.send_replace(true);
        handle.await.unwrap();
        assert_eq!((passes.get(), finished.get()), (3, 3));
    }

    #[actix_rt::test]
    async fn passes_end_when_the_server_is_gone() {
        let (stop, stopped) = watch::channel(false);
        let handle = every(Duration::from_secs(3600), stopped, || async {});
        drop(stop);
        handle.await.unwrap();
    }
}
