//! [`FailoverTts`]: synthesis by a provider, backed by the embedded voice, per call (see
//! [`super`]).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{stream, StreamExt as _};
use phone_agent_actors::engines::{
    CallContext, EngineError, EngineStream, Synthesized, TextToSpeech, TtsSession,
};
use phone_agent_actors::ids::UtteranceId;

/// Synthesis by `primary`, with `fallback` standing in.
pub struct FailoverTts {
    primary: Arc<dyn TextToSpeech>,
    fallback: Arc<dyn TextToSpeech>,
    max_failures: u32,
}

impl FailoverTts {
    /// `primary` backed by `fallback`; a call stays with `fallback` after `max_failures` failed
    /// clauses in a row.
    pub fn new(
        primary: Arc<dyn TextToSpeech>,
        fallback: Arc<dyn TextToSpeech>,
        max_failures: u32,
    ) -> Self {
        Self {
            primary,
            fallback,
            max_failures,
        }
    }
}

impl TextToSpeech for FailoverTts {
    fn name(&self) -> &'static str {
        self.primary.name()
    }

    fn open(&self, call: &CallContext) -> Result<Box<dyn TtsSession>, EngineError> {
        Ok(Box::new(FailoverSession {
            primary: self.primary.open(call)?,
            fallback: Arc::new(Mutex::new(self.fallback.open(call)?)),
            failures: Arc::new(AtomicU32::new(0)),
            max_failures: self.max_failures,
        }))
    }
}

struct FailoverSession {
    primary: Box<dyn TtsSession>,
    fallback: Arc<Mutex<Box<dyn TtsSession>>>,
    /// Failed clauses in a row.
    failures: Arc<AtomicU32>,
    max_failures: u32,
}

/// Where a clause's audio comes from now.
enum Source {
    Primary {
        audio: EngineStream<Synthesized>,
        heard: bool,
    },
    Fallback(EngineStream<Synthesized>),
}

impl TtsSession for FailoverSession {
    fn synthesize(&mut self, utterance: UtteranceId, text: &str) -> EngineStream<Synthesized> {
        if self.failures.load(Ordering::Relaxed) >= self.max_failures {
            return lock(&self.fallback).synthesize(utterance, text);
        }
        let source = Source::Primary {
            audio: self.primary.synthesize(utterance, text),
            heard: false,
        };
        let (fallback, failures, text) = (
            self.fallback.clone(),
            self.failures.clone(),
            text.to_owned(),
        );
        Box::pin(stream::unfold(Some(source), move |source| {
            let (fallback, failures, text) = (fallback.clone(), failures.clone(), text.clone());
            async move {
                match source? {
                    Source::Fallback(mut audio) => {
                        let item = audio.next().await?;
                        Some((item, Some(Source::Fallback(audio))))
                    }
                    Source::Primary { mut audio, heard } => match audio.next().await {
                        Some(Ok(piece)) => {
                            let heard = heard || matches!(piece, Synthesized::Audio(_));
                            Some((Ok(piece), Some(Source::Primary { audio, heard })))
                        }
                        None => {
                            failures.store(0, Ordering::Relaxed);
                            None
                        }
                        Some(Err(_)) if heard => {
                            // Part of the clause was heard: it ends there.
                            failures.fetch_add(1, Ordering::Relaxed);
                            None
                        }
                        Some(Err(error)) => {
                            // `Unavailable`: the provider waits out a backoff after a fault
                            // already counted; this clause is not another.
                            if !matches!(error, EngineError::Unavailable { .. }) {
                                failures.fetch_add(1, Ordering::Relaxed);
                            }
                            let mut audio = lock(&fallback).synthesize(utterance, &text);
                            let item = audio.next().await?;
                            Some((item, Some(Source::Fallback(audio))))
                        }
                    },
                }
            }
        }))
    }

    fn finish(&mut self, utterance: UtteranceId) {
        self.primary.finish(utterance);
        lock(&self.fallback).finish(utterance);
    }
}

fn lock(session: &Mutex<Box<dyn TtsSession>>) -> std::sync::MutexGuard<'_, Box<dyn TtsSession>> {
    session
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use phone_agent_actors::ids::{CallSid, StreamSid};

    /// Fails every clause whose text starts with `!`, after `audio_first` chunks.
    struct Flaky {
        audio_first: usize,
    }

    impl TextToSpeech for Flaky {
        fn name(&self) -> &'static str {
            "flaky"
        }
        fn open(&self, _: &CallContext) -> Result<Box<dyn TtsSession>, EngineError> {
            Ok(Box::new(FlakySession(self.audio_first)))
        }
    }

    struct FlakySession(usize);

    impl TtsSession for FlakySession {
        fn synthesize(&mut self, _: UtteranceId, text: &str) -> EngineStream<Synthesized> {
            let failing = text.starts_with('!');
            let mut items: Vec<Result<Synthesized, EngineError>> = Vec::new();
            if failing {
                items.extend((0..self.0).map(|_| Ok(Synthesized::Audio(vec![1]))));
                items.push(Err(EngineError::Connection {
                    engine: "flaky",
                    message: "down".into(),
                }));
            } else {
                items.push(Ok(Synthesized::Audio(vec![1])));
            }
            Box::pin(stream::iter(items))
        }
    }

    struct Steady;

    impl TextToSpeech for Steady {
        fn name(&self) -> &'static str {
            "steady"
        }
        fn open(&self, _: &CallContext) -> Result<Box<dyn TtsSession>, EngineError> {
            Ok(Box::new(SteadySession))
        }
    }

    struct SteadySession;

    impl TtsSession for SteadySession {
        fn synthesize(&mut self, _: UtteranceId, _: &str) -> EngineStream<Synthesized> {
            let two = || Ok(Synthesized::Audio(vec![2]));
            Box::pin(stream::iter([two(), two()]))
        }
    }

    fn session(audio_first: usize) -> Box<dyn TtsSession> {
        let call = CallContext {
            call_sid: CallSid::parse("CA0123456789abcdef0123456789abcdef").unwrap(),
            stream_sid: StreamSid::new("MZ1"),
            custom_parameters: Default::default(),
        };
        FailoverTts::new(Arc::new(Flaky { audio_first }), Arc::new(Steady), 2)
            .open(&call)
            .unwrap()
    }

    async fn clause(session: &mut Box<dyn TtsSession>, text: &str) -> Vec<u8> {
        let items: Vec<_> = session.synthesize(UtteranceId(1), text).collect().await;
        let first_byte = |item: Result<Synthesized, EngineError>| match item.unwrap() {
            Synthesized::Audio(audio) => audio[0],
            Synthesized::WordEnds(_) => panic!("no timings here"),
        };
        items.into_iter().map(first_byte).collect()
    }

    #[actix_rt::test]
    async fn a_clause_the_provider_fails_is_spoken_by_the_fallback_and_repeated_failures_stay_there(
    ) {
        let mut session = session(0);
        assert_eq!(clause(&mut session, "fine").await, [1]);
        assert_eq!(clause(&mut session, "!down").await, [2, 2]);
        assert_eq!(
            clause(&mut session, "fine").await,
            [1],
            "a success resets the count"
        );
        assert_eq!(clause(&mut session, "!down").await, [2, 2]);
        assert_eq!(clause(&mut session, "!down").await, [2, 2]);
        assert_eq!(
            clause(&mut session, "fine").await,
            [2, 2],
            "stays with the fallback"
        );
    }

    #[actix_rt::test]
    async fn a_clause_cut_after_some_audio_ends_there() {
        let mut session = session(1);
        assert_eq!(clause(&mut session, "!cut").await, [1]);
    }
}
