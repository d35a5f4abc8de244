//! The HTTP surface's defaults on a real server: Twilio signatures (webhook and WebSocket
//! upgrade), security headers and request ids on every response, one error envelope for every
//! error status, validation messages naming the field, phone numbers sealed at rest.

use std::time::{Duration, Instant};

use awc::http::Method;
use phone_agent::guard::token::Scope;
use phone_agent::twilio::signature::TwilioSigner;
use serde_json::json;

use crate::support::*;

const VOICE_FORM: [(&str, &str); 3] = [
    ("CallSid", "CA0123456789abcdef0123456789abcdef"),
    ("From", "+14155550100"),
    ("To", "+14155550199"),
];

#[actix_rt::test]
async fn twilio_requests_need_a_valid_signature_including_the_websocket_upgrade() {
    let server = TestServer::start(&[]).await;
    let good = voice_signature(
        TWILIO_AUTH_TOKEN,
        "https://agent.test/twilio/voice",
        &VOICE_FORM,
    );
    let mut response = server.voice_post_signed(&VOICE_FORM, &good).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(String::from_utf8_lossy(&response.body().await.unwrap()).contains("<Stream"));
    // Another call, signed over the URL with its default port.
    let another = [
        ("CallSid", "CA0123456789abcdef0123456789abcde0"),
        VOICE_FORM[1],
        VOICE_FORM[2],
    ];
    let with_port = voice_signature(
        TWILIO_AUTH_TOKEN,
        "https://agent.test:443/twilio/voice",
        &another,
    );
    assert_eq!(
        server
            .voice_post_signed(&another, &with_port)
            .await
            .unwrap()
            .status(),
        200
    );
    let refused = [
        voice_signature(
            "another-token",
            "https://agent.test/twilio/voice",
            &VOICE_FORM,
        ),
        voice_signature(
            TWILIO_AUTH_TOKEN,
            "https://evil.test/twilio/voice",
            &VOICE_FORM,
        ),
        voice_signature(
            TWILIO_AUTH_TOKEN,
            "http://agent.test/twilio/voice",
            &VOICE_FORM,
        ),
        "garbage".to_owned(),
    ];
    for signature in refused {
        let (status, _, body) = json(server.voice_post_signed(&VOICE_FORM, &signature)).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("forbidden"))
        );
    }
    let (status, _, _) = json(
        server
            .request(Method::POST, "/twilio/voice", None)
            .send_form(&VOICE_FORM),
    )
    .await;
    assert_eq!(status, 403, "no signature");

    // The media socket: a signed upgrade works (every call test does it); unsigned or signed
    // with another token it is refused before any WebSocket exists.
    assert_eq!(upgrade_status(&server, None).await, 403, "unsigned");
    let forged = TwilioSigner::new("another-token").sign("wss://agent.test/twilio/media", &[]);
    assert_eq!(upgrade_status(&server, Some(&forged)).await, 403, "forged");
    let (_, mut media) = server.call(&call_sid(1)).await;
    exchange(&mut media, 1, 0, 2).await;
}

/// The status of a WebSocket upgrade of `/twilio/media` carrying `signature`.
async fn upgrade_status(server: &TestServer, signature: Option<&str>) -> u16 {
    let url = format!("{}/twilio/media", server.base).replacen("http", "ws", 1);
    let mut request = awc::Client::new().ws(url);
    if let Some(signature) = signature {
        request = request.set_header("x-twilio-signature", signature);
    }
    match request.connect().await {
        Ok((response, _)) => response.status().as_u16(),
        Err(awc::error::WsClientError::InvalidResponseStatus(status)) => status.as_u16(),
        Err(error) => panic!("the upgrade got no answer: {error}"),
    }
}

