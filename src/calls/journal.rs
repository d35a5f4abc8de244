//! The journal: each call's story, as the CallActor tells it, written to the call's record and
//! published on the live feed.
//!
//! The CallActor must never wait for a database: [`StoreJournal::record`] queues the event and
//! one writer task per server writes them in order, whatever is queued in one transaction (a
//! group commit: under load, hundreds of events share one commit). A busy database or a full disk
//! is waited out (up to a minute, backing off) rather than losing the batch; a batch that still
//! fails is written event by event. Only a queue that stays full (the database stuck for a minute of calls) drops
//! events rather than stall calls, counted in the logs. What is written:
//! - the start: status `in-progress`;
//! - each final turn (sealed), an agent turn with the latencies of its reply;
//! - barge-ins, as events of the call's log;
//! - the extraction (sealed); a caller who asked not to be called again goes on the do-not-call
//!   list;
//! - the end, with its reason.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix_rt::ArbiterHandle;
use phone_agent_actors::drops::DropCounter;
use phone_agent_actors::engines::{CallContext, Extraction};
use phone_agent_actors::ids::CallSid;
use phone_agent_actors::runtime::journal::{CallEvent, CallJournal, Speaker, TranscriptTurn};
use serde_json::json;
use tokio::sync::{mpsc, watch};

use super::records::CallRecords;
use crate::redact::mask_phone;
use crate::store::call_events::CallEvent as StoredEvent;
use crate::store::call_events::EventKind;
use crate::store::calls::Direction;
use crate::store::retry::retry_transient;
use crate::store::status::CallStatus;
use crate::store::transcripts::{Turn, TurnLatencies};
use crate::store::{now_ms, StoreError};

/// Events queued for the writer: about a minute of a hundred busy calls.
pub const JOURNAL_QUEUE_CAPACITY: usize = 8192;

/// Events written in one transaction at most.
const BATCH: usize = 512;

/// How long the writer keeps trying a batch the database refuses for a passing reason.
const RETRY_FOR: Duration = Duration::from_secs(60);

/// The `next_step` of a caller who asked not to be called again.
const DO_NOT_CONTACT: &str = "do_not_contact";

/// Queues every call's events for the writer task.
pub struct StoreJournal {
    queue: mpsc::Sender<(CallSid, CallEvent)>,
    /// Events queued and not yet written.
    pending: Arc<watch::Sender<usize>>,
    dropped: std::sync::Mutex<DropCounter>,
}

impl StoreJournal {
    /// A journal writing to `records`, its writer task spawned on `writer` (an arbiter that runs
    /// no call, so the writer's sealing and SQL never delay a frame); the task ends once the
    /// journal is dropped and its queue written.
    pub fn start(records: CallRecords, writer: &ArbiterHandle) -> Self {
        let (queue, events) = mpsc::channel(JOURNAL_QUEUE_CAPACITY);
        let pending = Arc::new(watch::channel(0).0);
        writer.spawn(write(records, events, pending.clone()));
        Self {
            queue,
            pending,
            dropped: std::sync::Mutex::new(DropCounter::default()),
        }
    }

    /// Resolves once every event queued so far is written.
    pub async fn flushed(&self) {
        // The sender lives in `self`: the channel cannot close while we wait.
        let _ = self.pending.subscribe().wait_for(|&n| n == 0).await;
    }

    /// Resolves with `true` once every event queued so far is written, or with `false` once
    /// `stall` passes with none written (the database is gone). Shutdown waits for this: a
    /// journal behind by more than `stall` but writing still gets to finish.
    pub async fn flushed_unless_stalled(&self, stall: Duration) -> bool {
        written_unless_stalled(self.pending.subscribe(), stall).await
    }
}

/// Waits for `pending` to reach zero while it keeps falling: `false` once `stall` passes without it
/// falling.
async fn written_unless_stalled(mut pending: watch::Receiver<usize>, stall: Duration) -> bool {
    loop {
        let before = *pending.borrow_and_update();
        if before == 0 {
            return true;
        }
        let fell = tokio::time::timeout(stall, pending.wait_for(|&n| n < before)).await;
        if !matches!(fell, Ok(Ok(_))) {
            return false;
        }
    }
}

