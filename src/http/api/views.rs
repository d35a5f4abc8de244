//! What the API answers, as types: each serialises to the JSON a client reads and describes it in
//! the OpenAPI document. Phone numbers are masked here, as in logs.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::redact::mask_phone;
use crate::store::calls::{Call, Direction};
use crate::store::dnc::DncEntry;
use crate::store::status::CallStatus;
use crate::store::tokens::TokenRecord;
use crate::store::transcripts::{StoredTurn, TurnLatencies};
use phone_agent_actors::engines::Extraction;

/// A call. Times are Unix ms.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallView {
    /// Ours: `call_…`.
    #[schema(example = "call_01jd5d0kz4m3r8w6t2y9q7v5x1")]
    pub id: String,
    /// Twilio's CallSid, once assigned.
    pub call_sid: Option<String>,
    /// Who called whom.
    pub direction: Direction,
    /// The caller, masked; absent once erased.
    #[schema(example = "+1******0100")]
    pub from: Option<String>,
    /// The called number, masked; absent once erased.
    pub to: Option<String>,
    /// Where the call is in its life.
    pub status: CallStatus,
    /// Answering-machine detection's answer (`human`, `machine_start`, `fax`, …).
    pub answered_by: Option<String>,
    /// A machine answered.
    pub machine: bool,
    /// The agent that talks.
    pub agent: Option<String>,
    /// The client's own JSON object; absent once purged.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    /// Why the conversation ended.
    pub end_reason: Option<String>,
    /// Recorded.
    pub created_at: i64,
    /// Last changed.
    pub updated_at: i64,
    /// Placed, or arrived.
    pub started_at: Option<i64>,
    /// Answered.
    pub answered_at: Option<i64>,
    /// Ended.
    pub ended_at: Option<i64>,
    /// From answer to end, ms.
    pub duration_ms: Option<i64>,
    /// When it is to be placed (scheduled calls).
    pub scheduled_at: Option<i64>,
    /// The callee's IANA time zone.
    pub timezone: Option<String>,
    /// Its follow-up email: `sent`, then `delivered`, `bounced` or `complained`.
    pub follow_up_status: Option<String>,
    /// When retention erased its transcript, extraction and metadata.
    pub purged_at: Option<i64>,
    /// When a client erased it.
    pub erased_at: Option<i64>,
}

impl From<&Call> for CallView {
    fn from(call: &Call) -> Self {
        Self {
            id: call.id.clone(),
            call_sid: call.call_sid.clone(),
            direction: call.direction,
            from: call.from.as_deref().map(mask_phone),
            to: call.to.as_deref().map(mask_phone),
            status: call.status,
            answered_by: call.answered_by.clone(),
            machine: call
                .answered_by
                .as_deref()
                .is_some_and(|by| by.starts_with("machine")),
            agent: call.agent.clone(),
            metadata: call.metadata.clone(),
            end_reason: call.end_reason.clone(),
            created_at: call.created_at,
            updated_at: call.updated_at,
            started_at: call.started_at,
            answered_at: call.answered_at,
            ended_at: call.ended_at,
            duration_ms: call.duration_ms,
            scheduled_at: call.scheduled_at,
            timezone: call.timezone.clone(),
            follow_up_status: call.follow_up_status.clone(),
            purged_at: call.purged_at,
            erased_at: call.erased_at,
        }
    }
}

/// A call with what was said and what the agent took from it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallDetailView {
    /// The call.
    #[serde(flatten)]
    pub call: CallView,
    /// What the agent extracted; absent until then and once purged.
    pub extraction: Option<ExtractionView>,
    /// The turns, in order.
    pub transcript: Vec<TurnView>,
}

/// What the agent took from the conversation.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExtractionView {
    /// The caller's name, as given.
    pub name: Option<String>,
    /// The caller's number as confirmed, masked.
    pub phone: Option<String>,
    /// The intent that shaped the call.
    pub intent: Option<String>,
    /// What happens next (`callback_to_confirm_appointment`, `transfer_to_person`, …).
    pub next_step: Option<String>,
    /// Whether the caller agreed to be contacted again.
    pub consent_to_follow_up: Option<bool>,
}

impl From<&Extraction> for ExtractionView {
    fn from(extraction: &Extraction) -> Self {
        Self {
            name: extraction.name.clone(),
            phone: extraction.phone.as_deref().map(mask_phone),
            intent: extraction.intent.clone(),
            next_step: extraction.next_step.clone(),
            consent_to_follow_up: extraction.consent_to_follow_up,
        }
    }
}

/// One turn of the conversation.
#[derive(Debug, Serialize, ToSchema)]
pub struct TurnView {
    /// 1, 2, 3… in order.
    pub n: i64,
    /// `caller` or `agent`.
    #[schema(value_type = String, example = "caller")]
    pub speaker: &'static str,
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
    /// How long each stage of the agent's reply took.
    pub latencies: TurnLatencies,
}

impl From<&StoredTurn> for TurnView {
    fn from(stored: &StoredTurn) -> Self {
        let turn = &stored.turn;
        Self {
            n: stored.n,
            speaker: turn.speaker.as_str(),
            text: turn.text.clone(),
            start_ms: turn.start_ms,
            end_ms: turn.end_ms,
            interrupted: turn.interrupted,
            heard: turn.heard.clone(),
            latencies: turn.latencies,
        }
    }
}

/// A page of calls, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallPageView {
    /// The calls.
    pub calls: Vec<CallView>,
    /// Pass as `before` for the next page; absent on the last.
    pub next_before: Option<String>,
}

/// An event of a call, as each Server-Sent Event's data.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallEventView<'a> {
    /// The call.
    pub call_id: &'a str,
    /// Its place in the call's log: 1, 2, 3…
    pub seq: i64,
    /// When, Unix ms.
    pub at: i64,
    /// `status`, `answered_by`, `turn`, `barge_in` or `end` (also the SSE event name).
    pub kind: &'a str,
    /// The event's details: the status, the turn, …
    #[schema(value_type = Object)]
    pub data: Value,
}

/// A number on the do-not-call list.
#[derive(Debug, Serialize, ToSchema)]
pub struct DncEntryView {
    /// The number, masked.
    pub number: String,
    /// Added, Unix ms.
    pub added_at: i64,
}

impl From<&DncEntry> for DncEntryView {
    fn from(entry: &DncEntry) -> Self {
        Self {
            number: mask_phone(&entry.number),
            added_at: entry.added_at,
        }
    }
}

/// The do-not-call list.
#[derive(Debug, Serialize, ToSchema)]
pub struct DncListView {
    /// Every number on it.
    pub numbers: Vec<DncEntryView>,
}

/// A number put on the do-not-call list.
#[derive(Debug, Serialize, ToSchema)]
pub struct DncAddedView {
    /// The number as sent, in E.164.
    pub number: String,
    /// It was not on the list before.
    pub added: bool,
}

/// Every token (never the tokens themselves).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenListView {
    /// The tokens' records.
    pub tokens: Vec<TokenRecord>,
}

/// A token just created: shown in this answer once and nowhere else.
#[derive(Serialize, ToSchema)]
pub struct IssuedTokenView {
    /// The bearer token.
    pub token: String,
    /// Its record.
    pub record: TokenRecord,
}
