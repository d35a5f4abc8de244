//! The embedded synthesizer as a [`TextToSpeech`]: Piper (natural) or flite (light) on the
//! synthesis pool, converted once to 8 kHz mu-law, with fixed answers served from memory.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use futures_util::stream;
use phone_agent_actors::audio::{mulaw, TELEPHONY_SAMPLE_RATE_HZ};
use phone_agent_actors::engines::{
    CallContext, EngineError, EngineStream, Synthesized, TextToSpeech, TtsSession,
};
use phone_agent_actors::ids::UtteranceId;
use phone_agent_actors::responder::ClauseSplitter;

use super::flite::Flite;
use super::piper::Piper;
use super::pool::WorkerPool;
use super::resample::ClipResampler;

/// Peak level synthesized clauses are normalised to (about -3 dBFS: loud, with headroom for
/// mu-law's coarse top steps).
const PEAK: f32 = 0.7;

/// A synthesis worker: a voice and the resamplers that bring it to 8 kHz.
pub enum Voice {
    /// Piper, 22.05 kHz.
    Piper(Box<Piper>, Box<ClipResampler>),
    /// flite; its rate depends on the voice, so resamplers are made per rate.
    Flite(Flite, HashMap<u32, ClipResampler>),
}

impl Voice {
    /// A Piper worker.
    pub fn piper(piper: Piper) -> Self {
        let down = ClipResampler::new(piper.sample_rate(), TELEPHONY_SAMPLE_RATE_HZ);
        Self::Piper(Box::new(piper), Box::new(down))
    }

    /// A flite worker.
    pub fn flite(flite: Flite) -> Self {
        Self::Flite(flite, HashMap::new())
    }

    /// Speaks `text` as 8 kHz mu-law.
    pub fn speak(&mut self, text: &str) -> Result<Vec<u8>, String> {
        let telephony = match self {
            Voice::Piper(piper, down) => down.process(&piper.synthesize(text)?),
            Voice::Flite(flite, resamplers) => {
                let clip = flite.synthesize(text)?;
                if clip.sample_rate == TELEPHONY_SAMPLE_RATE_HZ {
                    clip.samples
                } else {
                    resamplers
                        .entry(clip.sample_rate)
                        .or_insert_with(|| {
                            ClipResampler::new(clip.sample_rate, TELEPHONY_SAMPLE_RATE_HZ)
                        })
                        .process(&clip.samples)
                }
            }
        };
        Ok(to_mulaw(&telephony))
    }
}

/// Normalises to [`PEAK`] and encodes as mu-law.
fn to_mulaw(samples: &[f32]) -> Vec<u8> {
    let peak = samples.iter().fold(0.0_f32, |peak, s| peak.max(s.abs()));
    let gain = if peak > 1e-4 { PEAK / peak } else { 1.0 };
    let scaled: Vec<f32> = samples.iter().map(|s| s * gain).collect();
    let mut out = Vec::with_capacity(scaled.len());
    mulaw::encode_float_into(&scaled, &mut out);
    out
}

/// Clauses synthesized once at start-up (answers that never change), keyed by their exact text.
#[derive(Default)]
pub struct SpeechCache {
    clauses: HashMap<String, Arc<[u8]>>,
}

impl SpeechCache {
    /// The clauses of `lines` worth caching, cut as the Responder cuts replies: every one without
    /// a `{placeholder}` (those are filled in per call).
    pub fn constant_clauses(lines: &[&str]) -> BTreeSet<String> {
        let mut clauses = BTreeSet::new();
        for line in lines {
            let mut splitter = ClauseSplitter::default();
            let mut parts = splitter.push(line);
            parts.push(splitter.finish());
            clauses.extend(
                parts
                    .into_iter()
                    .filter(|clause| !clause.is_empty() && !clause.contains('{')),
            );
        }
        clauses
    }

    /// Synthesizes `clauses` on `pool`'s workers in parallel (the queue must hold them all).
    pub fn build(pool: &WorkerPool<Voice>, clauses: BTreeSet<String>) -> Result<Self, String> {
        let (done, results) = std::sync::mpsc::channel();
        // Receivers kept until the end: a job whose receiver is gone is skipped.
        let mut queued = Vec::with_capacity(clauses.len());
        for clause in clauses {
            let done = done.clone();
            let job = pool.submit(move |voice, _| {
                let audio = voice.speak(&clause);
                let _ = done.send((clause, audio));
            });
            queued.push(job.map_err(|error| format!("caching speech: {error}"))?);
        }
        drop(done);
        let mut cached = HashMap::new();
        for (clause, audio) in results {
            cached.insert(clause, Arc::from(audio?));
        }
        Ok(Self { clauses: cached })
    }

    /// Cached audio of `clause`.
    pub fn get(&self, clause: &str) -> Option<Arc<[u8]>> {
        self.clauses.get(clause).cloned()
    }

    /// Clauses cached.
    pub fn len(&self) -> usize {
        self.clauses.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.clauses.is_empty()
    }
}

/// The embedded synthesizer, shared by every call.
pub struct EmbeddedTts {
    name: &'static str,
    pool: Arc<WorkerPool<Voice>>,
    cache: Arc<SpeechCache>,
}

impl EmbeddedTts {
    /// A synthesizer over a pool of voices and a cache of fixed clauses.
    pub fn new(name: &'static str, pool: WorkerPool<Voice>, cache: SpeechCache) -> Self {
        Self {
            name,
            pool: Arc::new(pool),
            cache: Arc::new(cache),
        }
    }
}

impl TextToSpeech for EmbeddedTts {
    fn name(&self) -> &'static str {
        self.name
    }

    fn open(&self, _: &CallContext) -> Result<Box<dyn TtsSession>, EngineError> {
        Ok(Box::new(EmbeddedTtsSession {
            name: self.name,
            pool: self.pool.clone(),
            cache: self.cache.clone(),
        }))
    }
}

struct EmbeddedTtsSession {
    name: &'static str,
    pool: Arc<WorkerPool<Voice>>,
    cache: Arc<SpeechCache>,
}

impl TtsSession for EmbeddedTtsSession {
    fn synthesize(&mut self, _: UtteranceId, text: &str) -> EngineStream<Synthesized> {
        if let Some(audio) = self.cache.get(text) {
            return Box::pin(stream::once(async move {
                Ok(Synthesized::Audio(audio.to_vec()))
            }));
        }
        let engine = self.name;
        let text = text.to_owned();
        let queued = self.pool.submit(move |voice, _| voice.speak(&text));
        Box::pin(stream::once(async move {
            let failed = |message: String| EngineError::Protocol { engine, message };
            queued
                .map_err(|error| failed(format!("synthesis: {error}")))?
                .await
                .map_err(|_| failed("synthesis worker stopped".into()))?
                .map(Synthesized::Audio)
                .map_err(failed)
        }))
    }
}
