//! The scheduler: places scheduled calls when they fall due, on whichever server claims them.
//!
//! Every [`SCHEDULER_TICK`] it marks `missed` the calls more than `SCHEDULE_GRACE` late (the
//! server was down at their time), then claims the due ones and places them. Claims are atomic in
//! the database, so two servers on one PostgreSQL never place a call twice, and a restart places a
//! call that fell due while the server was down (if it is not too late).

use std::rc::Rc;
use std::time::Duration;

use actix_rt::task::JoinHandle;
use jiff::Timestamp;
use tokio::sync::watch;

use super::periodic;
use super::placing::Placer;
use super::records::CallRecords;
use crate::store::StoreError;

/// How often due calls are looked for: a call is placed within this of its time (well within a
/// second).
pub const SCHEDULER_TICK: Duration = Duration::from_millis(250);

/// Calls claimed at once; the rest wait for the next tick.
const CLAIM_BATCH: i64 = 20;

/// Starts the scheduler on the current arbiter, until `stop` turns true (the handle resolves once
/// its last pass has ended).
pub fn start(
    records: CallRecords,
    placer: Placer,
    grace: Duration,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let instance = Rc::new(records.store().instance().to_owned());
    tracing::info!(%instance, "scheduler started");
    let (records, placer) = (Rc::new(records), Rc::new(placer));
    periodic::every(SCHEDULER_TICK, stop, move || {
        let (records, placer, instance) = (records.clone(), placer.clone(), instance.clone());
        async move {
            if let Err(error) = run_once(&records, &placer, grace, &instance).await {
                tracing::error!(%error, "scheduler pass failed");
            }
        }
    })
}

/// One pass at the current time: missed calls marked, due calls claimed and placed.
async fn run_once(
    records: &CallRecords,
    placer: &Placer,
    grace: Duration,
    instance: &str,
) -> Result<(), StoreError> {
    let store = records.store();
    let now_ms = Timestamp::now().as_millisecond();
    for missed in store.mark_missed(grace, now_ms).await? {
        tracing::warn!(call_id = %missed.call_id, "scheduled call missed: the server was down at its time");
        records.publish(Some(missed));
    }
    for call in store.claim_due(now_ms, instance, CLAIM_BATCH).await? {
        // A failed placement is recorded on the call (status and end reason) by the placer.
        if let Err(error) = placer.place_scheduled(&call, now_ms).await {
            tracing::warn!(call_id = %call.id, %error, "scheduled call not placed");
        }
    }
    Ok(())
}
