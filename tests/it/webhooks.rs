//! Inbound webhooks on a real server: signatures of both schemes checked on the raw body,
//! generic refusals, the body limit, and replays acknowledged but not processed, also after a
//! restart. Signatures are made here from HMAC's definition over SHA-256 (not by the code under
//! test).

use actix_web::http::Method;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use phone_agent::engines;
use serde_json::Value;

use crate::support::hmac::hmac_sha256 as hmac;
use crate::support::*;

/// A Standard Webhooks secret (the one of the specification's test vector).
const SVIX_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// The product's own scheme's secret.
const RESEND_SECRET: &str = "the-products-webhook-secret";
const DELIVERED: &str = r#"{"type":"email.delivered","created_at":"2026-11-26T04:00:00Z","data":{"email_id":"4ef9a417-02e9-4d39-ad75-9611e0fcc33c"}}"#;

fn now() -> i64 {
    phone_agent::store::now_ms() / 1000
}

/// Standard Webhooks headers for `body`, sent as `id` at `timestamp`.
fn svix_headers(id: &str, timestamp: i64, body: &str) -> Vec<(String, String)> {
    let key = BASE64
        .decode(SVIX_SECRET.trim_start_matches("whsec_"))
        .unwrap();
    let timestamp = timestamp.to_string();
    let tag = hmac(
        &key,
        &[
            id.as_bytes(),
            b".",
            timestamp.as_bytes(),
            b".",
            body.as_bytes(),
        ],
    );
    vec![
        ("svix-id".into(), id.into()),
        ("svix-timestamp".into(), timestamp),
        (
            "svix-signature".into(),
            format!("v1,{}", BASE64.encode(tag)),
        ),
    ]
}

/// The product's scheme's headers for `body` at `timestamp`.
fn resend_headers(timestamp: i64, body: &str) -> Vec<(String, String)> {
    let timestamp = timestamp.to_string();
    let tag = hmac(
        RESEND_SECRET.as_bytes(),
        &[timestamp.as_bytes(), b".", body.as_bytes()],
    );
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    vec![
        ("resend-timestamp".into(), timestamp),
        ("resend-signature".into(), hex),
    ]
}

/// Headers of a request, by name.
type Headers = [(String, String)];

async fn post(server: &TestServer, headers: &Headers, body: &str) -> (u16, Value) {
    let mut request = server
        .request(Method::POST, "/webhooks/resend", None)
        .content_type("application/json");
    for (name, value) in headers {
        request = request.insert_header((name.as_str(), value.as_str()));
    }
    let mut response = request.send_body(body.to_owned()).await.unwrap();
    let json = response
        .json::<Value>()
        .limit(1 << 20)
        .await
        .unwrap_or(Value::Null);
    (response.status().as_u16(), json)
}

fn secrets() -> Vec<(&'static str, &'static str)> {
    vec![
        ("SVIX_WEBHOOK_SECRET", SVIX_SECRET),
        ("WEBHOOK_SECRET", RESEND_SECRET),
    ]
}

#[actix_rt::test]
async fn a_signed_event_is_processed_once_even_across_a_restart() {
    let config = test_config(&secrets());
    let server = TestServer::start_with(&config, engines::loopback_set()).await;
    let headers = svix_headers("msg_2uXkLpX0bJd1mZ", now(), DELIVERED);
    let (status, body) = post(&server, &headers, DELIVERED).await;
    assert_eq!((status, body["duplicate"].as_bool()), (200, None), "{body}");
    let (status, body) = post(&server, &headers, DELIVERED).await;
    assert_eq!((status, body["duplicate"].as_bool()), (200, Some(true)));

    // The product's own scheme; its replay id is its signature.
    let headers_own = resend_headers(now(), DELIVERED);
    assert_eq!(
        post(&server, &headers_own, DELIVERED).await.1["duplicate"],
        Value::Null
    );
    assert_eq!(
        post(&server, &headers_own, DELIVERED).await.1["duplicate"],
        true
    );

    let data = server.stop().await;
    let server = TestServer::start_in(&config, engines::loopback_set(), data).await;
    let (status, body) = post(&server, &headers, DELIVERED).await;
    assert_eq!(
        (status, body["duplicate"].as_bool()),
        (200, Some(true)),
        "after a restart"
    );
}

#[actix_rt::test]
async fn refusals_are_generic_and_say_nothing_of_why() {
    let server = TestServer::start(&secrets()).await;
    // Well past the 5 minutes: the server's clock may read a second later than this one (the
    // exact edge is the unit tests', with a fixed clock).
    let stale = svix_headers("msg_stale", now() - 310, DELIVERED);
    let future = svix_headers("msg_future", now() + 310, DELIVERED);
    let mut forged = svix_headers("msg_forged", now(), DELIVERED);
    forged[2].1 = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=".into();
    let mut odd_time = resend_headers(now(), DELIVERED);
    odd_time[0].1 = "soon".into();
    let other_body = svix_headers("msg_changed", now(), DELIVERED);
    let cases: [(&str, &Headers, &str); 6] = [
        ("stale", &stale, DELIVERED),
        ("from the future", &future, DELIVERED),
        ("forged", &forged, DELIVERED),
        ("timestamp not an integer", &odd_time, DELIVERED),
        ("unsigned", &[], DELIVERED),
        ("body changed", &other_body, r#"{"type":"email.bounced"}"#),
    ];
    for (case, headers, body) in cases {
        let (status, json) = post(&server, headers, body).await;
        assert_eq!(status, 401, "{case}");
        assert_eq!(json["error"]["code"], "unauthorized", "{case}: {json}");
        let text = json.to_string();
        assert!(
            !text.contains("timestamp") && !text.contains("signature"),
            "{case}: {text}"
        );
    }

    server
        .metrics_until(|text| {
            text.contains(r#"phone_agent_webhooks_total{direction="in",outcome="refused"} 6"#)
        })
        .await;

    // A signed body that is not JSON is a clear 400; a body past the limit a 413.
    let garbage = "not json";
    let (status, _) = post(
        &server,
        &svix_headers("msg_garbage", now(), garbage),
        garbage,
    )
    .await;
    assert_eq!(status, 400);
    let huge = format!(
        r#"{{"type":"email.sent","pad":"{}"}}"#,
        "x".repeat(70 * 1024)
    );
    let (status, _) = post(&server, &svix_headers("msg_huge", now(), &huge), &huge).await;
    assert_eq!(status, 413);

    // A scheme whose secret is not configured refuses everything.
    let server = TestServer::start(&[]).await;
    let (status, _) = post(&server, &svix_headers("msg_1", now(), DELIVERED), DELIVERED).await;
    assert_eq!(status, 401);
}
