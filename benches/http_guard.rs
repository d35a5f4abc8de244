//! Authenticated `GET` throughput with the full middleware chain (request id, security headers,
//! error envelope, rate limits, bearer-token check, scope check) as a ratio to the same actix-web
//! handler without them, in one run: `cargo bench --bench http_guard`.
//!
//! Both apps serve a small JSON document on one worker thread; the client runs on another
//! thread with 32 keep-alive connections. The two are measured alternately, twice each.
//! Results and the machine they were measured on: `docs/benchmarks.md`.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Actor as _;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpResponse, HttpServer};
use phone_agent::guard::admin::{self, ChangedBy, NewToken};
use phone_agent::guard::audit::AuditLog;
use phone_agent::guard::auth::{reload, AuthActor, AuthSettings, Authenticator};
use phone_agent::guard::client_ip::{ClientNetworks, IpList, ProxyTrust};
use phone_agent::guard::penalty::PenaltySettings;
use phone_agent::guard::rate_limit::{Limit, RateLimitSettings, RateLimits};
use phone_agent::guard::token::Scope;
use phone_agent::guard::Guard;
use phone_agent::http::api::{Authorized, CallsRead};
use phone_agent::http::{frame, guarded};
use phone_agent::store::crypto::DataKey;
use phone_agent::store::Store;

const CONNECTIONS: usize = 32;
const ROUND: Duration = Duration::from_secs(4);

async fn bare() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "calls": [] }))
}

async fn guarded_handler(_: Authorized<CallsRead>) -> HttpResponse {
    bare().await
}

fn main() {
    let (ready, started) = std::sync::mpsc::channel();
    // The servers' system lives on its own thread for the whole run.
    std::thread::spawn(move || {
        let dir = tempfile::tempdir().unwrap();
        actix::System::new().block_on(async move {
            let key = DataKey::from_base64("q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=").unwrap();
            let url = format!("sqlite://{}/bench.db", dir.path().display());
            let store = Store::open(&url, key).await.unwrap();
            let request = NewToken {
                name: "bench".into(),
                scopes: [Scope::CallsRead].into_iter().collect(),
                expires_in: None,
            };
            let token = admin::create(&store, &request, &ChangedBy::Cli)
                .await
                .unwrap()
                .token;
            let penalties = PenaltySettings {
                threshold: 10,
                window: Duration::from_secs(60),
                base: Duration::from_secs(60),
                cap: Duration::from_secs(3600),
            };
            let audit = Arc::new(AuditLog::default());
            let authenticator = Arc::new(Authenticator::new(
                penalties,
                ClientNetworks::default(),
                audit.clone(),
            ));
            reload(&store, &authenticator).await.unwrap();
            let settings = AuthSettings {
                lockout: penalties,
                cache_refresh: Duration::from_secs(30),
                flush_interval: Duration::from_secs(2),
            };
            let auth_actor = AuthActor::new(store, authenticator.clone(), audit, settings).start();
            let limit = Limit::parse("1000000/s").unwrap();
            let guard = web::Data::new(Guard {
                authenticator,
                auth_actor,
                rate_limits: Arc::new(RateLimits::new(
                    &RateLimitSettings {
                        limits: [limit; 4],
                        token_limits: [limit; 4],
                        blocks: penalties,
                        allow: IpList::default(),
                        deny: IpList::default(),
                    },
                    ClientNetworks::default(),
                )),
                proxy_trust: ProxyTrust::None,
            });
            let bare_listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let guarded_listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addrs = (
                bare_listener.local_addr().unwrap(),
                guarded_listener.local_addr().unwrap(),
            );
            let bare_server =
                HttpServer::new(|| App::new().route("/api/calls", web::get().to(bare)))
                    .workers(1)
                    .listen(bare_listener)
                    .unwrap()
                    .run();
            let guarded_server = HttpServer::new(move || {
                App::new()
                    .wrap(from_fn(frame::frame))
                    .app_data(guard.clone())
                    .service(
                        web::scope("")
                            .wrap(from_fn(guarded::guard))
                            .route("/api/calls", web::get().to(guarded_handler)),
                    )
            })
            .workers(1)
            .listen(guarded_listener)
            .unwrap()
            .run();
            actix_web::rt::spawn(bare_server);
            actix_web::rt::spawn(guarded_server);
            ready.send((addrs.0, addrs.1, token)).unwrap();
            std::future::pending::<()>().await;
        });
    });
    let (bare_addr, guarded_addr, token) = started.recv().unwrap();
    let mut rates = Vec::new();
    for round in 0..4 {
        let (name, addr, auth) = if round % 2 == 0 {
            ("bare", bare_addr, None)
        } else {
            ("guarded", guarded_addr, Some(token.clone()))
        };
        let rate = measure(format!("http://{addr}/api/calls"), auth);
        println!("{name:8} {rate:>9.0} requests/s");
        rates.push(rate);
    }
    let bare_rate = (rates[0] + rates[2]) / 2.0;
    let guarded_rate = (rates[1] + rates[3]) / 2.0;
    println!(
        "guarded / bare throughput: {:.2} ({guarded_rate:.0} / {bare_rate:.0} requests/s, {CONNECTIONS} connections, 1 server worker)",
        guarded_rate / bare_rate
    );
}

/// Requests per second against `url` over [`ROUND`].
fn measure(url: String, token: Option<String>) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let counter = done.clone();
    std::thread::spawn(move || {
        actix::System::new().block_on(async move {
            let client = awc::Client::builder()
                .connector(awc::Connector::new().limit(CONNECTIONS))
                .finish();
            let deadline = Instant::now() + ROUND;
            let tasks: Vec<_> = (0..CONNECTIONS)
                .map(|_| {
                    let client = client.clone();
                    let url = url.clone();
                    let token = token.clone();
                    let counter = counter.clone();
                    actix_web::rt::spawn(async move {
                        while Instant::now() < deadline {
                            let mut request = client.get(&url);
                            if let Some(token) = &token {
                                request = request.bearer_auth(token);
                            }
                            let mut response = request.send().await.expect("server answers");
                            assert!(response.status().is_success(), "{}", response.status());
                            response.body().await.unwrap();
                            counter.fetch_add(1, Ordering::Relaxed);
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        })
    })
    .join()
    .unwrap();
    done.load(Ordering::Relaxed) as f64 / ROUND.as_secs_f64()
}
