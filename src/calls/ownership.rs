//! Call ownership across instances sharing one database.
//!
//! The instance whose socket carries a call's stream owns the call: it claims the stream in the
//! call's record once ([`Store::claim_stream`]), names itself, and holds a lease it renews while
//! it lives ([`CallOwnership::upkeep`], every third of the lease). A second socket for the call,
//! on any instance, finds the stream taken and is refused. An instance that dies without ending
//! its calls stops renewing: once its leases run out, whichever instance looks next ends those
//! calls as [`INTERRUPTED`].
//!
//! [`StreamGate`] is what calls admit their `start` with: the stream token, checked here, then
//! the claim (on PostgreSQL; on SQLite there is one instance, and its own claim is all).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix_rt::task::JoinHandle;
use phone_agent_actors::ids::CallSid;
use phone_agent_actors::media::admission::{AdmissionError, ClaimFuture, StreamAuthorizer};
use tokio::sync::watch;

use super::periodic;
use super::records::CallRecords;
use crate::store::calls::{StreamClaim, INTERRUPTED};
use crate::store::{now_ms, StoreError};
use crate::twilio::stream_token::StreamTokens;

/// Longest a stream's claim may wait for the database; past it the call goes on, its claim made
/// on this instance only (a call is never dropped for a slow database).
pub const CLAIM_BUDGET: Duration = Duration::from_secs(2);

/// This instance's claims and leases on calls.
pub struct CallOwnership {
    records: CallRecords,
    instance: String,
    lease: Duration,
}

impl CallOwnership {
    /// Ownership by `instance` (a name no other instance has), with leases of `lease`.
    pub fn new(records: CallRecords, instance: String, lease: Duration) -> Self {
        Self {
            records,
            instance,
            lease,
        }
    }

    /// Claims the stream of `call_sid` for this instance at `now_ms`.
    pub async fn claim(&self, call_sid: &CallSid, now_ms: i64) -> Result<StreamClaim, StoreError> {
        self.records
            .store()
            .claim_stream(
                call_sid.as_str(),
                &self.instance,
                now_ms,
                self.lease_from(now_ms),
            )
            .await
    }

    /// One round at `now_ms`: renews this instance's leases, then ends the calls whose owner's
    /// lease ran out (published, so every event stream hears of it). The calls ended.
    pub async fn upkeep(&self, now_ms: i64) -> Result<Vec<String>, StoreError> {
        let store = self.records.store();
        store
            .renew_leases(&self.instance, self.lease_from(now_ms))
            .await?;
        let lapsed = store.lapsed_calls(now_ms).await?;
        let mut ended = Vec::with_capacity(lapsed.len());
        for id in lapsed {
            // Another instance may end it first: then this one logs nothing.
            if self
                .records
                .published(store.record_end(&id, INTERRUPTED, now_ms).await)?
            {
                ended.push(id);
            }
        }
        Ok(ended)
    }

    /// Runs [`Self::upkeep`] every third of the lease, until `stop` turns true.
    pub fn start(self: Arc<Self>, stop: watch::Receiver<bool>) -> JoinHandle<()> {
        periodic::every(self.lease / 3, stop, move || {
            let ownership = self.clone();
            async move {
                match ownership.upkeep(now_ms()).await {
                    Ok(ended) if !ended.is_empty() => tracing::warn!(
                        calls = ended.len(),
                        reason = INTERRUPTED,
                        "calls whose instance stopped renewing its lease are marked interrupted"
                    ),
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "call leases not renewed"),
                }
            }
        })
    }

    fn lease_from(&self, now_ms: i64) -> i64 {
        now_ms.saturating_add(self.lease.as_millis() as i64)
    }
}

/// Admits a call's `start`: its stream token (on this instance), then its claim among all.
pub struct StreamGate {
    tokens: Arc<StreamTokens>,
    ownership: Arc<CallOwnership>,
}

impl StreamGate {
    /// A gate checking `tokens` and claiming through `ownership`.
    pub fn new(tokens: Arc<StreamTokens>, ownership: Arc<CallOwnership>) -> Self {
        Self { tokens, ownership }
    }
}

impl StreamAuthorizer for StreamGate {
    fn redeem(
        &self,
        call_sid: &CallSid,
        token: &str,
        now: SystemTime,
    ) -> Result<(), AdmissionError> {
        self.tokens.redeem(call_sid, token, now)
    }

    fn claim(&self, call_sid: &CallSid) -> ClaimFuture {
        // On SQLite this is the only instance: its own claim (`Admission::admit`) is all, and
        // a call left live by a killed run is ended at the next start-up.
        if !self.ownership.records.store().is_shared() {
            return Box::pin(std::future::ready(Ok(())));
        }
        let (ownership, call_sid) = (self.ownership.clone(), call_sid.clone());
        Box::pin(async move {
            let claim = ownership.claim(&call_sid, now_ms());
            match actix_rt::time::timeout(CLAIM_BUDGET, claim).await {
                Ok(Ok(StreamClaim::Claimed)) => Ok(()),
                Ok(Ok(StreamClaim::Taken)) => Err(AdmissionError::AlreadyStreaming),
                Ok(Ok(StreamClaim::Unrecorded)) => {
                    tracing::warn!(%call_sid, "stream of an unrecorded call: claimed here only");
                    Ok(())
                }
                Ok(Err(error)) => {
                    tracing::error!(%call_sid, %error, "stream claim failed: claimed here only");
                    Ok(())
                }
                Err(_) => {
                    tracing::error!(%call_sid, "stream claim timed out: claimed here only");
                    Ok(())
                }
            }
        })
    }
}
