//! The embedded recogniser as a streaming [`SpeechToText`]: Silero VAD endpoints the caller's audio,
//! Moonshine decodes each voiced segment on the recognition pool.
//!
//! Per call, audio is scored in 32 ms chunks. Speech starts after two voiced chunks (the turn's
//! audio begins 300 ms before the end of the second, so first syllables are not clipped). The turn
//! ends after `turn_silence` of silence ([`TurnDetection::Silence`]), or when the end-of-turn model
//! says so ([`TurnDetection::Model`]): it is asked after a short silence (and again as the silence
//! grows, if rechecks are set), on its own pool, and the turn ends anyway after the longest
//! silence allowed. The
//! endpointer waits for the model's answer before it reads on (the audio meanwhile waits in the
//! channel, a few frames), so each decision is made at the point of the audio it judged: a stream
//! gives the same turns in real time or replayed faster. (Not every stream of the same speech: the
//! 32 ms VAD chunks fall where the stream's start puts them, and the model's answer can swing with
//! that alignment.) Moonshine has no native partials, so the growing segment is
//! re-decoded every `partial_interval` while two recognition workers are spare (best effort,
//! never queued, never in the way of a final). Latency is hidden where it can be: the final decode starts speculatively once the
//! caller has been quiet for `SPECULATE_AFTER_MS` (100 ms), and its result is used if they stay quiet.
//! When silence decides the end of the turn (`TURN_DETECTION=silence`, a model that failed, a
//! dictation), the turn's words are decoded at once at each pause (awaited, so the announcement
//! falls where the audio puts it) and the turn is announced as probably over
//! ([`TranscriptEvent::ProbableEnd`], once per pause): the call can prepare its reply during the
//! rest of the silence. If the caller then speaks again, [`TranscriptEvent::SpeechStarted`] says
//! so. The model, when it decides, ends a finished turn as soon as its words are known, which
//! leaves nothing to prepare early.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream;
use phone_agent_actors::audio::{mulaw, AudioFrame};
use phone_agent_actors::engines::{
    CallContext, EngineError, SpeechToText, SttSession, TranscriptEvent,
};
use tokio::sync::{mpsc, oneshot};

use super::moonshine::{Moonshine, SAMPLE_RATE_HZ as MODEL_RATE_HZ};
use super::pool::WorkerPool;
use super::resample::ClipResampler;
use super::smart_turn::{SmartTurn, TELEPHONY_SAMPLES};
use super::vad::{SileroVad, VadState, CHUNK_SAMPLES};

const NAME: &str = "moonshine";
const RATE_HZ: usize = 8_000;
/// Frames buffered between the Transcriber and the endpointer (2 s).
const AUDIO_BUFFER_FRAMES: usize = 100;
/// Probability at or above which a chunk is speech (Silero's default).
const SPEECH_THRESHOLD: f32 = 0.5;
/// Probability below which a chunk is silence once speech started (hysteresis).
const SILENCE_THRESHOLD: f32 = 0.35;
/// Voiced chunks in a row that start speech (64 ms).
const START_CHUNKS: usize = 2;
/// Audio kept from before speech starts.
const PREROLL_SAMPLES: usize = RATE_HZ * 3 / 10;
/// Partials run only while this many recognition workers are spare, so one is always free for
/// a final: a final queued behind a partial would delay the reply. (With one worker, no partials.)
const PARTIAL_SPARE_WORKERS: usize = 2;
/// Silence after speech at which the final decode starts speculatively (the first check is at
/// the end of the 32 ms chunk that reaches it).
const SPECULATE_AFTER_MS: usize = 100;
/// Silence kept after the last voiced chunk in what is decoded.
const TAIL_SAMPLES: usize = RATE_HZ / 5;
/// Voiced audio shorter than this is a click or a breath, not words.
const MIN_SPEECH_SAMPLES: usize = RATE_HZ / 5;
/// A turn longer than this is cut and decoded. Its decode (about 0.4 s per second of audio) must
/// finish within what the Transcriber and this session buffer meanwhile (4 s), or audio is lost.
const MAX_SEGMENT_SAMPLES: usize = RATE_HZ * 8;

