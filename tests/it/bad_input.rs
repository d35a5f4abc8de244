//! Each bad input closes its own socket with a code and a reason, and never touches another call.

use std::time::SystemTime;

use awc::ws;
use phone_agent::client::sim::{MediaConnection, StreamAnswer};
use phone_agent_actors::ids::CallSid;

use crate::support::*;

/// Runs `bad` while a good call streams; afterwards the good call still echoes, and every call ends.
async fn with_good_call<F, Fut>(server: &TestServer, bad: F)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (_, mut good) = server.call(&call_sid(0xC0DE)).await;
    exchange(&mut good, 9, 0, 5).await;
    bad().await;
    exchange(&mut good, 9, 5, 5).await;
    assert_eq!(
        server.server.live_calls.count(),
        1,
        "only the good call is left"
    );
    good.send_stop().await.unwrap();
    assert_eq!(expect_close(&mut good).await.0, Some(1000));
    server.until_no_live_calls().await;
}

async fn started(server: &TestServer, n: u32) -> MediaConnection {
    let (_, mut media) = server.call(&call_sid(n)).await;
    exchange(&mut media, 1, 0, 1).await;
    media
}

/// On a fresh server, beside a good call: a started call sends `message` and is closed with
/// `code` and `reason`.
async fn message_closes_started_call(message: ws::Message, code: u16, reason: &str) {
    let server = TestServer::start(&[]).await;
    with_good_call(&server, || async {
        let mut media = started(&server, 1).await;
        media.send_raw(message).await.unwrap();
        assert_closed(&mut media, code, reason).await;
    })
    .await;
}

fn text(json: &str) -> ws::Message {
    ws::Message::Text(json.to_owned().into())
}

#[actix_rt::test]
async fn invalid_json_closes_with_invalid_data() {
    message_closes_started_call(text("{not json"), 1007, "invalid JSON").await;
}

#[actix_rt::test]
async fn unknown_event_closes_with_policy_violation() {
    message_closes_started_call(text(r#"{"event":"dance"}"#), 1008, "unknown event").await;
}

#[actix_rt::test]
async fn malformed_media_closes_with_policy_violation() {
    let no_payload = r#"{"event":"media","media":{}}"#;
    message_closes_started_call(text(no_payload), 1008, "malformed message").await;
}

#[actix_rt::test]
async fn binary_frame_closes_with_unsupported_data() {
    let binary = ws::Message::Binary(vec![0xFF; 160].into());
    message_closes_started_call(binary, 1003, "binary frames are not supported").await;
}

#[actix_rt::test]
async fn oversized_message_closes_with_message_too_big() {
    let huge = format!(
        r#"{{"event":"media","media":{{"payload":"{}"}}}}"#,
        "A".repeat(70_000)
    );
    message_closes_started_call(text(&huge), 1009, "message too large").await;
}

#[actix_rt::test]
async fn payload_not_base64_closes_with_invalid_data() {
    let bad = r#"{"event":"media","media":{"track":"inbound","chunk":"1","timestamp":"0","payload":"%%%"}}"#;
    message_closes_started_call(text(bad), 1007, "media payload is not base64").await;
}

#[actix_rt::test]
async fn media_before_start_closes_with_policy_violation() {
    let server = TestServer::start(&[]).await;
    with_good_call(&server, || async {
        let answer = server.sim.place_call(&call_sid(1)).await.unwrap();
        let mut media = server.sim.open(&answer.path).await.unwrap();
        media.send_connected().await.unwrap();
        media.send_media(&[0xFF; 160]).await.unwrap();
        assert_closed(&mut media, 1008, "media before start").await;
    })
    .await;
}

#[actix_rt::test]
async fn second_start_closes_with_policy_violation() {
    let server = TestServer::start(&[]).await;
    with_good_call(&server, || async {
        let (answer, mut media) = server.call(&call_sid(1)).await;
        media
            .send_start(&answer.call_sid, &answer.token)
            .await
            .unwrap();
        assert_closed(&mut media, 1008, "duplicate start").await;
    })
    .await;
}

#[actix_rt::test]
async fn unknown_token_is_rejected_before_any_audio() {
    let server = TestServer::start(&[]).await;
    with_good_call(&server, || async {
        let answer = server.sim.place_call(&call_sid(1)).await.unwrap();
        let mut media = server.sim.open(&answer.path).await.unwrap();
        media.send_connected().await.unwrap();
        media
            .send_start(&answer.call_sid, "guessed-token")
            .await
            .unwrap();
        media.send_media(&[0xFF; 160]).await.unwrap();
        // No audio comes back: the close is the first thing the server sends.
        assert_eq!(
            within(media.recv()).await,
            Some(phone_agent::client::sim::Received::Close {
                code: Some(1008),
                reason: "stream rejected".into()
            })
        );
    })
    .await;
}

#[actix_rt::test]
async fn used_token_and_token_of_another_call_are_rejected() {
    let server = TestServer::start(&[]).await;
    with_good_call(&server, || async {
        let (answer, mut first) = server.call(&call_sid(1)).await;
        exchange(&mut first, 1, 0, 1).await;
        first.send_stop().await.unwrap();
        assert_eq!(expect_close(&mut first).await.0, Some(1000));

        // The same token again (a replay after the call ended).
        let mut replay = server.sim.connect(&answer).await.unwrap();
        assert_closed(&mut replay, 1008, "stream rejected").await;

        // A fresh token presented with another CallSid.
        let other = server.sim.place_call(&call_sid(2)).await.unwrap();
        let mut media = server.sim.open(&other.path).await.unwrap();
        media.send_start(&call_sid(3), &other.token).await.unwrap();
        assert_closed(&mut media, 1008, "stream rejected").await;
    })
    .await;
}

#[actix_rt::test]
async fn a_second_stream_for_a_streaming_call_is_rejected() {
    let server = TestServer::start(&[]).await;
    with_good_call(&server, || async {
        let (_, mut first) = server.call(&call_sid(1)).await;
        exchange(&mut first, 1, 0, 1).await;
        // A second socket for the same call with a valid token of its own. The voice webhook
        // grants a call one stream, so such a token is minted here; the media layer refuses it
        // all the same.
        let sid = CallSid::parse(&call_sid(1)).unwrap();
        let token = server
            .server
            .stream_tokens
            .mint(&sid, SystemTime::now())
            .unwrap();
        let answer = StreamAnswer {
            call_sid: call_sid(1),
            path: "/twilio/media".to_owned(),
            token,
        };
        let mut second = server.sim.connect(&answer).await.unwrap();
        assert_closed(&mut second, 1008, "stream rejected").await;
        // The first stream is untouched.
        exchange(&mut first, 1, 1, 3).await;
        first.send_stop().await.unwrap();
        assert_eq!(expect_close(&mut first).await.0, Some(1000));
    })
    .await;
}

#[actix_rt::test]
async fn a_silent_socket_is_closed_after_the_idle_timeout() {
    let server = TestServer::start(&[
        ("MEDIA_IDLE_TIMEOUT", "1s"),
        ("MEDIA_PING_INTERVAL", "200ms"),
    ])
    .await;
    let (_, mut silent) = server.call(&call_sid(1)).await;
    let started = std::time::Instant::now();
    assert_closed(&mut silent, 1001, "idle timeout").await;
    let waited = started.elapsed();
    assert!(
        waited >= std::time::Duration::from_millis(1_000),
        "closed early: {waited:?}"
    );
    server.until_no_live_calls().await;
}
