//! One outbound-api call as Twilio runs it, as a sans-I/O state machine: it is told what happened
//! and the time ([`Now`]), and answers with [`Action`]s for the I/O layer to carry out (post a
//! callback, fetch TwiML, open or stop the media stream). Deadlines (the ring, the `Timeout`,
//! answering-machine detection, `<Pause>`, `TimeLimit`) are kept here; the driver sleeps until
//! [`CallMachine::next_deadline`] and says [`Input::Tick`].
//!
//! The lifecycle: `queued`; the first tick dials (`initiated` callback) and the phone rings
//! (`ringing`), or is busy or fails at once; after the ring time the callee answers (`in-progress`,
//! `answered` callback), unless the `Timeout` comes first (`no-answer`). With synchronous
//! detection the TwiML is fetched once detection has decided, with `AnsweredBy`; with `AsyncAmd`
//! it is fetched at once and the verdict goes to its own callback later. The TwiML's verbs then
//! run in order; `<Connect><Stream>` lasts until the server closes the socket (then the next verb
//! runs) or the callee hangs up. Running out of verbs, `<Hangup>` and `<Dial>` (recorded as a
//! transfer) complete the call. Updates hang up (`completed`, or `canceled` before an answer),
//! cancel, or replace the instructions (the stream is stopped first).

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use super::clock::{rfc2822, Now};
use super::params::{CallUpdate, Detection, Event, Instructions, NewCall};
use super::settings::Answer;
use super::twiml::{self, Verb};

/// The API version Twilio names in its requests.
pub const API_VERSION: &str = "2010-04-01";
/// The direction of a call placed through the REST API.
pub const DIRECTION: &str = "outbound-api";

/// A call's status, as the resource and callbacks name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Created, not dialled yet.
    Queued,
    /// The phone rings.
    Ringing,
    /// Answered.
    InProgress,
    /// Ended after an answer.
    Completed,
    /// The line was busy.
    Busy,
    /// The call could not be placed.
    Failed,
    /// Nobody answered before the `Timeout`.
    NoAnswer,
    /// Hung up before an answer.
    Canceled,
}

impl Status {
    /// Twilio's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Ringing => "ringing",
            Self::InProgress => "in-progress",
            Self::Completed => "completed",
            Self::Busy => "busy",
            Self::Failed => "failed",
            Self::NoAnswer => "no-answer",
            Self::Canceled => "canceled",
        }
    }
}

/// A status and when the call reached it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    /// The status.
    pub status: Status,
    /// When.
    pub at: SystemTime,
}

/// What is known about a call, as the REST resource and the observers see it.
#[derive(Debug, Clone)]
pub struct CallRecord {
    /// `CA…`.
    pub sid: String,
    /// `AC…`.
    pub account_sid: String,
    /// The callee.
    pub to: String,
    /// The caller id.
    pub from: String,
    /// The current status.
    pub status: Status,
    /// Every status, in order, `queued` first.
    pub history: Vec<StatusChange>,
    /// What answering-machine detection decided (`human`, `machine_start`, …).
    pub answered_by: Option<String>,
    /// Created.
    pub created: SystemTime,
    /// Last changed.
    pub updated: SystemTime,
    /// Answered.
    pub started: Option<SystemTime>,
    /// Ended.
    pub ended: Option<SystemTime>,
    /// Seconds from the answer to the end (rounded up; 0 when never answered), once ended.
    pub duration: Option<u64>,
    /// The TwiML documents run, in order (fetched or given).
    pub documents: Vec<String>,
    /// What `<Say>` said to the callee.
    pub said: Vec<String>,
    /// The number a `<Dial>` transferred the call to.
    pub transfer_to: Option<String>,
    /// Problems Twilio would list in the call's notifications (`11200 …`), and skipped verbs.
    pub notices: Vec<String>,
}

/// How the callee behaves, as far as the lifecycle goes.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    /// How the phone answers.
    pub answer: Answer,
    /// How long it rings before it is answered.
    pub ring: Duration,
    /// How long answering-machine detection takes.
    pub detection: Duration,
}

/// What happened, for [`CallMachine::handle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Time passed (a deadline may be due).
    Tick,
    /// The TwiML fetch of `generation` finished: the document, or why it failed (with
    /// Twilio's error code first, e.g. `11200 HTTP retrieval failure: 500`).
    Fetched {
        /// The fetch.
        generation: u64,
        /// The document or the failure.
        result: Result<String, String>,
    },
    /// The media stream of `generation` ended.
    StreamEnded {
        /// The stream.
        generation: u64,
        /// How.
        end: StreamEnd,
    },
}

