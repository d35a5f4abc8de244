//! The call-management API end to end: a real server (loopback engines) placing calls through
//! Twilio's REST API, answered by the local Twilio emulator, which dials back the server's voice
//! webhook, opens the media stream and reports each status as Twilio does.

use std::time::Duration;

use awc::http::Method;
use futures_util::StreamExt as _;
use phone_agent::client::twilio_emulator::call::Status;
use phone_agent::client::twilio_emulator::observe::Fault;
use phone_agent::client::twilio_emulator::settings::{Answer, CallbackOrder};
use phone_agent::client::twilio_emulator::{EmulatorSettings, RunningEmulator, TwilioEmulator};
use phone_agent::guard::token::Scope;
use serde_json::{json, Value};

use crate::support::postgres;
use crate::support::{stream_until, test_config, within, TestServer, TWILIO_AUTH_TOKEN};

const ACCOUNT: &str = "AC00000000000000000000000000000000";
const FROM: &str = "+14155550199";
const TO: &str = "+14155550100";

/// A server that places calls through an emulated Twilio, and a token with every scope.
struct Line {
    server: TestServer,
    emulator: RunningEmulator,
    token: String,
}

/// A port free now (for a server to be restarted on).
fn free_port() -> u16 {
    reserved_port().0
}

/// A port held bound until the emulator serves on it, so the server can be configured to reach
/// the emulator before it exists without another test taking the port in between.
fn reserved_port() -> (u16, std::net::TcpListener) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    (listener.local_addr().expect("bound").port(), listener)
}

/// The emulator's answer to a call: no ringing, an instant decision, a silent callee.
fn fast(settings: &mut EmulatorSettings) {
    settings.callee.ring = Duration::ZERO;
    settings.callee.detection = Duration::ZERO;
}

async fn line(overrides: &[(&str, &str)], callee: impl FnOnce(&mut EmulatorSettings)) -> Line {
    let (port, listener) = reserved_port();
    let api = format!("http://127.0.0.1:{port}");
    let mut vars = vec![
        ("TWILIO_ACCOUNT_SID", ACCOUNT),
        ("TWILIO_API_BASE", api.as_str()),
        ("TWILIO_FROM", FROM),
    ];
    vars.extend_from_slice(overrides);
    let server = TestServer::start(&vars).await;
    let emulator = emulator_for(&server, listener, callee).await;
    let token = server.token(&Scope::ALL).await;
    Line {
        server,
        emulator,
        token,
    }
}

async fn emulator_for(
    server: &TestServer,
    listener: std::net::TcpListener,
    callee: impl FnOnce(&mut EmulatorSettings),
) -> RunningEmulator {
    let mut settings = EmulatorSettings::new(server.base.clone(), TWILIO_AUTH_TOKEN);
    fast(&mut settings);
    callee(&mut settings);
    TwilioEmulator::start_on(listener, settings)
        .await
        .expect("emulator starts")
}

impl Line {
    /// A request to the API with the all-scopes token: its status and JSON body.
    async fn api(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        api(&self.server, &self.token, method, path, body, &[]).await
    }

    /// Places (or schedules) a call; its JSON.
    async fn place(&self, body: Value) -> Value {
        let (status, call) = self.api(Method::POST, "/api/calls", Some(body)).await;
        assert_eq!(status, 201, "{call}");
        call
    }

    /// Reads the call until `ready` holds for it.
    async fn call_until(&self, id: &str, ready: impl Fn(&Value) -> bool) -> Value {
        call_until(&self.server, &self.token, id, ready).await
    }

    /// The emulator's only call, once it reaches `status`.
    async fn emulated(&self, status: Status) -> String {
        within(self.emulator.wait_for(|calls| {
            calls
                .iter()
                .find(|call| call.statuses().contains(&status))
                .map(|call| call.record.sid.clone())
        }))
        .await
    }
}