impl CallJournal for StoreJournal {
    fn record(&self, call: &CallContext, event: CallEvent) {
        // Counted before it is queued, so the writer never counts down below zero.
        self.pending.send_modify(|n| *n += 1);
        if self.queue.try_send((call.call_sid.clone(), event)).is_err() {
            self.pending.send_modify(|n| *n -= 1);
            let mut dropped = self
                .dropped
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some(total) = dropped.add(1) {
                tracing::error!(total, "call journal full: events dropped");
            }
        }
    }
}

/// The writer: whatever is queued (up to [`BATCH`] events) in one transaction, in the order calls
/// reported them.
async fn write(
    records: CallRecords,
    mut events: mpsc::Receiver<(CallSid, CallEvent)>,
    pending: Arc<watch::Sender<usize>>,
) {
    let mut writer = Writer {
        records,
        latencies: HashMap::new(),
        writes: Vec::with_capacity(BATCH),
    };
    let mut batch = Vec::with_capacity(BATCH);
    while events.recv_many(&mut batch, BATCH).await > 0 {
        let written = batch.len();
        for (call_sid, event) in batch.drain(..) {
            writer.take(call_sid, event).await;
        }
        writer.flush().await;
        pending.send_modify(|n| *n -= written);
    }
}

/// A write to a call's record, with the time its event happened.
enum Write {
    Started,
    Turn(Turn),
    BargeIn(serde_json::Value),
    Ended(&'static str),
}

struct Writer {
    records: CallRecords,
    /// The latencies of each call's latest reply, until its turn is written.
    latencies: HashMap<CallSid, TurnLatencies>,
    /// The writes of the batch so far.
    writes: Vec<(CallSid, i64, Write)>,
}

impl Writer {
    /// Adds an event to the batch (an extraction is written at once, after what came before it).
    async fn take(&mut self, call_sid: CallSid, event: CallEvent) {
        let write = match event {
            CallEvent::Started => Write::Started,
            CallEvent::Turn(turn) => {
                let latencies = match turn.speaker {
                    Speaker::Agent => self.latencies.remove(&call_sid).unwrap_or_default(),
                    Speaker::Caller => TurnLatencies::default(),
                };
                Write::Turn(stored_turn(turn, latencies))
            }
            CallEvent::BargeIn(outcome) => Write::BargeIn(json!({ "outcome": outcome.as_str() })),
            CallEvent::Latency(stages) => {
                self.latencies
                    .insert(call_sid, TurnLatencies::from_stages(&stages));
                return;
            }
            CallEvent::Extraction(extraction) => {
                self.flush().await;
                if let Err(error) = self.extracted(&call_sid, &extraction).await {
                    tracing::error!(%call_sid, %error, "cannot record a call's extraction");
                }
                return;
            }
            CallEvent::Ended(reason) => {
                self.latencies.remove(&call_sid);
                Write::Ended(reason.as_str())
            }
        };
        self.writes.push((call_sid, now_ms(), write));
    }

    /// Writes the batch in one transaction and publishes what it logged. A database busy for a
    /// passing reason is tried again (backing off, for up to [`RETRY_FOR`]); a batch that still
    /// fails is written one event at a time, so a write that cannot succeed loses only itself.
    async fn flush(&mut self) {
        if self.writes.is_empty() {
            return;
        }
        let writes = std::mem::take(&mut self.writes);
        let outcome = retry_transient(
            RETRY_FOR,
            || self.write_all(&writes),
            |error| tracing::warn!(%error, events = writes.len(), "call journal: the database cannot take it yet, trying again"),
        )
        .await;
        match outcome {
            Ok(logged) => logged
                .into_iter()
                .for_each(|e| self.records.publish(Some(e))),
            Err(_) => {
                for write in &writes {
                    match self.write_all(std::slice::from_ref(write)).await {
                        Ok(logged) => logged
                            .into_iter()
                            .for_each(|e| self.records.publish(Some(e))),
                        Err(error) => {
                            tracing::error!(call_sid = %write.0, %error, "cannot record a call event")
                        }
                    }
                }
            }
        }
        self.writes = writes;
        self.writes.clear();
    }