/// How a media stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    /// The server closed the socket: the TwiML goes on.
    ByAgent,
    /// The callee hung up: the call is over.
    ByCallee,
    /// The socket failed (handshake refused, lost): noted, and the TwiML goes on.
    Failed(String),
}

/// What the I/O layer must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// POST a status callback (signed over `url`).
    StatusCallback {
        /// The `StatusCallback` URL.
        url: String,
        /// The form.
        params: Vec<(String, String)>,
    },
    /// POST the asynchronous detection verdict (signed over `url`).
    AmdCallback {
        /// The `AsyncAmdStatusCallback` URL.
        url: String,
        /// The form.
        params: Vec<(String, String)>,
    },
    /// POST the voice webhook; its answer comes back as [`Input::Fetched`].
    Fetch {
        /// This fetch.
        generation: u64,
        /// The URL, as given.
        url: String,
        /// The form.
        params: Vec<(String, String)>,
    },
    /// Open the media stream and put the callee on it; its end comes back as
    /// [`Input::StreamEnded`].
    OpenStream {
        /// This stream.
        generation: u64,
        /// The `wss://` URL, as written.
        url: String,
        /// The `<Parameter>`s.
        parameters: Vec<(String, String)>,
    },
    /// Stop the open stream: send `stop` and close the socket.
    StopStream,
}

/// An update to a call that has ended: Twilio answers 404.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the call is no longer active")]
pub struct NotActive;

enum Phase {
    /// Created; dials at the first tick.
    Queued { at: Instant },
    /// Ringing; answered at `answer_at` (never, when `None`), given up at `give_up_at`.
    Ringing {
        answer_at: Option<Instant>,
        give_up_at: Instant,
    },
    /// Answered; synchronous detection decides at `until`.
    Detecting { until: Instant },
    /// Waiting for the TwiML fetch.
    Fetching,
    /// The media stream is up.
    Streaming,
    /// In a `<Pause>` until `until`.
    Pausing { until: Instant },
    /// Between verbs (never left in this phase after an input).
    Running,
    /// Over.
    Ended,
}

/// One call's lifecycle.
pub struct CallMachine {
    record: CallRecord,
    call: NewCall,
    setup: Setup,
    instructions: Instructions,
    phase: Phase,
    program: VecDeque<Verb>,
    generation: u64,
    sequence: u64,
    answered_at: Option<Instant>,
    time_limit_at: Option<Instant>,
    async_amd_at: Option<Instant>,
}

impl CallMachine {
    /// A queued call `sid` of `account_sid`, created `now`.
    pub fn new(sid: String, account_sid: String, call: NewCall, setup: Setup, now: Now) -> Self {
        let record = CallRecord {
            sid,
            account_sid,
            to: call.to.clone(),
            from: call.from.clone(),
            status: Status::Queued,
            history: vec![StatusChange {
                status: Status::Queued,
                at: now.wall,
            }],
            answered_by: None,
            created: now.wall,
            updated: now.wall,
            started: None,
            ended: None,
            duration: None,
            documents: Vec::new(),
            said: Vec::new(),
            transfer_to: None,
            notices: Vec::new(),
        };
        Self {
            record,
            instructions: call.instructions.clone(),
            call,
            setup,
            phase: Phase::Queued { at: now.instant },
            program: VecDeque::new(),
            generation: 0,
            sequence: 0,
            answered_at: None,
            time_limit_at: None,
            async_amd_at: None,
        }
    }

    /// What is known about the call.
    pub fn record(&self) -> &CallRecord {
        &self.record
    }

    /// Whether the call is over (its final status set).
    pub fn is_ended(&self) -> bool {
        matches!(self.phase, Phase::Ended)
    }

    /// When the machine next needs a [`Input::Tick`].
    pub fn next_deadline(&self) -> Option<Instant> {
        let phase = match self.phase {
            Phase::Queued { at } => Some(at),
            Phase::Ringing {
                answer_at,
                give_up_at,
            } => Some(answer_at.map_or(give_up_at, |at| at.min(give_up_at))),
            Phase::Detecting { until } | Phase::Pausing { until } => Some(until),
            Phase::Fetching | Phase::Streaming | Phase::Running | Phase::Ended => None,
        };
        [phase, self.async_amd_at, self.time_limit_at]
            .into_iter()
            .flatten()
            .min()
    }