async fn api(
    server: &TestServer,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut request = server.request(method, path, Some(token));
    for (name, value) in headers {
        request = request.insert_header((*name, *value));
    }
    let mut response = match body {
        Some(body) => request.send_json(&body).await,
        None => request.send().await,
    }
    .expect("server answers");
    let bytes = response.body().await.expect("body");
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (response.status().as_u16(), json)
}

/// Reads call `id` from `server` until `ready` holds for it (the server changes it as Twilio's
/// callbacks arrive); fails after the event timeout.
async fn call_until(
    server: &TestServer,
    token: &str,
    id: &str,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    within(async {
        loop {
            let path = format!("/api/calls/{id}");
            let (_, call) = api(server, token, Method::GET, &path, None, &[]).await;
            if ready(&call) {
                return call;
            }
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

fn status_is(wanted: &'static str) -> impl Fn(&Value) -> bool {
    move |call| call["status"] == wanted
}

#[actix_rt::test]
async fn a_call_placed_through_the_api_streams_and_hangs_up() {
    let line = line(&[], |_| {}).await;
    let call = line.place(json!({ "to": TO })).await;
    let id = call["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("call_"), "{call}");
    assert_eq!(call["direction"], "outbound");
    assert_eq!(call["to"], "+1******0100", "numbers are masked");

    let sid = line.emulated(Status::InProgress).await;
    let emulated = line.emulator.call(&sid).unwrap();
    assert_eq!(
        (emulated.record.to.as_str(), emulated.record.from.as_str()),
        (TO, FROM)
    );
    let create = &line.emulator.requests()[0];
    let url = create.params.iter().find(|(k, _)| k == "Url").unwrap();
    assert_eq!(url.1, format!("https://agent.test/twilio/voice?call={id}"));
    let call = line.call_until(&id, status_is("in-progress")).await;
    assert_eq!(call["call_sid"], sid);
    // Twilio reports the call in progress before its media stream reaches us: the hang-up is
    // ours to record only once the stream is up (its first turns are in).
    line.call_until(&id, |call| {
        call["transcript"]
            .as_array()
            .is_some_and(|turns| !turns.is_empty())
    })
    .await;

    let (status, _) = line
        .api(Method::POST, &format!("/api/calls/{id}/hangup"), None)
        .await;
    assert_eq!(status, 202);
    within(line.emulator.wait_for_call(&sid, |call| call.is_ended())).await;
    let call = line.call_until(&id, status_is("completed")).await;
    assert_eq!(call["end_reason"], "hung_up", "{call}");
    let transcript = call["transcript"].as_array().unwrap();
    assert!(
        !transcript.is_empty(),
        "the stream's turns are recorded: {call}"
    );
    assert_eq!(transcript[0]["speaker"], "caller");
}

#[actix_rt::test]
async fn scheduled_calls_are_placed_when_due_and_canceled_ones_never() {
    let line = line(&[], |_| {}).await;
    let soon = jiff::Timestamp::now() + jiff::SignedDuration::from_millis(500);
    let later = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3600);
    let due = line
        .place(json!({ "to": TO, "scheduled_at": soon.to_string() }))
        .await;
    let canceled = line
        .place(json!({ "to": "+14155550111", "scheduled_at": later.to_string() }))
        .await;
    assert_eq!(due["status"], "scheduled");
    let id = canceled["id"].as_str().unwrap();
    let (status, body) = line
        .api(Method::POST, &format!("/api/calls/{id}/cancel"), None)
        .await;
    assert_eq!((status, &body["status"]), (200, &json!("canceled")));
    let (status, _) = line
        .api(Method::POST, &format!("/api/calls/{id}/cancel"), None)
        .await;
    assert_eq!(status, 409, "only once");

    line.emulated(Status::Queued).await;
    let placed = line
        .call_until(due["id"].as_str().unwrap(), |call| {
            !call["call_sid"].is_null()
        })
        .await;
    assert_ne!(placed["status"], "scheduled");
    let calls = line.emulator.calls();
    assert_eq!(calls.len(), 1, "the canceled call was never placed");
    assert_eq!(calls[0].record.to, TO);
}

#[actix_rt::test]
async fn the_same_idempotency_key_places_one_call_and_answers_the_same() {
    let line = line(&[], |_| {}).await;
    let key = [("Idempotency-Key", "order-4711")];
    let body = json!({ "to": TO });
    let token = line.token.as_str();
    let first = api(
        &line.server,
        token,
        Method::POST,
        "/api/calls",
        Some(body.clone()),
        &key,
    )
    .await;
    let second = api(
        &line.server,
        token,
        Method::POST,
        "/api/calls",
        Some(body),
        &key,
    )
    .await;
    assert_eq!(first.0, 201);
    assert_eq!(first, second);
    line.emulated(Status::Queued).await;
    let creates = line
        .emulator
        .requests()
        .iter()
        .filter(|request| request.method == "POST" && request.path.ends_with("/Calls.json"))
        .count();
    assert_eq!(creates, 1);
}

#[actix_rt::test]
async fn do_not_call_numbers_and_calls_outside_calling_hours_are_refused() {
    // A one-hour window twelve hours away: now is outside it.
    let hour = (jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .hour()
        + 12)
        % 24;
    let window = format!("{hour:02}:00-{:02}:00", (hour + 1) % 24);
    let line = line(&[("CALLING_HOURS", window.as_str())], |_| {}).await;

    let (status, _) = line
        .api(Method::POST, "/api/dnc", Some(json!({ "number": TO })))
        .await;
    assert_eq!(status, 201);
    let (status, body) = line
        .api(Method::POST, "/api/calls", Some(json!({ "to": TO })))
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (422, &json!("do_not_call"))
    );

    let other = "+14155550122";
    let (status, body) = line
        .api(Method::POST, "/api/calls", Some(json!({ "to": other })))
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (422, &json!("outside_calling_hours"))
    );
    let soon = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(60);
    let scheduled = line
        .place(json!({ "to": other, "scheduled_at": soon.to_string() }))
        .await;
    let opens = scheduled["scheduled_at"].as_i64().unwrap();
    let at = jiff::Timestamp::from_millisecond(opens).unwrap();
    assert_eq!(at.to_zoned(jiff::tz::TimeZone::UTC).hour(), hour);
    assert!(line.emulator.calls().is_empty());

    let (_, list) = line.api(Method::GET, "/api/dnc", None).await;
    assert_eq!(list["numbers"][0]["number"], "+1******0100");
    let (status, _) = line
        .api(Method::DELETE, &format!("/api/dnc/{TO}"), None)
        .await;
    assert_eq!(status, 204);
}

#[actix_rt::test]
async fn twilio_refusals_become_clear_api_errors() {
    let line = line(&[], |settings| {
        settings.owned_numbers = Some(vec!["+14155550000".into()]);
    })
    .await;
    let (status, body) = line
        .api(Method::POST, "/api/calls", Some(json!({ "to": TO })))
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (422, &json!("invalid_from"))
    );

    // Every attempt the client makes (three) is refused.
    line.emulator.inject(Fault {
        status: 429,
        count: 3,
        retry_after: None,
    });
    let from = json!({ "to": TO, "from": "+14155550000" });
    let (status, body) = line
        .api(Method::POST, "/api/calls", Some(from.clone()))
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (503, &json!("telephony_busy"))
    );

    line.emulator.inject(Fault {
        status: 500,
        count: 1,
        retry_after: None,
    });
    let (status, body) = line.api(Method::POST, "/api/calls", Some(from)).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (502, &json!("outcome_unknown"))
    );
    let (_, calls) = line.api(Method::GET, "/api/calls", None).await;
    let reasons: Vec<&Value> = calls["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|call| &call["end_reason"])
        .collect();
    assert!(reasons.contains(&&json!("outcome_unknown")), "{calls}");
    let text = body.to_string();
    assert!(
        !text.contains(TWILIO_AUTH_TOKEN) && !text.contains("5550100"),
        "{text}"
    );
}

