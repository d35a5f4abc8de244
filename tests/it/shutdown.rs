//! Graceful shutdown: refuse new calls, let live ones finish, close the rest after the drain
//! timeout; and the ungraceful one: a server killed mid-call ends its live calls as interrupted
//! when it starts again.

use std::time::Duration;

use phone_agent::client::sim::{SimError, TwilioSim};

use crate::support::process;
use crate::support::*;

#[actix_rt::test]
async fn shutdown_refuses_new_calls_and_waits_for_live_ones() {
    let TestServer {
        server,
        sim,
        base,
        data: _data,
    } = TestServer::start(&[("DRAIN_TIMEOUT", "30s")]).await;
    let answer = sim.place_call(&call_sid(1)).await.unwrap();
    let mut media = sim.connect(&answer).await.unwrap();
    exchange(&mut media, 1, 0, 3).await;

    server.shutdown();
    let client = awc::Client::new();
    let ready = client.get(format!("{base}/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    match sim.place_call(&call_sid(2)).await {
        Err(SimError::Http(status)) => assert!(status.starts_with("503"), "{status}"),
        other => panic!("a new call while draining: {other:?}"),
    }
    assert!(
        sim.open("/twilio/media").await.is_err(),
        "no new media sockets"
    );

    // The live call goes on while draining, then ends on its own; the server then stops.
    exchange(&mut media, 1, 3, 3).await;
    media.send_stop().await.unwrap();
    assert_eq!(expect_close(&mut media).await.0, Some(1000));
    within(server.stopped()).await.unwrap();
}

#[actix_rt::test]
async fn calls_still_up_after_the_drain_timeout_are_closed() {
    let TestServer {
        server,
        sim,
        data: _data,
        ..
    } = TestServer::start(&[("DRAIN_TIMEOUT", "300ms")]).await;
    let answer = sim.place_call(&call_sid(1)).await.unwrap();
    let mut media = sim.connect(&answer).await.unwrap();
    exchange(&mut media, 1, 0, 3).await;
    let live_calls = server.live_calls.clone();
    server.shutdown();
    assert_eq!(
        expect_close(&mut media).await,
        (Some(1001), "server shutting down".to_owned())
    );
    within(server.stopped()).await.unwrap();
    assert_eq!(live_calls.count(), 0);
}

/// The call `sid` as the API shows it on the server at `base`.
async fn call_record(base: &str, token: &str, sid: &str) -> serde_json::Value {
    let request = awc::Client::new()
        .get(format!("{base}/api/calls/{sid}"))
        .bearer_auth(token);
    json(request.send()).await.2
}

#[actix_rt::test]
async fn a_call_live_when_the_server_is_killed_is_ended_as_interrupted_at_the_restart() {
    let data = tempfile::tempdir().unwrap();
    let env = process::server_env(&data);
    let token = process::create_token(&env, "calls:read");
    let server = process::serve(&env).await;
    let sim = TwilioSim::new(server.base.clone()).signing(TWILIO_AUTH_TOKEN, PUBLIC_HOST);
    // One call ended before the kill, one live through it.
    let (ended, live) = (call_sid(1), call_sid(2));
    let answer = sim.place_call(&ended).await.unwrap();
    let mut media = sim.connect(&answer).await.unwrap();
    exchange(&mut media, 1, 0, 2).await;
    media.send_stop().await.unwrap();
    let answer = sim.place_call(&live).await.unwrap();
    let mut media = sim.connect(&answer).await.unwrap();
    exchange(&mut media, 2, 0, 2).await;
    let base = server.base.clone();
    within(async {
        loop {
            let (ended, live) = (
                call_record(&base, &token, &ended).await,
                call_record(&base, &token, &live).await,
            );
            if ended["end_reason"].is_string() && live["status"] == "in-progress" {
                return;
            }
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let ended_before = call_record(&base, &token, &ended).await;

    drop(server); // SIGKILL, mid-call
    let server = process::serve(&env).await;
    let call = call_record(&server.base, &token, &live).await;
    assert_eq!(call["end_reason"], "server_interrupted", "{call}");
    assert!(call["ended_at"].is_i64(), "{call}");
    assert_eq!(call["from"], "+1******0100", "the record is whole");
    assert_eq!(
        call_record(&server.base, &token, &ended).await,
        ended_before,
        "a call that had ended is left as it was"
    );
    drop(media);
}

/// A drain under load: a real process with 100 live calls gets SIGTERM. Half the callers hang up
/// by themselves while it drains, the agent winds the other half down; the process exits 0 before
/// the drain timeout is over and, restarted, has every call's record whole and ended.
#[actix_rt::test]
async fn a_sigterm_with_a_hundred_live_calls_drains_them_all_and_exits_0() {
    const CALLS: u32 = 100;
    let data = tempfile::tempdir().unwrap();
    let mut env = process::server_env(&data);
    env.insert("DRAIN_TIMEOUT", "4s".into());
    env.insert("RATE_LIMIT_API_READ", "100000/min".into());
    let token = process::create_token(&env, "calls:read");
    let mut server = process::serve(&env).await;
    let sim = TwilioSim::new(server.base.clone()).signing(TWILIO_AUTH_TOKEN, PUBLIC_HOST);
    let calls = futures_util::future::join_all((1..=CALLS).map(|n| {
        let sim = &sim;
        async move {
            let answer = sim.place_call(&call_sid(n)).await.unwrap();
            let mut media = sim.connect(&answer).await.unwrap();
            exchange(&mut media, n as u8, 0, 2).await;
            media
        }
    }))
    .await;

    server.terminate();
    let drain_started = std::time::Instant::now();
    server.ready_becomes(503).await;
    match sim.place_call(&call_sid(CALLS + 1)).await {
        Err(SimError::Http(status)) => assert!(status.starts_with("503"), "{status}"),
        other => panic!("a new call while draining: {other:?}"),
    }
    let closes = futures_util::future::join_all(calls.into_iter().zip(1..).map(
        |(mut media, n)| async move {
            if n % 2 == 0 {
                media.send_stop().await.unwrap();
            }
            within(expect_close(&mut media)).await
        },
    ))
    .await;
    for (close, n) in closes.iter().zip(1..) {
        let expected = if n % 2 == 0 { 1000 } else { 1001 };
        assert_eq!(close.0, Some(expected), "call {n}: {close:?}");
    }
    let status = within(server.exited()).await;
    assert!(status.success(), "{status:?}");
    assert!(drain_started.elapsed() < Duration::from_secs(4) + Duration::from_secs(5));

    let server = process::serve(&env).await;
    for n in 1..=CALLS {
        let call = call_record(&server.base, &token, &call_sid(n)).await;
        let reason = if n % 2 == 0 {
            "twilio_stop"
        } else {
            "shutdown"
        };
        assert_eq!(call["end_reason"], reason, "call {n}: {call}");
        assert_eq!(call["from"], "+1******0100", "call {n}: {call}");
        assert!(call["ended_at"].is_i64(), "call {n}: {call}");
        let turns = call["transcript"].as_array().map_or(0, Vec::len);
        assert!(turns >= 2, "call {n}: its turns are kept: {call}");
    }
}