/// One recognition worker: its model and its resampler.
pub struct RecognitionWorker {
    model: Moonshine,
    upsample: ClipResampler,
}

impl RecognitionWorker {
    /// A worker around a loaded model.
    pub fn new(model: Moonshine) -> Self {
        Self {
            model,
            upsample: ClipResampler::new(RATE_HZ as u32, MODEL_RATE_HZ),
        }
    }

    /// Warms the model up (see [`Moonshine::warm_up`]) on a turn's typical length and a long one.
    pub fn warm_up(&mut self) -> Result<(), String> {
        self.model.warm_up(2.0)?;
        self.model.warm_up(6.0)
    }

    /// Transcribes 8 kHz samples in [-1, 1].
    pub fn transcribe(&mut self, telephony: &[f32]) -> Result<String, String> {
        self.transcribe_unless(telephony, &|| false)
    }

    /// Like [`Self::transcribe`], giving up between decoder steps once `abandoned` is true (a
    /// speculative final the caller talked over frees the worker at once).
    pub fn transcribe_unless(
        &mut self,
        telephony: &[f32],
        abandoned: &dyn Fn() -> bool,
    ) -> Result<String, String> {
        let wideband = self.upsample.process(telephony);
        self.model.transcribe(&wideband, abandoned)
    }
}

/// Endpointing settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Endpointing {
    /// Silence that ends the caller's turn when silence decides (`TURN_SILENCE_MS`).
    pub turn_silence: Duration,
    /// How often partial hypotheses are produced while the caller speaks (zero: never).
    pub partial_interval: Duration,
    /// What decides that the caller's turn is over (`TURN_DETECTION`).
    pub detection: TurnDetection,
}

/// What decides that the caller's turn is over.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TurnDetection {
    /// [`Endpointing::turn_silence`] of silence.
    Silence,
    /// The end-of-turn model (Smart Turn v3.2).
    Model(ModelTurns),
}

/// When the end-of-turn model is asked, and how its answer is taken.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelTurns {
    /// Silence after the caller's speech at which the model is first asked (`TURN_CHECK_MS`).
    pub first_check: Duration,
    /// More silence between later asks while it says the turn goes on (`TURN_RECHECK_MS`); zero:
    /// once per pause. The model is trained on short trailing silences: asked again as a pause
    /// grows, it calls unfinished phrases complete (measured on the telephony set), so by default
    /// it is asked once and the longest silence ends a turn it called unfinished.
    pub recheck: Duration,
    /// Silence that ends the turn whatever the model says (`TURN_MAX_SILENCE_MS`).
    pub max_silence: Duration,
    /// Probability of completion at or above which the turn ends (`TURN_COMPLETE_THRESHOLD`).
    pub threshold: f32,
}

impl Default for ModelTurns {
    fn default() -> Self {
        Self {
            first_check: Duration::from_millis(200),
            recheck: Duration::ZERO,
            max_silence: Duration::from_millis(2_000),
            threshold: 0.5,
        }
    }
}

/// The embedded streaming recogniser, shared by every call.
pub struct EmbeddedStt {
    vad: Arc<WorkerPool<SileroVad>>,
    recognition: Arc<WorkerPool<RecognitionWorker>>,
    /// The end-of-turn model's pool, with [`TurnDetection::Model`].
    turns: Option<Arc<WorkerPool<SmartTurn>>>,
    endpointing: Endpointing,
}

impl EmbeddedStt {
    /// A recogniser over loaded pools; `turns` is needed with [`TurnDetection::Model`] (without
    /// it, silence decides).
    pub fn new(
        vad: WorkerPool<SileroVad>,
        recognition: WorkerPool<RecognitionWorker>,
        turns: Option<WorkerPool<SmartTurn>>,
        endpointing: Endpointing,
    ) -> Self {
        Self {
            vad: Arc::new(vad),
            recognition: Arc::new(recognition),
            turns: turns.map(Arc::new),
            endpointing,
        }
    }
}