#[actix_rt::test]
async fn shuffled_status_callbacks_end_at_the_latest_status() {
    let line = line(&[], |settings| {
        settings.callback_order = CallbackOrder::Shuffled;
        settings.callee.timing.stay_on_line = false;
        settings.callee.timing.hang_up_after = Some(Duration::from_millis(300));
    })
    .await;
    let call = line.place(json!({ "to": TO })).await;
    let id = call["id"].as_str().unwrap();
    let call = line.call_until(id, status_is("completed")).await;
    assert!(!call["answered_at"].is_null(), "{call}");
}

#[actix_rt::test]
async fn machine_detection_marks_the_call() {
    let line = line(&[], |settings| {
        settings.callee.answer = Answer::Machine;
    })
    .await;
    let call = line
        .place(json!({ "to": TO, "machine_detection": "enable" }))
        .await;
    let id = call["id"].as_str().unwrap();
    let call = line.call_until(id, |call| call["machine"] == true).await;
    assert!(
        call["answered_by"].as_str().unwrap().starts_with("machine"),
        "{call}"
    );
}

#[actix_rt::test]
async fn a_live_call_can_be_transferred() {
    let line = line(&[], |_| {}).await;
    let call = line.place(json!({ "to": TO })).await;
    let id = call["id"].as_str().unwrap();
    let sid = line.emulated(Status::InProgress).await;
    line.call_until(id, status_is("in-progress")).await;
    let (status, _) = line
        .api(
            Method::POST,
            &format!("/api/calls/{id}/transfer"),
            Some(json!({ "to": "+14155550177" })),
        )
        .await;
    assert_eq!(status, 202);
    let emulated = within(
        line.emulator
            .wait_for_call(&sid, |call| call.record.transfer_to.is_some()),
    )
    .await;
    assert_eq!(emulated.record.transfer_to.as_deref(), Some("+14155550177"));
}

