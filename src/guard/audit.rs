//! The audit log's front: each event is a tracing event at once (target `audit`) and a row in the
//! store soon after (the [`super::auth::AuthActor`] flushes every few seconds).
//!
//! Successful authentications are frequent, so they are counted per token and client between
//! flushes (one row each, with the count and the first time) instead of one row per request.
//! Failures are counted the same way, per client and reason, and logged at warn once per client
//! and reason between flushes (each at debug), so a guessing client costs a row and a line every
//! few seconds, not one per guess. Both are bounded: under a flood from more clients than that,
//! the excess is counted and dropped.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use dashmap::DashMap;

use crate::store::audit::AuditEvent;
use crate::store::now_ms;

/// Rows waiting for the next flush, at most.
const MAX_PENDING: usize = 10_000;

/// Audit events waiting to be written.
#[derive(Debug, Default)]
pub struct AuditLog {
    pending: Mutex<Vec<AuditEvent>>,
    successes: DashMap<(Arc<str>, IpAddr), (i64, i64)>,
    failures: DashMap<(IpAddr, &'static str), (i64, i64)>,
    dropped: AtomicU64,
}

impl AuditLog {
    /// Records an event: logged now, written at the next flush.
    pub fn record(&self, event: AuditEvent) {
        log(&event);
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if pending.len() < MAX_PENDING {
            pending.push(event);
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a successful authentication.
    pub fn success(&self, token_id: &Arc<str>, client: IpAddr) {
        tracing::debug!(target: "audit", kind = "auth.success", token_id = %token_id, %client);
        self.successes
            .entry((token_id.clone(), client))
            .and_modify(|(_, count)| *count += 1)
            .or_insert_with(|| (now_ms(), 1));
    }

    /// Counts a failed authentication by `client` for `reason` at `at_ms` (Unix ms).
    pub fn failure(&self, client: IpAddr, reason: &'static str, at_ms: i64) {
        let key = (client, reason);
        if self.failures.len() >= MAX_PENDING && !self.failures.contains_key(&key) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut first = false;
        self.failures
            .entry(key)
            .and_modify(|(_, count)| *count += 1)
            .or_insert_with(|| {
                first = true;
                (at_ms, 1)
            });
        if first {
            tracing::warn!(target: "audit", kind = "auth.failure", %client, detail = reason);
        } else {
            tracing::debug!(target: "audit", kind = "auth.failure", %client, detail = reason);
        }
    }

    /// Takes what is pending: the rows, and each token's latest use (for `last_used_at`).
    pub fn drain(&self) -> (Vec<AuditEvent>, Vec<(String, i64)>) {
        let mut events =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(target: "audit", dropped, "audit rows dropped: too many at once");
        }
        let now = now_ms();
        let mut last_used: Vec<(String, i64)> = Vec::new();
        let keys: Vec<_> = self.successes.iter().map(|e| e.key().clone()).collect();
        for key in keys {
            if let Some(((token_id, client), (first_at, count))) = self.successes.remove(&key) {
                events.push(AuditEvent {
                    at: first_at,
                    kind: "auth.success".into(),
                    token_id: Some(token_id.to_string()),
                    client: Some(client.to_string()),
                    detail: String::new(),
                    count,
                });
                match last_used.iter_mut().find(|(id, _)| **id == *token_id) {
                    Some(entry) => entry.1 = now,
                    None => last_used.push((token_id.to_string(), now)),
                }
            }
        }
        let keys: Vec<_> = self.failures.iter().map(|e| *e.key()).collect();
        for key in keys {
            if let Some(((client, reason), (first_at, count))) = self.failures.remove(&key) {
                events.push(AuditEvent {
                    at: first_at,
                    kind: "auth.failure".into(),
                    token_id: None,
                    client: Some(client.to_string()),
                    detail: reason.to_owned(),
                    count,
                });
            }
        }
        (events, last_used)
    }
}

/// The tracing event of an audit event (target `audit`; failures and lockouts at warn).
pub fn log(event: &AuditEvent) {
    let token_id = event.token_id.as_deref().unwrap_or("-");
    let client = event.client.as_deref().unwrap_or("-");
    if event.kind.ends_with("failure") || event.kind.ends_with("lockout") {
        tracing::warn!(target: "audit", kind = %event.kind, token_id, client, detail = %event.detail);
    } else {
        tracing::info!(target: "audit", kind = %event.kind, token_id, client, detail = %event.detail);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successes_are_counted_per_token_and_client() {
        let log = AuditLog::default();
        let token: Arc<str> = "tok_a".into();
        let here: IpAddr = [127, 0, 0, 1].into();
        for _ in 0..3 {
            log.success(&token, here);
        }
        log.success(&token, [127, 0, 0, 2].into());
        log.record(AuditEvent {
            at: 1,
            kind: "token.revoked".into(),
            token_id: Some("tok_b".into()),
            client: Some("127.0.0.1".into()),
            detail: String::new(),
            count: 1,
        });
        let (events, last_used) = log.drain();
        assert_eq!(events.len(), 3);
        let counts: i64 = events
            .iter()
            .filter(|e| e.kind == "auth.success")
            .map(|e| e.count)
            .sum();
        assert_eq!(counts, 4);
        assert_eq!(last_used.len(), 1);
        assert!(log.drain().0.is_empty());
    }

    #[test]
    fn failures_are_counted_per_client_and_reason_and_bounded() {
        let log = AuditLog::default();
        let guesser: IpAddr = [192, 0, 2, 9].into();
        for at in 0..1_000 {
            log.failure(guesser, "unknown token", 100 + at);
        }
        log.failure(guesser, "missing token", 5_000);
        let (events, _) = log.drain();
        let rows: Vec<(&str, i64, i64)> = events
            .iter()
            .map(|e| (e.detail.as_str(), e.count, e.at))
            .collect();
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert!(rows.contains(&("unknown token", 1_000, 100)), "{rows:?}");
        assert!(rows.contains(&("missing token", 1, 5_000)), "{rows:?}");
        for n in 0..(MAX_PENDING as u32 + 5) {
            log.failure(IpAddr::V4(n.into()), "unknown token", 1);
        }
        assert_eq!(
            log.drain().0.len(),
            MAX_PENDING,
            "a flood of clients is bounded"
        );
    }
}
