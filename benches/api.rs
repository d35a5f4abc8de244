//! The call-management API under load, on SQLite: latency percentiles and requests per second of
//! `POST /api/calls` (placed now through the local Twilio emulator, and scheduled) and
//! `GET /api/calls/{id}`; then Server-Sent Events fan-out: subscribers on one live call, each
//! caller turn's delivery timed from the frame that made it to each subscriber reading it.
//!
//! `cargo bench --bench api -- [CONNECTIONS] [SECONDS] [SUBSCRIBERS]` (defaults 8, 5 and 100).
//! The server (one HTTP worker) and the emulator run on threads of their own; the clients share
//! the bench's thread. Rate limits are raised out of the way: this measures the work, not the
//! limits.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use awc::http::Method;
use futures_util::StreamExt as _;
use phone_agent::client::sim::TwilioSim;
use phone_agent::client::twilio_emulator::settings::{Answer, EmulatorSettings};
use phone_agent::client::twilio_emulator::TwilioEmulator;
use phone_agent::config::{Config, StorageSettings};
use phone_agent::engines;
use phone_agent::guard::admin::{ChangedBy, NewToken};
use phone_agent::guard::auth::CreateToken;
use phone_agent::guard::token::Scope;
use phone_agent::server;
use serde_json::{json, Value};

const AUTH_TOKEN: &str = "bench-twilio-auth-token";
const PUBLIC_HOST: &str = "agent.test";

/// Where the server listens and the token the clients send.
struct Target {
    base: String,
    token: String,
}

fn main() {
    let numbers: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let connections = numbers.first().copied().unwrap_or(8) as usize;
    let seconds = numbers.get(1).copied().unwrap_or(5);
    let subscribers = numbers.get(2).copied().unwrap_or(100) as usize;
    let phase = Duration::from_secs(seconds);

    let data = tempfile::tempdir().expect("a temporary directory");
    let target = serve(data.path().to_owned());
    actix_rt::System::new().block_on(async {
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(30))
            .finish();
        let target = Rc::new(Target {
            base: target.base,
            token: target.token,
        });
        let now = json!({ "to": "+14155550100" });
        let later = json!({ "to": "+14155550100", "scheduled_at": "2099-01-01T00:00:00Z" });
        let mut ids = Vec::new();
        for (what, body) in [
            ("POST /api/calls (placed now)", now),
            ("POST /api/calls (scheduled)", later),
        ] {
            let bodies = load(&client, &target, connections, phase, move |_| {
                (Method::POST, "/api/calls".to_owned(), Some(body.clone()))
            })
            .await;
            report(what, connections, phase, &bodies.0);
            ids.extend(bodies.1);
        }
        let ids = Rc::new(ids);
        let (latencies, _) = load(&client, &target, connections, phase, move |n| {
            (
                Method::GET,
                format!("/api/calls/{}", ids[n % ids.len()]),
                None,
            )
        })
        .await;
        report("GET /api/calls/{id}", connections, phase, &latencies);
        fan_out(&client, &target, subscribers, phase).await;
    });
}

/// Starts the emulator and the server (one HTTP worker, SQLite in `data`) on a thread of their
/// own, and makes a token with every scope.
fn serve(data: std::path::PathBuf) -> Target {
    let (ready, started) = std_mpsc::channel();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|listener| listener.local_addr())
                .expect("a free port")
                .port();
            let api = format!("http://127.0.0.1:{port}");
            let vars: HashMap<&str, &str> = [
                ("LISTEN_ADDR", "127.0.0.1:0"),
                ("HTTP_WORKERS", "1"),
                ("PUBLIC_HOST", PUBLIC_HOST),
                ("ENGINES", "loopback"),
                ("TWILIO_AUTH_TOKEN", AUTH_TOKEN),
                ("TWILIO_API_BASE", &api),
                ("TWILIO_FROM", "+14155550199"),
                ("RATE_LIMIT_API_READ", "10000000/min"),
                ("RATE_LIMIT_API_WRITE", "10000000/min"),
                ("RATE_LIMIT_TWILIO", "10000000/min"),
            ]
            .into_iter()
            .collect();
            let mut config = Config::from_lookup(|name| vars.get(name).map(|v| (*v).to_owned()))
                .expect("bench configuration is valid");
            config.security.storage = StorageSettings::in_dir(data);
            let server = server::start(&config, engines::loopback_set(), Arc::default())
                .await
                .expect("server starts");
            let base = format!("http://{}", server.local_addr);
            let mut emulator = EmulatorSettings::new(base.clone(), AUTH_TOKEN);
            emulator.listen = ([127, 0, 0, 1], port).into();
            // Every placed call ends busy: the load is the API's and the callbacks', no media.
            emulator.callee.answer = Answer::Busy;
            let _emulator = TwilioEmulator::start(emulator)
                .await
                .expect("emulator starts");
            let token = server
                .auth
                .send(CreateToken {
                    token: NewToken {
                        name: "bench".into(),
                        scopes: Scope::ALL.into_iter().collect(),
                        expires_in: None,
                    },
                    by: ChangedBy::Cli,
                })
                .await
                .expect("auth actor answers")
                .expect("token created")
                .token;
            ready.send(Target { base, token }).expect("bench waits");
            let _ = server.stopped().await;
        });
    });
    started.recv().expect("server started")
}

