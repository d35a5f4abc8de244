//! The guards' per-request costs: a bearer-token check, a rate-limit decision, a Twilio
//! signature check, an inbound webhook's signature check under both schemes (and the signing of
//! an outbound one); and the token check through the AuthActor's mailbox instead of the shared
//! cache, which is why the hot path does not go through the actor.
//!
//! Results and the machine they were measured on: `docs/benchmarks.md`.

use std::hint::black_box;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, Context, Handler, Message};
use criterion::{criterion_group, criterion_main, Criterion};
use phone_agent::guard::audit::AuditLog;
use phone_agent::guard::auth::Authenticator;
use phone_agent::guard::client_ip::{ClientNetworks, IpList};
use phone_agent::guard::penalty::PenaltySettings;
use phone_agent::guard::rate_limit::{EndpointClass, Limit, RateLimitSettings, RateLimits};
use phone_agent::guard::token::{hex, mint, Scope};
use phone_agent::store::now_ms;
use phone_agent::store::tokens::{HashedToken, TokenRecord};
use phone_agent::twilio::signature::{SignedRequest, TwilioSigner};
use phone_agent::webhooks::signature::{sign_standard, standard_key, WebhookKeys};

const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

fn penalties() -> PenaltySettings {
    PenaltySettings {
        threshold: 10,
        window: Duration::from_secs(60),
        base: Duration::from_secs(60),
        cap: Duration::from_secs(3600),
    }
}

/// An authenticator holding 1000 tokens, and the header of one of them.
fn authenticator() -> (Arc<Authenticator>, Vec<u8>) {
    let auth = Arc::new(Authenticator::new(
        penalties(),
        ClientNetworks::default(),
        Arc::new(AuditLog::default()),
    ));
    let mut header = Vec::new();
    let tokens: Vec<HashedToken> = (0..1000)
        .map(|n| {
            let minted = mint().unwrap();
            if n == 500 {
                header = format!("Bearer {}", minted.secret).into_bytes();
            }
            HashedToken {
                record: TokenRecord {
                    id: minted.id,
                    name: "bench".into(),
                    scopes: [Scope::CallsRead].into_iter().collect(),
                    created_at: 0,
                    expires_at: None,
                    last_used_at: None,
                    revoked_at: None,
                    replaced_by: None,
                },
                hash_hex: hex(&minted.hash),
            }
        })
        .collect();
    auth.load(&tokens);
    (auth, header)
}

/// The token check behind a mailbox, as it would be without the shared cache.
struct MailboxAuth(Arc<Authenticator>);

impl Actor for MailboxAuth {
    type Context = Context<Self>;
}

#[derive(Message)]
#[rtype(result = "bool")]
struct Check(Vec<u8>);

impl Handler<Check> for MailboxAuth {
    type Result = bool;

    fn handle(&mut self, check: Check, _: &mut Self::Context) -> bool {
        self.0
            .authenticate(Some(&check.0), CLIENT, Instant::now(), now_ms)
            .is_ok()
    }
}

fn token_check(c: &mut Criterion) {
    let (auth, header) = authenticator();
    let mut group = c.benchmark_group("token_check");
    group.bench_function("shared_cache", |b| {
        // The clock is read per request, as the guard middleware reads it.
        b.iter(|| {
            black_box(
                auth.authenticate(Some(black_box(&header)), CLIENT, Instant::now(), now_ms)
                    .is_ok(),
            )
        })
    });
    group.bench_function("through_actor_mailbox", |b| {
        b.iter_custom(|iters| {
            let auth = auth.clone();
            let header = header.clone();
            actix::System::new().block_on(async move {
                let actor = MailboxAuth(auth).start();
                let started = Instant::now();
                for _ in 0..iters {
                    black_box(actor.send(Check(header.clone())).await.unwrap());
                }
                started.elapsed()
            })
        })
    });
    group.finish();
}

fn rate_limit_decision(c: &mut Criterion) {
    let limit = Limit::parse("1000000/s").unwrap();
    let limits = RateLimits::new(
        &RateLimitSettings {
            limits: [limit; 4],
            token_limits: [limit; 4],
            blocks: penalties(),
            allow: IpList::default(),
            deny: IpList::parse("10.0.0.0/8").unwrap(),
        },
        ClientNetworks::default(),
    );
    // Spread over 1000 clients, as a busy server sees them.
    let clients: Vec<IpAddr> = (0..1000u32)
        .map(|n| IpAddr::V4((0xC633_6400 + n).into()))
        .collect();
    let mut next = 0;
    c.bench_function("rate_limit_decision", |b| {
        b.iter(|| {
            next = (next + 1) % clients.len();
            black_box(
                limits
                    .check_ip(clients[next], EndpointClass::ApiRead, Instant::now())
                    .is_ok(),
            )
        })
    });
}