/// Signatures for this server's token (`test-twilio-auth-token`) computed with Python's `hmac`
/// (HMAC-SHA1 of the URL and the sorted parameters, base64), not by the code under test; the same
/// script reproduces Twilio's published example (`0/KCTR6DLpKmkAf8muzZqo1nDgQ=`).
mod independent {
    /// The voice webhook at `https://agent.test/twilio/voice`, form [`super::form`]`(1)`.
    pub const FORM: &str = "PP7KBpdxcoddP3Y3n2ctXFdA/LY=";
    /// The same at `https://agent.test/twilio/voice?agent=default&lang=en`, form `form(2)`.
    pub const QUERY: &str = "QoN1tJ0yVfSa1qZUIrFs4ux2+T0=";
    /// The media socket's upgrade: `wss://agent.test/twilio/media`, no parameters.
    pub const MEDIA_UPGRADE: &str = "JNl0P4mlbAv6IOWL0XHpZbRJNb0=";
    /// URL only: `wss://agent.test/twilio/voice`.
    pub const VOICE_URL_ONLY_WSS: &str = "ZjIHDiHP/eZ/5+KaCOQzpvwlb8w=";
    /// URL only: `https://agent.test/twilio/voice`.
    pub const VOICE_URL_ONLY: &str = "Rv9pMNc907ReMJXtz93Ck6EK8Ek=";
}