/// `connections` clients sending `request(n)` back to back for `phase`: each request's latency
/// in µs, and the `id` of each JSON body that has one.
async fn load(
    client: &awc::Client,
    target: &Rc<Target>,
    connections: usize,
    phase: Duration,
    request: impl Fn(usize) -> (Method, String, Option<Value>) + 'static,
) -> (Vec<u64>, Vec<String>) {
    let request = Rc::new(request);
    let end = Instant::now() + phase;
    let workers = (0..connections).map(|worker| {
        let (client, target, request) = (client.clone(), target.clone(), request.clone());
        async move {
            let (mut latencies, mut ids) = (Vec::new(), Vec::new());
            let mut n = worker;
            while Instant::now() < end {
                let (method, path, body) = request(n);
                let sent = Instant::now();
                let send = client
                    .request(method, format!("{}{path}", target.base))
                    .bearer_auth(&target.token);
                let mut response = match body {
                    Some(body) => send.send_json(&body).await,
                    None => send.send().await,
                }
                .expect("server answers");
                let body = response.body().await.expect("body");
                latencies.push(sent.elapsed().as_micros() as u64);
                assert!(response.status().is_success(), "{path}: {body:?}");
                if let Ok(Value::Object(map)) = serde_json::from_slice(&body) {
                    if let Some(Value::String(id)) = map.get("id") {
                        ids.push(id.clone());
                    }
                }
                n += connections;
            }
            (latencies, ids)
        }
    });
    let mut all = (Vec::new(), Vec::new());
    for (latencies, ids) in futures_util::future::join_all(workers).await {
        all.0.extend(latencies);
        all.1.extend(ids);
    }
    all.0.sort_unstable();
    all
}

fn report(what: &str, connections: usize, phase: Duration, latencies_us: &[u64]) {
    let at = |q: f64| latencies_us[((latencies_us.len() - 1) as f64 * q) as usize] as f64 / 1e3;
    println!(
        "api {what}: {connections} connections, {} requests, {:.0} req/s; p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        latencies_us.len(),
        latencies_us.len() as f64 / phase.as_secs_f64(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
}

/// `subscribers` streams of one live call's events while its caller sends a frame every 20 ms
/// for `phase`; each caller turn (loopback makes one of every frame) is timed from its frame's
/// sending to each subscriber reading it.
async fn fan_out(client: &awc::Client, target: &Rc<Target>, subscribers: usize, phase: Duration) {
    let sim = TwilioSim::new(target.base.clone()).signing(AUTH_TOKEN, PUBLIC_HOST);
    let call_sid = format!("CA{:032x}", 0xfa17_u32);
    let answer = sim
        .place_call(&call_sid)
        .await
        .expect("voice webhook answers");
    let mut media = sim.connect(&answer).await.expect("media stream opens");
    let mut streams = Vec::new();
    for _ in 0..subscribers {
        let response = client
            .get(format!("{}/api/calls/{call_sid}/events", target.base))
            .bearer_auth(&target.token)
            .timeout(phase * 4)
            .send()
            .await
            .expect("events stream opens");
        assert_eq!(response.status(), 200);
        streams.push(response);
    }
    let sent_at = Rc::new(std::cell::RefCell::new(HashMap::<String, Instant>::new()));
    let frames = phase.as_millis() as u32 / 20;
    let readers = streams.into_iter().map(|mut stream| {
        let sent_at = sent_at.clone();
        async move {
            let (mut latencies, mut pending) = (Vec::new(), String::new());
            while latencies.len() < frames as usize {
                let Some(Ok(chunk)) = stream.next().await else {
                    break;
                };
                let received = Instant::now();
                pending.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = pending.find("\n\n") {
                    let record: String = pending.drain(..end + 2).collect();
                    if let Some(text) = caller_turn(&record) {
                        if let Some(sent) = sent_at.borrow().get(&text) {
                            latencies.push(received.duration_since(*sent).as_micros() as u64);
                        }
                    }
                }
            }
            latencies
        }
    });
    let readers = futures_util::future::join_all(readers);
    let caller = async {
        let origin = Instant::now();
        for n in 0..frames {
            actix_rt::time::sleep_until((origin + Duration::from_millis(20) * n).into()).await;
            let mut payload = [0xffu8; 160];
            payload[..4].copy_from_slice(&n.to_be_bytes());
            let text: String = payload.iter().map(|b| format!("{b:02x}")).collect();
            sent_at.borrow_mut().insert(text, Instant::now());
            media.send_media(&payload).await.expect("frame sent");
        }
    };
    let (per_subscriber, ()) = futures_util::join!(readers, caller);
    let delivered: usize = per_subscriber.iter().map(Vec::len).sum();
    let mut latencies: Vec<u64> = per_subscriber.into_iter().flatten().collect();
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize] as f64 / 1e3;
    println!(
        "api SSE fan-out: {subscribers} subscribers on one call, {frames} caller turns each: \
         {delivered} of {} delivered; frame to subscriber p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        frames as usize * subscribers,
        at(0.5),
        at(0.99),
        at(1.0)
    );
}

/// The text of a caller's `turn` event.
fn caller_turn(record: &str) -> Option<String> {
    let data = record
        .lines()
        .find_map(|line| line.strip_prefix("data: "))?;
    let event: Value = serde_json::from_str(data).ok()?;
    (event["kind"] == "turn" && event["data"]["speaker"] == "caller")
        .then(|| event["data"]["text"].as_str().map(str::to_owned))
        .flatten()
}