fn signature_validation(c: &mut Criterion) {
    let signer = TwilioSigner::new("0123456789abcdef0123456789abcdef");
    // A voice webhook as Twilio posts it: 17 parameters.
    let form = "AccountSid=AC0123456789abcdef0123456789abcdef&ApiVersion=2010-04-01&\
        CallSid=CA0123456789abcdef0123456789abcdef&CallStatus=ringing&Called=%2B14155550199&\
        CalledCity=SAN+FRANCISCO&CalledCountry=US&CalledState=CA&CalledZip=94105&\
        Caller=%2B14155550100&CallerCity=OAKLAND&CallerCountry=US&CallerState=CA&\
        CallerZip=94601&Direction=inbound&From=%2B14155550100&To=%2B14155550199";
    let url = "https://agent.example.com/twilio/voice";
    let signature = signer.sign(
        url,
        &phone_agent::twilio::signature::form_params(form.as_bytes()),
    );
    let request = SignedRequest {
        url,
        form: Some(form.as_bytes()),
        raw: form.as_bytes(),
    };
    assert!(signer.verify(request, &signature));
    c.bench_function("twilio_signature_validation", |b| {
        b.iter(|| black_box(signer.verify(black_box(request), black_box(&signature))))
    });
}

/// An email provider's event as it arrives (about 700 bytes), under both inbound schemes, and an
/// outbound call event signed per Standard Webhooks.
fn webhook_signatures(c: &mut Criterion) {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let body = format!(
        r#"{{"type":"email.delivered","created_at":"2026-11-26T04:00:00.000Z","data":{{"email_id":"4ef9a417-02e9-4d39-ad75-9611e0fcc33c","from":"Bright Smile <calls@brightsmile.example>","to":["ana@example.com"],"subject":"Summary of your call","created_at":"2026-11-26T03:59:58.000Z","headers":[{{"name":"X-Entity-Ref-ID","value":"{}"}}],"tags":[{{"name":"category","value":"follow_up"}}]}}}}"#,
        "0".repeat(400)
    );
    let keys = WebhookKeys::new(Some("the-products-webhook-secret"), Some(secret)).unwrap();
    let key = standard_key(secret).unwrap();
    let now = now_ms() / 1000;
    let standard = sign_standard(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", now, body.as_bytes());
    let rotation = format!("v1,bm90IHRoaXMgb25l {standard}");
    let own_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"the-products-webhook-secret");
    let signed = format!("{now}.{body}");
    let own = hex(ring::hmac::sign(&own_key, signed.as_bytes()).as_ref());
    let now_text = now.to_string();
    let standard_headers = |name: &str| match name {
        "svix-id" => Some("msg_p5jXN8AQM9LWM0D4loKWxJek"),
        "svix-timestamp" => Some(now_text.as_str()),
        "svix-signature" => Some(rotation.as_str()),
        _ => None,
    };
    let own_headers = |name: &str| match name {
        "resend-timestamp" => Some(now_text.as_str()),
        "resend-signature" => Some(own.as_str()),
        _ => None,
    };
    assert!(keys.verify(standard_headers, body.as_bytes(), now).is_ok());
    assert!(keys.verify(own_headers, body.as_bytes(), now).is_ok());
    let mut group = c.benchmark_group("webhook_signature");
    group.bench_function("verify_standard_webhooks_two_signatures", |b| {
        b.iter(|| black_box(keys.verify(standard_headers, black_box(body.as_bytes()), now)))
    });
    group.bench_function("verify_own_scheme", |b| {
        b.iter(|| black_box(keys.verify(own_headers, black_box(body.as_bytes()), now)))
    });
    group.bench_function("sign_outbound", |b| {
        b.iter(|| {
            black_box(sign_standard(
                &key,
                "msg_1",
                now,
                black_box(body.as_bytes()),
            ))
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    token_check,
    rate_limit_decision,
    signature_validation,
    webhook_signatures
);
criterion_main!(benches);
