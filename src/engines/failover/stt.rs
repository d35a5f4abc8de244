//! [`FailoverStt`]: speech recognition by a provider, backed by the embedded recogniser, per call
//! (see [`super`]).

use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt as _;
use phone_agent_actors::audio::AudioFrame;
use phone_agent_actors::engines::{
    CallContext, EngineError, EngineStream, SpeechToText, SttSession, TranscriptEvent,
};
use phone_agent_actors::runtime::metrics::CallMetrics;
use ring::rand::SystemRandom;
use tokio::sync::mpsc;

use crate::engines::reconnect::Reconnect;

/// Frames waiting for the recogniser; the Transcriber drops (and counts) what does not fit.
const AUDIO_QUEUE_FRAMES: usize = 64;

/// Recognition by `primary`, with `fallback` standing in.
pub struct FailoverStt {
    primary: Arc<dyn SpeechToText>,
    fallback: Arc<dyn SpeechToText>,
    max_failures: u32,
    reconnect: Reconnect,
    metrics: Arc<CallMetrics>,
}

impl FailoverStt {
    /// `primary` backed by `fallback`; the provider is tried again after `reconnect`'s backoff,
    /// and a call stays with `fallback` after `max_failures` failures in a row.
    pub fn new(
        primary: Arc<dyn SpeechToText>,
        fallback: Arc<dyn SpeechToText>,
        max_failures: u32,
        reconnect: Reconnect,
        metrics: Arc<CallMetrics>,
    ) -> Self {
        Self {
            primary,
            fallback,
            max_failures,
            reconnect,
            metrics,
        }
    }
}

impl SpeechToText for FailoverStt {
    fn name(&self) -> &'static str {
        self.primary.name()
    }

    fn open(&self, call: &CallContext) -> Result<SttSession, EngineError> {
        let primary = self.primary.open(call)?;
        let (audio, frames) = mpsc::channel(AUDIO_QUEUE_FRAMES);
        let (events, received) = mpsc::channel(AUDIO_QUEUE_FRAMES);
        let pump = Pump {
            primary: self.primary.clone(),
            fallback: self.fallback.clone(),
            call: call.clone(),
            active: Active::Primary(primary),
            max_failures: self.max_failures,
            reconnect: self.reconnect.clone(),
            random: SystemRandom::new(),
            turn_open: false,
            metrics: self.metrics.clone(),
        };
        actix_rt::spawn(pump.run(frames, events));
        Ok(SttSession {
            audio,
            events: Box::pin(futures_util::stream::unfold(
                received,
                |mut received| async { received.recv().await.map(|event| (event, received)) },
            )),
        })
    }
}

/// Which recogniser hears the caller.
enum Active {
    Primary(SttSession),
    /// The fallback; `retry`: whether the provider is to be tried again.
    Fallback {
        session: SttSession,
        retry: bool,
    },
}

impl Active {
    fn session(&mut self) -> &mut SttSession {
        match self {
            Self::Primary(session) | Self::Fallback { session, .. } => session,
        }
    }
}

struct Pump {
    primary: Arc<dyn SpeechToText>,
    fallback: Arc<dyn SpeechToText>,
    call: CallContext,
    active: Active,
    max_failures: u32,
    reconnect: Reconnect,
    random: SystemRandom,
    /// The caller's current turn is open (the provider takes over only between turns).
    turn_open: bool,
    metrics: Arc<CallMetrics>,
}

type Events = mpsc::Sender<Result<TranscriptEvent, EngineError>>;