impl SpeechToText for EmbeddedStt {
    fn name(&self) -> &'static str {
        NAME
    }

    fn open(&self, _: &CallContext) -> Result<SttSession, EngineError> {
        let (audio, frames) = mpsc::channel(AUDIO_BUFFER_FRAMES);
        let listener = Listener::new(
            frames,
            self.vad.clone(),
            self.recognition.clone(),
            self.turns.clone(),
            self.endpointing,
        );
        let events = stream::unfold(listener, |mut listener| async move {
            let event = listener.next_event().await?;
            Some((event, listener))
        });
        Ok(SttSession {
            audio,
            events: Box::pin(events),
        })
    }
}

type Decoded = Result<String, String>;

/// What woke the endpointer.
enum Woke {
    Frame(Option<AudioFrame>),
    Decoded(Result<Decoded, oneshot::error::RecvError>),
}

/// The end-of-turn model's side of a call: its pool and when to ask it.
struct TurnModel {
    pool: Arc<WorkerPool<SmartTurn>>,
    settings: ModelTurns,
    /// Silence (samples) at which it is asked next.
    next_check: usize,
    /// It failed on this turn: silence decides the rest of it.
    failed: bool,
    /// This turn paused mid-dictation: the longest silence ends it.
    dictation: bool,
}

/// A decode on the recognition pool of the segment up to a little after `voiced_end`.
struct Decoding {
    /// The segment's voiced end when the decode was submitted: a final is still valid while no
    /// later voiced audio came.
    voiced_end: usize,
    is_final: bool,
    result: oneshot::Receiver<Decoded>,
}

/// One call's endpointer.
struct Listener {
    frames: mpsc::Receiver<AudioFrame>,
    vad: Arc<WorkerPool<SileroVad>>,
    recognition: Arc<WorkerPool<RecognitionWorker>>,
    vad_state: VadState,
    turn_silence_samples: usize,
    /// With [`TurnDetection::Model`].
    turn_model: Option<TurnModel>,
    partial_interval_samples: usize,
    /// Scored-chunk remainder.
    unscored: Vec<f32>,
    preroll: VecDeque<f32>,
    voiced_chunks: usize,
    speaking: bool,
    segment: Vec<f32>,
    /// End of the last voiced chunk in `segment`.
    voiced_end: usize,
    voiced_samples: usize,
    silence_samples: usize,
    last_partial_at: usize,
    decoding: Option<Decoding>,
    /// A speculative final that finished: (voiced end it covers, text).
    speculated: Option<(usize, String)>,
    /// This pause was announced as the probable end of the turn.
    announced: bool,
    events: VecDeque<TranscriptEvent>,
    closed: bool,
}

impl Listener {
    fn new(
        frames: mpsc::Receiver<AudioFrame>,
        vad: Arc<WorkerPool<SileroVad>>,
        recognition: Arc<WorkerPool<RecognitionWorker>>,
        turns: Option<Arc<WorkerPool<SmartTurn>>>,
        endpointing: Endpointing,
    ) -> Self {
        let turn_model = match (endpointing.detection, turns) {
            (TurnDetection::Model(settings), Some(pool)) => Some(TurnModel {
                pool,
                settings,
                next_check: samples(settings.first_check),
                failed: false,
                dictation: false,
            }),
            _ => None,
        };
        Self {
            frames,
            vad,
            recognition,
            vad_state: VadState::default(),
            turn_silence_samples: samples(endpointing.turn_silence).max(CHUNK_SAMPLES),
            turn_model,
            partial_interval_samples: samples(endpointing.partial_interval),
            unscored: Vec::with_capacity(CHUNK_SAMPLES * 2),
            preroll: VecDeque::with_capacity(PREROLL_SAMPLES + CHUNK_SAMPLES),
            voiced_chunks: 0,
            speaking: false,
            segment: Vec::new(),
            voiced_end: 0,
            voiced_samples: 0,
            silence_samples: 0,
            last_partial_at: 0,
            decoding: None,
            speculated: None,
            announced: false,
            events: VecDeque::new(),
            closed: false,
        }
    }

