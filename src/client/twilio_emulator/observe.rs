//! What tests and the command line see of an emulator: each call's record with every request the
//! emulator made about it, and every request the REST API received.

use super::call::{CallRecord, Status};
use crate::client::caller::session::Recording;

/// Which kind of request the emulator made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryKind {
    /// The TwiML fetch (the voice webhook).
    Voice,
    /// A status callback.
    Status,
    /// The asynchronous answering-machine detection verdict.
    AsyncAmd,
}

/// One request the emulator made to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// What it was.
    pub kind: DeliveryKind,
    /// The URL as given (and signed).
    pub url: String,
    /// The form sent.
    pub params: Vec<(String, String)>,
    /// The HTTP status answered, or why there was no answer.
    pub answer: Result<u16, String>,
}

impl Delivery {
    /// The value of the form field `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// A call as observed.
#[derive(Debug, Clone)]
pub struct CallView {
    /// Its record: status, history, TwiML run, transfer target, notices.
    pub record: CallRecord,
    /// The requests made about it, in the order they were answered.
    pub deliveries: Vec<Delivery>,
    /// The callee's side of the media stream, once it ended.
    pub conversation: Option<Recording>,
}

impl CallView {
    /// Every status the call went through, in order.
    pub fn statuses(&self) -> Vec<Status> {
        self.record
            .history
            .iter()
            .map(|change| change.status)
            .collect()
    }

    /// The requests of one kind, in order.
    pub fn deliveries_of(&self, kind: DeliveryKind) -> Vec<&Delivery> {
        self.deliveries
            .iter()
            .filter(|delivery| delivery.kind == kind)
            .collect()
    }

    /// Whether the call has its final status.
    pub fn is_ended(&self) -> bool {
        self.record.ended.is_some()
    }
}

/// One request the REST API received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path.
    pub path: String,
    /// The form (or query) fields.
    pub params: Vec<(String, String)>,
    /// The status answered.
    pub status: u16,
}

/// Answers for the next requests, whatever they ask: a stand-in for Twilio's rate limits and
/// outages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// 429, 500 or 503 (any other status answers as a 500 does).
    pub status: u16,
    /// How many requests get it.
    pub count: u32,
    /// `Retry-After` seconds, if any.
    pub retry_after: Option<u64>,
}