    /// Takes in what happened at `now`.
    pub fn handle(&mut self, input: Input, now: Now) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::Tick => self.tick(now, &mut out),
            Input::Fetched { generation, result } => {
                if generation == self.generation && matches!(self.phase, Phase::Fetching) {
                    match result {
                        Ok(document) => self.run_document(document, now, &mut out),
                        Err(failure) => {
                            self.record.notices.push(failure);
                            self.end(Status::Completed, now, &mut out);
                        }
                    }
                }
            }
            Input::StreamEnded { generation, end } => {
                if generation == self.generation && matches!(self.phase, Phase::Streaming) {
                    self.phase = Phase::Running;
                    match end {
                        StreamEnd::ByAgent => self.step(now, &mut out),
                        StreamEnd::ByCallee => self.end(Status::Completed, now, &mut out),
                        StreamEnd::Failed(failure) => {
                            self.record.notices.push(failure);
                            self.step(now, &mut out);
                        }
                    }
                }
            }
        }
        out
    }

    /// Applies a REST update at `now`.
    pub fn update(&mut self, update: CallUpdate, now: Now) -> Result<Vec<Action>, NotActive> {
        let mut out = Vec::new();
        let answered = self.answered_at.is_some();
        match self.phase {
            Phase::Ended => return Err(NotActive),
            _ => match update {
                CallUpdate::Hangup if answered => self.end(Status::Completed, now, &mut out),
                CallUpdate::Hangup | CallUpdate::Cancel if !answered => {
                    self.end(Status::Canceled, now, &mut out)
                }
                CallUpdate::Redirect(instructions) => {
                    self.instructions = instructions;
                    // Before the answer (or while detecting) the new instructions simply wait.
                    if answered && !matches!(self.phase, Phase::Detecting { .. }) {
                        self.stop_stream(&mut out);
                        self.program.clear();
                        self.start_instructions(now, &mut out);
                    }
                }
                CallUpdate::Cancel | CallUpdate::Hangup | CallUpdate::Nothing => {}
            },
        }
        Ok(out)
    }

    fn tick(&mut self, now: Now, out: &mut Vec<Action>) {
        let due = |at: Instant| at <= now.instant;
        match self.phase {
            Phase::Queued { at } if due(at) => self.dial(now, out),
            Phase::Ringing {
                answer_at,
                give_up_at,
            } => {
                if answer_at.is_some_and(due) {
                    self.answer(now, out);
                } else if due(give_up_at) {
                    self.end(Status::NoAnswer, now, out);
                }
            }
            Phase::Detecting { until } if due(until) => {
                self.record.answered_by = Some(self.verdict().to_owned());
                self.start_instructions(now, out);
            }
            Phase::Pausing { until } if due(until) => {
                self.phase = Phase::Running;
                self.step(now, out);
            }
            _ => {}
        }
        if self.async_amd_at.is_some_and(due) {
            self.async_amd_at = None;
            let verdict = self.verdict();
            self.record.answered_by = Some(verdict.to_owned());
            if let Some(url) = self.call.async_amd_callback.clone() {
                let took = self.setup.detection.as_millis().to_string();
                let params = form(&[
                    ("CallSid", &self.record.sid),
                    ("AccountSid", &self.record.account_sid),
                    ("AnsweredBy", verdict),
                    ("MachineDetectionDuration", &took),
                ]);
                out.push(Action::AmdCallback { url, params });
            }
        }
        if self.time_limit_at.is_some_and(due) {
            self.end(Status::Completed, now, out);
        }
    }

    /// Dials: `initiated`, then the phone rings, or is busy, or the call fails.
    fn dial(&mut self, now: Now, out: &mut Vec<Action>) {
        self.callback(Event::Initiated, "initiated", now, out);
        match self.setup.answer {
            Answer::Failed => self.end(Status::Failed, now, out),
            Answer::Busy => self.end(Status::Busy, now, out),
            Answer::Human | Answer::Machine | Answer::NoAnswer => {
                self.set_status(Status::Ringing, now);
                self.callback(Event::Ringing, "ringing", now, out);
                let answers =
                    self.setup.answer != Answer::NoAnswer && self.setup.ring < self.call.timeout;
                self.phase = Phase::Ringing {
                    answer_at: answers.then(|| now.instant + self.setup.ring),
                    give_up_at: now.instant + self.call.timeout,
                };
            }
        }
    }

    fn answer(&mut self, now: Now, out: &mut Vec<Action>) {
        self.set_status(Status::InProgress, now);
        self.record.started = Some(now.wall);
        self.answered_at = Some(now.instant);
        self.time_limit_at = Some(now.instant + self.call.time_limit);
        self.callback(Event::Answered, "in-progress", now, out);
        let decided_at = now.instant + self.setup.detection;
        match (self.call.detection, &self.call.async_amd_callback) {
            (None, _) => self.start_instructions(now, out),
            (Some(_), Some(_)) => {
                self.async_amd_at = Some(decided_at);
                self.start_instructions(now, out);
            }
            (Some(_), None) => self.phase = Phase::Detecting { until: decided_at },
        }
    }

    /// What detection says about the callee.
    fn verdict(&self) -> &'static str {
        match (self.setup.answer, self.call.detection) {
            (Answer::Machine, Some(Detection::DetectMessageEnd)) => "machine_end_beep",
            (Answer::Machine, _) => "machine_start",
            _ => "human",
        }
    }

    /// Fetches or runs the current instructions.
    fn start_instructions(&mut self, now: Now, out: &mut Vec<Action>) {
        self.generation += 1;
        match self.instructions.clone() {
            Instructions::Url(url) => {
                self.phase = Phase::Fetching;
                let mut params = self.call_params("in-progress");
                if let Some(answered_by) = &self.record.answered_by {
                    params.push(("AnsweredBy".into(), answered_by.clone()));
                }
                out.push(Action::Fetch {
                    generation: self.generation,
                    url,
                    params,
                });
            }
            Instructions::Twiml(document) => self.run_document(document, now, out),
        }
    }

    fn run_document(&mut self, document: String, now: Now, out: &mut Vec<Action>) {
        let parsed = twiml::parse(&document);
        self.record.documents.push(document);
        match parsed {
            Ok(verbs) => {
                self.program = verbs.into();
                self.phase = Phase::Running;
                self.step(now, out);
            }
            Err(error) => {
                self.record
                    .notices
                    .push(format!("12100 Document parse failure: {error}"));
                self.end(Status::Completed, now, out);
            }
        }
    }

    /// Runs verbs until one waits or ends the call.
    fn step(&mut self, now: Now, out: &mut Vec<Action>) {
        loop {
            let Some(verb) = self.program.pop_front() else {
                return self.end(Status::Completed, now, out);
            };
            match verb {
                Verb::Stream { url, parameters } => {
                    // Twilio streams only to wss://, and passes data in <Parameter>s, never in
                    // a query string.
                    if !url.starts_with("wss://") || url.contains('?') {
                        self.record.notices.push(format!(
                            "31920 Stream: the url must be wss:// without a query string: {url}"
                        ));
                        continue;
                    }
                    self.generation += 1;
                    self.phase = Phase::Streaming;
                    out.push(Action::OpenStream {
                        generation: self.generation,
                        url,
                        parameters,
                    });
                    return;
                }
                Verb::Say(text) => self.record.said.push(text),
                Verb::Play(url) => self
                    .record
                    .notices
                    .push(format!("<Play> {url}: not played")),
                Verb::Pause(length) => {
                    self.phase = Phase::Pausing {
                        until: now.instant + length,
                    };
                    return;
                }
                Verb::Hangup | Verb::Reject => return self.end(Status::Completed, now, out),
                Verb::Dial(number) => {
                    self.record.transfer_to = Some(number);
                    return self.end(Status::Completed, now, out);
                }
                Verb::Redirect(url) => {
                    self.instructions = Instructions::Url(url);
                    return self.start_instructions(now, out);
                }
                Verb::Unsupported(name) => self
                    .record
                    .notices
                    .push(format!("<{name}> is not emulated: skipped")),
            }
        }
    }

    fn stop_stream(&mut self, out: &mut Vec<Action>) {
        if matches!(self.phase, Phase::Streaming) {
            self.phase = Phase::Running;
            out.push(Action::StopStream);
        }
    }

    fn end(&mut self, status: Status, now: Now, out: &mut Vec<Action>) {
        self.stop_stream(out);
        self.set_status(status, now);
        self.record.ended = Some(now.wall);
        let duration = self.answered_at.map_or(0, |at| {
            let millis = now.instant.saturating_duration_since(at).as_millis();
            u64::try_from(millis.div_ceil(1000)).unwrap_or(u64::MAX)
        });
        self.record.duration = Some(duration);
        self.phase = Phase::Ended;
        self.program.clear();
        self.async_amd_at = None;
        self.time_limit_at = None;
        self.callback(Event::Completed, status.as_str(), now, out);
    }

    fn set_status(&mut self, status: Status, now: Now) {
        self.record.status = status;
        self.record.updated = now.wall;
        self.record.history.push(StatusChange {
            status,
            at: now.wall,
        });
    }

    /// The status callback for `event`, if the call subscribed to it.
    fn callback(&mut self, event: Event, call_status: &str, now: Now, out: &mut Vec<Action>) {
        let Some(url) = self.call.status_callback.clone() else {
            return;
        };
        if !self.call.events.contains(&event) {
            return;
        }
        let mut params = self.call_params(call_status);
        params.extend(form(&[
            ("Timestamp", &rfc2822(now.wall)),
            ("SequenceNumber", &self.sequence.to_string()),
            ("CallbackSource", "call-progress-events"),
        ]));
        if event == Event::Completed {
            let duration = self.record.duration.unwrap_or(0).to_string();
            params.push(("CallDuration".into(), duration));
        }
        if let Some(answered_by) = &self.record.answered_by {
            params.push(("AnsweredBy".into(), answered_by.clone()));
        }
        self.sequence += 1;
        out.push(Action::StatusCallback { url, params });
    }

    /// The parameters of every request about the call.
    fn call_params(&self, call_status: &str) -> Vec<(String, String)> {
        let record = &self.record;
        form(&[
            ("CallSid", &record.sid),
            ("AccountSid", &record.account_sid),
            ("From", &record.from),
            ("To", &record.to),
            ("Caller", &record.from),
            ("Called", &record.to),
            ("CallStatus", call_status),
            ("Direction", DIRECTION),
            ("ApiVersion", API_VERSION),
        ])
    }
}

fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::twilio_emulator::params::new_call;

    const SECOND: Duration = Duration::from_secs(1);

    /// A test clock: both readings move together.
    struct Clock(Now);

    impl Clock {
        fn new() -> Self {
            Self(Now::read())
        }
        fn advance(&mut self, by: Duration) -> Now {
            self.0 = Now {
                instant: self.0.instant + by,
                wall: self.0.wall + by,
            };
            self.0
        }
    }

    fn machine(extra: &[(&str, &str)], answer: Answer, clock: &Clock) -> CallMachine {
        let mut pairs = vec![
            ("To", "+14155550100"),
            ("From", "+14155550199"),
            ("StatusCallback", "https://agent.test/twilio/status"),
            ("StatusCallbackEvent", "initiated"),
            ("StatusCallbackEvent", "ringing"),
            ("StatusCallbackEvent", "answered"),
            ("StatusCallbackEvent", "completed"),
        ];
        pairs.extend_from_slice(extra);
        if !extra.iter().any(|(name, _)| *name == "Twiml") {
            pairs.push(("Url", "https://agent.test/twilio/voice"));
        }
        let form: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let setup = Setup {
            answer,
            ring: 2 * SECOND,
            detection: SECOND,
        };
        CallMachine::new(
            "CA1".into(),
            "AC1".into(),
            new_call(&form, None).unwrap(),
            setup,
            clock.0,
        )
    }

    fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
        params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The `(CallStatus, SequenceNumber)` of each status callback among `actions`.
    fn callbacks(actions: &[Action]) -> Vec<(String, String)> {
        actions
            .iter()
            .filter_map(|action| match action {
                Action::StatusCallback { params, .. } => Some((
                    param(params, "CallStatus").unwrap().to_owned(),
                    param(params, "SequenceNumber").unwrap().to_owned(),
                )),
                _ => None,
            })
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    const STREAM: &str = r#"<Response><Connect><Stream url="wss://agent.test/twilio/media"><Parameter name="token" value="t"/></Stream></Connect></Response>"#;

    /// Dials, rings and answers a call; returns what the answer asked for.
    fn answered(machine: &mut CallMachine, clock: &mut Clock) -> Vec<Action> {
        let dialled = machine.handle(Input::Tick, clock.0);
        assert_eq!(
            callbacks(&dialled),
            pairs(&[("initiated", "0"), ("ringing", "1")])
        );
        assert_eq!(machine.record().status, Status::Ringing);
        assert_eq!(machine.next_deadline(), Some(clock.0.instant + 2 * SECOND));
        assert!(machine
            .handle(Input::Tick, clock.advance(SECOND))
            .is_empty());
        machine.handle(Input::Tick, clock.advance(SECOND))
    }

    #[test]
    fn a_human_answers_the_stream_runs_and_the_agent_ends_the_call() {
        let mut clock = Clock::new();
        let mut call = machine(&[], Answer::Human, &clock);
        assert_eq!(call.record().status, Status::Queued);
        let actions = answered(&mut call, &mut clock);
        assert_eq!(callbacks(&actions), pairs(&[("in-progress", "2")]));
        let Some(Action::Fetch {
            generation, params, ..
        }) = actions.last()
        else {
            panic!("fetch expected: {actions:?}");
        };
        assert_eq!(param(params, "CallStatus"), Some("in-progress"));
        assert_eq!(param(params, "Direction"), Some("outbound-api"));
        assert_eq!(param(params, "AnsweredBy"), None);
        let opened = call.handle(
            Input::Fetched {
                generation: *generation,
                result: Ok(STREAM.into()),
            },
            clock.0,
        );
        let [Action::OpenStream {
            generation,
            url,
            parameters,
        }] = opened.as_slice()
        else {
            panic!("stream expected: {opened:?}");
        };
        assert_eq!(url, "wss://agent.test/twilio/media");
        assert_eq!(parameters, &pairs(&[("token", "t")]));
        let ended = call.handle(
            Input::StreamEnded {
                generation: *generation,
                end: StreamEnd::ByAgent,
            },
            clock.advance(Duration::from_millis(4500)),
        );
        assert_eq!(callbacks(&ended), pairs(&[("completed", "3")]));
        let Some(Action::StatusCallback { params, .. }) = ended.last() else {
            unreachable!()
        };
        assert_eq!(param(params, "CallDuration"), Some("5"));
        assert_eq!(
            param(params, "CallbackSource"),
            Some("call-progress-events")
        );
        let statuses: Vec<Status> = call.record().history.iter().map(|c| c.status).collect();
        assert_eq!(
            statuses,
            [
                Status::Queued,
                Status::Ringing,
                Status::InProgress,
                Status::Completed
            ]
        );
        assert!(call.is_ended());
        assert_eq!(call.next_deadline(), None);
    }

    #[test]
    fn busy_and_failed_end_at_once_and_no_answer_at_the_timeout() {
        for (answer, status) in [(Answer::Busy, "busy"), (Answer::Failed, "failed")] {
            let clock = Clock::new();
            let mut call = machine(&[], answer, &clock);
            let actions = call.handle(Input::Tick, clock.0);
            assert_eq!(
                callbacks(&actions),
                pairs(&[("initiated", "0"), (status, "1")])
            );
        }
        let mut clock = Clock::new();
        let mut call = machine(&[("Timeout", "30")], Answer::NoAnswer, &clock);
        call.handle(Input::Tick, clock.0);
        assert_eq!(call.next_deadline(), Some(clock.0.instant + 30 * SECOND));
        let actions = call.handle(Input::Tick, clock.advance(30 * SECOND));
        assert_eq!(callbacks(&actions), pairs(&[("no-answer", "2")]));
        // A person who would answer after the timeout does not answer either.
        let clock = Clock::new();
        let mut call = machine(&[("Timeout", "1")], Answer::Human, &clock);
        call.handle(Input::Tick, clock.0);
        let actions = call.handle(Input::Tick, clock.0);
        assert!(actions.is_empty());
        assert_eq!(call.next_deadline(), Some(clock.0.instant + SECOND));
    }

    #[test]
    fn synchronous_detection_delays_the_fetch_and_names_the_machine() {
        let mut clock = Clock::new();
        let mut call = machine(&[("MachineDetection", "Enable")], Answer::Machine, &clock);
        let actions = answered(&mut call, &mut clock);
        assert!(!actions.iter().any(|a| matches!(a, Action::Fetch { .. })));
        let actions = call.handle(Input::Tick, clock.advance(SECOND));
        let [Action::Fetch { params, .. }] = actions.as_slice() else {
            panic!("fetch expected: {actions:?}");
        };
        assert_eq!(param(params, "AnsweredBy"), Some("machine_start"));
        assert_eq!(call.record().answered_by.as_deref(), Some("machine_start"));
    }

    #[test]
    fn asynchronous_detection_fetches_at_once_and_reports_later() {
        let mut clock = Clock::new();
        let extra = [
            ("MachineDetection", "DetectMessageEnd"),
            ("AsyncAmd", "true"),
            ("AsyncAmdStatusCallback", "https://agent.test/twilio/amd"),
        ];
        let mut call = machine(&extra, Answer::Machine, &clock);
        let actions = answered(&mut call, &mut clock);
        assert!(
            matches!(actions.last(), Some(Action::Fetch { params, .. }) if param(params, "AnsweredBy").is_none())
        );
        let actions = call.handle(Input::Tick, clock.advance(SECOND));
        let [Action::AmdCallback { url, params }] = actions.as_slice() else {
            panic!("detection callback expected: {actions:?}");
        };
        assert_eq!(url, "https://agent.test/twilio/amd");
        assert_eq!(param(params, "AnsweredBy"), Some("machine_end_beep"));
        assert_eq!(param(params, "MachineDetectionDuration"), Some("1000"));
    }

    #[test]
    fn a_dial_update_stops_the_stream_and_records_the_transfer() {
        let mut clock = Clock::new();
        let extra = [("Twiml", STREAM)];
        let mut call = machine(&extra, Answer::Human, &clock);
        let actions = answered(&mut call, &mut clock);
        assert!(matches!(actions.last(), Some(Action::OpenStream { .. })));
        let transfer = "<Response><Dial>+14155550123</Dial></Response>";
        let actions = call
            .update(
                CallUpdate::Redirect(Instructions::Twiml(transfer.into())),
                clock.advance(SECOND),
            )
            .unwrap();
        assert_eq!(actions.first(), Some(&Action::StopStream));
        assert_eq!(callbacks(&actions), pairs(&[("completed", "3")]));
        assert_eq!(call.record().transfer_to.as_deref(), Some("+14155550123"));
        assert_eq!(call.update(CallUpdate::Hangup, clock.0), Err(NotActive));
    }

    #[test]
    fn hanging_up_before_the_answer_cancels_and_after_it_completes() {
        let mut clock = Clock::new();
        let mut call = machine(&[], Answer::Human, &clock);
        call.handle(Input::Tick, clock.0);
        let actions = call.update(CallUpdate::Hangup, clock.0).unwrap();
        assert_eq!(callbacks(&actions), pairs(&[("canceled", "2")]));
        let mut call = machine(&[], Answer::Human, &clock);
        answered(&mut call, &mut clock);
        assert!(call.update(CallUpdate::Cancel, clock.0).unwrap().is_empty());
        let actions = call
            .update(CallUpdate::Hangup, clock.advance(SECOND))
            .unwrap();
        assert_eq!(callbacks(&actions), pairs(&[("completed", "3")]));
    }

    #[test]
    fn verbs_run_in_order_and_a_failed_fetch_ends_the_call() {
        let mut clock = Clock::new();
        let mut call = machine(&[], Answer::Human, &clock);
        let actions = answered(&mut call, &mut clock);
        let Some(Action::Fetch { generation, .. }) = actions.last().cloned() else {
            panic!()
        };
        let document =
            r#"<Response><Say>Hello</Say><Gather/><Pause length="2"/><Hangup/></Response>"#;
        let actions = call.handle(
            Input::Fetched {
                generation,
                result: Ok(document.into()),
            },
            clock.0,
        );
        assert!(actions.is_empty());
        assert_eq!(call.record().said, ["Hello"]);
        assert_eq!(call.record().notices, ["<Gather> is not emulated: skipped"]);
        let actions = call.handle(Input::Tick, clock.advance(2 * SECOND));
        assert_eq!(callbacks(&actions), pairs(&[("completed", "3")]));

        let mut call = machine(&[], Answer::Human, &clock);
        let actions = answered(&mut call, &mut clock);
        let Some(Action::Fetch { generation, .. }) = actions.last().cloned() else {
            panic!()
        };
        let failure = "11200 HTTP retrieval failure: 500".to_owned();
        let actions = call.handle(
            Input::Fetched {
                generation,
                result: Err(failure.clone()),
            },
            clock.0,
        );
        assert_eq!(callbacks(&actions), pairs(&[("completed", "3")]));
        assert_eq!(call.record().notices, [failure]);
    }
}
