//! Trying a write again while the database refuses it for a passing reason.

use std::future::Future;
use std::time::{Duration, Instant};

use super::StoreError;

/// The first pause before trying again; each later one doubles, up to [`LONGEST_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(50);

/// The longest pause between two attempts.
const LONGEST_PAUSE: Duration = Duration::from_secs(2);

/// Runs `attempt` until it succeeds, fails for a lasting reason, or trying again would end after
/// `budget`: a busy or locked database, or a pool with no connection free
/// ([`StoreError::is_transient`]), is waited out, backing off. `busy` is told of each passing
/// failure before the pause (for a log line). The last error is returned when time runs out.
pub async fn retry_transient<T, Fut>(
    budget: Duration,
    mut attempt: impl FnMut() -> Fut,
    busy: impl Fn(&StoreError),
) -> Result<T, StoreError>
where
    Fut: Future<Output = Result<T, StoreError>>,
{
    let deadline = Instant::now() + budget;
    let mut pause = FIRST_PAUSE;
    loop {
        match attempt().await {
            Err(error) if error.is_transient() && Instant::now() + pause < deadline => {
                busy(&error);
                actix_rt::time::sleep(pause).await;
                pause = (pause * 2).min(LONGEST_PAUSE);
            }
            outcome => return outcome,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    fn busy() -> StoreError {
        StoreError::Database(sqlx::Error::PoolTimedOut)
    }

    // Tokio's clock is paused: the pauses between attempts pass at once.
    #[tokio::test(start_paused = true)]
    async fn a_passing_failure_is_tried_again_and_a_lasting_one_is_not() {
        let attempts = Cell::new(0);
        let outcome = retry_transient(
            Duration::from_secs(5),
            || async {
                attempts.set(attempts.get() + 1);
                if attempts.get() < 3 {
                    Err(busy())
                } else {
                    Ok(attempts.get())
                }
            },
            |_| {},
        )
        .await;
        assert_eq!(outcome.ok(), Some(3));

        let attempts = Cell::new(0);
        let outcome: Result<(), _> = retry_transient(
            Duration::from_secs(5),
            || async {
                attempts.set(attempts.get() + 1);
                Err(StoreError::Scheme)
            },
            |_| {},
        )
        .await;
        assert!(matches!(outcome, Err(StoreError::Scheme)));
        assert_eq!(attempts.get(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn time_running_out_returns_the_last_error() {
        let attempts = Cell::new(0);
        let outcome: Result<(), _> = retry_transient(
            Duration::from_millis(40),
            || async {
                attempts.set(attempts.get() + 1);
                Err(busy())
            },
            |_| {},
        )
        .await;
        assert!(outcome.is_err_and(|e| e.is_transient()));
        assert_eq!(attempts.get(), 1, "no pause fits in the budget");
    }
}
