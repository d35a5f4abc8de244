//! The cloud engine set's own latency: what phone-agent adds between Deepgram, the LLM and
//! Cartesia, with providers that answer at once, and voice-to-voice with providers that answer
//! after realistic delays (our overhead is the rest).
//!
//! `cargo bench --bench cloud_path -- [TURNS]` (default 100 per run). A real server (one HTTP
//! worker, its own thread) runs the real adapters against three small providers in this process
//! (not the strict test fakes: these only answer, after a set delay, and note when). The caller
//! is a Twilio-faithful client: each turn it sends a frame that the fake Deepgram takes as the end
//! of speech, and times the reply's first frame. The providers' and the caller's clocks are one
//! clock, so each hop is measured where it starts and ends:
//!
//! - transcript → LLM request: Deepgram's final sent → the chat completion requested;
//! - first token → synthesis request: the LLM's first token sent → Cartesia asked for the clause;
//! - first audio → first frame: Cartesia's first chunk sent → the caller's first frame of it.
//!
//! Each includes a loopback TCP hop of the bench machine.
//!
//! Then memory: the `phone-agent` binary, `ENGINES=cloud` pointed at the same providers (so its
//! embedded fallbacks load too), as a process of its own; its RSS with 10 and then 200 calls up,
//! each with its Deepgram and Cartesia sockets open.
//!
//! Last, capacity: that binary pinned to one core carrying rising counts of whole conversations
//! at once (see [`conversations`]), until a count misses voice to voice p50 < 1 s and p95 < 2 s.

use std::collections::HashMap;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use phone_agent::client::loadgen::probe::ServerProbe;
use phone_agent::client::sim::{MediaConnection, Received, TwilioSim};
use phone_agent::config::{Config, StorageSettings};
use phone_agent::engines::cartesia::{CartesiaSettings, CartesiaTts};
use phone_agent::engines::deepgram::{DeepgramSettings, DeepgramStt};
use phone_agent::engines::openai::{LlmDialogue, LlmSettings};
use phone_agent::engines::script::agent::AgentScript;
use phone_agent::redact::Secret;
use phone_agent::server;
use phone_agent_actors::engines::EngineSet;
use phone_agent_actors::runtime::metrics::CallMetrics;

const AUTH_TOKEN: &str = "bench-twilio-auth-token";
const PUBLIC_HOST: &str = "agent.test";
const AGENT: &str = include_str!("../agents/default.toml");

/// The first byte of the frame the fake Deepgram takes as the end of the caller's speech.
const END_OF_SPEECH: u8 = 0x01;
/// The byte of utterance `n`'s audio from the fake Cartesia: each turn's is its own.
fn voice(utterance: u64) -> u8 {
    0x10 + (utterance % 200) as u8
}
/// The reply: two clauses.
const REPLY: [&str; 2] = ["Sure. ", "That is fine."];
/// Audio per clause in the latency runs: five whole frames (no padding), so a turn's audio is ten
/// frames.
const CLAUSE_AUDIO: usize = 800;
/// Audio per clause in the conversations: one second, so a reply plays for two.
const SPOKEN_CLAUSE_AUDIO: usize = 8_000;

/// How the providers behave: how long each takes, and how much audio a clause is.
#[derive(Debug, Clone, Copy)]
struct Delays {
    stt: Duration,
    llm: Duration,
    tts: Duration,
    clause_audio: usize,
}

/// Providers that answer at once.
const INSTANT: Delays = Delays {
    stt: Duration::ZERO,
    llm: Duration::ZERO,
    tts: Duration::ZERO,
    clause_audio: CLAUSE_AUDIO,
};

/// Providers that answer after delays typical of the real services.
const REALISTIC: Delays = Delays {
    stt: Duration::from_millis(150),
    llm: Duration::from_millis(200),
    tts: Duration::from_millis(90),
    clause_audio: CLAUSE_AUDIO,
};

