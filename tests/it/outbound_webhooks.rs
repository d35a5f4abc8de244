//! Outbound webhooks on a real server: call events posted to an endpoint on 127.0.0.1, their
//! signatures checked here from HMAC's definition (not by the code under test), retries,
//! dead letters and replays, SSRF refusals at registration and at delivery, the follow-up email
//! and its status from the provider's events, and a server killed mid-delivery that delivers
//! everything after its restart.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{TcpListener, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::http::Method;
use actix_web::web::{self, Bytes};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use phone_agent::client::sim::TwilioSim;
use phone_agent::guard::token::Scope;
use phone_agent::store::calls::{Direction, FollowUpStatus, NewCall};
use phone_agent::store::status::CallStatus;
use phone_agent_actors::engines::Extraction;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::resend::fake::{self, FakeResend};
use crate::support::hmac::hmac_sha256;
use crate::support::process;
use crate::support::*;

/// A request the endpoint received.
#[derive(Debug, Clone)]
pub(crate) struct Hook {
    pub(crate) id: String,
    timestamp: String,
    signature: String,
    body: String,
}

impl Hook {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }

    /// Whether one of its signatures is the HMAC of `id.timestamp.body` under `secret`.
    pub(crate) fn signed_with(&self, secret: &str) -> bool {
        let key = BASE64.decode(secret.trim_start_matches("whsec_")).unwrap();
        let tag = hmac_sha256(
            &key,
            &[
                self.id.as_bytes(),
                b".",
                self.timestamp.as_bytes(),
                b".",
                self.body.as_bytes(),
            ],
        );
        let expected = format!("v1,{}", BASE64.encode(tag));
        self.signature.split(' ').any(|entry| entry == expected)
    }
}

#[derive(Default)]
struct Behaviour {
    /// Requests answered 500 before the endpoint answers 204.
    failing: AtomicUsize,
    /// Requests held unanswered (as by a stuck receiver) before the endpoint answers.
    holding: AtomicUsize,
}

/// A customer's endpoint on 127.0.0.1 that records what it receives.
pub(crate) struct Endpoint {
    pub(crate) url: String,
    behaviour: web::Data<Behaviour>,
    received: web::Data<Mutex<Vec<Hook>>>,
    count: watch::Receiver<usize>,
    handle: ServerHandle,
}

