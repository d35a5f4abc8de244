//! Conversation timing in process, no sockets: barge-in reaction and our own per-turn overhead.
//!
//! - **Barge-in reaction**: while the agent speaks, a confirming partial ("stop right now") is
//!   handed to the CallActor; the clock stops when `clear` comes out of the socket queue.
//! - **Per-turn overhead**: an inbound frame that ends a turn (the loopback recogniser emits its
//!   final and end of turn at once) goes into the MediaStream; the clock stops when the reply's
//!   first frame comes out of the socket queue. The dialogue's first text takes 20 ms and the
//!   synthesizer's first audio 20 ms; each engine times its own wait, and what remains is the
//!   processing of our actors between engine events.
//! - **Speculative replies**: the recogniser says the turn is probably over
//!   ([`TranscriptEvent::ProbableEnd`]); 60 ms later (the engines take 40) the turn ends with
//!   those words. The clock runs from the end of the turn to the reply's first frame out of the
//!   socket queue, against the same turn with no announcement (the engines' 40 ms then count).
//!
//! `cargo bench --bench conversation`; prints p50, p99 and max over 1000 turns of one call (200
//! for each kind of speculative turn).

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream;
use phone_agent::engines;
use phone_agent::twilio::stream_token::StreamTokens;
use phone_agent_actors::call::settings::ConversationSettings;
use phone_agent_actors::call::CallSettings;
use phone_agent_actors::engines::{
    CallContext, ChatMessage, Dialogue, DialogueSession, EngineError, EngineStream, Synthesized,
    TextToSpeech, TranscriptEvent, TtsSession,
};
use phone_agent_actors::events::TranscriptReceived;
use phone_agent_actors::ids::UtteranceId;
use support::{settings, start_call};

const TURNS: usize = 1_000;

/// Turns timed with and without a prepared reply.
const SPECULATED_TURNS: usize = 200;

/// How long before the end of the turn it is announced as probably over.
const ANNOUNCED_BEFORE: Duration = Duration::from_millis(60);

/// How long each engine takes to its first output.
const ENGINE_LATENCY: Duration = Duration::from_millis(20);

/// Time the engines spent waiting in the current turn.
#[derive(Clone, Default)]
struct EngineTime(Arc<Mutex<Duration>>);

impl EngineTime {
    fn wait(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let spent = self.0.clone();
        async move {
            let start = Instant::now();
            actix_rt::time::sleep(ENGINE_LATENCY).await;
            *spent.lock().unwrap() += start.elapsed();
        }
    }

    fn take(&self) -> Duration {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

struct SlowDialogue(EngineTime);

impl Dialogue for SlowDialogue {
    fn name(&self) -> &'static str {
        "slow"
    }

    fn open(&self, _: &CallContext) -> Result<Box<dyn DialogueSession>, EngineError> {
        Ok(Box::new(SlowDialogue(self.0.clone())))
    }
}

impl DialogueSession for SlowDialogue {
    fn fork(&self) -> Option<Box<dyn DialogueSession>> {
        Some(Box::new(SlowDialogue(self.0.clone())))
    }

    fn reply(&mut self, _: &[ChatMessage]) -> EngineStream<String> {
        let wait = self.0.wait();
        Box::pin(stream::once(async move {
            wait.await;
            Ok("Here is a long answer for you.".to_owned())
        }))
    }
}

struct SlowTts(EngineTime);

impl TextToSpeech for SlowTts {
    fn name(&self) -> &'static str {
        "slow"
    }

    fn open(&self, _: &CallContext) -> Result<Box<dyn TtsSession>, EngineError> {
        Ok(Box::new(SlowTts(self.0.clone())))
    }
}

impl TtsSession for SlowTts {
    fn synthesize(&mut self, _: UtteranceId, _: &str) -> EngineStream<Synthesized> {
        let wait = self.0.wait();
        Box::pin(stream::once(async move {
            wait.await;
            // Two seconds of audio: the agent is still speaking when the caller barges in.
            Ok(Synthesized::Audio(vec![0xD5; 16_000]))
        }))
    }
}