    async fn next_event(&mut self) -> Option<Result<TranscriptEvent, EngineError>> {
        loop {
            if let Some(event) = self.events.pop_front() {
                return Some(Ok(event));
            }
            if self.closed {
                return None;
            }
            let woke = {
                let frames = &mut self.frames;
                let decoding = self.decoding.as_mut().map(|decoding| &mut decoding.result);
                tokio::select! {
                    frame = frames.recv() => Woke::Frame(frame),
                    decoded = async {
                        match decoding {
                            Some(result) => result.await,
                            None => std::future::pending().await,
                        }
                    } => Woke::Decoded(decoded),
                }
            };
            let step = match woke {
                Woke::Frame(Some(frame)) => self.on_frame(&frame).await,
                Woke::Frame(None) => {
                    self.closed = true;
                    if self.speaking {
                        self.end_turn().await
                    } else {
                        Ok(())
                    }
                }
                Woke::Decoded(decoded) => {
                    let done = self.decoding.take().expect("a decode was in flight");
                    self.on_decoded(done, decoded)
                }
            };
            if let Err(error) = step {
                return Some(Err(error));
            }
        }
    }

    async fn on_frame(&mut self, frame: &AudioFrame) -> Result<(), EngineError> {
        mulaw::decode_float_into(&frame.payload, &mut self.unscored);
        while self.unscored.len() >= CHUNK_SAMPLES {
            let mut chunk = [0.0_f32; CHUNK_SAMPLES];
            chunk.copy_from_slice(&self.unscored[..CHUNK_SAMPLES]);
            self.unscored.drain(..CHUNK_SAMPLES);
            let probability = self.score(chunk).await?;
            self.on_chunk(&chunk, probability).await?;
        }
        Ok(())
    }

    async fn score(&mut self, chunk: [f32; CHUNK_SAMPLES]) -> Result<f32, EngineError> {
        let mut state = std::mem::take(&mut self.vad_state);
        let scored = self
            .vad
            .submit(move |vad, _| {
                let probability = vad.speech_probability(&mut state, &chunk);
                (probability, state)
            })
            .map_err(|error| failure(format!("voice activity detection: {error}")))?
            .await
            .map_err(|_| failure("voice activity worker stopped".into()))?;
        let (probability, state) = scored;
        self.vad_state = state;
        probability.map_err(failure)
    }

    async fn on_chunk(
        &mut self,
        chunk: &[f32; CHUNK_SAMPLES],
        probability: f32,
    ) -> Result<(), EngineError> {
        if !self.speaking {
            self.preroll.extend(chunk.iter().copied());
            while self.preroll.len() > PREROLL_SAMPLES {
                self.preroll.pop_front();
            }
            self.voiced_chunks = if probability >= SPEECH_THRESHOLD {
                self.voiced_chunks + 1
            } else {
                0
            };
            if self.voiced_chunks >= START_CHUNKS {
                self.speaking = true;
                self.segment.clear();
                self.segment.extend(self.preroll.drain(..));
                self.voiced_end = self.segment.len();
                self.voiced_samples = START_CHUNKS * CHUNK_SAMPLES;
                self.silence_samples = 0;
                self.last_partial_at = self.segment.len();
                self.events.push_back(TranscriptEvent::SpeechStarted);
            }
            return Ok(());
        }

        self.segment.extend_from_slice(chunk);
        if probability >= SILENCE_THRESHOLD {
            self.voiced_end = self.segment.len();
            self.voiced_samples += CHUNK_SAMPLES;
            self.silence_samples = 0;
            // The caller went on: a speculative final no longer covers the turn.
            if self
                .decoding
                .as_ref()
                .is_some_and(|decoding| decoding.is_final)
            {
                self.decoding = None;
            }
            self.speculated = None;
            if std::mem::take(&mut self.announced) {
                // A reply prepared for the pause is not wanted.
                self.events.push_back(TranscriptEvent::SpeechStarted);
            }
            if let Some(model) = &mut self.turn_model {
                // The caller went on: the next silence is judged afresh.
                model.next_check = samples(model.settings.first_check);
            }
            self.maybe_partial();
        } else {
            self.silence_samples += CHUNK_SAMPLES;
            if self.silence_samples >= SPECULATE_AFTER_MS * RATE_HZ / 1000 {
                if self.silence_decides() {
                    self.announce_pause().await;
                } else {
                    self.speculate();
                }
            }
            if self.model_says_complete().await {
                return self.end_turn().await;
            }
            // The model found a dictation: silence decides from now on.
            if self.silence_decides() {
                self.announce_probable_end();
            }
        }
        if self.silence_samples >= self.longest_silence()
            || self.segment.len() >= MAX_SEGMENT_SAMPLES
        {
            self.end_turn().await?;
        }
        Ok(())
    }

