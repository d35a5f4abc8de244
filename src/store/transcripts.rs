//! Transcript turns: one row per turn, written as the turn ends (so a crash loses at most the
//! turn in flight), with the latencies of the agent's reply. The words are sealed for their
//! column, call and turn number; each turn is also logged as a `turn` event in the same
//! transaction, for the call's live stream.

use std::time::Duration;

pub use phone_agent_actors::runtime::journal::Speaker;
use phone_agent_actors::runtime::latency::Stage;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row as _};

use super::call_events::{CallEvent, EventKind};
use super::{Store, StoreError};

/// How long each stage of a reply took, ms from the end of the caller's speech; `None` for a
/// stage not reached (or not measured: caller turns).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TurnLatencies {
    /// The recogniser's final transcript.
    pub stt_final_ms: Option<i64>,
    /// The end of the caller's turn decided.
    pub end_of_turn_ms: Option<i64>,
    /// The agent's first reply text.
    pub first_text_ms: Option<i64>,
    /// The first synthesized audio.
    pub first_audio_ms: Option<i64>,
    /// The first audio sent to Twilio.
    pub first_sent_ms: Option<i64>,
    /// The first audio played to the caller (its mark came back).
    pub first_heard_ms: Option<i64>,
}

impl TurnLatencies {
    /// The latencies a turn's clock measured (`TurnClock::latencies`), in whole ms.
    pub fn from_stages(stages: &[(Stage, Duration)]) -> Self {
        let mut latencies = Self::default();
        for &(stage, after) in stages {
            let field = match stage {
                Stage::SttFinal => &mut latencies.stt_final_ms,
                Stage::EndOfTurn => &mut latencies.end_of_turn_ms,
                Stage::FirstText => &mut latencies.first_text_ms,
                Stage::FirstAudio => &mut latencies.first_audio_ms,
                Stage::FirstSent => &mut latencies.first_sent_ms,
                Stage::FirstHeard => &mut latencies.first_heard_ms,
            };
            *field = Some(i64::try_from(after.as_millis()).unwrap_or(i64::MAX));
        }
        latencies
    }
}

/// One turn of the conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Turn {
    /// Who spoke.
    pub speaker: Speaker,
    /// What was said (for the agent: what it meant to say).
    pub text: String,
    /// When it started, ms from the start of the call.
    pub start_ms: i64,
    /// When it ended, ms from the start of the call.
    pub end_ms: i64,
    /// The caller talked over it.
    pub interrupted: bool,
    /// What the caller heard of an interrupted agent turn.
    pub heard: Option<String>,
    /// The latencies of the agent's reply.
    pub latencies: TurnLatencies,
}

/// A turn with its number in the call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredTurn {
    /// 1, 2, 3… in the order they were appended.
    pub n: i64,
    /// The turn.
    #[serde(flatten)]
    pub turn: Turn,
}

fn context(column: &str, call_id: &str, n: i64) -> String {
    format!("call_turns.{column}:{call_id}:{n}")
}

impl Store {
    /// Appends a turn to the call (by id or CallSid) and logs it: its `turn` event (the turn with
    /// its number), or `None` when there is no such call or its transcript was purged.
    pub async fn append_turn(
        &self,
        id_or_sid: &str,
        turn: &Turn,
        now_ms: i64,
    ) -> Result<Option<CallEvent>, StoreError> {
        self.in_transaction(async |connection| {
            self.append_turn_in(connection, id_or_sid, turn, now_ms)
                .await
        })
        .await
    }

