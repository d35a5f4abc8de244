//! The webhook outbox under call load: `CALLS` loopback calls (every 20 ms frame a turn, so every
//! frame a `call.turn` message) stream for `SECONDS` through `phone-agent loadgen`, first with no
//! endpoint registered, then with one on 127.0.0.1 subscribed to every event, then without it
//! again (the noise between runs). Prints the calls' media→media latency for each run (the
//! loadgen report), and the outbox's throughput: messages delivered per second while the calls
//! ran, the backlog they left, and how fast it drained.
//!
//! `cargo bench --bench outbox -- [CALLS] [SECONDS]` (defaults 100 and 10). The server (one HTTP
//! worker, SQLite), the endpoint and the load generator run on threads of their own.
//!
//! Results and the machine they were measured on: `docs/benchmarks.md`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use phone_agent::client::loadgen::{self, LoadgenArgs};
use phone_agent::client::sim::{AuthTokenArgs, TwilioAccountArgs};
use phone_agent::config::{Config, StorageSettings};
use phone_agent::engines;
use phone_agent::guard::admin::{ChangedBy, NewToken};
use phone_agent::guard::auth::CreateToken;
use phone_agent::guard::token::Scope;
use phone_agent::server;
use serde_json::json;

const AUTH_TOKEN: &str = "bench-twilio-auth-token";
const PUBLIC_HOST: &str = "agent.test";

fn main() {
    let numbers: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let calls = numbers.first().copied().unwrap_or(100) as usize;
    let seconds = numbers.get(1).copied().unwrap_or(10);
    let data = tempfile::tempdir().expect("a temporary directory");
    let (base, token) = serve(data.path().to_owned());
    let (url, received) = endpoint();
    let load = |label: &str| {
        println!("-- {calls} loopback calls × {seconds} s, {label}");
        let ok = loadgen::run(LoadgenArgs {
            url: base.clone(),
            account: TwilioAccountArgs {
                auth: AuthTokenArgs {
                    twilio_auth_token: Some(AUTH_TOKEN.into()),
                    data_dir: data.path().to_owned(),
                },
                public_host: Some(PUBLIC_HOST.into()),
            },
            calls,
            duration: Duration::from_secs(seconds),
            ws_url: None,
            ramp: None,
            spread: Duration::from_secs(1),
            turn_frames: 1,
            p99_limit: Duration::from_millis(50),
            settle: Duration::ZERO,
            threads: 1,
            idle: false,
            server_pid: None,
            label: "phone-agent".into(),
            json: None,
        });
        assert!(ok, "every call completes");
    };

    load("no webhook endpoint");

    let endpoint_id = register(&base, &token, &url);
    let started = Instant::now();
    let before = received.load(Ordering::Relaxed);
    load("an endpoint on 127.0.0.1 receiving every event");
    let ran = started.elapsed();
    let during = received.load(Ordering::Relaxed) - before;
    // The backlog drains: wait until a second passes with nothing delivered.
    let drain_start = Instant::now();
    let mut last = received.load(Ordering::Relaxed);
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let now = received.load(Ordering::Relaxed);
        if now == last {
            break;
        }
        last = now;
    }
    let drained = drain_start.elapsed().saturating_sub(Duration::from_secs(1));
    let total = last - before;
    println!(
        "outbox: {during} messages delivered while the calls ran ({:.0}/s over {:.1} s); \
         backlog {} then drained in {:.1} s ({:.0}/s); {total} in all",
        during as f64 / ran.as_secs_f64(),
        ran.as_secs_f64(),
        total - during,
        drained.as_secs_f64(),
        (total - during) as f64 / drained.as_secs_f64().max(0.001),
    );

    // The first run again, for the noise between runs of the same load.
    unregister(&base, &token, &endpoint_id);
    load("no webhook endpoint again");
}

/// Starts the server on a thread of its own: its base URL and a `webhooks:admin` token.
fn serve(data: std::path::PathBuf) -> (String, String) {
    let (ready, started) = mpsc::channel();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let vars: HashMap<&str, &str> = [
                ("LISTEN_ADDR", "127.0.0.1:0"),
                ("HTTP_WORKERS", "1"),
                ("PUBLIC_HOST", PUBLIC_HOST),
                ("ENGINES", "loopback"),
                ("TWILIO_AUTH_TOKEN", AUTH_TOKEN),
                ("WEBHOOK_ALLOW_PRIVATE", "true"),
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
            let token = server
                .auth
                .send(CreateToken {
                    token: NewToken {
                        name: "bench".into(),
                        scopes: [Scope::WebhooksAdmin].into_iter().collect(),
                        expires_in: None,
                    },
                    by: ChangedBy::Cli,
                })
                .await
                .expect("auth actor answers")
                .expect("token created")
                .token;
            ready
                .send((format!("http://{}", server.local_addr), token))
                .expect("bench waits");
            server.stopped().await.expect("server runs");
        });
    });
    started.recv().expect("server started")
}

/// A webhook receiver on a thread of its own: its URL and the count of messages it took. It
/// stands for the customer's machine: it runs at the dispatcher's low priority, so that sharing
/// this machine's two cores it does not take more from the calls than a remote receiver would.
fn endpoint() -> (String, Arc<AtomicU64>) {
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let (ready, started) = mpsc::channel();
    std::thread::spawn(move || {
        rustix::process::setpriority_process(None, 10).expect("a lower priority");
        actix_rt::System::new().block_on(async move {
            let counter = web::Data::from(counter);
            let server = HttpServer::new(move || {
                App::new().app_data(counter.clone()).route(
                    "/hook",
                    web::post().to(|count: web::Data<AtomicU64>| async move {
                        count.fetch_add(1, Ordering::Relaxed);
                        HttpResponse::NoContent().finish()
                    }),
                )
            })
            .workers(1)
            .disable_signals()
            .bind("127.0.0.1:0")
            .expect("binds");
            let url = format!("http://{}/hook", server.addrs()[0]);
            ready.send(url).expect("bench waits");
            server.run().await.expect("endpoint runs");
        });
    });
    (started.recv().expect("endpoint started"), received)
}

/// Registers `url` for every event type; the endpoint's id.
fn register(base: &str, token: &str, url: &str) -> String {
    let request = awc::Client::new()
        .post(format!("{base}/api/webhooks"))
        .bearer_auth(token);
    let body = json!({ "url": url });
    actix_rt::System::new().block_on(async move {
        let mut response = request.send_json(&body).await.expect("server answers");
        assert_eq!(response.status(), 201, "endpoint registered");
        let created: serde_json::Value = response.json().await.expect("JSON");
        created["id"].as_str().expect("an id").to_owned()
    })
}

/// Removes the endpoint `id`.
fn unregister(base: &str, token: &str, id: &str) {
    let request = awc::Client::new()
        .delete(format!("{base}/api/webhooks/{id}"))
        .bearer_auth(token);
    actix_rt::System::new().block_on(async move {
        let response = request.send().await.expect("server answers");
        assert_eq!(response.status(), 204, "endpoint removed");
    });
}
