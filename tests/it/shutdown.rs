//! Graceful shutdown: refuse new calls, let live ones finish, close the rest after the drain timeout.

use crate::support::*;
use phone_agent::client::sim::SimError;

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
