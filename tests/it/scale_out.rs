//! Several `phone-agent` processes on one PostgreSQL, behaving as one service: a call answered by
//! one instance streams on another, a second socket for it is refused wherever it lands, a
//! hang-up and an event stream work from an instance that does not carry the call, the calls of
//! an instance killed mid-call are marked interrupted by the others within the lease, and a
//! lockout counts the failures every instance saw.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use awc::http::Method;
use phone_agent::client::sim::{StreamAnswer, TwilioSim};
use phone_agent::client::twilio_emulator::settings::Answer;
use phone_agent::client::twilio_emulator::{EmulatorSettings, TwilioEmulator};

use crate::outbound_webhooks::{deliveries_until, register, Endpoint};
use crate::support::balancer;
use crate::support::postgres::{self, Postgres};
use crate::support::process::{self, Process};
use crate::support::*;

/// The data key every instance shares (it seals the records and signs the stream tokens).
const DATA_KEY: &str = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=";

/// Instances of one service: one PostgreSQL, one data key, a data directory and port each.
struct Service {
    _postgres: Postgres,
    _data: Vec<tempfile::TempDir>,
    /// Each instance's environment (its address, its data directory).
    envs: Vec<BTreeMap<&'static str, String>>,
    instances: Vec<Process>,
    /// A token with every scope, valid on every instance.
    token: String,
}

