//! The bearer-token API's guards on a real server: token lifecycle (rotation overlap, expiry,
//! revocation), the 401/403 cases, lockout, rate limits and their headers, blocks, proxy headers
//! ignored by default. These check the wiring without waiting: how lockouts and blocks end and
//! double, and where a token's expiry falls, are unit tests on made-up time (`guard::auth`,
//! `guard::rate_limit`, `guard::penalty`).

use awc::http::Method;
use phone_agent::guard::token::Scope;
use serde_json::json;

use crate::support::*;

fn header<'a>(headers: &'a awc::http::header::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("header {name}"))
        .to_str()
        .unwrap()
}

#[actix_rt::test]
async fn tokens_are_created_rotated_with_overlap_expire_and_are_revoked() {
    let server = TestServer::start(&[]).await;
    let admin = server.token(&[Scope::TokensAdmin]).await;
    let create = |body: serde_json::Value| {
        server
            .request(Method::POST, "/api/tokens", Some(&admin))
            .send_json(&body)
    };
    let (status, _, created) = json(create(
        json!({ "name": "reader", "scopes": ["calls:read"] }),
    ))
    .await;
    assert_eq!(status, 201, "{created}");
    let reader = created["token"].as_str().unwrap().to_owned();
    let reader_id = created["record"]["id"].as_str().unwrap().to_owned();
    assert!(reader.starts_with("pa_live_"));
    assert_eq!(created["record"]["scopes"], json!(["calls:read"]));
    let calls = |token: &str| {
        json(
            server
                .request(Method::GET, "/api/calls", Some(token))
                .send(),
        )
    };
    assert_eq!(calls(&reader).await.0, 200);

    // Rotation: the replacement works at once, the old token for the overlap only (an overlap of
    // zero ends it at once).
    let rotate = |id: &str, overlap_seconds: u64| {
        json(
            server
                .request(
                    Method::POST,
                    &format!("/api/tokens/{id}/rotate"),
                    Some(&admin),
                )
                .send_json(&json!({ "overlap_seconds": overlap_seconds })),
        )
    };
    let (status, _, rotated) = rotate(&reader_id, 3600).await;
    assert_eq!(status, 201, "{rotated}");
    let replacement = rotated["token"].as_str().unwrap().to_owned();
    assert_eq!(calls(&reader).await.0, 200, "within the overlap");
    assert_eq!(calls(&replacement).await.0, 200);
    let (status, _, rotated_again) = rotate(rotated["record"]["id"].as_str().unwrap(), 0).await;
    assert_eq!(status, 201, "{rotated_again}");
    let second = rotated_again["token"].as_str().unwrap().to_owned();
    assert_eq!(calls(&replacement).await.0, 401, "after the overlap");
    assert_eq!(calls(&second).await.0, 200);
    assert_eq!(calls(&reader).await.0, 200, "its own overlap goes on");

    // Expiry: a lifetime is stamped on the record (the old token above shows an expired one
    // refused).
    let (_, _, short) = json(create(
        json!({ "name": "short", "scopes": ["calls:read"], "expires_in_seconds": 1 }),
    ))
    .await;
    let record = &short["record"];
    assert_eq!(
        record["expires_at"].as_i64().unwrap() - record["created_at"].as_i64().unwrap(),
        1000
    );
    let short = short["token"].as_str().unwrap().to_owned();
    assert_eq!(calls(&short).await.0, 200);

    // Revocation.
    let second_id = rotated_again["record"]["id"].as_str().unwrap();
    let revoke = |id: String| {
        server
            .request(Method::DELETE, &format!("/api/tokens/{id}"), Some(&admin))
            .send()
    };
    assert_eq!(json(revoke(second_id.to_owned())).await.0, 204);
    assert_eq!(calls(&second).await.0, 401, "revoked");
    assert_eq!(json(revoke(second_id.to_owned())).await.0, 404);

    // The list shows records, never a token.
    let (status, _, list) = json(
        server
            .request(Method::GET, "/api/tokens", Some(&admin))
            .send(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(list["tokens"].as_array().unwrap().len(), 5);
    let text = list.to_string();
    for token in [&admin, &reader, &replacement, &second, &short] {
        assert!(!text.contains(token.as_str()));
    }

    // Every change and authentication is in the audit trail, without a token.
    server
        .server
        .auth
        .send(phone_agent::guard::auth::FlushAudit)
        .await
        .unwrap()
        .unwrap();
    let events = server.server.store.audit_events(100).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    for kind in [
        "token.created",
        "token.rotated",
        "token.revoked",
        "auth.success",
        "auth.failure",
        "config.loaded",
    ] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    let dump = format!("{events:?}");
    for token in [&admin, &reader, &replacement, &second, &short] {
        assert!(!dump.contains(token.as_str()));
    }
}

#[actix_rt::test]
async fn every_401_looks_the_same_and_a_missing_scope_is_403() {
    let server = TestServer::start(&[]).await;
    let reader = server.token(&[Scope::CallsRead]).await;
    let admin = server.token(&[Scope::TokensAdmin]).await;
    let revoked_id = {
        let (_, _, created) = json(
            server
                .request(Method::POST, "/api/tokens", Some(&admin))
                .send_json(&json!({ "name": "gone", "scopes": ["calls:read"] })),
        )
        .await;
        let token = created["token"].as_str().unwrap().to_owned();
        let id = created["record"]["id"].as_str().unwrap().to_owned();
        server
            .request(Method::DELETE, &format!("/api/tokens/{id}"), Some(&admin))
            .send()
            .await
            .unwrap();
        token
    };
    let unknown = format!("pa_live_{}", "A".repeat(43));
    let requests = [
        server.request(Method::GET, "/api/calls", None),
        server
            .request(Method::GET, "/api/calls", None)
            .insert_header(("authorization", "Basic dXNlcjpwYXNz")),
        server.request(Method::GET, "/api/calls", Some(&unknown)),
        server.request(Method::GET, "/api/calls", Some("not-even-a-token")),
        server.request(Method::GET, "/api/calls", Some(&revoked_id)),
        server.request(Method::GET, "/api/no-such-route", None),
    ];
    for request in requests {
        let (status, headers, body) = json(request.send()).await;
        assert_eq!(status, 401);
        assert_eq!(
            header(&headers, "www-authenticate"),
            "Bearer realm=\"phone-agent\""
        );
        assert_eq!(body["error"]["code"], "unauthorized");
        assert_eq!(body["error"]["message"], "authentication required");
    }
    let (status, _, body) = json(
        server
            .request(Method::GET, "/api/tokens", Some(&reader))
            .send(),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    let (status, _, _) = json(
        server
            .request(Method::POST, "/api/tokens", Some(&reader))
            .send_json(&json!({ "bad": "body" })),
    )
    .await;
    assert_eq!(status, 403, "the scope is checked before the body");
}

#[actix_rt::test]
async fn repeated_failures_lock_the_ip_out_even_with_a_good_token() {
    let server = TestServer::start(&[
        ("AUTH_LOCKOUT_FAILURES", "3"),
        ("AUTH_LOCKOUT", "1s"),
        ("AUTH_LOCKOUT_MAX", "4s"),
    ])
    .await;
    let good = server.token(&[Scope::CallsRead]).await;
    let get = |token: &str| {
        json(
            server
                .request(Method::GET, "/api/calls", Some(token))
                .send(),
        )
    };
    for _ in 0..3 {
        assert_eq!(get("pa_live_guess").await.0, 401);
    }
    let (status, headers, body) = get(&good).await;
    assert_eq!(status, 429, "locked out, even with a good token");
    assert_eq!(header(&headers, "retry-after"), "1");
    assert_eq!(body["error"]["code"], "too_many_requests");
}

#[actix_rt::test]
async fn each_ip_and_each_token_has_its_own_budget_with_headers() {
    let server = TestServer::start(&[
        ("RATE_LIMIT_API_READ", "5/min"),
        ("RATE_LIMIT_TOKEN_API_READ", "3/min"),
        ("TRUST_PROXY", "true"),
    ])
    .await;
    let a = server.token(&[Scope::CallsRead]).await;
    let b = server.token(&[Scope::CallsRead]).await;
    let get = |token: &str, ip: &str| {
        json(
            server
                .request(Method::GET, "/api/calls", Some(token))
                .insert_header(("x-forwarded-for", ip.to_owned()))
                .send(),
        )
    };
    // Token a's own budget (3) is the tighter: the headers show it.
    for remaining in ["2", "1", "0"] {
        let (status, headers, _) = get(&a, "198.51.100.1").await;
        assert_eq!(status, 200);
        assert_eq!(header(&headers, "ratelimit-limit"), "3");
        assert_eq!(header(&headers, "ratelimit-remaining"), remaining);
        assert!(header(&headers, "ratelimit-reset").parse::<u64>().unwrap() <= 60);
    }
    let (status, headers, body) = get(&a, "198.51.100.1").await;
    assert_eq!(status, 429, "token a's budget is spent");
    let retry: u64 = header(&headers, "retry-after").parse().unwrap();
    assert!((1..=20).contains(&retry), "{retry}");
    assert_eq!(body["error"]["code"], "too_many_requests");
    assert_eq!(get(&a, "198.51.100.2").await.0, 429, "from any IP");
    // The IP had 5: three went to a; token b gets the last one, then the IP's limit (5) bites.
    let (status, headers, _) = get(&b, "198.51.100.1").await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "ratelimit-limit"),
        "5",
        "now the IP's is the tighter"
    );
    assert_eq!(header(&headers, "ratelimit-remaining"), "0");
    assert_eq!(
        get(&b, "198.51.100.1").await.0,
        429,
        "the IP's budget is spent"
    );
    assert_eq!(
        get(&b, "198.51.100.3").await.0,
        200,
        "token b from another IP"
    );
}

#[actix_rt::test]
async fn repeated_excess_blocks_the_ip_in_every_class() {
    let server = TestServer::start(&[
        ("RATE_LIMIT_API_READ", "1/min"),
        ("RATE_LIMIT_STRIKES", "2"),
        ("RATE_LIMIT_BLOCK", "1s"),
        ("RATE_LIMIT_BLOCK_MAX", "3s"),
    ])
    .await;
    let health = || json(server.request(Method::GET, "/health", None).send());
    assert_eq!(health().await.0, 200);
    assert_eq!(health().await.0, 429, "limited");
    let (status, headers, _) = health().await;
    assert_eq!(
        (status, header(&headers, "retry-after")),
        (429, "1"),
        "blocked"
    );
    let voice = server
        .request(Method::POST, "/twilio/voice", None)
        .send_form(&[("CallSid", call_sid(1))]);
    let (status, _, _) = json(voice).await;
    assert_eq!(status, 429, "a block covers every class");
}

#[actix_rt::test]
async fn forwarding_headers_are_ignored_by_default() {
    let server = TestServer::start(&[("RATE_LIMIT_API_READ", "2/min")]).await;
    let mut statuses = Vec::new();
    for n in 0..3 {
        let request = server
            .request(Method::GET, "/health", None)
            .insert_header(("x-forwarded-for", format!("203.0.113.{n}")))
            .insert_header(("forwarded", format!("for=203.0.114.{n}")));
        statuses.push(json(request.send()).await.0);
    }
    assert_eq!(statuses, [200, 200, 429], "one budget: the TCP peer's");
}

#[actix_rt::test]
async fn addresses_rotated_inside_an_ipv6_network_are_locked_out_together() {
    let server = TestServer::start(&[
        ("AUTH_LOCKOUT_FAILURES", "3"),
        ("AUTH_LOCKOUT", "1s"),
        ("TRUST_PROXY", "true"),
    ])
    .await;
    let good = server.token(&[Scope::CallsRead]).await;
    let get = |token: &str, ip: &str| {
        json(
            server
                .request(Method::GET, "/api/calls", Some(token))
                .insert_header(("forwarded", format!("for=\"[{ip}]\"")))
                .send(),
        )
    };
    for host in 1..=3 {
        let (status, _, _) = get("pa_live_guess", &format!("2001:db8:5:6::{host}")).await;
        assert_eq!(status, 401);
    }
    let (status, _, _) = get(&good, "2001:db8:5:6:ffff::1").await;
    assert_eq!(
        status, 429,
        "another address of the same /64 is the same client"
    );
    assert_eq!(get(&good, "2001:db8:5:7::1").await.0, 200, "another /64");
}