    /// The silence that ends the turn whatever else is known: the model's maximum while it is in
    /// use, else the silence setting.
    fn longest_silence(&self) -> usize {
        match &self.turn_model {
            Some(model) if !model.failed => samples(model.settings.max_silence),
            _ => self.turn_silence_samples,
        }
    }

    /// Asks the end-of-turn model about the turn so far, if the silence has reached its next
    /// check, and waits for its answer: whether the turn is complete.
    async fn model_says_complete(&mut self) -> bool {
        let Some(model) = &mut self.turn_model else {
            return false;
        };
        // A turn that paused mid-dictation is ended by the longest silence alone: nothing to ask.
        if model.failed
            || model.dictation
            || self.silence_samples < model.next_check
            || self.voiced_samples < MIN_SPEECH_SAMPLES
        {
            return false;
        }
        model.next_check = match samples(model.settings.recheck) {
            0 => usize::MAX,
            recheck => self.silence_samples + recheck,
        };
        // The model runs while the turn's final decode (started at 100 ms of silence, needed to
        // answer anyway) finishes: on its own pool, at the same time.
        let turn = self.segment[self.segment.len().saturating_sub(TELEPHONY_SAMPLES)..].to_vec();
        let asked = model.pool.submit(move |model, _| model.completion(&turn));
        // Digits or letters being dictated: pauses between groups are not ends of turns, whatever
        // the intonation; the longest silence ends the turn. A turn that paused mid-dictation
        // stays a dictation (a recogniser that hears digits in the silence must not end it).
        let Ok(Some(text)) = self.final_text().await else {
            return false;
        };
        let dictating = is_dictating(&text);
        let Some(model) = &mut self.turn_model else {
            return false;
        };
        model.dictation |= dictating;
        if model.dictation {
            return false;
        }
        let judged = match asked {
            Ok(answer) => answer
                .await
                .unwrap_or_else(|_| Err("worker stopped".into())),
            Err(error) => Err(error.to_string()),
        };
        let probability = match judged {
            Ok(probability) => probability,
            Err(error) => {
                tracing::warn!(%error, "end-of-turn model failed: silence ends this turn");
                model.failed = true;
                return false;
            }
        };
        let complete = probability >= model.settings.threshold;
        tracing::debug!(
            probability,
            complete,
            silence_ms = self.silence_samples * 1000 / RATE_HZ,
            "end-of-turn model"
        );
        complete
    }

    /// What a decode of the turn so far covers: the voiced audio and a little silence after it.
    fn decode_len(&self) -> usize {
        (self.voiced_end + TAIL_SAMPLES).min(self.segment.len())
    }

    fn submit(&mut self, is_final: bool) -> Result<(), EngineError> {
        let clip = self.segment[..self.decode_len()].to_vec();
        let result = self
            .recognition
            .submit(move |worker, abandoned| worker.transcribe_unless(&clip, &|| abandoned.now()))
            .map_err(|error| failure(format!("recognition: {error}")))?;
        self.decoding = Some(Decoding {
            voiced_end: self.voiced_end,
            is_final,
            result,
        });
        Ok(())
    }

