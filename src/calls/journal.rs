//! The journal: each call's story, as the CallActor tells it, written to the call's record and
//! published on the live feed.
//!
//! The CallActor must never wait for a database: [`StoreJournal::record`] queues the event and
//! one writer task per server writes them in order. A full queue (the database is stuck) drops
//! events rather than stall calls, counted in the logs. What is written:
//! - the start: status `in-progress`;
//! - each final turn (sealed), an agent turn with the latencies of its reply;
//! - barge-ins, as events of the call's log;
//! - the extraction (sealed); a caller who asked not to be called again goes on the do-not-call
//!   list;
//! - the end, with its reason.

use std::collections::HashMap;
use std::sync::Arc;

use actix_rt::ArbiterHandle;
use phone_agent_actors::drops::DropCounter;
use phone_agent_actors::engines::{CallContext, Extraction};
use phone_agent_actors::ids::CallSid;
use phone_agent_actors::runtime::journal::{CallEvent, CallJournal, Speaker, TranscriptTurn};
use serde_json::json;
use tokio::sync::{mpsc, watch};

use super::records::CallRecords;
use crate::redact::mask_phone;
use crate::store::call_events::EventKind;
use crate::store::calls::Direction;
use crate::store::status::CallStatus;
use crate::store::transcripts::{Turn, TurnLatencies};
use crate::store::{now_ms, StoreError};

/// Events queued for the writer: about a minute of a hundred busy calls.
pub const JOURNAL_QUEUE_CAPACITY: usize = 8192;

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

    /// Resolves once every event queued so far is written (shutdown waits for it).
    pub async fn flushed(&self) {
        // The sender lives in `self`: the channel cannot close while we wait.
        let _ = self.pending.subscribe().wait_for(|&n| n == 0).await;
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

/// The writer: one event at a time, in the order calls reported them.
async fn write(
    records: CallRecords,
    mut events: mpsc::Receiver<(CallSid, CallEvent)>,
    pending: Arc<watch::Sender<usize>>,
) {
    let mut writer = Writer {
        records,
        latencies: HashMap::new(),
    };
    while let Some((call_sid, event)) = events.recv().await {
        if let Err(error) = writer.write(&call_sid, event).await {
            tracing::error!(%call_sid, %error, "cannot record a call event");
        }
        pending.send_modify(|n| *n -= 1);
    }
}

struct Writer {
    records: CallRecords,
    /// The latencies of each call's latest reply, until its turn is written.
    latencies: HashMap<CallSid, TurnLatencies>,
}

impl Writer {
    async fn write(&mut self, call_sid: &CallSid, event: CallEvent) -> Result<(), StoreError> {
        let (records, sid, now) = (&self.records, call_sid.as_str(), now_ms());
        let store = records.store();
        match event {
            CallEvent::Started => {
                let status = store.apply_status(sid, CallStatus::InProgress, None, now);
                records.published(status.await)?;
            }
            CallEvent::Turn(turn) => {
                let latencies = match turn.speaker {
                    Speaker::Agent => self.latencies.remove(call_sid).unwrap_or_default(),
                    Speaker::Caller => TurnLatencies::default(),
                };
                let turn = stored_turn(turn, latencies);
                records.published(store.append_turn(sid, &turn, now).await)?;
            }
            CallEvent::BargeIn(outcome) => {
                let data = json!({ "outcome": outcome.as_str() });
                let logged = store.append_event(sid, EventKind::BargeIn, &data, now);
                records.published(logged.await)?;
            }
            CallEvent::Latency(stages) => {
                self.latencies
                    .insert(call_sid.clone(), TurnLatencies::from_stages(&stages));
            }
            CallEvent::Extraction(extraction) => self.extracted(call_sid, &extraction).await?,
            CallEvent::Ended(reason) => {
                self.latencies.remove(call_sid);
                records.published(store.record_end(sid, reason.as_str(), now).await)?;
            }
        }
        Ok(())
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
