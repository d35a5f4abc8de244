//! The Twilio REST client against a fake Twilio on 127.0.0.1: the exact form fields, both kinds of
//! credentials, each mapped error code, which failures are retried (the fake counts requests),
//! timeouts, and neither errors nor logs carrying credentials or phone numbers.

mod fake;

use std::time::Duration;

use fake::{FakeTwilio, Reply, ACCOUNT_SID, API_KEY_SECRET, API_KEY_SID, AUTH_TOKEN, NEW_CALL_SID};
use phone_agent::config::{TwilioCredentials, TwilioRestSettings};
use phone_agent::redact::Secret;
use phone_agent::twilio::rest::retry::RetryPolicy;
use phone_agent::twilio::rest::{
    AmdMode, CallUpdate, CreateCall, MachineDetection, TwilioError, TwilioRest, Unconfirmed,
};
use phone_agent::twilio::twiml;
use phone_agent_actors::ids::CallSid;

use crate::support::Captured;

const TO: &str = "+14155550100";
const FROM: &str = "+14155550199";
const LIVE_CALL: &str = "CA0123456789abcdef0123456789abcdef";

/// Long enough for any answer on a loaded machine; the timeout tests use their own.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The default policy's shape with delays of a millisecond or two: the tests count attempts, they
/// do not wait (the delays are pinned by the policy's unit tests).
fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(2),
        ..RetryPolicy::default()
    }
}

fn auth_token() -> TwilioCredentials {
    TwilioCredentials::AuthToken(Secret::new(AUTH_TOKEN))
}

fn api_key() -> TwilioCredentials {
    TwilioCredentials::ApiKey {
        sid: API_KEY_SID.into(),
        secret: Secret::new(API_KEY_SECRET),
    }
}

fn client_with(base: &str, credentials: TwilioCredentials, timeout: Duration) -> TwilioRest {
    TwilioRest::new(TwilioRestSettings {
        account_sid: ACCOUNT_SID.into(),
        credentials,
        api_base: base.into(),
        timeout,
    })
    .with_retry_policy(quick_retries())
}

fn client(fake: &FakeTwilio) -> TwilioRest {
    client_with(&fake.base, auth_token(), TIMEOUT)
}

fn plain_call() -> CreateCall {
    CreateCall {
        to: TO.into(),
        from: FROM.into(),
        url: "https://agent.example.com/twilio/voice".into(),
        status_callback: "https://agent.example.com/twilio/status".into(),
        machine_detection: None,
        ring_timeout: None,
    }
}

fn live_call() -> CallSid {
    CallSid::parse(LIVE_CALL).unwrap()
}

fn pairs(form: &[(String, String)]) -> Vec<(&str, &str)> {
    form.iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect()
}

#[actix_rt::test]
async fn a_create_with_every_option_sends_exactly_twilios_fields() {
    let fake = FakeTwilio::start();
    let call = CreateCall {
        machine_detection: Some(MachineDetection {
            mode: AmdMode::DetectMessageEnd,
            async_callback: Some("https://agent.example.com/twilio/amd".into()),
        }),
        ring_timeout: Some(Duration::from_secs(30)),
        ..plain_call()
    };
    let created = client(&fake).create_call(&call).await.unwrap();
    assert_eq!(created.call_sid.as_str(), NEW_CALL_SID);
    assert_eq!(created.status, "queued");
    let received = fake.received();
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0].path,
        format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json")
    );
    assert_eq!(received[0].user, ACCOUNT_SID);
    // The fields of Twilio's "make an outbound call" examples, StatusCallbackEvent repeated.
    assert_eq!(
        pairs(&received[0].form),
        [
            ("To", TO),
            ("From", FROM),
            ("Url", "https://agent.example.com/twilio/voice"),
            ("StatusCallback", "https://agent.example.com/twilio/status"),
            ("StatusCallbackMethod", "POST"),
            ("StatusCallbackEvent", "initiated"),
            ("StatusCallbackEvent", "ringing"),
            ("StatusCallbackEvent", "answered"),
            ("StatusCallbackEvent", "completed"),
            ("MachineDetection", "DetectMessageEnd"),
            ("AsyncAmd", "true"),
            (
                "AsyncAmdStatusCallback",
                "https://agent.example.com/twilio/amd"
            ),
            ("Timeout", "30"),
        ]
    );
}