/// When things happened, turn by turn.
#[derive(Debug, Default)]
struct Clock {
    /// The greeting's clauses synthesized, and whether its context was closed.
    greeting: (usize, bool),
    /// Provider WebSockets opened.
    sockets: usize,
    speech_end_heard: Vec<Instant>,
    final_sent: Vec<Instant>,
    completion_asked: Vec<Instant>,
    token_sent: Vec<Instant>,
    clause_asked: Vec<Instant>,
    audio_sent: Vec<Instant>,
}

fn main() {
    let turns = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100usize);
    for (what, delays) in [
        ("instant providers", INSTANT),
        (
            "realistic providers (STT 150 ms, LLM 200 ms, TTS 90 ms)",
            REALISTIC,
        ),
    ] {
        run(what, delays, turns);
    }
    memory();
    conversations::run();
}

/// The server's RSS with 10 and 200 calls up, each with its provider sockets open.
fn memory() {
    let clock = Arc::new(Mutex::new(Clock::default()));
    let providers = fakes::start(INSTANT, clock.clone());
    let (server, base) = spawn_cloud_server(&providers, None);
    actix_rt::System::new().block_on(async {
        let sim = TwilioSim::new(base.clone()).signing(AUTH_TOKEN, PUBLIC_HOST);
        let mut calls = 0;
        let mut rss = Vec::new();
        for target in [10usize, 200] {
            while calls < target {
                calls += 1;
                let answer = sim
                    .place_call(&format!("CA{calls:032x}"))
                    .await
                    .expect("voice webhook");
                let media = sim.connect(&answer).await.expect("media stream");
                // Each caller listens (pongs, marks echoed), as Twilio does, and says nothing.
                actix_rt::spawn(async move {
                    let mut media = media;
                    while let Some(received) = media.recv().await {
                        if let Received::Mark(name) = received {
                            let _ = media.send_mark(&name).await;
                        }
                    }
                });
            }
            // Every call's Deepgram and Cartesia sockets are up.
            while clock.lock().unwrap().sockets < 2 * target {
                actix_rt::time::sleep(Duration::from_millis(50)).await;
            }
            rss.push(rss_kib(server.pid()));
        }
        let per_call = (rss[1] - rss[0]) as f64 / 190.0;
        println!(
            "cloud_path memory, ENGINES=cloud with embedded fallbacks: RSS {} MiB with 10 calls, \
             {} MiB with 200; {per_call:.0} KiB per call (two provider sockets each)",
            rss[0] / 1024,
            rss[1] / 1024
        );
    });
}

/// The `phone-agent` binary with `ENGINES=cloud` pointed at `providers` (its embedded fallbacks
/// load too: one worker of each), on `core` if given, once it is ready; and its base URL.
fn spawn_cloud_server(providers: &fakes::Urls, core: Option<usize>) -> (Killed, String) {
    let data = tempfile::tempdir().expect("a temporary directory");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let mut command = match core {
        Some(core) => {
            let mut taskset = std::process::Command::new("taskset");
            taskset.args(["-c", &core.to_string(), env!("CARGO_BIN_EXE_phone-agent")]);
            taskset
        }
        None => std::process::Command::new(env!("CARGO_BIN_EXE_phone-agent")),
    };
    let child = command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs([
            ("ENGINES", "cloud"),
            ("DEEPGRAM_BASE_URL", providers.deepgram.as_str()),
            ("LLM_BASE_URL", providers.llm.as_str()),
            ("CARTESIA_BASE_URL", providers.cartesia.as_str()),
            ("DEEPGRAM_API_KEY", fakes::KEY),
            ("LLM_API_KEY", fakes::KEY),
            ("CARTESIA_API_KEY", fakes::KEY),
            ("LISTEN_ADDR", &format!("127.0.0.1:{port}")),
            ("PUBLIC_HOST", PUBLIC_HOST),
            ("TWILIO_AUTH_TOKEN", AUTH_TOKEN),
            ("DATA_DIR", &data.path().display().to_string()),
            ("HTTP_WORKERS", "1"),
            ("STT_WORKERS", "1"),
            ("TTS_WORKERS", "1"),
            ("MEDIA_IDLE_TIMEOUT", "10m"),
            ("BARGE_IN", "off"),
            ("SILENCE_CHECKIN_S", "0"),
            ("MAX_CALL_DURATION", "off"),
            ("RUST_LOG", "warn"),
        ])
        .spawn()
        .expect("the phone-agent binary starts");
    let server = Killed {
        process: child,
        _data: data,
    };
    let base = format!("http://127.0.0.1:{port}");
    actix_rt::System::new().block_on(async {
        let client = awc::Client::default();
        while client.get(format!("{base}/ready")).send().await.is_err() {
            actix_rt::time::sleep(Duration::from_millis(100)).await;
        }
    });
    (server, base)
}