    /// `writes` in one transaction: the events they logged, once committed.
    async fn write_all(
        &self,
        writes: &[(CallSid, i64, Write)],
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let store = self.records.store();
        let mut transaction = store.begin().await?;
        let mut logged = Vec::with_capacity(writes.len());
        for (call_sid, at, write) in writes {
            let (sid, at, connection) = (call_sid.as_str(), *at, &mut *transaction);
            match write {
                Write::Started => logged.extend(
                    store
                        .apply_status_in(connection, sid, CallStatus::InProgress, None, at)
                        .await?,
                ),
                Write::Turn(turn) => {
                    logged.extend(store.append_turn_in(connection, sid, turn, at).await?)
                }
                Write::BargeIn(data) => logged.extend(
                    store
                        .append_event_in(connection, sid, EventKind::BargeIn, data, at)
                        .await?,
                ),
                Write::Ended(reason) => {
                    logged.extend(store.record_end_in(connection, sid, reason, at).await?);
                    // No provider reports a browser call's status: its end completes it.
                    if store.direction_in(connection, sid).await? == Some(Direction::Browser) {
                        let completed = CallStatus::Completed;
                        logged.extend(
                            store
                                .apply_status_in(connection, sid, completed, None, at)
                                .await?,
                        );
                    }
                }
            }
        }
        transaction.commit().await?;
        Ok(logged)
    }

    /// Stores the extraction; a caller who asked not to be called again goes on the list.
    async fn extracted(
        &self,
        call_sid: &CallSid,
        extraction: &Extraction,
    ) -> Result<(), StoreError> {
        let store = self.records.store();
        tracing::info!(
            %call_sid,
            name_given = extraction.name.is_some(),
            phone = extraction.phone.as_deref().map(mask_phone),
            intent = extraction.intent.as_deref(),
            next_step = extraction.next_step.as_deref(),
            consent_to_follow_up = extraction.consent_to_follow_up,
            "call extraction updated"
        );
        store
            .set_extraction(call_sid.as_str(), extraction, now_ms())
            .await?;
        if extraction.next_step.as_deref() != Some(DO_NOT_CONTACT) {
            return Ok(());
        }
        let Some(call) = store.call(call_sid.as_str()).await? else {
            return Ok(());
        };
        // The person on the other end: who called us, or whom we called.
        let number = match call.direction {
            Direction::Inbound => call.from,
            Direction::Outbound => call.to,
            // A browser has no number to keep from being called.
            Direction::Browser => None,
        };
        if let Some(number) = number {
            if store.dnc_add(&number, now_ms()).await? {
                tracing::info!(%call_sid, number = %mask_phone(&number), "added to the do-not-call list at the caller's request");
            }
        }
        Ok(())
    }
}

/// A transcript turn as stored: offsets in milliseconds.
fn stored_turn(turn: TranscriptTurn, latencies: TurnLatencies) -> Turn {
    let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    Turn {
        speaker: turn.speaker,
        text: turn.text,
        start_ms: ms(turn.started),
        end_ms: ms(turn.ended),
        interrupted: turn.interrupted,
        heard: turn.heard,
        latencies,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_slow_journal_that_keeps_writing_is_waited_for_and_a_stalled_one_is_not() {
        let stall = Duration::from_secs(5);
        // 100 events written 10 every 3 s: 30 s in all, longer than the stall, never stalled.
        let (pending, watched) = watch::channel(100usize);
        let writer = tokio::spawn(async move {
            while *pending.borrow() > 0 {
                tokio::time::sleep(Duration::from_secs(3)).await;
                pending.send_modify(|n| *n -= 10);
            }
        });
        assert!(written_unless_stalled(watched, stall).await);
        writer.await.unwrap();

        // 10 written, then nothing: given up 5 s after the last write.
        let (pending, watched) = watch::channel(20usize);
        let started = tokio::time::Instant::now();
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            pending.send_modify(|n| *n -= 10);
            tokio::time::sleep(Duration::from_secs(3600)).await;
            drop(pending);
        });
        assert!(!written_unless_stalled(watched, stall).await);
        assert_eq!(started.elapsed(), Duration::from_secs(6));
        writer.abort();
    }
}
