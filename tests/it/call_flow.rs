//! Whole calls through the loopback engines.

use std::time::{Duration, Instant};

use phone_agent::client::sim::Received;
use phone_agent::store::transcripts::Speaker;

use crate::support::*;

#[actix_rt::test]
async fn voice_webhook_answers_connect_stream_with_a_token() {
    let server = TestServer::start(&[]).await;
    let answer = server.sim.place_call(&call_sid(1)).await.unwrap();
    assert_eq!(answer.path, "/twilio/media");
    let (payload, tag) = answer.token.split_once('.').expect("payload.tag");
    assert_eq!(
        payload.len(),
        78,
        "expiry, 128-bit nonce and CallSid, base64url"
    );
    assert_eq!(tag.len(), 43, "HMAC-SHA256, base64url");

    let response = server
        .voice_post(&[("CallSid", call_sid(2).as_str())])
        .await
        .unwrap();
    assert_eq!(
        response.headers().get("content-type").unwrap(),
        "text/xml; charset=utf-8"
    );

    let bad = server
        .voice_post(&[("CallSid", "not-a-sid")])
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[actix_rt::test]
async fn a_replayed_voice_webhook_gets_no_new_stream() {
    let server = TestServer::start(&[]).await;
    let server = &server;
    let replay = |n: u32| async move {
        let (status, _, body) = json(server.voice_post(&[("CallSid", call_sid(n).as_str())])).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (409, Some("conflict"))
        );
    };
    // The same signed webhook again while the call streams, and once it has ended: no token.
    let (_, mut media) = server.call(&call_sid(1)).await;
    exchange(&mut media, 1, 0, 1).await;
    replay(1).await;
    media.send_stop().await.unwrap();
    expect_close(&mut media).await;
    server.until_no_live_calls().await;
    replay(1).await;
    // Replayed before the stream opens: still none, and the first token still opens it.
    let first = server.sim.place_call(&call_sid(2)).await.unwrap();
    replay(2).await;
    let mut media = server.sim.connect(&first).await.unwrap();
    exchange(&mut media, 2, 0, 1).await;
}

#[actix_rt::test]
async fn past_max_calls_a_caller_hears_an_apology_and_the_calls_up_go_on() {
    let server = TestServer::start(&[("MAX_CALLS", "2")]).await;
    let (_, mut first) = server.call(&call_sid(1)).await;
    let second = server.sim.place_call(&call_sid(2)).await.unwrap();

    // One streaming, one on its way: the third is told the lines are busy, and no stream opens.
    let mut refused = server
        .voice_post(&[("CallSid", call_sid(3).as_str())])
        .await
        .unwrap();
    assert_eq!(refused.status(), 200);
    let twiml = String::from_utf8(refused.body().await.unwrap().to_vec()).unwrap();
    assert!(
        twiml.contains("<Say>") && twiml.contains("<Hangup/>") && !twiml.contains("<Stream"),
        "{twiml}"
    );
    let record = server
        .server
        .store
        .call(&call_sid(3))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.end_reason.as_deref(), Some("over_capacity"));
    server
        .metrics_until(|text| {
            text.contains(r#"phone_agent_calls_ended_total{reason="over_capacity"} 1"#)
        })
        .await;

    // The calls already taken go on.
    let mut second = server.sim.connect(&second).await.unwrap();
    exchange(&mut first, 1, 0, 3).await;
    exchange(&mut second, 2, 0, 3).await;

    // Once one ends, a new call is taken again.
    first.send_stop().await.unwrap();
    expect_close(&mut first).await;
    within(server.server.live_calls.wait_until_at_most(1)).await;
    let (_, mut fourth) = server.call(&call_sid(4)).await;
    exchange(&mut fourth, 4, 0, 3).await;
}

/// A server with `ADMISSION_LAG_MS=100` whose last second of frames were handled 300 ms behind
/// their streams' clocks, as on a server past its capacity: it refuses new calls.
async fn lagging_server() -> TestServer {
    let server = TestServer::start(&[("ADMISSION_LAG_MS", "100")]).await;
    let lateness = server.server.live_calls.lateness();
    for _ in 0..100 {
        lateness.record(Instant::now(), Duration::from_millis(300));
    }
    server
}

