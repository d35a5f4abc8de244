//! How an emulator is set up: where it listens, the account it accepts, the numbers it owns, the
//! server it calls, and the person who answers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::client::caller::session::Timing;
use crate::client::sim::DEFAULT_ACCOUNT_SID;
use crate::redact::Secret;

/// The account the emulator accepts requests for and signs its own requests with.
#[derive(Debug, Clone)]
pub struct Account {
    /// `AC…`: the account in the API's paths and the Basic auth user.
    pub account_sid: String,
    /// The auth token: Basic auth password, and the key of every `X-Twilio-Signature` sent.
    pub auth_token: Secret,
    /// An API key accepted in place of the account's credentials.
    pub api_key: Option<ApiKey>,
}

/// An API key (`SK…` and its secret).
#[derive(Debug, Clone)]
pub struct ApiKey {
    /// `SK…`, the Basic auth user.
    pub sid: String,
    /// The Basic auth password.
    pub secret: Secret,
}

/// How the called person's phone answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Answer {
    /// A person picks up after the ring time.
    Human,
    /// An answering machine picks up after the ring time.
    Machine,
    /// The line is busy.
    Busy,
    /// Nobody picks up: the call rings until its `Timeout`.
    NoAnswer,
    /// The call cannot be placed.
    Failed,
}

/// What the person says once the stream is up.
#[derive(Debug, Clone)]
pub enum Voice {
    /// Nothing: silence frames every 20 ms, marks echoed (needs no speech models).
    Silent,
    /// These turns (8 kHz mu-law each), one per agent reply.
    Turns(Arc<Vec<Vec<u8>>>),
}

/// The person who answers every call.
#[derive(Debug, Clone)]
pub struct Callee {
    /// How the phone answers.
    pub answer: Answer,
    /// What they say.
    pub voice: Voice,
    /// When they speak, and when they hang up.
    pub timing: Timing,
    /// How long the phone rings before it is answered (a `Timeout` shorter than this is a
    /// no-answer).
    pub ring: Duration,
    /// How long answering-machine detection takes once the call is answered.
    pub detection: Duration,
}

impl Default for Callee {
    /// A silent person who answers after a second and stays on the line until the agent ends
    /// the call.
    fn default() -> Self {
        Self {
            answer: Answer::Human,
            voice: Voice::Silent,
            timing: Timing {
                reply_gap: Duration::from_millis(1500),
                reply_timeout: Duration::from_secs(15),
                barge_in_after: None,
                stay_on_line: true,
                hang_up_after: None,
            },
            ring: Duration::from_secs(1),
            detection: Duration::from_secs(1),
        }
    }
}

/// The order in which a call's status callbacks reach the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum CallbackOrder {
    /// As they happen, one at a time.
    #[default]
    InOrder,
    /// Held until the call ends, then sent in a shuffled order that is never the original one
    /// (as the internet sometimes delivers them): the server must order them by
    /// `SequenceNumber`.
    Shuffled,
}

/// Everything an emulator needs.
#[derive(Debug, Clone)]
pub struct EmulatorSettings {
    /// Where the REST API listens (`127.0.0.1:0` for an unused port).
    pub listen: SocketAddr,
    /// The server's own address (`http://127.0.0.1:8080`): every webhook, callback and stream
    /// URL the emulator is given is requested there, with its path and query, and signed as
    /// written.
    pub agent: String,
    /// The account.
    pub account: Account,
    /// The numbers calls may come `From`; any E.164 number when `None`.
    pub owned_numbers: Option<Vec<String>>,
    /// The person who answers.
    pub callee: Callee,
    /// The order of status callbacks.
    pub callback_order: CallbackOrder,
}

impl EmulatorSettings {
    /// Settings for an emulator on an unused local port calling `agent`, accepting the default
    /// account (`AC` and 32 zeros) with `auth_token`, any `From`, a silent human callee, and
    /// callbacks in order.
    pub fn new(agent: impl Into<String>, auth_token: &str) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            agent: agent.into(),
            account: Account {
                account_sid: DEFAULT_ACCOUNT_SID.to_owned(),
                auth_token: Secret::new(auth_token),
                api_key: None,
            },
            owned_numbers: None,
            callee: Callee::default(),
            callback_order: CallbackOrder::InOrder,
        }
    }
}
