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
use crate::call::messages::{InboundAudio, TranscriptReceived};
use crate::call::supervision::{ChildSupervision, StopChild};
use crate::drops::DropCounter;
use crate::engines::{CallContext, EngineError, SpeechToText, TranscriptEvent};

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