    /// [`Self::append_turn`] inside the caller's transaction ([`Self::begin`]).
    pub async fn append_turn_in(
        &self,
        connection: &mut AnyConnection,
        id_or_sid: &str,
        turn: &Turn,
        now_ms: i64,
    ) -> Result<Option<CallEvent>, StoreError> {
        let update = sqlx::query(
            "UPDATE calls SET last_turn = last_turn + 1, last_event = last_event + 1, \
             updated_at = $1 WHERE (id = $2 OR call_sid = $2) AND purged_at IS NULL \
             RETURNING id, last_event, last_turn",
        )
        .bind(now_ms)
        .bind(id_or_sid);
        let Some(row) = update.fetch_optional(&mut *connection).await? else {
            return Ok(None);
        };
        let id: String = row.try_get("id")?;
        let n: i64 = row.try_get("last_turn")?;
        let latencies = &turn.latencies;
        sqlx::query(
            "INSERT INTO call_turns (call_id, n, speaker, text, start_ms, end_ms, interrupted, \
             heard, stt_final_ms, end_of_turn_ms, first_text_ms, first_audio_ms, first_sent_ms, \
             first_heard_ms, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(&id)
        .bind(n)
        .bind(turn.speaker.as_str())
        .bind(self.seal(&turn.text, &context("text", &id, n))?)
        .bind(turn.start_ms)
        .bind(turn.end_ms)
        .bind(i64::from(turn.interrupted))
        .bind(self.seal_optional(turn.heard.clone(), &context("heard", &id, n))?)
        .bind(latencies.stt_final_ms)
        .bind(latencies.end_of_turn_ms)
        .bind(latencies.first_text_ms)
        .bind(latencies.first_audio_ms)
        .bind(latencies.first_sent_ms)
        .bind(latencies.first_heard_ms)
        .bind(now_ms)
        .execute(&mut *connection)
        .await?;
        let stored = StoredTurn {
            n,
            turn: turn.clone(),
        };
        let data = serde_json::to_value(&stored).expect("a turn is JSON");
        let seq = row.try_get("last_event")?;
        self.insert_event(connection, &id, seq, EventKind::Turn, &data, now_ms)
            .await?;
        Ok(Some(CallEvent {
            call_id: id,
            seq,
            at: now_ms,
            kind: EventKind::Turn,
            data: Some(data),
        }))
    }

    /// The call's transcript, in order.
    pub async fn transcript(&self, id_or_sid: &str) -> Result<Vec<StoredTurn>, StoreError> {
        sqlx::query(
            "SELECT t.* FROM call_turns t JOIN calls c ON c.id = t.call_id \
             WHERE c.id = $1 OR c.call_sid = $1 ORDER BY t.n",
        )
        .bind(id_or_sid)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| self.turn(row))
        .collect()
    }

