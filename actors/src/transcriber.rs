//! Transcriber: caller audio in, transcript events out, over a [`SpeechToText`] engine.
//!
//! ```text
//! CallActor --InboundAudio--> Transcriber --(engine session)--> TranscriptReceived --> CallActor
//! ```
//!
//! Supervised (see [`ChildSupervision`]): when the engine session fails, the session is reopened
//! after a backoff. Audio that arrives while no session takes it (before the first opens, during a
//! restart's backoff, while the engine's buffer is full) is held in order, up to
//! [`PENDING_AUDIO_FRAMES`], and handed over as soon as a session takes it, so a brief outage loses
//! none of what the caller said; beyond that the oldest frames are dropped and counted.

use std::collections::VecDeque;
use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use crate::audio::AudioFrame;
use crate::drops::DropCounter;
use crate::engines::{CallContext, EngineError, SpeechToText, TranscriptEvent};
use crate::events::{InboundAudio, TranscriptReceived};
use crate::runtime::supervision::{ChildSupervision, StopChild};

/// Frames held while no engine session takes them: 2 s of audio.
pub const PENDING_AUDIO_FRAMES: usize = 100;

/// The recognition session of one call.
pub struct Transcriber {
    engine: Arc<dyn SpeechToText>,
    call: CallContext,
    events: Recipient<TranscriptReceived>,
    supervision: ChildSupervision,
    audio: Option<mpsc::Sender<AudioFrame>>,
    pending: VecDeque<AudioFrame>,
    dropped: DropCounter,
}

impl Transcriber {
    /// A transcriber for `call` that reports to `events`.
    pub fn new(
        engine: Arc<dyn SpeechToText>,
        call: CallContext,
        events: Recipient<TranscriptReceived>,
        supervision: ChildSupervision,
    ) -> Self {
        Self {
            engine,
            call,
            events,
            supervision,
            audio: None,
            pending: VecDeque::new(),
            dropped: DropCounter::default(),
        }
    }

    fn open_session(&mut self, ctx: &mut Context<Self>) {
        match self.engine.open(&self.call) {
            Ok(session) => {
                ctx.add_stream(session.events);
                self.audio = Some(session.audio);
                self.drain_pending(ctx);
            }
            Err(error) => self.fail(error, ctx),
        }
    }

    /// Hands held frames, oldest first, to the session while it takes them. Frames stay held (in
    /// order) while the session's buffer is full, so a new session catching up loses nothing.
    fn drain_pending(&mut self, ctx: &mut Context<Self>) {
        while let Some(frame) = self.pending.pop_front() {
            let Some(audio) = &self.audio else {
                self.pending.push_front(frame);
                return;
            };
            match audio.try_send(frame) {
                Ok(()) => {}
                Err(TrySendError::Full(frame)) => {
                    self.pending.push_front(frame);
                    return;
                }
                // The engine closed its audio input: the session is over, whatever its events say.
                Err(TrySendError::Closed(frame)) => {
                    self.pending.push_front(frame);
                    let error = EngineError::Connection {
                        engine: self.engine.name(),
                        message: "audio input closed".into(),
                    };
                    self.fail(error, ctx);
                    return;
                }
            }
        }
    }

    /// Queues a frame behind any held ones and hands over what the session takes. The queue is
    /// bounded: past [`PENDING_AUDIO_FRAMES`] the oldest frame is dropped (the engine is behind).
    fn forward(&mut self, frame: AudioFrame, ctx: &mut Context<Self>) {
        if self.pending.len() == PENDING_AUDIO_FRAMES {
            self.pending.pop_front();
            self.count_dropped();
        }
        self.pending.push_back(frame);
        self.drain_pending(ctx);
    }

    fn count_dropped(&mut self) {
        if let Some(dropped) = self.dropped.add(1) {
            tracing::warn!(parent: self.supervision.span(), dropped, "recogniser behind: audio dropped");
        }
    }

    fn fail(&mut self, error: EngineError, ctx: &mut Context<Self>) {
        self.audio = None;
        self.supervision.failed(error);
        ctx.stop();
    }
}