#[actix_rt::test]
async fn the_event_stream_of_a_live_call_shows_its_status_and_turns() {
    let line = line(&[], |_| {}).await;
    let call = line.place(json!({ "to": TO })).await;
    let id = call["id"].as_str().unwrap();
    let mut response = line
        .server
        .request(
            Method::GET,
            &format!("/api/calls/{id}/events"),
            Some(&line.token),
        )
        .send()
        .await
        .expect("stream opens");
    assert_eq!(response.status(), 200);
    let seen = stream_until(&mut response, |seen| {
        seen.contains("event: status") && seen.contains("event: turn")
    })
    .await;
    assert!(seen.starts_with("id: 1\nevent: status\n"), "{seen}");
    assert!(seen.contains("\"speaker\":\"caller\""), "{seen}");

    // Resumed after the first event: the log's second event comes first.
    let mut resumed = line
        .server
        .request(
            Method::GET,
            &format!("/api/calls/{id}/events"),
            Some(&line.token),
        )
        .insert_header(("Last-Event-ID", "1"))
        .send()
        .await
        .expect("stream opens");
    let chunk = within(resumed.next()).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&chunk).starts_with("id: 2\n"));
}

#[actix_rt::test]
async fn an_erased_call_keeps_only_its_tombstone() {
    let line = line(&[], |_| {}).await;
    let call = line
        .place(json!({ "to": TO, "metadata": { "order": 4711 } }))
        .await;
    let id = call["id"].as_str().unwrap();
    line.call_until(id, status_is("in-progress")).await;
    let (status, _) = line
        .api(Method::DELETE, &format!("/api/calls/{id}"), None)
        .await;
    assert_eq!(status, 204);
    let (_, call) = line
        .api(Method::GET, &format!("/api/calls/{id}"), None)
        .await;
    assert!(!call["erased_at"].is_null(), "{call}");
    for field in ["to", "from", "metadata", "extraction"] {
        assert!(call[field].is_null(), "{field}: {call}");
    }
    assert_eq!(call["transcript"], json!([]));
}