/// A server process killed when dropped, also when the bench panics; then its data directory is
/// removed.
struct Killed {
    process: std::process::Child,
    _data: tempfile::TempDir,
}

impl Killed {
    /// The process's id; under `taskset`, the server's own (taskset execs it).
    fn pid(&self) -> u32 {
        self.process.id()
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// A process's resident set, from `/proc`.
fn rss_kib(pid: u32) -> u64 {
    ServerProbe::new(pid).rss_kib().expect("VmRSS readable")
}

fn run(what: &str, delays: Delays, turns: usize) {
    let clock = Arc::new(Mutex::new(Clock::default()));
    let providers = fakes::start(delays, clock.clone());
    let base = serve(&providers);
    let mut heard = Vec::with_capacity(turns);
    let mut spoke = Vec::with_capacity(turns);
    actix_rt::System::new().block_on(async {
        let sim = TwilioSim::new(base).signing(AUTH_TOKEN, PUBLIC_HOST);
        let answer = sim
            .place_call(&format!("CA{:032x}", 1))
            .await
            .expect("voice webhook");
        let mut media = sim.connect(&answer).await.expect("media stream");
        // The greeting plays to its last mark before the first turn.
        let mut marks = 0;
        loop {
            let (clauses, closed) = clock.lock().unwrap().greeting;
            if closed && marks == clauses {
                break;
            }
            match media.recv().await.expect("the call goes on") {
                Received::Mark(name) => {
                    media.send_mark(&name).await.expect("mark echoed");
                    marks += 1;
                }
                Received::Media(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        actix_rt::time::sleep(Duration::from_millis(150)).await;
        for n in 0..turns {
            let mut frame = [0xFFu8; 160];
            frame[0] = END_OF_SPEECH;
            frame[1..9].copy_from_slice(&(n as u64).to_be_bytes());
            spoke.push(Instant::now());
            media.send_media(&frame).await.expect("frame sent");
            heard.push(listen(&mut media, n as u64 + 1).await);
            // A caller speaks again once the reply has played: past the playback lead (100 ms)
            // the server still counts as playing after the last frame went out.
            actix_rt::time::sleep(Duration::from_millis(150)).await;
        }
    });
    let clock = clock.lock().unwrap();
    // The greeting is the fake Cartesia's first clause.
    let clause_asked = &clock.clause_asked[1..];
    let audio_sent = &clock.audio_sent[1..];
    println!("cloud_path, {what}: {turns} turns");
    report(
        "transcript -> LLM request",
        &clock.final_sent,
        &clock.completion_asked,
    );
    report(
        "first token -> synthesis request",
        &clock.token_sent,
        clause_asked,
    );
    report("first audio -> first frame heard", audio_sent, &heard);
    // The providers' own time, as their timers kept it, is not ours.
    let overhead: Vec<Instant> = (0..turns)
        .map(|n| {
            let stt = clock.final_sent[n] - clock.speech_end_heard[n];
            let llm = clock.token_sent[n] - clock.completion_asked[n];
            let tts = audio_sent[n] - clause_asked[n];
            heard[n] - (stt + llm + tts)
        })
        .collect();
    report(
        "voice to voice less the providers' own time",
        &spoke,
        &overhead,
    );
}

/// Percentiles of `to[i] - from[i]`.
fn report(what: &str, from: &[Instant], to: &[Instant]) {
    let mut us: Vec<u64> = from
        .iter()
        .zip(to)
        .map(|(from, to)| to.saturating_duration_since(*from).as_micros() as u64)
        .collect();
    us.sort_unstable();
    let at = |q: f64| us[((us.len() - 1) as f64 * q) as usize] as f64 / 1e3;
    println!(
        "  {what}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} samples)",
        at(0.5),
        at(0.99),
        at(1.0),
        us.len()
    );
}

/// Reads `utterance` (the reply's two clauses) to its last mark, echoing marks: when its first
/// frame arrived.
async fn listen(media: &mut MediaConnection, utterance: u64) -> Instant {
    let mut first = None;
    let last_mark = format!("u{utterance}c1");
    loop {
        match media.recv().await.expect("the call goes on") {
            Received::Media(payload) => {
                if payload[0] == voice(utterance) {
                    first.get_or_insert_with(Instant::now);
                }
            }
            Received::Mark(name) => {
                media.send_mark(&name).await.expect("mark echoed");
                if name == last_mark {
                    return first.expect("audio before its last mark");
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Starts the server with the cloud adapters pointed at `providers`, on a thread of its own.
fn serve(providers: &fakes::Urls) -> String {
    let (ready, started) = std_mpsc::channel();
    let providers = providers.clone();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let data = tempfile::tempdir().expect("a temporary directory");
            let vars: HashMap<&str, &str> = [
                ("LISTEN_ADDR", "127.0.0.1:0"),
                ("HTTP_WORKERS", "1"),
                ("PUBLIC_HOST", PUBLIC_HOST),
                ("TWILIO_AUTH_TOKEN", AUTH_TOKEN),
                ("BARGE_IN", "off"),
                ("SILENCE_CHECKIN_S", "0"),
                ("MAX_CALL_DURATION", "off"),
            ]
            .into_iter()
            .collect();
            let mut config = Config::from_lookup(|name| vars.get(name).map(|v| (*v).to_owned()))
                .expect("bench configuration is valid");
            config.security.storage = StorageSettings::in_dir(data.path().to_owned());
            let metrics = Arc::new(CallMetrics::default());
            let engines = EngineSet {
                stt: Arc::new(DeepgramStt::new(DeepgramSettings {
                    base_url: providers.deepgram.clone(),
                    ..DeepgramSettings::new(Secret::new(fakes::KEY))
                })),
                dialogue: Arc::new(LlmDialogue::new(
                    LlmSettings::new(&providers.llm, Secret::new(fakes::KEY)),
                    AgentScript::from_toml(AGENT).expect("the default agent"),
                    false,
                    metrics.clone(),
                )),
                tts: Arc::new(CartesiaTts::new(
                    CartesiaSettings {
                        base_url: providers.cartesia.clone(),
                        ..CartesiaSettings::new(Secret::new(fakes::KEY), "voice")
                    },
                    metrics.clone(),
                )),
            };
            let server = server::start(&config, engines, metrics)
                .await
                .expect("server starts");
            ready
                .send(format!("http://{}", server.local_addr))
                .expect("bench waits");
            let _ = server.stopped().await;
            drop(data);
        });
    });
    started.recv().expect("server started")
}

/// Providers that answer after set delays and note when; they check nothing.
mod fakes {
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    use actix_web::web::{self, Bytes};
    use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
    use actix_ws::Message;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use futures_util::StreamExt as _;
    use serde_json::{json, Value};

    use super::{voice, Clock, Delays, END_OF_SPEECH, REPLY};

    /// The key every fake provider is given.
    pub const KEY: &str = "bench-key";

    /// Where the providers listen.
    #[derive(Debug, Clone)]
    pub struct Urls {
        pub deepgram: String,
        pub llm: String,
        pub cartesia: String,
    }

    type State = web::Data<(Delays, Arc<Mutex<Clock>>)>;

    /// Starts the providers on a thread of their own.
    pub fn start(delays: Delays, clock: Arc<Mutex<Clock>>) -> Urls {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a port");
        let port = listener.local_addr().expect("bound").port();
        std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let state = web::Data::new((delays, clock));
                HttpServer::new(move || {
                    App::new()
                        .app_data(state.clone())
                        .route("/v1/listen", web::get().to(deepgram))
                        .route("/v1/chat/completions", web::post().to(completion))
                        .route("/tts/websocket", web::get().to(cartesia))
                })
                .workers(1)
                .listen(listener)
                .expect("listens")
                .run()
                .await
                .expect("providers run");
            });
        });
        Urls {
            deepgram: format!("ws://127.0.0.1:{port}"),
            llm: format!("http://127.0.0.1:{port}/v1"),
            cartesia: format!("ws://127.0.0.1:{port}"),
        }
    }

    /// A turn's final result, `delays.stt` after the end-of-speech frame.
    async fn deepgram(
        request: HttpRequest,
        body: web::Payload,
        state: State,
    ) -> Result<HttpResponse, actix_web::Error> {
        let (response, mut session, mut messages) = actix_ws::handle(&request, body)?;
        state.1.lock().unwrap().sockets += 1;
        actix_rt::spawn(async move {
            while let Some(Ok(message)) = messages.next().await {
                let Message::Binary(frame) = message else {
                    continue;
                };
                if frame.first() != Some(&END_OF_SPEECH) {
                    continue;
                }
                let turn = u64::from_be_bytes(frame[1..9].try_into().expect("8 bytes"));
                state
                    .1
                    .lock()
                    .unwrap()
                    .speech_end_heard
                    .push(Instant::now());
                actix_rt::time::sleep(state.0.stt).await;
                let result = json!({
                    "type": "Results", "channel_index": [0, 1], "duration": 1.0, "start": 0.0,
                    "is_final": true, "speech_final": true, "from_finalize": false,
                    "channel": {"alternatives": [{"transcript": format!("question number {turn}"),
                        "confidence": 0.99, "words": []}]},
                    "metadata": {"request_id": "bench", "model_info": {}, "model_uuid": "bench"}
                });
                // With `vad_events`, Deepgram says when speech starts, before its results.
                let started = json!({"type": "SpeechStarted", "channel": [0], "timestamp": 0.0});
                if session.text(started.to_string()).await.is_err() {
                    return;
                }
                state.1.lock().unwrap().final_sent.push(Instant::now());
                if session.text(result.to_string()).await.is_err() {
                    return;
                }
            }
        });
        Ok(response)
    }

    fn chunk(delta: Value, finish: Option<&str>) -> Bytes {
        let chunk = json!({"id": "c", "object": "chat.completion.chunk", "created": 0,
            "model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        Bytes::from(format!("data: {chunk}\n\n"))
    }

    /// The reply, its first token `delays.llm` after the request.
    async fn completion(state: State) -> HttpResponse {
        state
            .1
            .lock()
            .unwrap()
            .completion_asked
            .push(Instant::now());
        actix_rt::time::sleep(state.0.llm).await;
        state.1.lock().unwrap().token_sent.push(Instant::now());
        let body: Vec<Result<Bytes, std::io::Error>> = REPLY
            .iter()
            .map(|text| Ok(chunk(json!({"content": text}), None)))
            .chain([
                Ok(chunk(json!({}), Some("stop"))),
                Ok(Bytes::from_static(b"data: [DONE]\n\n")),
            ])
            .collect();
        HttpResponse::Ok()
            .content_type("text/event-stream")
            .streaming(futures_util::stream::iter(body))
    }

    /// A clause's audio, `delays.tts` after its request, then its flush.
    async fn cartesia(
        request: HttpRequest,
        body: web::Payload,
        state: State,
    ) -> Result<HttpResponse, actix_web::Error> {
        let (response, mut session, mut messages) = actix_ws::handle(&request, body)?;
        state.1.lock().unwrap().sockets += 1;
        actix_rt::spawn(async move {
            let mut contexts = Vec::<String>::new();
            while let Some(Ok(message)) = messages.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                let request: Value = serde_json::from_str(&text).expect("JSON");
                let context = request["context_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let utterance: u64 = context
                    .rsplit_once("-u")
                    .and_then(|(_, n)| n.parse().ok())
                    .unwrap_or_default();
                if request["transcript"]
                    .as_str()
                    .unwrap_or_default()
                    .is_empty()
                {
                    if utterance == 0 {
                        state.1.lock().unwrap().greeting.1 = true;
                    }
                    continue;
                }
                if utterance == 0 {
                    state.1.lock().unwrap().greeting.0 += 1;
                }
                let first_clause = !contexts.contains(&context);
                if first_clause {
                    contexts.push(context.clone());
                    state.1.lock().unwrap().clause_asked.push(Instant::now());
                }
                actix_rt::time::sleep(state.0.tts).await;
                let audio = json!({"type": "chunk", "context_id": context, "done": false,
                    "status_code": 206, "data": STANDARD.encode(vec![voice(utterance); state.0.clause_audio])});
                let flushed = json!({"type": "flush_done", "context_id": context,
                    "done": false, "flush_done": true, "flush_id": 1, "status_code": 206});
                if first_clause {
                    state.1.lock().unwrap().audio_sent.push(Instant::now());
                }
                for answer in [audio, flushed] {
                    if session.text(answer.to_string()).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(response)
    }
}

/// Many conversations at once on one core: the `phone-agent` binary pinned to core 0, the
/// providers (realistic delays) and the callers on the other cores. Each caller streams audio at
/// real time both ways for the whole call, as Twilio does: it listens to the greeting, then takes
/// turns of 2 s of speech, each ended by the frame the fake Deepgram hears as its end, listens to
/// the 2 s reply and pauses 1 s. Voice to voice is timed from that frame to the reply's first.
/// Counts rise by a step until one misses the target (p50 < 1 s and p95 < 2 s, every call taken,
/// every reply whole).
mod conversations {
    use std::rc::Rc;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use phone_agent::client::loadgen::probe::{CpuSample, ServerProbe};
    use phone_agent::client::sim::{Received, SimError, TwilioSim};

    use super::{
        fakes, spawn_cloud_server, voice, Clock, Delays, AUTH_TOKEN, END_OF_SPEECH, PUBLIC_HOST,
        REALISTIC, REPLY, SPOKEN_CLAUSE_AUDIO,
    };

    /// The first count, the step, and the last tried.
    const COUNTS: (usize, usize, usize) = (100, 100, 1_000);
    /// Turns each caller takes: about 55 s of call, longer than the ramp, so every call is up at once.
    const TURNS: u64 = 10;
    const FRAME: Duration = Duration::from_millis(20);
    const SPEECH_FRAMES: u32 = 100;
    const PAUSE_FRAMES: u32 = 50;
    /// The greeting has played once its audio has stopped this long.
    const GREETING_OVER: Duration = Duration::from_millis(300);
    /// Calls placed per second (a busy line's arrivals are far slower; this fills the core fast).
    const ARRIVALS_PER_SECOND: u32 = 20;
    /// The server's CPU is read over this window, from when the last call has heard its greeting.
    const CPU_WINDOW: Duration = Duration::from_secs(20);

    /// What one caller measured.
    #[derive(Default)]
    struct Caller {
        voice_to_voice: Vec<Duration>,
        incomplete_replies: usize,
        refused: bool,
        failed: Option<String>,
    }

    /// What one count of conversations measured.
    struct Outcome {
        /// Sorted.
        latencies: Vec<Duration>,
        incomplete: usize,
        refused: usize,
        failed: Vec<String>,
    }

    impl Outcome {
        fn at(&self, q: f64) -> Duration {
            let last = self.latencies.len().saturating_sub(1);
            self.latencies
                .get((last as f64 * q).round() as usize)
                .copied()
                .unwrap_or(Duration::MAX)
        }

        fn meets_target(&self) -> bool {
            self.at(0.5) < Duration::from_secs(1)
                && self.at(0.95) < Duration::from_secs(2)
                && self.incomplete == 0
                && self.refused == 0
                && self.failed.is_empty()
        }
    }

    /// Runs rising counts of conversations, each against a fresh server, and prints what each
    /// measured and the largest that met the target.
    pub fn run() {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let pinned = cores > 1
            && std::process::Command::new("taskset")
                .args(["-a", "-p", "-c", &format!("1-{}", cores - 1)])
                .arg(std::process::id().to_string())
                .stdout(std::process::Stdio::null())
                .status()
                .is_ok_and(|status| status.success());
        println!(
            "cloud_path conversations ({}), realistic providers, {TURNS} turns each, \
             {ARRIVALS_PER_SECOND} calls placed a second:",
            if pinned {
                "server on core 0, callers and providers on the others"
            } else {
                "unpinned: taskset failed or one core"
            }
        );
        let (first, step, last) = COUNTS;
        let mut carried = None;
        for count in (first..=last).step_by(step) {
            let outcome = run_count(count, pinned);
            if !outcome.meets_target() {
                break;
            }
            carried = Some(count);
        }
        match carried {
            Some(count) => println!("  largest count meeting the target: {count}"),
            None => println!("  no count met the target"),
        }
    }

    /// `count` conversations against a fresh server; prints and returns what they measured.
    fn run_count(count: usize, pinned: bool) -> Outcome {
        let delays = Delays {
            clause_audio: SPOKEN_CLAUSE_AUDIO,
            ..REALISTIC
        };
        let providers = fakes::start(delays, Arc::new(Mutex::new(Clock::default())));
        let (server, base) = spawn_cloud_server(&providers, pinned.then_some(0));
        let server_probe = ServerProbe::new(server.pid());
        let bench_probe = ServerProbe::new(std::process::id());
        let ramp = Duration::from_secs(1) * count as u32 / ARRIVALS_PER_SECOND;
        let (callers, cpu) = actix_rt::System::new().block_on(async move {
            let sim = Rc::new(TwilioSim::new(base).signing(AUTH_TOKEN, PUBLIC_HOST));
            let calls: Vec<_> = (0..count)
                .map(|index| {
                    let sim = sim.clone();
                    actix_rt::spawn(async move {
                        actix_rt::time::sleep(ramp * index as u32 / count as u32).await;
                        converse(&sim, index).await
                    })
                })
                .collect();
            let cpu = actix_rt::spawn(async move {
                actix_rt::time::sleep(ramp + Duration::from_secs(5)).await;
                let from = (server_probe.cpu(), bench_probe.cpu());
                actix_rt::time::sleep(CPU_WINDOW).await;
                let percent = |probe: &ServerProbe, from: Option<CpuSample>| {
                    Some(probe.cpu_percent(from?, probe.cpu()?))
                };
                (
                    percent(&server_probe, from.0),
                    percent(&bench_probe, from.1),
                    server_probe.rss_kib(),
                )
            });
            let mut callers = Vec::with_capacity(count);
            for call in calls {
                callers.push(call.await.unwrap_or_else(|error| Caller {
                    failed: Some(error.to_string()),
                    ..Caller::default()
                }));
            }
            (callers, cpu.await.unwrap_or_default())
        });
        drop(server);
        let mut latencies: Vec<Duration> = callers
            .iter()
            .flat_map(|caller| caller.voice_to_voice.iter().copied())
            .collect();
        latencies.sort_unstable();
        let outcome = Outcome {
            latencies,
            incomplete: callers.iter().map(|c| c.incomplete_replies).sum(),
            refused: callers.iter().filter(|c| c.refused).count(),
            failed: callers.iter().filter_map(|c| c.failed.clone()).collect(),
        };
        let (server_cpu, bench_cpu, rss) = cpu;
        let shown = |percent: Option<f64>| percent.map_or("?".to_owned(), |p| format!("{p:.0} %"));
        println!(
            "  {count} conversations: {} turns, voice to voice p50 {} ms, p95 {} ms, max {} ms; \
             {} refused, {} replies incomplete, {} calls failed{}; steady state: server CPU {} of \
             a core, RSS {} MiB, callers and providers {}",
            outcome.latencies.len(),
            outcome.at(0.5).as_millis(),
            outcome.at(0.95).as_millis(),
            outcome.at(1.0).as_millis(),
            outcome.refused,
            outcome.incomplete,
            outcome.failed.len(),
            outcome
                .failed
                .first()
                .map(|f| format!(" (first: {f})"))
                .unwrap_or_default(),
            shown(server_cpu),
            rss.unwrap_or_default() / 1024,
            shown(bench_cpu),
        );
        outcome
    }

    /// Where a caller is in its call.
    enum Phase {
        /// Listening to the greeting; audio last heard then.
        Greeting(Option<Instant>),
        /// Saying turn `n`; frames said so far.
        Speaking(u64, u32),
        /// Listening to the reply to turn `n`, said then; its first frame and the frames heard.
        Listening(u64, Instant, Option<Instant>, usize),
        /// After turn `n`; frames of pause so far.
        Pausing(u64, u32),
    }

    /// One caller's whole call.
    async fn converse(sim: &TwilioSim, index: usize) -> Caller {
        let mut caller = Caller::default();
        let answer = match sim.place_call(&format!("CA{index:032x}")).await {
            Ok(answer) => answer,
            Err(SimError::Twiml(twiml)) if twiml.contains("<Hangup") => {
                caller.refused = true;
                return caller;
            }
            Err(error) => return failed(caller, error.to_string()),
        };
        let mut media = match sim.connect(&answer).await {
            Ok(media) => media,
            Err(error) => return failed(caller, error.to_string()),
        };
        let reply_frames = REPLY.len() * SPOKEN_CLAUSE_AUDIO / 160;
        let mut ticker = actix_rt::time::interval(FRAME);
        let mut phase = Phase::Greeting(None);
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    let now = Instant::now();
                    let mut frame = [0xFFu8; 160];
                    phase = match phase {
                        Phase::Greeting(Some(heard)) if now - heard >= GREETING_OVER => {
                            Phase::Speaking(1, 0)
                        }
                        Phase::Speaking(turn, said) if said + 1 == SPEECH_FRAMES => {
                            frame[0] = END_OF_SPEECH;
                            frame[1..9].copy_from_slice(&turn.to_be_bytes());
                            Phase::Listening(turn, now, None, 0)
                        }
                        Phase::Speaking(turn, said) => Phase::Speaking(turn, said + 1),
                        Phase::Pausing(turn, _) if turn == TURNS => break,
                        Phase::Pausing(turn, paused) if paused == PAUSE_FRAMES => {
                            Phase::Speaking(turn + 1, 0)
                        }
                        Phase::Pausing(turn, paused) => Phase::Pausing(turn, paused + 1),
                        other => other,
                    };
                    if let Err(error) = media.send_media(&frame).await {
                        return failed(caller, error.to_string());
                    }
                }
                received = media.recv() => match received {
                    Some(Received::Media(audio)) => match &mut phase {
                        Phase::Greeting(heard) => *heard = Some(Instant::now()),
                        Phase::Listening(turn, _, first, frames) if audio[0] == voice(*turn) => {
                            first.get_or_insert_with(Instant::now);
                            *frames += 1;
                        }
                        _ => {}
                    },
                    Some(Received::Mark(name)) => {
                        if let Err(error) = media.send_mark(&name).await {
                            return failed(caller, error.to_string());
                        }
                        if let Phase::Listening(turn, said, first, frames) = phase {
                            if name == format!("u{turn}c{}", REPLY.len() - 1) {
                                match first {
                                    Some(first) => caller.voice_to_voice.push(first - said),
                                    None => caller.incomplete_replies += 1,
                                }
                                if frames != reply_frames {
                                    caller.incomplete_replies += 1;
                                }
                                phase = Phase::Pausing(turn, 0);
                            }
                        }
                    }
                    Some(Received::Close { code, reason }) => {
                        return failed(caller, format!("closed by the server: {code:?} {reason}"));
                    }
                    None => return failed(caller, "socket lost".to_owned()),
                    Some(_) => {}
                }
            }
        }
        let _ = media.send_stop().await;
        let _ = media.close().await;
        caller
    }

    fn failed(mut caller: Caller, reason: String) -> Caller {
        caller.failed = Some(reason);
        caller
    }
}