/// The voice webhook's form for call `CA…a0n`.
fn form(n: u8) -> [(&'static str, String); 3] {
    [
        ("CallSid", format!("CA00000000000000000000000000000a{n:02}")),
        ("From", "+14155550100".to_owned()),
        ("To", "+14155550199".to_owned()),
    ]
}

#[actix_rt::test]
async fn signatures_computed_outside_the_code_are_accepted_and_bodies_are_always_signed() {
    let server = TestServer::start(&[]).await;
    let post = |path: &str, signature: &str| {
        server
            .request(Method::POST, path, None)
            .insert_header(("x-twilio-signature", signature.to_owned()))
    };
    let status = |response: awc::SendClientRequest| async {
        response.await.expect("server answers").status().as_u16()
    };
    let form_webhook = post("/twilio/voice", independent::FORM).send_form(&form(1));
    assert_eq!(status(form_webhook).await, 200, "a form webhook");
    let query = "/twilio/voice?agent=default&lang=en";
    let with_query = post(query, independent::QUERY).send_form(&form(2));
    assert_eq!(status(with_query).await, 200, "a URL with a query string");
    assert_eq!(
        upgrade_status(&server, Some(independent::MEDIA_UPGRADE)).await,
        101,
        "the wss URL-only upgrade"
    );

    // A POST claiming to be an upgrade is not let through on the URL's signature alone.
    let claimed = post("/twilio/voice", independent::VOICE_URL_ONLY_WSS)
        .insert_header(("upgrade", "websocket"))
        .insert_header(("connection", "upgrade"))
        .send_form(&form(3));
    let (status, _, body) = json(claimed).await;
    assert_eq!(status, 400, "Upgrade on a POST");
    assert_eq!(
        body["error"]["message"],
        "a WebSocket upgrade must be a GET"
    );
    // A body that is not a form is covered only by bodySHA256; a URL-only signature is not enough.
    let unsigned_json = post("/twilio/voice", independent::VOICE_URL_ONLY)
        .send_json(&json!({"CallSid": "CA00000000000000000000000000000a04"}));
    assert_eq!(
        json(unsigned_json).await.0,
        403,
        "a JSON body without bodySHA256"
    );
}

#[actix_rt::test]
async fn validation_can_be_turned_off_explicitly() {
    let server = TestServer::start(&[("TWILIO_VALIDATE", "false")]).await;
    let response = server
        .request(Method::POST, "/twilio/voice", None)
        .send_form(&VOICE_FORM)
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

/// The voice webhook's path for a body of `{}`: SHA-256 of those two bytes as `bodySHA256`.
const EMPTY_JSON_VOICE: &str =
    "/twilio/voice?bodySHA256=44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

/// Every security header `http::frame` sets, with its exact value.
const SECURITY_HEADERS: [(&str, &str); 6] = [
    (
        "strict-transport-security",
        "max-age=63072000; includeSubDomains",
    ),
    (
        "content-security-policy",
        "default-src 'none'; frame-ancestors 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    ("cache-control", "no-store"),
];

#[actix_rt::test]
async fn every_response_has_the_security_headers_a_request_id_and_errors_one_envelope() {
    // Four writes from this client pass; the fifth (the last case) is over the limit.
    let server = TestServer::start(&[("RATE_LIMIT_API_WRITE", "4/min")]).await;
    let admin = server.token(&[Scope::TokensAdmin, Scope::CallsRead]).await;
    let reader = server.token(&[Scope::CallsRead]).await;
    let tokens = |token: &str| server.request(Method::POST, "/api/tokens", Some(token));
    let cases: Vec<(u16, Option<&str>, awc::SendClientRequest)> = vec![
        (
            200,
            None,
            server.request(Method::GET, "/health", None).send(),
        ),
        (
            200,
            None,
            server.request(Method::GET, "/ready", None).send(),
        ),
        (
            200,
            None,
            server
                .request(Method::GET, "/api/calls", Some(&admin))
                .send(),
        ),
        (
            400,
            Some("bad_request"),
            tokens(&admin)
                .insert_header(("content-type", "application/json"))
                .send_body("{not json"),
        ),
        (
            400,
            Some("bad_request"),
            server
                .request(Method::GET, "/api/calls?limit=1000", Some(&admin))
                .send(),
        ),
        (
            401,
            Some("unauthorized"),
            server.request(Method::GET, "/api/calls", None).send(),
        ),
        (
            403,
            Some("forbidden"),
            tokens(&reader).send_json(&json!({})),
        ),
        (
            404,
            Some("not_found"),
            server.request(Method::GET, "/nowhere", None).send(),
        ),
        (
            404,
            Some("not_found"),
            server
                .request(Method::GET, "/api/calls/CAnone", Some(&admin))
                .send(),
        ),
        (
            405,
            Some("method_not_allowed"),
            server.request(Method::DELETE, "/health", None).send(),
        ),
        (
            413,
            Some("payload_too_large"),
            tokens(&admin)
                .insert_header(("content-type", "application/json"))
                .send_body(vec![b' '; 20_000]),
        ),
        (
            415,
            Some("unsupported_media_type"),
            tokens(&admin)
                .insert_header(("content-type", "text/plain"))
                .send_body("name=x"),
        ),
        (
            415,
            Some("unsupported_media_type"),
            // A body that is not a form is signed by its hash in the URL (`bodySHA256`).
            server
                .request(Method::POST, EMPTY_JSON_VOICE, None)
                .insert_header((
                    "x-twilio-signature",
                    TwilioSigner::new(TWILIO_AUTH_TOKEN)
                        .sign(&format!("https://agent.test{EMPTY_JSON_VOICE}"), &[]),
                ))
                .insert_header(("content-type", "application/json"))
                .send_body("{}"),
        ),
        (
            429,
            Some("too_many_requests"),
            tokens(&admin).send_json(&json!({})),
        ),
    ];
    for (expected, code, request) in cases {
        let mut response = request.await.expect("server answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.body().await.unwrap();
        assert_eq!(status, expected, "{code:?}: {body:?}");
        for (name, value) in SECURITY_HEADERS {
            let values: Vec<&str> = headers.get_all(name).map(|v| v.to_str().unwrap()).collect();
            assert_eq!(values, [value], "{name} on {status}");
        }
        let request_id = headers
            .get("x-request-id")
            .expect("a request id")
            .to_str()
            .unwrap();
        if let Some(code) = code {
            assert_eq!(headers.get("content-type").unwrap(), "application/json");
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let error = body["error"].as_object().expect("the envelope");
            assert_eq!(error.len(), 3, "{body}");
            assert_eq!(error["code"], code);
            assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
            assert_eq!(error["request_id"], request_id);
        }
    }
}

#[actix_rt::test]
async fn a_storage_failure_is_a_generic_500_in_the_envelope() {
    let server = TestServer::start(&[]).await;
    let admin = server.token(&[Scope::CallsRead]).await;
    server.server.store.close().await;
    let (status, headers, body) = json(
        server
            .request(Method::GET, "/api/calls", Some(&admin))
            .send(),
    )
    .await;
    assert_eq!(status, 500);
    assert_eq!(
        body,
        json!({ "error": { "code": "internal", "message": "internal error",
                           "request_id": headers.get("x-request-id").unwrap().to_str().unwrap() } })
    );
}

#[actix_rt::test]
async fn json_bodies_are_typed_and_errors_name_the_field() {
    let server = TestServer::start(&[]).await;
    let admin = server.token(&[Scope::TokensAdmin]).await;
    let create = |body: serde_json::Value| {
        json(
            server
                .request(Method::POST, "/api/tokens", Some(&admin))
                .send_json(&body),
        )
    };
    let cases = [
        (
            json!({ "name": "x", "scopes": ["calls:read"], "admin": true }),
            "admin",
        ),
        (json!({ "name": "x" }), "scopes"),
        (json!({ "name": "x", "scopes": ["root"] }), "root"),
        (json!({ "name": "", "scopes": ["calls:read"] }), "name"),
        (json!({ "name": "x", "scopes": [] }), "scopes"),
        (
            json!({ "name": "x", "scopes": ["calls:read"], "expires_in_seconds": -5 }),
            "expires_in_seconds",
        ),
        (
            json!({ "name": "x", "scopes": ["calls:read"], "expires_in_seconds": 0 }),
            "expires_in",
        ),
    ];
    for (body, field) in cases {
        let (status, _, response) = create(body.clone()).await;
        assert_eq!(status, 400, "{body}");
        let message = response["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{message:?} names {field}");
        assert!(!message.contains("line"), "{message:?}");
    }
}

#[actix_rt::test]
async fn phone_numbers_are_sealed_at_rest_and_masked_in_responses() {
    let server = TestServer::start(&[]).await;
    let reader = server.token(&[Scope::CallsRead]).await;
    let (answer, mut media) = server.call(&call_sid(7)).await;
    media.send_stop().await.unwrap();
    let (status, _, call) = json(
        server
            .request(
                Method::GET,
                &format!("/api/calls/{}", answer.call_sid),
                Some(&reader),
            )
            .send(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(call["from"], "+1******0100");
    assert_eq!(call["to"], "+1******0199");
    let (_, _, list) = json(
        server
            .request(Method::GET, "/api/calls", Some(&reader))
            .send(),
    )
    .await;
    assert_eq!(list["calls"][0]["call_sid"], answer.call_sid.as_str());

    server.server.store.close().await;
    let mut raw = Vec::new();
    for entry in std::fs::read_dir(server.data.path()).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("phone-agent.db")
        {
            raw.extend(std::fs::read(path).unwrap());
        }
    }
    assert!(
        raw.windows(answer.call_sid.len())
            .any(|w| w == answer.call_sid.as_bytes()),
        "the call is stored"
    );
    for number in ["4155550100", "4155550199"] {
        assert!(
            !raw.windows(number.len()).any(|w| w == number.as_bytes()),
            "{number} in the database file"
        );
    }
}

#[actix_rt::test]
async fn a_body_that_does_not_arrive_in_time_fails_the_request_instead_of_holding_it() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let server = TestServer::start(&[("HTTP_BODY_TIMEOUT", "300ms")]).await;
    let token = server.token(&[Scope::CallsWrite]).await;
    let address = server.base.trim_start_matches("http://").to_owned();
    let mut socket = actix_rt::net::TcpStream::connect(&address).await.unwrap();
    // 100 bytes announced, one sent, and then nothing.
    let head = format!(
        "POST /api/calls HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut answer = vec![0u8; 512];
    let read = within(socket.read(&mut answer)).await.unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "not before the timeout"
    );
}