#[actix_rt::test]
async fn while_calls_audio_is_handled_late_new_calls_are_refused_and_once_it_catches_up_taken() {
    let server = lagging_server().await;
    let lateness = server.server.live_calls.lateness();

    let mut refused = server
        .voice_post(&[("CallSid", call_sid(1).as_str())])
        .await
        .unwrap();
    let twiml = String::from_utf8(refused.body().await.unwrap().to_vec()).unwrap();
    assert!(
        twiml.contains("<Hangup/>") && !twiml.contains("<Stream"),
        "{twiml}"
    );
    let record = server
        .server
        .store
        .call(&call_sid(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.end_reason.as_deref(), Some("over_capacity"));

    // Caught up: the last second's frames on time.
    for _ in 0..10_000 {
        lateness.record(Instant::now(), Duration::ZERO);
    }
    let (_, mut media) = server.call(&call_sid(2)).await;
    exchange(&mut media, 2, 0, 3).await;
}

/// A connection holding the test server's SQLite database locked (`BEGIN EXCLUSIVE`) until it
/// commits.
async fn lock_database(server: &TestServer) -> sqlx::SqliteConnection {
    use sqlx::Connection as _;

    let file = server.data.path().join("phone-agent.db");
    let mut writer = sqlx::SqliteConnection::connect(&format!("sqlite://{}", file.display()))
        .await
        .unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut writer)
        .await
        .unwrap();
    writer
}

#[actix_rt::test]
async fn a_call_refused_while_the_database_is_locked_is_recorded_once_it_frees() {
    let server = lagging_server().await;
    let mut writer = lock_database(&server).await;
    let release = async {
        actix_rt::time::sleep(Duration::from_millis(5_500)).await;
        sqlx::query("COMMIT").execute(&mut writer).await.unwrap();
    };
    let sid = call_sid(8);
    // Twilio waits 15 s for the answer.
    let form = [("CallSid", sid.as_str())];
    let url = format!("https://{PUBLIC_HOST}/twilio/voice");
    let post = server
        .request(awc::http::Method::POST, "/twilio/voice", None)
        .timeout(Duration::from_secs(15))
        .insert_header((
            "x-twilio-signature",
            voice_signature(TWILIO_AUTH_TOKEN, &url, &form),
        ))
        .send_form(&form);
    let (answer, ()) = futures_util::join!(post, release);
    let mut answer = answer.unwrap();
    let twiml = String::from_utf8(answer.body().await.unwrap().to_vec()).unwrap();
    assert!(twiml.contains("<Hangup/>"), "refused: {twiml}");
    let record = server.server.store.call(&sid).await.unwrap();
    let reason = record.and_then(|record| record.end_reason);
    assert_eq!(
        reason.as_deref(),
        Some("over_capacity"),
        "recorded once free"
    );
}

#[actix_rt::test]
async fn a_call_arriving_while_the_database_is_locked_is_recorded_once_it_frees() {
    let server = TestServer::start(&[]).await;
    // Another writer holds the database past SQLite's 5 s busy wait.
    let mut writer = lock_database(&server).await;
    let release = async {
        actix_rt::time::sleep(Duration::from_millis(5_500)).await;
        sqlx::query("COMMIT").execute(&mut writer).await.unwrap();
    };
    let sid = call_sid(7);
    let (answer, ()) = futures_util::join!(server.sim.place_call(&sid), release);
    answer.expect("the caller is answered with a stream");
    let recorded = server.server.store.call(&call_sid(7)).await.unwrap();
    assert!(recorded.is_some(), "recorded once the database was free");
}