    fn maybe_partial(&mut self) {
        if self.partial_interval_samples == 0
            || self.decoding.is_some()
            || self.segment.len() < self.last_partial_at + self.partial_interval_samples
            || self.recognition.spare_workers() < PARTIAL_SPARE_WORKERS
        {
            return;
        }
        self.last_partial_at = self.segment.len();
        // Best effort: a saturated pool means no partial this time.
        let _ = self.submit(false);
    }

    fn speculate(&mut self) {
        if self.final_is_current() || self.voiced_samples < MIN_SPEECH_SAMPLES {
            return;
        }
        // A partial in flight is superseded: the final matters more.
        self.decoding = None;
        let _ = self.submit(true);
    }

    /// Whether a final decode (done or in flight) covers all the voiced audio so far.
    fn final_is_current(&self) -> bool {
        let voiced_end = self.voiced_end;
        self.speculated
            .as_ref()
            .is_some_and(|(at, _)| *at == voiced_end)
            || self
                .decoding
                .as_ref()
                .is_some_and(|decoding| decoding.is_final && decoding.voiced_end == voiced_end)
    }

    fn on_decoded(
        &mut self,
        done: Decoding,
        decoded: Result<Decoded, oneshot::error::RecvError>,
    ) -> Result<(), EngineError> {
        if !done.is_final {
            // Best effort: a failed partial is skipped, not a failed session.
            if let Ok(Ok(text)) = decoded {
                if !text.is_empty() && self.speaking {
                    self.events.push_back(TranscriptEvent::Partial { text });
                }
            }
            return Ok(());
        }
        let text = decoded
            .map_err(|_| failure("recognition worker stopped".into()))?
            .map_err(failure)?;
        self.speculated = Some((done.voiced_end, text));
        Ok(())
    }

    /// Whether silence alone will end this turn if the caller stays quiet: no model decides
    /// (none, or it failed), or the turn is a dictation.
    fn silence_decides(&self) -> bool {
        self.turn_model
            .as_ref()
            .is_none_or(|model| model.failed || model.dictation)
    }

    /// At a pause that silence decides: the words of the turn so far, decoded now, announce its
    /// probable end.
    async fn announce_pause(&mut self) {
        if self.announced || self.voiced_samples < MIN_SPEECH_SAMPLES {
            return;
        }
        if let Ok(Some(_)) = self.final_text().await {
            self.announce_probable_end();
        }
    }

    /// Announces the turn as probably over, once per pause, when the final text of all of it is
    /// known while the caller is quiet.
    fn announce_probable_end(&mut self) {
        if self.announced || !self.speaking || self.silence_samples == 0 {
            return;
        }
        let voiced_end = self.voiced_end;
        let Some((_, text)) = self
            .speculated
            .as_ref()
            .filter(|(at, text)| *at == voiced_end && !text.is_empty())
        else {
            return;
        };
        self.announced = true;
        let text = text.clone();
        self.events.push_back(TranscriptEvent::ProbableEnd { text });
    }

    /// The caller finished: the final transcript (reusing the speculative decode when it covers
    /// the whole turn), then the end of the turn.
    async fn end_turn(&mut self) -> Result<(), EngineError> {
        let waited = std::time::Instant::now();
        let voiced_end = self.voiced_end;
        let speculative = self.final_is_current();
        let text = if self.voiced_samples < MIN_SPEECH_SAMPLES {
            String::new()
        } else {
            match self.final_text().await? {
                Some(text) => text,
                None => {
                    self.reset();
                    self.events.push_back(TranscriptEvent::EndOfTurn);
                    return Ok(());
                }
            }
        };
        tracing::debug!(
            turn_ms = voiced_end * 1000 / RATE_HZ,
            speculative,
            decode_wait_ms = waited.elapsed().as_millis() as u64,
            "end of caller turn"
        );
        self.reset();
        if !text.is_empty() {
            self.events.push_back(TranscriptEvent::Final { text });
        }
        self.events.push_back(TranscriptEvent::EndOfTurn);
        Ok(())
    }