impl Pump {
    async fn run(mut self, mut frames: mpsc::Receiver<AudioFrame>, out: Events) {
        loop {
            let retrying = matches!(self.active, Active::Fallback { retry: true, .. });
            tokio::select! {
                frame = frames.recv() => {
                    let Some(frame) = frame else { return };
                    // A full recogniser drops the frame, as the Transcriber would.
                    let _ = self.active.session().audio.try_send(frame);
                }
                event = next_event(&mut self.active.session().events) => {
                    match event {
                        Some(Ok(event)) => {
                            self.heard(&event);
                            if out.send(Ok(event)).await.is_err() {
                                return;
                            }
                        }
                        Some(Err(error)) => {
                            let open_turn = self.turn_open;
                            if let Err(error) = self.failed(&error) {
                                let _ = out.send(Err(error)).await;
                                return;
                            }
                            // The caller's words so far are answered rather than left waiting
                            // for an end the failed provider will never send.
                            if open_turn && out.send(Ok(TranscriptEvent::EndOfTurn)).await.is_err() {
                                return;
                            }
                        }
                        None => match self.active {
                            Active::Primary(_) => {
                                let lost = EngineError::Connection {
                                    engine: self.primary.name(),
                                    message: "the session ended".into(),
                                };
                                if let Err(error) = self.failed(&lost) {
                                    let _ = out.send(Err(error)).await;
                                    return;
                                }
                            }
                            Active::Fallback { .. } => return,
                        },
                    }
                }
                () = sleep_until(self.reconnect.retry_at()), if retrying && !self.turn_open => {
                    self.retry();
                }
            }
        }
    }

    /// Tracks the caller's turns; a turn the provider finished counts as its success.
    fn heard(&mut self, event: &TranscriptEvent) {
        match event {
            TranscriptEvent::EndOfTurn => {
                self.turn_open = false;
                if matches!(self.active, Active::Primary(_)) {
                    self.reconnect.succeeded();
                }
            }
            _ => self.turn_open = true,
        }
    }

    /// The active session failed: the fallback takes over (or, if the fallback failed, the call's
    /// own restart policy does).
    fn failed(&mut self, error: &EngineError) -> Result<(), EngineError> {
        if let Active::Fallback { .. } = self.active {
            return Err(error.clone());
        }
        self.reconnect.failed(Instant::now(), &self.random);
        let retry = self.reconnect.failures() < self.max_failures;
        let engine = self.primary.name();
        self.metrics.engine_fault(engine, fault_kind(error));
        tracing::warn!(
            engine,
            call_sid = %self.call.call_sid,
            %error,
            failures = self.reconnect.failures(),
            staying_with_fallback = !retry,
            "speech recognition provider fault: the embedded recogniser takes over"
        );
        self.turn_open = false;
        let session = self.fallback.open(&self.call)?;
        self.active = Active::Fallback { session, retry };
        Ok(())
    }

    /// Between turns, after the backoff: the provider again.
    fn retry(&mut self) {
        match self.primary.open(&self.call) {
            Ok(session) => self.active = Active::Primary(session),
            Err(error) => {
                let _ = self.failed(&error);
            }
        }
    }
}

/// Resolves at `at` (at once when `None`).
async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        actix_rt::time::sleep_until(at.into()).await;
    }
}

async fn next_event(
    events: &mut EngineStream<TranscriptEvent>,
) -> Option<Result<TranscriptEvent, EngineError>> {
    events.next().await
}