fn call_settings(tokens: Arc<StreamTokens>, engine_time: &EngineTime) -> CallSettings {
    let mut settings = settings(tokens);
    settings.engines = phone_agent_actors::engines::EngineSet {
        stt: engines::loopback_set().stt,
        dialogue: Arc::new(SlowDialogue(engine_time.clone())),
        tts: Arc::new(SlowTts(engine_time.clone())),
    };
    settings.conversation = Arc::new(ConversationSettings {
        silence_checkin: None,
        max_duration: None,
        ..ConversationSettings::default()
    });
    settings
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "{name:<28} p50 {:>8.1} µs   p99 {:>8.1} µs   max {:>8.1} µs   ({} turns)",
        at(0.5).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6,
        samples.last().unwrap().as_secs_f64() * 1e6,
        samples.len()
    );
}

/// Hands `event` to the call's actor, as its Transcriber would.
async fn hear(call: &support::BenchCall, event: TranscriptEvent) {
    call.call
        .send(TranscriptReceived { event })
        .await
        .expect("call up");
}

/// Interrupts the reply playing (a confirming partial, then the interrupting turn's end without
/// words of its own), so the agent is quiet again; returns how long the `clear` took.
async fn interrupt(call: &mut support::BenchCall) -> Duration {
    let trigger = Instant::now();
    let partial = TranscriptEvent::Partial {
        text: "stop right now".into(),
    };
    hear(call, partial).await;
    call.next_event("clear").await;
    let reaction = trigger.elapsed();
    hear(call, TranscriptEvent::EndOfTurn).await;
    call.drain();
    reaction
}

/// A caller turn, announced as probably over `ANNOUNCED_BEFORE` its end if `announced`: the time
/// from its end to the reply's first frame out.
async fn spoken_turn(call: &mut support::BenchCall, announced: bool) -> Duration {
    let words = "what are your opening hours";
    hear(call, TranscriptEvent::SpeechStarted).await;
    if announced {
        let text = words.to_owned();
        hear(call, TranscriptEvent::ProbableEnd { text }).await;
    }
    actix_rt::time::sleep(ANNOUNCED_BEFORE).await;
    let end = Instant::now();
    let text = words.to_owned();
    hear(call, TranscriptEvent::Final { text }).await;
    hear(call, TranscriptEvent::EndOfTurn).await;
    call.echoed().await;
    end.elapsed()
}

fn main() {
    let system = actix_rt::System::new();
    let engine_time = EngineTime::default();
    let tokens = Arc::new(StreamTokens::new(Duration::from_secs(600)));
    let settings = call_settings(tokens.clone(), &engine_time);
    let (overheads, reactions, prepared, unprepared) = system.block_on(async {
        let mut call = start_call(&settings, &tokens, 1).await;
        let (mut overheads, mut reactions) = (Vec::new(), Vec::new());
        for turn in 0..TURNS + 50 {
            engine_time.take();
            let start = Instant::now();
            call.send().await;
            call.echoed().await;
            let overhead = start.elapsed().saturating_sub(engine_time.take());

            let reaction = interrupt(&mut call).await;
            if turn >= 50 {
                overheads.push(overhead);
                reactions.push(reaction);
            }
        }
        let (mut prepared, mut unprepared) = (Vec::new(), Vec::new());
        for _ in 0..SPECULATED_TURNS {
            prepared.push(spoken_turn(&mut call, true).await);
            interrupt(&mut call).await;
            unprepared.push(spoken_turn(&mut call, false).await);
            interrupt(&mut call).await;
        }
        (overheads, reactions, prepared, unprepared)
    });
    report("barge-in reaction", reactions);
    report("per-turn overhead", overheads);
    report("reply, prepared", prepared);
    report("reply, not prepared", unprepared);
}