#[actix_rt::test]
async fn an_api_key_authenticates_as_the_key_and_a_wrong_token_is_refused() {
    let fake = FakeTwilio::start();
    let with_key = client_with(&fake.base, api_key(), TIMEOUT);
    with_key.create_call(&plain_call()).await.unwrap();
    assert_eq!(fake.received()[0].user, API_KEY_SID);
    let wrong = client_with(
        &fake.base,
        TwilioCredentials::AuthToken(Secret::new("not-the-token")),
        TIMEOUT,
    );
    let error = wrong.create_call(&plain_call()).await.unwrap_err();
    assert_eq!(error, TwilioError::Authentication);
    assert_eq!(fake.received().len(), 2, "a refusal is not retried");
}

#[actix_rt::test]
async fn each_twilio_error_code_becomes_its_variant() {
    let fake = FakeTwilio::start();
    let client = client(&fake);
    let cases = [
        (400, 21211, TwilioError::InvalidTo),
        (400, 21210, TwilioError::UnusableFrom { code: 21210 }),
        (400, 21212, TwilioError::UnusableFrom { code: 21212 }),
        (401, 20003, TwilioError::Authentication),
        (
            400,
            21216,
            TwilioError::Rejected {
                code: Some(21216),
                status: 400,
            },
        ),
    ];
    for (status, code, expected) in cases {
        fake.reply_next(Reply::Error { status, code });
        let error = client.create_call(&plain_call()).await.unwrap_err();
        assert_eq!(error, expected, "{code}");
    }
    fake.reply_next(Reply::Error {
        status: 404,
        code: 20404,
    });
    let transfer = CallUpdate::Twiml(twiml::dial(TO));
    let error = client.update_call(&live_call(), &transfer).await;
    assert_eq!(error, Err(TwilioError::NotFound));
    assert_eq!(fake.received().len(), 6, "none is retried");
}

#[actix_rt::test]
async fn a_transfer_sends_the_dial_twiml() {
    let fake = FakeTwilio::start();
    let transfer = CallUpdate::Twiml(twiml::dial(TO));
    client(&fake)
        .update_call(&live_call(), &transfer)
        .await
        .unwrap();
    let received = fake.received();
    assert_eq!(
        received[0].path,
        format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{LIVE_CALL}.json")
    );
    assert_eq!(
        pairs(&received[0].form),
        [("Twiml", "<Response><Dial>+14155550100</Dial></Response>")]
    );
}

#[actix_rt::test]
async fn twiml_over_twilios_limit_is_refused_before_sending() {
    let fake = FakeTwilio::start();
    let long = CallUpdate::Twiml(format!(
        "<Response><Say>{}</Say></Response>",
        "a".repeat(4_000)
    ));
    let error = client(&fake).update_call(&live_call(), &long).await;
    assert!(matches!(error, Err(TwilioError::TwimlTooLong { chars }) if chars > 4_000));
    assert!(fake.received().is_empty());
}

#[actix_rt::test]
async fn a_429_on_create_is_retried_and_succeeds() {
    let fake = FakeTwilio::start();
    fake.reply_next(Reply::TooManyRequests { retry_after: None });
    fake.reply_next(Reply::TooManyRequests {
        retry_after: Some(0),
    });
    let created = client(&fake).create_call(&plain_call()).await.unwrap();
    assert_eq!(created.call_sid.as_str(), NEW_CALL_SID);
    assert_eq!(fake.received().len(), 3);
}

#[actix_rt::test]
async fn a_retry_after_beyond_the_cap_is_final_and_says_how_long() {
    let fake = FakeTwilio::start();
    fake.reply_next(Reply::TooManyRequests {
        retry_after: Some(120),
    });
    let error = client(&fake).create_call(&plain_call()).await.unwrap_err();
    assert_eq!(
        error,
        TwilioError::TooManyRequests {
            retry_after: Some(Duration::from_secs(120))
        }
    );
    assert_eq!(fake.received().len(), 1);
}

#[actix_rt::test]
async fn a_500_on_create_is_not_retried_and_the_outcome_is_unknown() {
    let fake = FakeTwilio::start();
    fake.reply_next(Reply::ServerError(500));
    let error = client(&fake).create_call(&plain_call()).await.unwrap_err();
    assert_eq!(
        error,
        TwilioError::OutcomeUnknown {
            reason: Unconfirmed::ServerError(500)
        }
    );
    assert_eq!(fake.received().len(), 1);
}

#[actix_rt::test]
async fn a_503_on_hang_up_is_retried_until_the_attempts_run_out() {
    let fake = FakeTwilio::start();
    let client = client(&fake);
    fake.reply_next(Reply::ServerError(503));
    client
        .update_call(&live_call(), &CallUpdate::Hangup)
        .await
        .unwrap();
    assert_eq!(fake.received().len(), 2);
    assert_eq!(pairs(&fake.received()[1].form), [("Status", "completed")]);
    for _ in 0..3 {
        fake.reply_next(Reply::ServerError(503));
    }
    let error = client.update_call(&live_call(), &CallUpdate::Hangup).await;
    assert_eq!(
        error,
        Err(TwilioError::Unavailable {
            status: 503,
            attempts: 3
        })
    );
    assert_eq!(fake.received().len(), 5);
}