/// A short, fixed name of the kind of fault, for metrics.
fn fault_kind(error: &EngineError) -> &'static str {
    match error {
        EngineError::Connection { .. } => "connection",
        EngineError::Protocol { .. } => "malformed",
        EngineError::Unavailable { .. } => "unavailable",
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use futures_util::stream;
    use phone_agent_actors::ids::{CallSid, StreamSid};

    use super::*;

    type Controls = Arc<Mutex<Vec<mpsc::UnboundedSender<Result<TranscriptEvent, EngineError>>>>>;

    /// A provider whose sessions' events the test sends; it counts its sessions.
    #[derive(Default, Clone)]
    struct Directed(Controls);

    impl SpeechToText for Directed {
        fn name(&self) -> &'static str {
            "provider"
        }
        fn open(&self, _: &CallContext) -> Result<SttSession, EngineError> {
            let (events, received) = mpsc::unbounded_channel();
            self.0.lock().unwrap().push(events);
            let (audio, _) = mpsc::channel(8);
            Ok(SttSession {
                audio,
                events: Box::pin(stream::unfold(received, |mut received| async {
                    received.recv().await.map(|event| (event, received))
                })),
            })
        }
    }

    impl Directed {
        fn sessions(&self) -> usize {
            self.0.lock().unwrap().len()
        }
        fn send(&self, event: Result<TranscriptEvent, EngineError>) {
            let sessions = self.0.lock().unwrap();
            sessions.last().unwrap().send(event).unwrap();
        }
    }

    /// A recogniser that hears each frame as the turn "embedded".
    struct Embedded;

    impl SpeechToText for Embedded {
        fn name(&self) -> &'static str {
            "embedded"
        }
        fn open(&self, _: &CallContext) -> Result<SttSession, EngineError> {
            let (audio, frames) = mpsc::channel::<AudioFrame>(8);
            let events = stream::unfold(frames, |mut frames| async {
                frames.recv().await.map(|_| ((), frames))
            })
            .flat_map(|()| {
                stream::iter([
                    Ok(TranscriptEvent::Final {
                        text: "embedded".into(),
                    }),
                    Ok(TranscriptEvent::EndOfTurn),
                ])
            });
            Ok(SttSession {
                audio,
                events: Box::pin(events),
            })
        }
    }

    fn frame() -> AudioFrame {
        AudioFrame {
            sequence: 0,
            timestamp: Duration::ZERO,
            payload: [0xFF; phone_agent_actors::audio::FRAME_BYTES],
        }
    }

    fn down() -> EngineError {
        EngineError::Connection {
            engine: "provider",
            message: "down".into(),
        }
    }

    fn open(provider: &Directed, max_failures: u32) -> (SttSession, Arc<CallMetrics>) {
        let metrics = Arc::new(CallMetrics::default());
        let stt = FailoverStt::new(
            Arc::new(provider.clone()),
            Arc::new(Embedded),
            max_failures,
            Reconnect::new(Duration::ZERO, Duration::ZERO),
            metrics.clone(),
        );
        let call = CallContext {
            call_sid: CallSid::parse("CA0123456789abcdef0123456789abcdef").unwrap(),
            stream_sid: StreamSid::new("MZ1"),
            custom_parameters: Default::default(),
        };
        (stt.open(&call).unwrap(), metrics)
    }

    async fn next(session: &mut SttSession) -> TranscriptEvent {
        tokio::time::timeout(Duration::from_secs(5), session.events.next())
            .await
            .expect("an event")
            .expect("the stream goes on")
            .expect("no error reaches the Transcriber")
    }

    #[actix_rt::test]
    async fn a_failure_ends_the_open_turn_and_the_provider_returns_between_turns() {
        let provider = Directed::default();
        let (mut session, metrics) = open(&provider, 3);
        provider.send(Ok(TranscriptEvent::Final { text: "hi".into() }));
        assert_eq!(
            next(&mut session).await,
            TranscriptEvent::Final { text: "hi".into() }
        );
        provider.send(Err(down()));
        assert_eq!(next(&mut session).await, TranscriptEvent::EndOfTurn);
        // Between turns, after the (zero) backoff, the provider is tried again.
        while provider.sessions() < 2 {
            actix_rt::task::yield_now().await;
        }
        provider.send(Ok(TranscriptEvent::SpeechStarted));
        assert_eq!(next(&mut session).await, TranscriptEvent::SpeechStarted);
        assert!(metrics
            .render()
            .contains("engine_faults_total{engine=\"provider\",kind=\"connection\"} 1"));
    }

    #[actix_rt::test]
    async fn after_repeated_failures_the_embedded_recogniser_hears_the_rest_of_the_call() {
        let provider = Directed::default();
        let (mut session, metrics) = open(&provider, 2);
        provider.send(Err(down()));
        while provider.sessions() < 2 {
            actix_rt::task::yield_now().await;
        }
        provider.send(Err(down()));
        // Once the second fault is counted, the embedded recogniser hears the caller.
        let counted = "engine_faults_total{engine=\"provider\",kind=\"connection\"} 2";
        while !metrics.render().contains(counted) {
            actix_rt::task::yield_now().await;
        }
        session.audio.send(frame()).await.unwrap();
        assert_eq!(
            next(&mut session).await,
            TranscriptEvent::Final {
                text: "embedded".into()
            }
        );
        assert_eq!(next(&mut session).await, TranscriptEvent::EndOfTurn);
        for _ in 0..100 {
            actix_rt::task::yield_now().await;
        }
        assert_eq!(provider.sessions(), 2, "no third try");
    }
}