    /// The final text of all the voiced audio so far: the speculative decode's when it covers it,
    /// else the decode in flight or a new one, awaited, and kept as the speculative decode's until
    /// more voiced audio comes. `None` when the recognition pool is saturated (the turn's words
    /// are lost; the call goes on).
    async fn final_text(&mut self) -> Result<Option<String>, EngineError> {
        let voiced_end = self.voiced_end;
        if let Some((_, text)) = self.speculated.as_ref().filter(|(at, _)| *at == voiced_end) {
            return Ok(Some(text.clone()));
        }
        let in_flight = self
            .decoding
            .take()
            .filter(|decoding| decoding.is_final && decoding.voiced_end == voiced_end);
        let decoding = match in_flight {
            Some(decoding) => decoding,
            None => match self.submit(true) {
                Ok(()) => self.decoding.take().expect("just submitted"),
                Err(error) => {
                    tracing::warn!(%error, "caller turn not transcribed");
                    return Ok(None);
                }
            },
        };
        let text = decoding
            .result
            .await
            .map_err(|_| failure("recognition worker stopped".into()))?
            .map_err(failure)?;
        self.speculated = Some((voiced_end, text.clone()));
        Ok(Some(text))
    }

    fn reset(&mut self) {
        self.speaking = false;
        self.voiced_chunks = 0;
        self.segment.clear();
        self.preroll.clear();
        self.voiced_end = 0;
        self.voiced_samples = 0;
        self.silence_samples = 0;
        self.decoding = None;
        self.speculated = None;
        self.announced = false;
        if let Some(model) = &mut self.turn_model {
            model.failed = false;
            model.dictation = false;
            model.next_check = samples(model.settings.first_check);
        }
    }
}

/// Digit counts of a whole phone number (a local one, a national one, one with its country code):
/// a caller who has given one of these may be done, and the model decides.
const PHONE_NUMBER_DIGITS: [usize; 3] = [7, 10, 11];

/// Whether a turn whose text so far is `text` is mid-dictation: it ends with a digit, a number
/// word or a single spelled letter, and its digits are not a whole phone number (a recogniser
/// that hears too many digits still leaves the caller time).
fn is_dictating(text: &str) -> bool {
    const NUMBER_WORDS: [&str; 11] = [
        "zero", "oh", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    ];
    // Hyphens and commas split words too: "five-five-five," is three digits.
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
        .collect();
    let Some(last) = words.last() else {
        return false;
    };
    let digits: usize = words
        .iter()
        .map(|word| {
            if NUMBER_WORDS.contains(&word.as_str()) {
                1
            } else {
                word.chars().filter(char::is_ascii_digit).count()
            }
        })
        .sum();
    let numeric = last.chars().any(|c| c.is_ascii_digit()) || NUMBER_WORDS.contains(&last.as_str());
    let letter = last.chars().count() == 1 && last != "a" && last != "i";
    (numeric || letter) && !PHONE_NUMBER_DIGITS.contains(&digits)
}

/// Samples of 8 kHz audio in `duration`.
fn samples(duration: Duration) -> usize {
    (duration.as_millis() as usize) * RATE_HZ / 1000
}

fn failure(message: String) -> EngineError {
    EngineError::Protocol {
        engine: NAME,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictation_is_digits_or_letters_short_of_a_phone_number() {
        assert!(is_dictating("My phone number is 20655"));
        assert!(is_dictating("please call me back at five five five"));
        assert!(is_dictating("My number is five-five-five."));
        assert!(is_dictating("It's spelled J."));
        assert!(
            !is_dictating("My number is 206 555 0198."),
            "ten digits: done"
        );
        assert!(!is_dictating("What are your opening hours?"));
        assert!(!is_dictating("I would like a"), "an article, not a letter");
        assert!(!is_dictating(""));
    }
}