impl Service {
    /// `count` instances with `extra` variables, or `None` (the test skipped) without PostgreSQL.
    async fn start(count: usize, extra: &[(&'static str, &str)]) -> Option<Self> {
        let postgres = postgres::available()?;
        let url = postgres.url();
        let mut data = Vec::new();
        let mut envs: Vec<BTreeMap<&str, String>> = Vec::new();
        for _ in 0..count {
            let dir = tempfile::tempdir().unwrap();
            let mut env = process::server_env(&dir);
            env.insert("DATABASE_URL", url.clone());
            env.insert("DATA_KEY", DATA_KEY.into());
            env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
            data.push(dir);
            envs.push(env);
        }
        let token = process::create_token(&envs[0], "calls:read,calls:write,webhooks:admin");
        let mut instances = Vec::new();
        for env in &envs {
            instances.push(process::serve(env).await);
        }
        Some(Self {
            _postgres: postgres,
            _data: data,
            envs,
            instances,
            token,
        })
    }

    /// Starts instance `n` again, on its address and data directory, once it has exited.
    async fn restart(&mut self, n: usize) {
        self.instances[n] = process::serve(&self.envs[n]).await;
    }

    /// Each instance's `host:port`.
    fn addresses(&self) -> Vec<String> {
        self.envs
            .iter()
            .map(|env| env["LISTEN_ADDR"].clone())
            .collect()
    }

    /// Twilio as seen by instance `n`.
    fn twilio(&self, n: usize) -> TwilioSim {
        TwilioSim::new(self.instances[n].base.clone()).signing(TWILIO_AUTH_TOKEN, PUBLIC_HOST)
    }

    /// A request to instance `n`'s API with the service's token.
    fn api(&self, n: usize, method: Method, path: &str) -> awc::ClientRequest {
        awc::Client::new()
            .request(method, format!("{}{path}", self.instances[n].base))
            .bearer_auth(&self.token)
    }

    /// The call `sid` as instance `n`'s API shows it.
    async fn call(&self, n: usize, sid: &str) -> serde_json::Value {
        let path = format!("/api/calls/{sid}");
        json(self.api(n, Method::GET, &path).send()).await.2
    }

    /// The headers of instance `n`'s first 429 to a read with the service's token (what refuses
    /// it comes from another process).
    async fn refused(&self, n: usize) -> awc::http::header::HeaderMap {
        polled(|| async {
            let (status, headers, _) = json(self.api(n, Method::GET, "/api/calls").send()).await;
            (status == 429).then_some(headers)
        })
        .await
    }

    /// The call `sid` as instance `n`'s API shows it, once `done` holds for it (the change comes
    /// from another process).
    async fn call_when(
        &self,
        n: usize,
        sid: &str,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        polled(|| async {
            let call = self.call(n, sid).await;
            done(&call).then_some(call)
        })
        .await
    }

    /// Instance `n`'s stream of every call's events, resumed after the event id `last` if given.
    fn events(&self, n: usize, last: Option<&str>) -> awc::ClientRequest {
        let request = self.api(n, Method::GET, "/api/events");
        match last {
            Some(id) => request.insert_header(("Last-Event-ID", id)),
            None => request,
        }
    }
}

/// Whether a call's end is recorded.
fn ended(call: &serde_json::Value) -> bool {
    call["end_reason"].is_string()
}

#[actix_rt::test]
async fn a_call_answered_by_one_instance_streams_on_another_and_no_third_can_take_it() {
    let Some(service) = Service::start(3, &[]).await else {
        return;
    };
    let answer = service.twilio(0).place_call(&call_sid(1)).await.unwrap();
    let mut media = service.twilio(1).connect(&answer).await.unwrap();
    exchange(&mut media, 1, 0, 3).await;

    // The same token shown to a third instance: valid there, but the call's stream is taken.
    let mut second = service.twilio(2).connect(&answer).await.unwrap();
    assert_closed(&mut second, 1008, "stream rejected").await;
    // And to the instance that streams it (spent there).
    let mut third = service.twilio(1).connect(&answer).await.unwrap();
    assert_closed(&mut third, 1008, "stream rejected").await;

    exchange(&mut media, 1, 3, 3).await;
    media.send_stop().await.unwrap();
    assert_eq!(expect_close(&mut media).await.0, Some(1000));
    let call = service.call_when(2, &call_sid(1), ended).await;
    assert_eq!(call["end_reason"], "twilio_stop", "{call}");
}

#[actix_rt::test]
async fn the_calls_of_a_killed_instance_are_marked_interrupted_within_the_lease() {
    const LEASE: Duration = Duration::from_secs(1);
    let Some(mut service) = Service::start(3, &[("CALL_LEASE", "1s")]).await else {
        return;
    };
    let (live, other) = (call_sid(1), call_sid(2));
    let answer: StreamAnswer = service.twilio(0).place_call(&live).await.unwrap();
    let mut media = service.twilio(1).connect(&answer).await.unwrap();
    exchange(&mut media, 1, 0, 2).await;
    service
        .call_when(0, &live, |call| call["status"] == "in-progress")
        .await;

    let killed = Instant::now();
    drop(service.instances.remove(1)); // SIGKILL, mid-call
    let call = service.call_when(0, &live, ended).await;
    let after = killed.elapsed();
    assert_eq!(call["end_reason"], "server_interrupted", "{call}");
    // The lease, plus at most a third of it until an instance looks, plus polling.
    assert!(after < LEASE * 2, "marked after {after:?}");
    eprintln!("marked interrupted {} ms after the kill", after.as_millis());

    // The others keep serving: a call answered by one streams on the other.
    let answer = service.twilio(1).place_call(&other).await.unwrap();
    let mut media = service.twilio(0).connect(&answer).await.unwrap();
    exchange(&mut media, 2, 0, 3).await;
    // That a renewed lease keeps its call is shown on a fake clock:
    // store::races::a_renewed_lease_keeps_its_call_and_a_lapsed_one_is_ended_as_interrupted.
}

#[actix_rt::test]
async fn a_hang_up_sent_to_a_third_instance_ends_the_call_and_its_events_reach_every_instance() {
    const CALLS: u32 = 30;
    let Some(service) = Service::start(3, &[]).await else {
        return;
    };
    // The all-calls feed of the third instance, which neither answers nor carries a call.
    let mut events = service.events(2, None).send().await.unwrap();
    assert_eq!(events.status(), 200);
    let mut latencies = Vec::new();
    for n in 1..=CALLS {
        let sid = call_sid(n);
        let answer = service.twilio(0).place_call(&sid).await.unwrap();
        let mut media = service.twilio(1).connect(&answer).await.unwrap();
        exchange(&mut media, 1, 0, 2).await;
        if n == 1 {
            stream_until(&mut events, |seen| {
                seen.contains("event: status") && seen.contains("event: turn")
            })
            .await;
        }
        let sent = Instant::now();
        let path = format!("/api/calls/{sid}/hangup");
        let (status, _, body) = json(service.api(2, Method::POST, &path).send()).await;
        assert_eq!(status, 202, "{body}");
        assert_eq!(
            expect_close(&mut media).await,
            (Some(1000), "call ended".into())
        );
        latencies.push(sent.elapsed());
    }
    let seen = stream_until(&mut events, |seen| {
        seen.matches("event: end").count() == CALLS as usize
    })
    .await;
    assert!(seen.contains(r#""reason":"hung_up""#), "{seen}");
    assert_eq!(service.call(0, &call_sid(1)).await["end_reason"], "hung_up");
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    eprintln!(
        "hang-up through another instance, API call to close frame, {CALLS} calls: p50 {:?}, p99 {:?}",
        at(0.5),
        at(0.99)
    );
}

#[actix_rt::test]
async fn failures_spread_over_the_instances_lock_the_client_out_of_all_of_them() {
    let Some(service) = Service::start(3, &[("AUTH_LOCKOUT_FAILURES", "4")]).await else {
        return;
    };
    // Two failures on the first instance and one on each other: no instance saw four itself.
    for n in [0, 1, 2, 0] {
        let request = awc::Client::new()
            .get(format!("{}/api/calls", service.instances[n].base))
            .bearer_auth("pa_not_a_token");
        assert_eq!(json(request.send()).await.0, 401);
    }
    // Every instance counted all four: a good token from the same client is refused everywhere.
    for n in 0..3 {
        service.refused(n).await;
    }
}

#[actix_rt::test]
async fn an_ip_blocked_by_one_instance_is_blocked_by_all() {
    let limits = [
        ("RATE_LIMIT_API_WRITE", "3/min"),
        ("RATE_LIMIT_STRIKES", "2"),
        ("RATE_LIMIT_BLOCK", "5m"),
    ];
    let Some(service) = Service::start(3, &limits).await else {
        return;
    };
    // Writes to the first instance past its limit: two strikes, then a block of 5 minutes.
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let request = service.api(0, Method::POST, "/api/calls");
        statuses.push(json(request.send_json(&serde_json::json!({}))).await.0);
    }
    assert_eq!(&statuses[3..], [429, 429], "{statuses:?}");
    // The others block the client too, on reads it has all the budget of (600 a minute).
    for n in 1..3 {
        let retry_after = service.refused(n).await.get("retry-after").cloned();
        let seconds = retry_after.and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
        assert!(seconds.is_some_and(|s| s > 60), "the block's: {seconds:?}");
    }
}

#[actix_rt::test]
async fn a_rolling_drain_behind_the_load_balancer_loses_no_call() {
    const CALLERS: u8 = 12;
    let Some(mut service) = Service::start(3, &[("DRAIN_TIMEOUT", "30s")]).await else {
        return;
    };
    let addresses = service.addresses();
    let addresses: Vec<&str> = addresses.iter().map(String::as_str).collect();
    let Some(balancer) = balancer::available(&addresses).await else {
        return;
    };
    let stop = Rc::new(Cell::new(false));
    let callers: Vec<_> = (1..=CALLERS)
        .map(|caller| {
            let twilio =
                TwilioSim::new(balancer.base.clone()).signing(TWILIO_AUTH_TOKEN, PUBLIC_HOST);
            actix_rt::spawn(keep_calling(twilio, caller, stop.clone()))
        })
        .collect();

    // One instance at a time: SIGTERM while it carries calls, its exit, its start again.
    let mut drained = Vec::new();
    for n in 0..service.instances.len() {
        let carried = live_calls_when(&service.instances[n], |count| count > 0).await;
        let signalled = Instant::now();
        service.instances[n].terminate();
        let status = within(service.instances[n].exited()).await;
        assert!(status.success(), "instance {n} exited with {status}");
        drained.push((carried, signalled.elapsed()));
        service.restart(n).await;
    }
    stop.set(true);

    let mut calls = Vec::new();
    for caller in callers {
        calls.extend(caller.await.expect("every call of the caller went through"));
    }
    // Every call ended as its caller ended it: none interrupted, none wound down by a drain.
    for sid in &calls {
        let call = service.call_when(0, sid, ended).await;
        assert_eq!(call["end_reason"], "twilio_stop", "{call}");
    }
    eprintln!(
        "{} calls from {CALLERS} callers through nginx; drained (live calls, SIGTERM to exit): {drained:?}",
        calls.len()
    );
}

/// A caller of the rolling drain: calls after one another through the balancer until `stop` is
/// set, each a second long with a frame every 100 ms echoed whole (each echo is a turn on the
/// loopback engines: ten turns, not the fifty of 20 ms frames, keeps the records' writes near a
/// conversation's), then its caller's hang-up closing the socket normally. Gives the CallSids of
/// its calls; panics on the first call lost.
async fn keep_calling(twilio: TwilioSim, caller: u8, stop: Rc<Cell<bool>>) -> Vec<String> {
    const FRAMES: u32 = 10;
    let mut calls = Vec::new();
    while !stop.get() {
        let sid = phone_agent::client::sim::random_sid("CA");
        let answer = twilio.place_call(&sid).await;
        let answer = answer.unwrap_or_else(|e| panic!("the webhook of {sid}: {e:?}"));
        let connected = twilio.connect(&answer).await;
        let mut media = connected.unwrap_or_else(|e| panic!("the stream of {sid}: {e:?}"));
        let mut pace = actix_rt::time::interval(Duration::from_millis(100));
        for n in 0..FRAMES {
            pace.tick().await;
            exchange(&mut media, caller, n, 1).await;
        }
        media.send_stop().await.unwrap();
        assert_eq!(expect_close(&mut media).await.0, Some(1000), "{sid}");
        calls.push(sid);
    }
    calls
}

/// The live calls `instance`'s `/health` counts, once `wanted` holds for them.
async fn live_calls_when(instance: &Process, wanted: impl Fn(u64) -> bool) -> u64 {
    let health = format!("{}/health", instance.base);
    polled(|| async {
        // Not kept alive: an idle connection would hold the instance's exit after its drain.
        let request = awc::Client::new().get(&health).force_close();
        let (_, _, body) = json(request.send()).await;
        let count = body["live_calls"].as_u64().expect("live_calls");
        wanted(count).then_some(count)
    })
    .await
}

#[actix_rt::test]
async fn each_call_scheduled_through_any_of_three_instances_is_placed_once() {
    const SCHEDULED: usize = 30;
    // The emulator's port is held bound until it serves, so the instances can be told it first.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let twilio_api = format!("http://{}", listener.local_addr().unwrap());
    let rest = [
        ("TWILIO_ACCOUNT_SID", "AC00000000000000000000000000000000"),
        ("TWILIO_API_BASE", twilio_api.as_str()),
        ("TWILIO_FROM", "+14155550199"),
    ];
    let Some(service) = Service::start(3, &rest).await else {
        return;
    };
    let mut settings = EmulatorSettings::new(service.instances[0].base.clone(), TWILIO_AUTH_TOKEN);
    // Every callee's line is busy: the call is placed, and ends there.
    settings.callee.answer = Answer::Busy;
    settings.callee.ring = Duration::ZERO;
    let emulator = TwilioEmulator::start_on(listener, settings).await.unwrap();

    // All due in a second, scheduled through the three instances in turn: all three schedulers
    // find them due at about the same time.
    let due = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(1);
    let mut ids = Vec::new();
    for n in 0..SCHEDULED {
        let body = serde_json::json!({ "to": format!("+1415555{:04}", 1000 + n), "scheduled_at": due.to_string() });
        let request = service.api(n % 3, Method::POST, "/api/calls");
        let (status, _, call) = json(request.send_json(&body)).await;
        assert_eq!(status, 201, "{call}");
        ids.push(call["id"].as_str().unwrap().to_owned());
    }
    for (n, id) in ids.iter().enumerate() {
        let call = service
            .call_when((n + 1) % 3, id, |call| call["status"] == "busy")
            .await;
        assert!(call["call_sid"].is_string(), "{call}");
    }
    let placed = emulator.calls();
    let callees: std::collections::BTreeSet<_> =
        placed.iter().map(|call| call.record.to.clone()).collect();
    assert_eq!(placed.len(), SCHEDULED, "each placed once");
    assert_eq!(callees.len(), SCHEDULED, "every callee called");
}

#[actix_rt::test]
async fn each_webhook_message_is_delivered_once_by_one_of_three_instances() {
    const CALLS: u32 = 12;
    let private = [("WEBHOOK_ALLOW_PRIVATE", "true")];
    let Some(service) = Service::start(3, &private).await else {
        return;
    };
    let mut endpoint = Endpoint::start();
    let (base, token) = (&service.instances[0].base, &service.token);
    let events = ["call.started", "call.completed"];
    let (_, secret) = register(base, token, &endpoint.url, &events).await;
    // Calls answered and streamed by different instances: the messages are written by all three,
    // and all three dispatchers race for each.
    for n in 0..CALLS {
        let sid = call_sid(n);
        let answer = service
            .twilio(n as usize % 3)
            .place_call(&sid)
            .await
            .unwrap();
        let mut media = service
            .twilio((n as usize + 1) % 3)
            .connect(&answer)
            .await
            .unwrap();
        exchange(&mut media, 1, 0, 2).await;
        media.send_stop().await.unwrap();
        expect_close(&mut media).await;
    }
    let messages = 2 * CALLS as usize;
    deliveries_until(base, token, "limit=100", |all| {
        all.len() == messages && all.iter().all(|d| d["state"] == "delivered")
    })
    .await;
    // Every message is marked delivered: none can be sent again, so the count is final.
    let hooks = endpoint.until(messages).await;
    let ids: std::collections::BTreeSet<&str> = hooks.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(
        (hooks.len(), ids.len()),
        (messages, messages),
        "each delivered once"
    );
    assert!(hooks.iter().all(|hook| hook.signed_with(&secret)));
}

#[actix_rt::test]
async fn an_event_stream_resumed_on_another_instance_says_what_it_cannot_replay() {
    let Some(service) = Service::start(2, &[]).await else {
        return;
    };
    let mut events = service.events(0, None).send().await.unwrap();
    let answer = service.twilio(0).place_call(&call_sid(1)).await.unwrap();
    let mut media = service.twilio(0).connect(&answer).await.unwrap();
    exchange(&mut media, 1, 0, 2).await;
    let seen = stream_until(&mut events, |seen| seen.matches("\nevent: ").count() >= 2).await;
    let first = seen
        .lines()
        .find_map(|line| line.strip_prefix("id: "))
        .expect("an event id")
        .to_owned();

    // On the instance that gave the id, the stream goes on after it.
    let mut same = service.events(0, Some(&first)).send().await.unwrap();
    let (server, position) = first.rsplit_once('-').unwrap();
    let next = format!("id: {server}-{}\n", position.parse::<u64>().unwrap() + 1);
    let resumed = stream_until(&mut same, |seen| seen.contains('\n')).await;
    assert!(resumed.starts_with(&next), "{resumed}");
    // Another instance cannot tell what came after it: it says so first.
    let mut other = service.events(1, Some(&first)).send().await.unwrap();
    let moved = stream_until(&mut other, |seen| seen.contains("\n\n")).await;
    assert!(moved.contains("event: gap\n"), "{moved}");
    assert!(!moved.contains(&format!("id: {server}-")), "{moved}");
}