#[actix_rt::test]
async fn hanging_up_or_cancelling_a_call_that_ended_succeeds() {
    let fake = FakeTwilio::start();
    let client = client(&fake);
    for update in [CallUpdate::Hangup, CallUpdate::Cancel] {
        fake.reply_next(Reply::Error {
            status: 404,
            code: 20404,
        });
        assert_eq!(client.update_call(&live_call(), &update).await, Ok(()));
    }
    let forms: Vec<Vec<(String, String)>> = fake.received().into_iter().map(|r| r.form).collect();
    assert_eq!(pairs(&forms[1]), [("Status", "canceled")]);
}

#[actix_rt::test]
async fn a_timeout_is_a_timeout_and_on_create_an_unknown_outcome() {
    let fake = FakeTwilio::start();
    let timeout = Duration::from_millis(300);
    let client = client_with(&fake.base, auth_token(), timeout);
    fake.reply_next(Reply::HangMidResponse);
    let error = client.update_call(&live_call(), &CallUpdate::Hangup).await;
    assert_eq!(error, Err(TwilioError::Timeout { after: timeout }));
    fake.reply_next(Reply::HangMidResponse);
    let error = client.create_call(&plain_call()).await.unwrap_err();
    assert_eq!(
        error,
        TwilioError::OutcomeUnknown {
            reason: Unconfirmed::Timeout(timeout)
        }
    );
    assert_eq!(fake.received().len(), 2, "timeouts are not retried");
}

#[actix_rt::test]
async fn a_connection_that_never_opens_is_retried_even_for_a_create() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let client = client_with(&base, auth_token(), TIMEOUT);
    let error = client.create_call(&plain_call()).await.unwrap_err();
    assert!(
        matches!(error, TwilioError::Connect { attempts: 3, .. }),
        "{error:?}"
    );
}

#[actix_rt::test]
async fn https_goes_through_tls_and_a_failed_handshake_sends_nothing() {
    // The fake speaks plain HTTP: rustls's handshake fails before any request is written.
    let fake = FakeTwilio::start();
    let base = fake.base.replace("http://", "https://");
    let client = client_with(&base, auth_token(), TIMEOUT);
    let error = client.create_call(&plain_call()).await.unwrap_err();
    assert!(
        matches!(error, TwilioError::Connect { attempts: 3, .. }),
        "{error:?}"
    );
    assert!(fake.received().is_empty());
}

#[actix_rt::test]
async fn neither_errors_nor_debug_logs_carry_credentials_or_numbers() {
    let (captured, _guard) = Captured::start();

    let fake = FakeTwilio::start();
    let mut errors = Vec::new();
    for credentials in [auth_token(), api_key()] {
        let client = client_with(&fake.base, credentials, TIMEOUT);
        client.create_call(&plain_call()).await.unwrap();
        for code in [21211, 21210, 21212] {
            fake.reply_next(Reply::Error { status: 400, code });
            errors.push(client.create_call(&plain_call()).await.unwrap_err());
        }
        fake.reply_next(Reply::ServerError(500));
        errors.push(client.create_call(&plain_call()).await.unwrap_err());
        fake.reply_next(Reply::TooManyRequests {
            retry_after: Some(60),
        });
        errors.push(client.create_call(&plain_call()).await.unwrap_err());
        client
            .update_call(&live_call(), &CallUpdate::Hangup)
            .await
            .unwrap();
    }
    let wrong = client_with(
        &fake.base,
        TwilioCredentials::ApiKey {
            sid: API_KEY_SID.into(),
            secret: Secret::new("wrong-secret"),
        },
        TIMEOUT,
    );
    errors.push(wrong.create_call(&plain_call()).await.unwrap_err());

    let logs = captured.text();
    assert!(logs.contains("/Calls.json") && logs.contains(&format!("/Calls/{LIVE_CALL}.json")));
    assert!(
        logs.contains("attempt=1") && logs.contains("status=201") && logs.contains("status=400")
    );
    let displayed: Vec<String> = errors.iter().map(ToString::to_string).collect();
    for text in displayed.iter().chain([&logs]) {
        for forbidden in [
            AUTH_TOKEN,
            API_KEY_SECRET,
            "wrong-secret",
            "Basic ",
            TO,
            FROM,
        ] {
            assert!(!text.contains(forbidden), "{forbidden:?} in {text}");
        }
    }
}