#[actix_rt::test]
async fn placing_without_a_twilio_account_is_refused_as_not_configured() {
    let server = TestServer::start(&[]).await;
    let token = server.token(&Scope::ALL).await;
    let (status, body) = api(
        &server,
        &token,
        Method::POST,
        "/api/calls",
        Some(json!({ "to": TO })),
        &[],
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (503, &json!("not_configured"))
    );
}

/// Schedules a call due `after` from now through `server`; its id.
async fn schedule(server: &TestServer, token: &str, to: &str, after: Duration) -> String {
    let at = jiff::Timestamp::now() + jiff::SignedDuration::try_from(after).unwrap();
    let body = json!({ "to": to, "scheduled_at": at.to_string() });
    let (status, call) = api(server, token, Method::POST, "/api/calls", Some(body), &[]).await;
    assert_eq!(status, 201, "{call}");
    call["id"].as_str().unwrap().to_owned()
}

/// The creates the emulator has answered.
fn creates(emulator: &RunningEmulator) -> Vec<String> {
    emulator
        .requests()
        .into_iter()
        .filter(|request| request.method == "POST" && request.path.ends_with("/Calls.json"))
        .filter_map(|request| {
            let to = request.params.iter().find(|(name, _)| name == "To")?;
            Some(to.1.clone())
        })
        .collect()
}

#[actix_rt::test]
async fn a_call_due_while_the_server_was_down_is_placed_once_after_the_restart() {
    let (server_port, (api_port, api_listener)) = (free_port(), reserved_port());
    let listen = format!("127.0.0.1:{server_port}");
    let api_base = format!("http://127.0.0.1:{api_port}");
    let vars = [
        ("LISTEN_ADDR", listen.as_str()),
        ("TWILIO_ACCOUNT_SID", ACCOUNT),
        ("TWILIO_API_BASE", api_base.as_str()),
        ("TWILIO_FROM", FROM),
    ];
    let config = test_config(&vars);
    let first = TestServer::start_with(&config, phone_agent::engines::loopback_set()).await;
    let emulator = emulator_for(&first, api_listener, |_| {}).await;
    let token = first.token(&Scope::ALL).await;
    let id = schedule(&first, &token, TO, Duration::from_secs(3600)).await;
    let data = first.stop().await;
    assert!(creates(&emulator).is_empty(), "not placed before its time");
    // The server was down at the call's time: its time has passed when the next one starts.
    let db = format!("sqlite://{}", data.path().join("phone-agent.db").display());
    let db = sqlx::SqlitePool::connect(&db)
        .await
        .expect("the stopped server's database");
    let a_minute_ago = jiff::Timestamp::now().as_millisecond() - 60_000;
    sqlx::query("UPDATE calls SET scheduled_at = $1 WHERE id = $2")
        .bind(a_minute_ago)
        .bind(&id)
        .execute(&db)
        .await
        .expect("rescheduled into the past");
    db.close().await;

    let second = TestServer::start_in(&config, phone_agent::engines::loopback_set(), data).await;
    within(emulator.wait_for(|calls| (!calls.is_empty()).then_some(()))).await;
    let token = second.token(&[Scope::CallsRead]).await;
    let call = call_until(&second, &token, &id, |call| !call["call_sid"].is_null()).await;
    assert_ne!(call["status"], "missed");
    assert_eq!(creates(&emulator), [TO], "placed exactly once");
}