#[actix_rt::test]
async fn turns_taken_while_the_database_is_locked_are_recorded_once_it_frees() {
    let server = TestServer::start(&[]).await;
    let sid = call_sid(8);
    let (_, mut media) = server.call(&sid).await;
    exchange(&mut media, 8, 0, 1).await;
    // Another writer holds the database past SQLite's 5 s busy wait.
    let mut writer = lock_database(&server).await;
    // The call goes on meanwhile: every loopback frame is a caller turn and an agent turn.
    exchange(&mut media, 8, 1, 3).await;
    actix_rt::time::sleep(Duration::from_millis(5_500)).await;
    sqlx::query("COMMIT").execute(&mut writer).await.unwrap();

    // The journal waited the lock out instead of dropping the turns: the four caller turns are
    // stored (an agent turn is stored once its audio has played).
    within(async {
        loop {
            let transcript = server.server.store.transcript(&sid).await.unwrap();
            let callers = transcript
                .iter()
                .filter(|t| t.turn.speaker == Speaker::Caller);
            if callers.count() == 4 {
                break;
            }
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

#[actix_rt::test]
async fn a_whole_call_echoes_five_seconds_in_order_paced_at_real_time() {
    let server = TestServer::start(&[]).await;
    let (_, mut media) = server.call(&call_sid(1)).await;

    // Twilio sends 20 ms frames at real time; a network hiccup delivers them in a burst. Send all
    // 5 s at once: the audio must come back complete, in order, and no faster than real time.
    const FRAMES: u32 = 250;
    for n in 0..FRAMES {
        media.send_media(&frame(7, n)).await.unwrap();
    }
    let mut first_at = None;
    let mut marks = Vec::new();
    let mut n = 0;
    while n < FRAMES {
        match within(media.recv()).await.expect("socket open") {
            Received::Media(audio) => {
                assert_eq!(audio, frame(7, n), "frame {n} out of order or changed");
                first_at.get_or_insert_with(Instant::now);
                n += 1;
            }
            Received::Mark(name) => {
                media.send_mark(&name).await.unwrap();
                marks.push(name);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let span = first_at.unwrap().elapsed();
    // 249 frames after the first at 20 ms each, less the 100 ms lead; timers may run late, not early.
    assert!(
        span >= Duration::from_millis(4_800),
        "sent faster than real time: {span:?}"
    );
    assert!(
        span < Duration::from_millis(6_000),
        "paced too slowly: {span:?}"
    );

    // Each loopback utterance is one chunk, followed by its mark.
    if let Some(Received::Mark(name)) = within(media.recv()).await {
        marks.push(name);
    }
    assert_eq!(marks.len(), FRAMES as usize);
    assert_eq!(marks[0], "u1c0");
    assert_eq!(marks[249], "u250c0");

    media.send_stop().await.unwrap();
    let (code, _) = expect_close(&mut media).await;
    assert_eq!(code, Some(1000));
    server.until_no_live_calls().await;
}

#[actix_rt::test]
async fn two_concurrent_calls_stay_isolated() {
    let server = TestServer::start(&[]).await;
    let (_, mut a) = server.call(&call_sid(1)).await;
    let (_, mut b) = server.call(&call_sid(2)).await;
    assert_eq!(server.server.live_calls.count(), 2);
    for round in 0..10 {
        exchange(&mut a, 0xA1, round * 5, 5).await;
        exchange(&mut b, 0xB2, round * 5, 5).await;
    }
    a.send_stop().await.unwrap();
    assert_eq!(expect_close(&mut a).await.0, Some(1000));
    // B is unaffected by A's end.
    exchange(&mut b, 0xB2, 50, 10).await;
    b.send_stop().await.unwrap();
    assert_eq!(expect_close(&mut b).await.0, Some(1000));
    server.until_no_live_calls().await;
}

#[actix_rt::test]
async fn health_reports_live_calls_and_ready() {
    let server = TestServer::start(&[]).await;
    let client = awc::Client::new();
    let (_, mut media) = server.call(&call_sid(1)).await;
    exchange(&mut media, 1, 0, 1).await;
    let mut health = client
        .get(format!("{}/health", server.base))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = health.json().await.unwrap();
    assert_eq!(body["live_calls"], 1);
    let ready = client
        .get(format!("{}/ready", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    media.close().await.unwrap();
    server.until_no_live_calls().await;
}