impl Endpoint {
    pub(crate) fn start() -> Self {
        let behaviour = web::Data::new(Behaviour::default());
        let received = web::Data::new(Mutex::new(Vec::new()));
        let (counter, count) = watch::channel(0usize);
        let counter = web::Data::new(counter);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let (b, r, c) = (behaviour.clone(), received.clone(), counter.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(b.clone())
                .app_data(r.clone())
                .app_data(c.clone())
                .route("/hook", web::post().to(receive))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        actix_rt::spawn(server);
        Self {
            url,
            behaviour,
            received,
            count,
            handle,
        }
    }

    fn received(&self) -> Vec<Hook> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until it has received `n` requests.
    pub(crate) async fn until(&mut self, n: usize) -> Vec<Hook> {
        within(self.count.wait_for(|&count| count >= n))
            .await
            .unwrap();
        self.received()
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

async fn receive(
    request: HttpRequest,
    body: Bytes,
    behaviour: web::Data<Behaviour>,
    received: web::Data<Mutex<Vec<Hook>>>,
    counter: web::Data<watch::Sender<usize>>,
) -> HttpResponse {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    received.lock().unwrap().push(Hook {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body: String::from_utf8(body.to_vec()).unwrap(),
    });
    counter.send_modify(|n| *n += 1);
    let take = |n: &AtomicUsize| {
        n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    };
    if take(&behaviour.holding) {
        std::future::pending::<()>().await;
    }
    if take(&behaviour.failing) {
        return HttpResponse::InternalServerError().finish();
    }
    HttpResponse::NoContent().finish()
}

/// The API's status and JSON for a request with `token`.
async fn api(
    base: &str,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let request = awc::Client::new()
        .request(method, format!("{base}{path}"))
        .bearer_auth(token);
    let mut response = match body {
        Some(body) => request.send_json(&body).await,
        None => request.send().await,
    }
    .expect("server answers");
    let json = response.json().await.unwrap_or(Value::Null);
    (response.status().as_u16(), json)
}

/// Registers `url` for `events`: the endpoint's id and secret.
pub(crate) async fn register(
    base: &str,
    token: &str,
    url: &str,
    events: &[&str],
) -> (String, String) {
    let body = json!({ "url": url, "events": events });
    let (status, created) = api(base, token, Method::POST, "/api/webhooks", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    (
        created["id"].as_str().unwrap().to_owned(),
        created["secret"].as_str().unwrap().to_owned(),
    )
}

/// The deliveries matching `query` once `ready` holds for them.
pub(crate) async fn deliveries_until(
    base: &str,
    token: &str,
    query: &str,
    ready: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    within(async {
        loop {
            let path = format!("/api/webhooks/deliveries?{query}");
            let (status, page) = api(base, token, Method::GET, &path, None).await;
            assert_eq!(status, 200, "{page}");
            let deliveries = page["deliveries"].as_array().unwrap().clone();
            if ready(&deliveries) {
                return deliveries;
            }
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

/// One short call through the simulator: started, a few frames, Twilio's stop.
async fn short_call(sim: &TwilioSim, call_sid: &str) {
    let answer = sim
        .place_call(call_sid)
        .await
        .expect("voice webhook answers");
    let mut media = sim.connect(&answer).await.expect("media socket opens");
    exchange(&mut media, 1, 0, 2).await;
    media.send_stop().await.unwrap();
    expect_close(&mut media).await;
}

const PRIVATE_ALLOWED: (&str, &str) = ("WEBHOOK_ALLOW_PRIVATE", "true");

#[actix_rt::test]
async fn call_events_reach_an_endpoint_signed_as_standard_webhooks_say() {
    let server = TestServer::start(&[PRIVATE_ALLOWED]).await;
    let token = server.token(&[Scope::WebhooksAdmin]).await;
    let mut endpoint = Endpoint::start();
    let events = ["call.started", "call.completed"];
    let (endpoint_id, secret) = register(&server.base, &token, &endpoint.url, &events).await;

    short_call(&server.sim, &call_sid(1)).await;
    let hooks = endpoint.until(2).await;
    let now = phone_agent::store::now_ms() / 1000;
    let mut types = BTreeSet::new();
    for hook in &hooks {
        assert!(hook.signed_with(&secret), "{hook:?}");
        assert!(!hook.signed_with("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
        assert!(hook.id.starts_with("msg_"), "{}", hook.id);
        let sent: i64 = hook.timestamp.parse().unwrap();
        assert!((now - sent).abs() < 60, "{sent} vs {now}");
        let message = hook.json();
        assert_eq!(message["data"]["call"]["call_sid"], call_sid(1).as_str());
        assert_eq!(message["data"]["call"]["from"], "+1******0100", "masked");
        types.insert(message["type"].as_str().unwrap().to_owned());
        if message["type"] == "call.completed" {
            assert_eq!(message["data"]["call"]["end_reason"], "twilio_stop");
            assert!(message["data"]["latency"]["replies"].is_u64(), "{message}");
        }
    }
    assert_eq!(types, BTreeSet::from(events.map(str::to_owned)));

    // The API lists both delivered, by endpoint and by call (CallSid accepted).
    let query = format!("endpoint_id={endpoint_id}");
    let delivered = deliveries_until(&server.base, &token, &query, |all| {
        all.len() == 2 && all.iter().all(|d| d["state"] == "delivered")
    })
    .await;
    let listed: BTreeSet<&str> = delivered
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    let received: BTreeSet<&str> = hooks.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(listed, received);
    assert_eq!(delivered[0]["last_status"], 204);
    let by_call = format!("call_id={}", call_sid(1));
    assert_eq!(
        deliveries_until(&server.base, &token, &by_call, |all| all.len() == 2)
            .await
            .len(),
        2
    );

    server
        .metrics_until(|text| {
            text.contains(r#"phone_agent_webhooks_total{direction="out",outcome="delivered"} 2"#)
        })
        .await;

    // Lists never show a secret; other scopes may not manage webhooks.
    let (status, listed) = api(&server.base, &token, Method::GET, "/api/webhooks", None).await;
    assert_eq!(status, 200);
    assert_eq!(listed["endpoints"][0]["id"], endpoint_id.as_str());
    assert!(!listed.to_string().contains(&secret));
    let reader = server.token(&[Scope::CallsRead, Scope::CallsWrite]).await;
    let (status, _) = api(&server.base, &reader, Method::GET, "/api/webhooks", None).await;
    assert_eq!(status, 403);
}

#[actix_rt::test]
async fn a_failing_endpoint_is_retried_a_dead_message_replayed_with_the_same_id() {
    let server = TestServer::start(&[
        PRIVATE_ALLOWED,
        ("WEBHOOK_RETRY_BASE", "50ms"),
        ("WEBHOOK_RETRY_WINDOW", "1s"),
    ])
    .await;
    let token = server.token(&[Scope::WebhooksAdmin]).await;
    let mut flaky = Endpoint::start();
    flaky.behaviour.failing.store(2, Ordering::SeqCst);
    let mut down = Endpoint::start();
    down.behaviour.failing.store(usize::MAX, Ordering::SeqCst);
    let (flaky_id, _) = register(&server.base, &token, &flaky.url, &["call.started"]).await;
    let (down_id, secret) = register(&server.base, &token, &down.url, &["call.started"]).await;

    short_call(&server.sim, &call_sid(2)).await;
    // Two failures, then taken: three requests of one message.
    let attempts = flaky.until(3).await;
    assert!(attempts
        .iter()
        .all(|h| h.id == attempts[0].id && h.body == attempts[0].body));
    let query = format!("endpoint_id={flaky_id}");
    let delivered = deliveries_until(&server.base, &token, &query, |all| {
        all.first().is_some_and(|d| d["state"] == "delivered")
    })
    .await;
    assert_eq!(delivered[0]["attempts"], 3);

    // An endpoint that never answers well: dead once its window (1 s) runs out.
    let query = format!("endpoint_id={down_id}");
    let dead = deliveries_until(&server.base, &token, &query, |all| {
        all.first().is_some_and(|d| d["state"] == "dead")
    })
    .await;
    assert_eq!(dead[0]["last_error"], "HTTP 500");
    let tried = down.received();
    assert!(tried.len() >= 3, "{}", tried.len());

    // Healed and replayed: the same message, the same id, delivered.
    down.behaviour.failing.store(0, Ordering::SeqCst);
    let id = dead[0]["id"].as_str().unwrap();
    let path = format!("/api/webhooks/deliveries/{id}/replay");
    let (status, replayed) = api(&server.base, &token, Method::POST, &path, None).await;
    assert_eq!((status, &replayed["state"]), (202, &json!("pending")));
    let hooks = down.until(tried.len() + 1).await;
    let last = hooks.last().unwrap();
    assert_eq!((last.id.as_str(), &last.body), (id, &tried[0].body));
    assert!(last.signed_with(&secret));
    deliveries_until(&server.base, &token, &query, |all| {
        all[0]["state"] == "delivered"
    })
    .await;
    let (status, _) = api(&server.base, &token, Method::POST, &path, None).await;
    assert_eq!(status, 202, "a delivered message may be sent again too");
    let missing = "/api/webhooks/deliveries/msg_none/replay";
    assert_eq!(
        api(&server.base, &token, Method::POST, missing, None)
            .await
            .0,
        404
    );
}

/// A name other than `localhost` that resolves to loopback addresses only (the machine's own
/// name, in its `/etc/hosts`), if there is one.
fn loopback_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim().to_owned();
    let addresses: Vec<_> = (name.as_str(), 80).to_socket_addrs().ok()?.collect();
    let loopback = !addresses.is_empty() && addresses.iter().all(|a| a.ip().is_loopback());
    (loopback && name != "localhost").then_some(name)
}

#[actix_rt::test]
async fn private_targets_are_refused_at_registration_and_at_delivery() {
    let server = TestServer::start(&[]).await;
    let token = server.token(&[Scope::WebhooksAdmin]).await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost:9/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:9/",
        "http://10.0.0.7/hook",
        "http://user:secret@hooks.example.com/",
        "ftp://hooks.example.com/",
        "not a url",
    ] {
        let body = json!({ "url": url });
        let (status, error) = api(
            &server.base,
            &token,
            Method::POST,
            "/api/webhooks",
            Some(body),
        )
        .await;
        assert_eq!(status, 400, "{url}: {error}");
        assert!(!error.to_string().contains("secret"), "{error}");
    }
    let unknown = json!({ "url": "https://hooks.example.com/", "events": ["call.exploded"] });
    let (status, _) = api(
        &server.base,
        &token,
        Method::POST,
        "/api/webhooks",
        Some(unknown),
    )
    .await;
    assert_eq!(status, 400);
    let production = TestServer::start(&[("APP_ENV", "production")]).await;
    let admin = production.token(&[Scope::WebhooksAdmin]).await;
    let plain = json!({ "url": "http://hooks.example.com/" });
    let (status, error) = api(
        &production.base,
        &admin,
        Method::POST,
        "/api/webhooks",
        Some(plain),
    )
    .await;
    assert_eq!(status, 400, "https only in production: {error}");

    // A name registered while private targets were allowed is checked again at delivery, after
    // resolving it: a name for 127.0.0.1 is refused once the server no longer allows it.
    let mut endpoint = Endpoint::start();
    let name = loopback_name().unwrap_or_else(|| {
        eprintln!("no name but localhost resolves to loopback here: its name alone refuses it");
        "localhost".into()
    });
    let named = endpoint.url.replace("127.0.0.1", &name);
    let config = test_config(&[PRIVATE_ALLOWED]);
    let first = TestServer::start_with(&config, phone_agent::engines::loopback_set()).await;
    let admin = first.token(&[Scope::WebhooksAdmin]).await;
    register(&first.base, &admin, &named, &["call.started"]).await;
    short_call(&first.sim, &call_sid(3)).await;
    assert_eq!(endpoint.until(1).await.len(), 1, "allowed: delivered");
    let data = first.stop().await;
    let strict = test_config(&[]);
    let second = TestServer::start_in(&strict, phone_agent::engines::loopback_set(), data).await;
    let admin = second.token(&[Scope::WebhooksAdmin]).await;
    short_call(&second.sim, &call_sid(4)).await;
    let refused = deliveries_until(&second.base, &admin, "state=pending", |all| {
        all.iter().any(|d| d["attempts"] == 1)
    })
    .await;
    assert_eq!(
        refused[0]["last_error"],
        "target refused: URL points to a private or reserved address"
    );
    assert_eq!(endpoint.received().len(), 1, "nothing more reached it");
}

#[actix_rt::test]
async fn a_follow_up_email_is_sent_and_its_status_follows_the_providers_events() {
    let resend = FakeResend::start();
    let svix_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let server = TestServer::start(&[
        ("RESEND_API_KEY", fake::API_KEY),
        ("RESEND_API_BASE", resend.base.as_str()),
        ("FOLLOW_UP_FROM", "Bright Smile <calls@brightsmile.example>"),
        ("SVIX_WEBHOOK_SECRET", svix_secret),
    ])
    .await;
    let store = &server.server.store;
    let now = phone_agent::store::now_ms();
    let mut call = NewCall::from_twilio(
        &call_sid(5),
        Direction::Inbound,
        "+14155550100",
        "+14155550199",
        CallStatus::Ringing,
    );
    call.metadata = Some(json!({ "email": "ana@example.com" }));
    let id = store.insert_call(&call, now).await.unwrap().id;
    store
        .apply_status(&id, CallStatus::InProgress, None, now)
        .await
        .unwrap();
    let consent = Extraction {
        intent: Some("book_appointment".into()),
        consent_to_follow_up: Some(true),
        ..Extraction::default()
    };
    store.set_extraction(&id, &consent, now).await.unwrap();
    store.record_end(&id, "agent_ended", now).await.unwrap();

    let token = server.token(&[Scope::CallsRead]).await;
    let status_is = |wanted: &'static str| {
        let (base, token, id) = (server.base.clone(), token.clone(), id.clone());
        async move {
            within(async {
                loop {
                    let path = format!("/api/calls/{id}");
                    let (_, call) = api(&base, &token, Method::GET, &path, None).await;
                    if call["follow_up_status"] == wanted {
                        return;
                    }
                    actix_rt::time::sleep(Duration::from_millis(50)).await;
                }
            })
            .await
        }
    };
    status_is("sent").await;
    let sent = resend.received();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].body["to"], json!(["ana@example.com"]));
    assert_eq!(sent[0].body["subject"], "Summary of your call");
    assert!(sent[0].body["text"]
        .as_str()
        .unwrap()
        .contains("book appointment"));
    assert!(sent[0]
        .idempotency_key
        .as_deref()
        .unwrap()
        .starts_with("follow-up/msg_"));

    // The provider's events, signed as Svix signs them, move the status forward only.
    let event = |kind: &str, n: u32| {
        let body = json!({ "type": kind, "data": { "email_id": fake::id(1) } }).to_string();
        let key = BASE64
            .decode(svix_secret.trim_start_matches("whsec_"))
            .unwrap();
        let (msg, at) = (format!("msg_event{n}"), (now / 1000).to_string());
        let tag = hmac_sha256(
            &key,
            &[msg.as_bytes(), b".", at.as_bytes(), b".", body.as_bytes()],
        );
        let request = awc::Client::new()
            .post(format!("{}/webhooks/resend", server.base))
            .insert_header(("svix-id", msg))
            .insert_header(("svix-timestamp", at))
            .insert_header(("svix-signature", format!("v1,{}", BASE64.encode(tag))))
            .insert_header(("content-type", "application/json"));
        async move {
            assert_eq!(request.send_body(body).await.unwrap().status(), 200);
        }
    };
    event("email.delivered", 1).await;
    status_is("delivered").await;
    event("email.sent", 2).await;
    event("email.bounced", 3).await;
    status_is("bounced").await;
}

#[actix_rt::test]
async fn a_server_killed_mid_delivery_delivers_every_event_after_its_restart() {
    let data = tempfile::tempdir().unwrap();
    let mut env = process::server_env(&data);
    env.extend([
        ("WEBHOOK_ALLOW_PRIVATE", "true".into()),
        ("WEBHOOK_TIMEOUT", "1s".into()),
        ("WEBHOOK_RETRY_BASE", "100ms".into()),
    ]);
    let token = process::create_token(&env, "webhooks:admin,calls:read");

    let server = process::serve(&env).await;
    let mut endpoint = Endpoint::start();
    endpoint.behaviour.holding.store(1, Ordering::SeqCst);
    let events = ["call.started", "call.completed"];
    let (_, secret) = register(&server.base, &token, &endpoint.url, &events).await;
    let sim = TwilioSim::new(server.base.clone()).signing(TWILIO_AUTH_TOKEN, PUBLIC_HOST);
    for n in 10..13 {
        short_call(&sim, &call_sid(n)).await;
    }
    // Every call has ended and its messages are in the outbox; one is held by the endpoint.
    let (base, reader) = (server.base.clone(), token.clone());
    within(async {
        loop {
            let (_, page) = api(&base, &reader, Method::GET, "/api/calls", None).await;
            let calls = page["calls"].as_array().cloned().unwrap_or_default();
            if calls.len() == 3 && calls.iter().all(|c| c["end_reason"].is_string()) {
                return;
            }
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    endpoint.until(1).await;
    drop(server); // SIGKILL, mid-delivery

    let _server = process::serve(&env).await;
    // Until every event arrived and the held one came again (once its claim's lease ran out).
    let mut hooks = endpoint.until(1).await;
    loop {
        let ids: BTreeSet<&str> = hooks.iter().map(|h| h.id.as_str()).collect();
        if ids.len() == 6 && hooks.iter().filter(|h| h.id == hooks[0].id).count() >= 2 {
            break;
        }
        hooks = endpoint.until(hooks.len() + 1).await;
    }
    let mut bodies: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for hook in &hooks {
        assert!(hook.signed_with(&secret));
        bodies.entry(&hook.id).or_default().insert(&hook.body);
    }
    assert_eq!(
        bodies.len(),
        6,
        "every event of the three calls, each under one id"
    );
    assert!(
        bodies.values().all(|b| b.len() == 1),
        "the same body under each id"
    );
    assert!(
        hooks.iter().filter(|h| h.id == hooks[0].id).count() >= 2,
        "the message in flight at the kill was sent again with its id"
    );
    let seen: BTreeSet<(String, String)> = hooks
        .iter()
        .map(|h| {
            let message = h.json();
            let sid = message["data"]["call"]["call_sid"]
                .as_str()
                .unwrap()
                .to_owned();
            (sid, message["type"].as_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(seen.len(), 6, "{seen:?}");
}

#[actix_rt::test]
async fn the_outbox_and_follow_up_statuses_work_on_postgresql() {
    let Some(postgres) = crate::support::postgres::available() else {
        return;
    };
    let url = postgres.url();
    let server = TestServer::start(&[
        PRIVATE_ALLOWED,
        ("DATABASE_URL", url.as_str()),
        ("WEBHOOK_RETRY_BASE", "50ms"),
    ])
    .await;
    let token = server.token(&[Scope::WebhooksAdmin]).await;
    let mut endpoint = Endpoint::start();
    endpoint.behaviour.failing.store(1, Ordering::SeqCst);
    let events = ["call.started", "call.completed"];
    let (endpoint_id, secret) = register(&server.base, &token, &endpoint.url, &events).await;
    short_call(&server.sim, &call_sid(20)).await;
    let hooks = endpoint.until(3).await;
    assert!(hooks.iter().all(|hook| hook.signed_with(&secret)));
    let query = format!("endpoint_id={endpoint_id}&state=delivered");
    let delivered = deliveries_until(&server.base, &token, &query, |all| all.len() == 2).await;
    let path = format!(
        "/api/webhooks/deliveries/{}/replay",
        delivered[0]["id"].as_str().unwrap()
    );
    assert_eq!(
        api(&server.base, &token, Method::POST, &path, None).await.0,
        202
    );
    endpoint.until(4).await;

    let store = &server.server.store;
    let call = store.call(&call_sid(20)).await.unwrap().unwrap();
    store
        .set_follow_up_email(&call.id, "email-1", 1)
        .await
        .unwrap();
    let update = |status| store.update_follow_up_status("email-1", status, 2);
    assert_eq!(
        update(FollowUpStatus::Delivered).await.unwrap(),
        Some(call.id.clone())
    );
    assert_eq!(
        update(FollowUpStatus::Sent).await.unwrap(),
        None,
        "never backwards"
    );
    assert_eq!(
        update(FollowUpStatus::Complained).await.unwrap(),
        Some(call.id)
    );
}