impl Actor for Transcriber {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.supervision.open_after_backoff(ctx, Self::open_session);
    }
}

impl Supervised for Transcriber {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.audio = None;
    }
}

impl Handler<InboundAudio> for Transcriber {
    type Result = ();

    fn handle(&mut self, msg: InboundAudio, ctx: &mut Context<Self>) {
        self.forward(msg.frame, ctx);
    }
}

impl StreamHandler<Result<TranscriptEvent, EngineError>> for Transcriber {
    fn handle(&mut self, item: Result<TranscriptEvent, EngineError>, ctx: &mut Context<Self>) {
        match item {
            Ok(event) => self.events.do_send(TranscriptReceived { event }),
            Err(error) => self.fail(error, ctx),
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        if !self.supervision.is_stopping() {
            let error = EngineError::Connection {
                engine: self.engine.name(),
                message: "transcript stream ended".into(),
            };
            self.fail(error, ctx);
        }
    }
}

impl Handler<StopChild> for Transcriber {
    type Result = ();

    fn handle(&mut self, _: StopChild, ctx: &mut Context<Self>) {
        self.supervision.stop();
        ctx.stop();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::stream;

    use super::*;
    use crate::events::ChildKind;
    use crate::testing::{call_context, recorder, supervision};

    /// Hears each frame as a final naming its sequence number.
    struct Numbers;

    impl SpeechToText for Numbers {
        fn name(&self) -> &'static str {
            "numbers"
        }

        fn open(&self, _: &CallContext) -> Result<crate::engines::SttSession, EngineError> {
            let (audio, frames) = mpsc::channel::<AudioFrame>(4);
            let events = stream::unfold(frames, |mut frames| async move {
                let frame = frames.recv().await?;
                let text = frame.sequence.to_string();
                Some((Ok(TranscriptEvent::Final { text }), frames))
            });
            Ok(crate::engines::SttSession {
                audio,
                events: Box::pin(events),
            })
        }
    }

    /// Never opens.
    struct Unreachable;

    impl SpeechToText for Unreachable {
        fn name(&self) -> &'static str {
            "unreachable"
        }

        fn open(&self, _: &CallContext) -> Result<crate::engines::SttSession, EngineError> {
            Err(EngineError::Connection {
                engine: "unreachable",
                message: "connection refused".into(),
            })
        }
    }

    fn frame(sequence: u64) -> InboundAudio {
        InboundAudio {
            frame: AudioFrame {
                sequence,
                timestamp: Duration::from_millis(20 * sequence),
                payload: [0xFF; crate::audio::FRAME_BYTES],
            },
        }
    }

    #[actix::test]
    async fn every_frame_reaches_the_engine_in_order_and_its_events_come_back() {
        let (events, mut heard) = recorder::<TranscriptReceived>();
        let (supervision, _) = supervision(ChildKind::Transcriber);
        let transcriber = Supervisor::start(move |_| {
            Transcriber::new(Arc::new(Numbers), call_context(), events, supervision)
        });
        // Sent before the session opens and past the engine's buffer of 4: held, then handed over
        // as the caller goes on talking.
        for sequence in 0..20 {
            transcriber.do_send(frame(sequence));
        }
        for sequence in 0..20 {
            transcriber.do_send(frame(20 + sequence));
            let event = heard.next().await.event;
            assert_eq!(
                event,
                TranscriptEvent::Final {
                    text: sequence.to_string()
                }
            );
        }
    }

    #[actix::test]
    async fn an_engine_that_never_opens_is_retried_then_given_up_on() {
        let (events, mut heard) = recorder::<TranscriptReceived>();
        let (supervision, mut gave_up) = supervision(ChildKind::Transcriber);
        // Held, as the CallActor holds it: a child nobody addresses is not restarted.
        let _transcriber = Supervisor::start(move |_| {
            Transcriber::new(Arc::new(Unreachable), call_context(), events, supervision)
        });
        let report = gave_up.next().await;
        assert_eq!(report.child, ChildKind::Transcriber);
        assert!(
            report.error.to_string().contains("connection refused"),
            "{}",
            report.error
        );
        assert!(heard.try_next().is_none());
    }
}
