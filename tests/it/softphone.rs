//! The softphone's wire path, as the browser uses it: `POST /api/softphone`, then the Media
//! Streams socket at `/softphone/media?token=…`, unsigned. (The browser itself is driven in
//! `console::`.)

use phone_agent::client::sim::{MediaConnection, StreamAnswer, TwilioSim};
use phone_agent::guard::token::Scope;
use serde_json::Value;

use crate::support::*;

/// `POST /api/softphone` with `token`: the status and the body.
async fn open(server: &TestServer, token: &str) -> (u16, Value) {
    let mut response = server
        .request(awc::http::Method::POST, "/api/softphone", Some(token))
        .send()
        .await
        .expect("server answers");
    let body = response.json().await.unwrap_or(Value::Null);
    (response.status().as_u16(), body)
}

/// The stream of an opened softphone call, as a browser connects it: no Twilio signature.
fn stream_of(opened: &Value) -> StreamAnswer {
    let token = opened["stream_token"].as_str().unwrap();
    StreamAnswer {
        call_sid: opened["call_sid"].as_str().unwrap().to_owned(),
        path: format!("{}?token={token}", opened["media_path"].as_str().unwrap()),
        token: token.to_owned(),
    }
}

/// A softphone call opened with a `calls:softphone` token, its socket connected as a browser
/// connects it: what `POST /api/softphone` answered, and the socket.
async fn softphone_call(server: &TestServer) -> (Value, MediaConnection) {
    let token = server.token(&[Scope::CallsSoftphone]).await;
    let (status, opened) = open(server, &token).await;
    assert_eq!(status, 201, "{opened}");
    let sim = TwilioSim::new(server.base.clone());
    let media = sim
        .connect(&stream_of(&opened))
        .await
        .expect("socket opens");
    (opened, media)
}

/// The status of a WebSocket upgrade on `path` without a Twilio signature.
async fn upgrade_status(server: &TestServer, path: &str) -> u16 {
    let url = format!("{}{path}", server.base.replacen("http", "ws", 1));
    match awc::Client::new().ws(url).connect().await {
        Ok((response, _)) => response.status().as_u16(),
        Err(awc::error::WsClientError::InvalidResponseStatus(status)) => status.as_u16(),
        Err(error) => panic!("upgrade failed: {error}"),
    }
}

#[actix_rt::test]
async fn a_softphone_call_runs_the_call_path_and_is_recorded_as_a_call() {
    let server = TestServer::start(&[]).await;
    let (opened, mut media) = softphone_call(&server).await;
    assert_eq!(opened["media_path"], "/softphone/media");
    // The loopback agent echoes what it hears: the audio went through the call's actors.
    exchange(&mut media, 7, 0, 5).await;

    let reader = server.token(&[Scope::CallsRead]).await;
    let path = format!("/api/calls/{}", opened["call_id"].as_str().unwrap());
    let (status, _, call) = json(
        server
            .request(awc::http::Method::GET, &path, Some(&reader))
            .send(),
    )
    .await;
    assert_eq!(status, 200, "{call}");
    assert_eq!(call["status"], "in-progress");
    assert_eq!(call["call_sid"], opened["call_sid"]);
    assert_eq!((&call["from"], &call["to"]), (&"***".into(), &"***".into()));
    assert_eq!(server.server.live_calls.count(), 1);

    assert_eq!(call["direction"], "browser");

    // Followed from here: the call's end, then (no provider reports a browser call's status)
    // its completion.
    let events_path = format!("{path}/events");
    let mut events = server
        .request(awc::http::Method::GET, &events_path, Some(&reader))
        .send()
        .await
        .expect("event stream opens");
    media.close().await.expect("socket closes");
    server.until_no_live_calls().await;
    stream_until(&mut events, |seen| seen.contains(r#""status":"completed""#)).await;
    let request = server.request(awc::http::Method::GET, &path, Some(&reader));
    let (_, _, call) = json(request.send()).await;
    assert!(call["end_reason"].is_string(), "{call}");
    assert_eq!(call["status"], "completed", "{call}");
    server
        .metrics_until(|text| {
            text.contains("phone_agent_calls_ended_total{reason=\"socket_closed\"} 1")
        })
        .await;
}

#[actix_rt::test]
async fn a_softphone_call_needs_the_scope_and_its_socket_its_unused_token() {
    let server = TestServer::start(&[]).await;
    let writer = server.token(&[Scope::CallsRead, Scope::CallsWrite]).await;
    let (status, body) = open(&server, &writer).await;
    assert_eq!(status, 403, "calls:write is not calls:softphone: {body}");

    assert_eq!(
        upgrade_status(&server, "/softphone/media").await,
        400,
        "no token"
    );
    let made_up = "/softphone/media?token=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    assert_eq!(upgrade_status(&server, made_up).await, 403);

    let (opened, mut media) = softphone_call(&server).await;
    exchange(&mut media, 1, 0, 1).await;
    // Redeemed by the call's `start`: the same token opens nothing more.
    assert_eq!(upgrade_status(&server, &stream_of(&opened).path).await, 403);
    assert_eq!(server.server.live_calls.count(), 1);
}

#[actix_rt::test]
async fn a_softphone_call_is_hung_up_through_the_api_and_cannot_be_transferred() {
    // Twilio's REST API configured: a browser call must not be sent to it.
    let server = TestServer::start(&[
        ("TWILIO_ACCOUNT_SID", "AC00000000000000000000000000000000"),
        ("TWILIO_API_BASE", "http://127.0.0.1:9"),
    ])
    .await;
    let (opened, mut media) = softphone_call(&server).await;
    exchange(&mut media, 3, 0, 1).await;

    let writer = server.token(&[Scope::CallsWrite]).await;
    let path = format!("/api/calls/{}", opened["call_id"].as_str().unwrap());
    let transfer = server
        .request(
            awc::http::Method::POST,
            &format!("{path}/transfer"),
            Some(&writer),
        )
        .send_json(&serde_json::json!({ "to": "+14155550123" }));
    let (status, _, body) = json(transfer).await;
    assert_eq!(status, 409, "{body}");
    let hang_up = server.request(
        awc::http::Method::POST,
        &format!("{path}/hangup"),
        Some(&writer),
    );
    let (status, _, body) = json(hang_up.send()).await;
    assert_eq!(status, 202, "{body}");
    let (code, _) = expect_close(&mut media).await;
    assert_eq!(code, Some(1000), "the agent's side hangs up");
}