    fn turn(&self, row: &AnyRow) -> Result<StoredTurn, StoreError> {
        let call_id: String = row.try_get("call_id")?;
        let n = row.try_get("n")?;
        let speaker: String = row.try_get("speaker")?;
        let text: String = row.try_get("text")?;
        let interrupted: i64 = row.try_get("interrupted")?;
        Ok(StoredTurn {
            n,
            turn: Turn {
                speaker: Speaker::parse(&speaker).ok_or(StoreError::Unexpected("speaker"))?,
                text: self.open_sealed(&text, &context("text", &call_id, n))?,
                start_ms: row.try_get("start_ms")?,
                end_ms: row.try_get("end_ms")?,
                interrupted: interrupted != 0,
                heard: self.open_optional(row.try_get("heard")?, &context("heard", &call_id, n))?,
                latencies: TurnLatencies {
                    stt_final_ms: row.try_get("stt_final_ms")?,
                    end_of_turn_ms: row.try_get("end_of_turn_ms")?,
                    first_text_ms: row.try_get("first_text_ms")?,
                    first_audio_ms: row.try_get("first_audio_ms")?,
                    first_sent_ms: row.try_get("first_sent_ms")?,
                    first_heard_ms: row.try_get("first_heard_ms")?,
                },
            },
        })
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::store::call_events::EventKind;
    use crate::store::calls::testing::insert;
    use crate::store::calls::NewCall;
    use crate::store::status::CallStatus;
    use phone_agent_actors::engines::Extraction;

    /// Records `call` at 100, answers it at 300, and logs the caller's question (400) and the
    /// agent's interrupted reply (500): its id.
    pub async fn answered_with_a_reply(store: &Store, call: &NewCall) -> String {
        let id = insert(store, call, 100).await;
        store
            .apply_status(&id, CallStatus::InProgress, None, 300)
            .await
            .unwrap();
        store.append_turn(&id, &question(), 400).await.unwrap();
        store
            .append_turn(&id, &interrupted_reply(), 500)
            .await
            .unwrap();
        id
    }

    /// Logs the barge-in of the interrupted reply (500, what the caller heard) and stores an
    /// extraction with a name and a phone number (600): the call's other sealed content.
    pub async fn barged_in_and_extracted(store: &Store, id: &str) {
        let heard = serde_json::json!({ "heard": "Our prices" });
        store
            .append_event(id, EventKind::BargeIn, &heard, 500)
            .await
            .unwrap();
        let extraction = Extraction {
            name: Some("Ana Lima".into()),
            phone: Some("4155550177".into()),
            ..Extraction::default()
        };
        store.set_extraction(id, &extraction, 600).await.unwrap();
    }

    /// The agent's reply, talked over after "Our prices".
    pub fn interrupted_reply() -> Turn {
        Turn {
            speaker: Speaker::Agent,
            text: "Our prices start at $95 for a check-up.".into(),
            start_ms: 2_400,
            end_ms: 3_100,
            interrupted: true,
            heard: Some("Our prices".into()),
            latencies: TurnLatencies {
                stt_final_ms: Some(120),
                end_of_turn_ms: Some(300),
                first_text_ms: Some(310),
                first_audio_ms: Some(420),
                first_sent_ms: Some(425),
                first_heard_ms: None,
            },
        }
    }

    /// The caller asking for prices.
    pub fn question() -> Turn {
        Turn {
            speaker: Speaker::Caller,
            text: "What are your prices?".into(),
            start_ms: 1_000,
            end_ms: 2_000,
            interrupted: false,
            heard: None,
            latencies: TurnLatencies::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use crate::store::calls::testing::{inbound, insert};
    use crate::store::testing::sqlite_store;

    #[test]
    fn latencies_come_from_a_turn_clock_in_whole_ms() {
        let ms = Duration::from_millis;
        let stages = [
            (Stage::SttFinal, ms(120)),
            (Stage::EndOfTurn, ms(300)),
            (Stage::FirstText, Duration::from_micros(310_900)),
            (Stage::FirstAudio, ms(420)),
            (Stage::FirstSent, ms(425)),
        ];
        assert_eq!(
            TurnLatencies::from_stages(&stages),
            interrupted_reply().latencies
        );
    }

    /// Appends `turn` to call `id_or_sid` at `at`: its number, if it was appended.
    async fn appended(store: &Store, id_or_sid: &str, turn: &Turn, at: i64) -> Option<i64> {
        let event = store.append_turn(id_or_sid, turn, at).await.unwrap()?;
        event.data?["n"].as_i64()
    }

    #[actix_rt::test]
    async fn turns_are_appended_numbered_sealed_and_logged() {
        let (store, _dir) = sqlite_store().await;
        let id = insert(&store, &inbound("CA1"), 100).await;
        let other = insert(&store, &inbound("CA2"), 100).await;
        assert_eq!(appended(&store, "CA1", &question(), 200).await, Some(1));
        assert_eq!(appended(&store, &other, &question(), 200).await, Some(1));
        assert_eq!(
            appended(&store, &id, &interrupted_reply(), 300).await,
            Some(2)
        );
        assert_eq!(appended(&store, "CAnone", &question(), 300).await, None);
        let transcript = store.transcript(&id).await.unwrap();
        assert_eq!(
            transcript,
            [
                StoredTurn {
                    n: 1,
                    turn: question()
                },
                StoredTurn {
                    n: 2,
                    turn: interrupted_reply()
                }
            ]
        );
        let events = store.events_after(&id, 1, 10).await.unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].kind, EventKind::Turn);
        let logged = events[1].data.as_ref().unwrap();
        assert_eq!(logged["n"], 2);
        assert_eq!(logged["heard"], "Our prices");
        assert_eq!(logged["latencies"]["first_audio_ms"], 420);
        let raw: Vec<(String, Option<String>)> =
            sqlx::query_as("SELECT text, heard FROM call_turns")
                .fetch_all(&store.pool)
                .await
                .unwrap();
        assert!(raw.iter().all(|(text, heard)| text.starts_with("v2.")
            && heard.as_deref().is_none_or(|h| h.starts_with("v2."))));
    }
}
