//! Retention: transcripts, extractions and metadata older than `RETENTION_DAYS` are erased (the
//! call records stay), with an audit row saying how much.

use std::rc::Rc;
use std::time::Duration;

use actix_rt::task::JoinHandle;
use jiff::Timestamp;
use tokio::sync::watch;

use super::periodic;
use super::records::CallRecords;
use crate::store::audit::AuditEvent;
use crate::store::StoreError;

/// How often old call content is purged.
pub const RETENTION_INTERVAL: Duration = Duration::from_secs(3600);

/// Starts the retention job on the current arbiter: a pass now, then every
/// [`RETENTION_INTERVAL`], until `stop` turns true; `None` (no handle) keeps everything.
pub fn start(
    records: CallRecords,
    retention: Option<Duration>,
    stop: watch::Receiver<bool>,
) -> Option<JoinHandle<()>> {
    let retention = retention?;
    let records = Rc::new(records);
    Some(periodic::every(RETENTION_INTERVAL, stop, move || {
        let records = records.clone();
        async move {
            let now_ms = Timestamp::now().as_millisecond();
            if let Err(error) = purge(&records, retention, now_ms).await {
                tracing::error!(%error, "retention pass failed");
            }
        }
    }))
}

/// Erases the content of calls that ended more than `retention` before `now_ms`, and audits it.
pub async fn purge(
    records: &CallRecords,
    retention: Duration,
    now_ms: i64,
) -> Result<(), StoreError> {
    let store = records.store();
    let cutoff = now_ms.saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
    let purged = store.purge_older_than(cutoff, now_ms).await?;
    if purged.calls == 0 && purged.idempotency_keys == 0 {
        return Ok(());
    }
    let detail = format!(
        "retention: content of {} calls erased ({} turns, {} events), {} idempotency keys expired",
        purged.calls, purged.turns, purged.events, purged.idempotency_keys
    );
    tracing::info!(%detail, "retention pass");
    store
        .append_audit(&[AuditEvent {
            at: now_ms,
            kind: "calls.purged".into(),
            token_id: None,
            client: None,
            detail,
            count: 1,
        }])
        .await
}