#[actix_rt::test]
async fn two_servers_on_one_postgresql_place_each_scheduled_call_once() {
    let Some(postgres) = postgres::available() else {
        return;
    };
    let url = postgres.url();
    let (api_port, api_listener) = reserved_port();
    let api_base = format!("http://127.0.0.1:{api_port}");
    let vars = [
        ("DATABASE_URL", url.as_str()),
        ("DATA_KEY", "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80="),
        ("TWILIO_ACCOUNT_SID", ACCOUNT),
        ("TWILIO_API_BASE", api_base.as_str()),
        ("TWILIO_FROM", FROM),
    ];
    let a = TestServer::start(&vars).await;
    let b = TestServer::start(&vars).await;
    let emulator = emulator_for(&a, api_listener, |_| {}).await;
    let token = a.token(&Scope::ALL).await;
    let numbers: Vec<String> = (0..8).map(|n| format!("+1415555{n:04}")).collect();
    for number in &numbers {
        schedule(&a, &token, number, Duration::from_millis(300)).await;
    }
    within(emulator.wait_for(|calls| (calls.len() == numbers.len()).then_some(()))).await;
    // Both schedulers kept looking for a while after: still one create per call.
    actix_rt::time::sleep(Duration::from_millis(600)).await;
    let mut placed = creates(&emulator);
    placed.sort();
    assert_eq!(placed, numbers);
    drop(b);
}

#[actix_rt::test]
async fn the_agent_transfers_through_twilio_once_its_announcement_is_heard() {
    use crate::support::directed::{directed_set, DirectedStt, FixedDialogue};
    use phone_agent_actors::engines::DialogueAction;

    let (api_port, api_listener) = reserved_port();
    let api_base = format!("http://127.0.0.1:{api_port}");
    let config = test_config(&[
        ("TWILIO_ACCOUNT_SID", ACCOUNT),
        ("TWILIO_API_BASE", api_base.as_str()),
        ("TWILIO_FROM", FROM),
        ("TRANSFER_TO", "+14155550188"),
    ]);
    let stt = DirectedStt::default();
    let announce = ("Connecting you now.", Some(DialogueAction::TransferCall));
    let dialogue = FixedDialogue::new(&[announce], Duration::ZERO);
    let server = TestServer::start_with(&config, directed_set(&stt, &dialogue)).await;
    let emulator = emulator_for(&server, api_listener, |_| {}).await;
    let token = server.token(&Scope::ALL).await;
    let body = Some(json!({ "to": TO }));
    let (status, call) = api(&server, &token, Method::POST, "/api/calls", body, &[]).await;
    assert_eq!(status, 201, "{call}");
    within(stt.opened()).await;
    stt.say("a person please");
    let transferred = within(emulator.wait_for(|calls| {
        calls
            .iter()
            .find_map(|call| call.record.transfer_to.clone())
    }))
    .await;
    assert_eq!(transferred, "+14155550188");
}

#[actix_rt::test]
async fn a_local_emulator_works_without_any_twilio_setting_but_its_address() {
    let (port, listener) = reserved_port();
    let api_base = format!("http://127.0.0.1:{port}");
    let server = TestServer::start(&[
        ("TWILIO_AUTH_TOKEN", ""),
        ("TWILIO_API_BASE", api_base.as_str()),
        ("TWILIO_FROM", FROM),
    ])
    .await;
    let generated = std::fs::read_to_string(server.data.path().join("twilio-auth-token")).unwrap();
    let mut settings = EmulatorSettings::new(server.base.clone(), generated.trim());
    fast(&mut settings);
    let emulator = TwilioEmulator::start_on(listener, settings)
        .await
        .expect("emulator starts");
    let token = server.token(&Scope::ALL).await;
    let body = Some(json!({ "to": TO }));
    let (status, call) = api(&server, &token, Method::POST, "/api/calls", body, &[]).await;
    assert_eq!(status, 201, "{call}");
    within(emulator.wait_for(|calls| {
        calls
            .iter()
            .find(|call| call.statuses().contains(&Status::InProgress))
            .map(|_| ())
    }))
    .await;
}
