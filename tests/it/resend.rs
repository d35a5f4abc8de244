//! The Resend client against a fake Resend on 127.0.0.1: the exact JSON and headers of a send,
//! idempotency keys, each kind of error and whether it is transient, a timeout, and neither
//! errors nor logs carrying the key or an address.

use std::time::Duration;

use fake::{FakeResend, Reply, API_KEY, OWNER};
use phone_agent::email::resend::{Email, EmailError, Resend, ResendSettings};
use serde_json::json;

use crate::support::Captured;

const FROM: &str = "Bright Smile Dental <care@brightsmile.example>";
const TO: &str = "ann.caller@example.com";
const SUBJECT: &str = "Your call with Bright Smile Dental";
const TEXT: &str = "Thanks for calling. Your check-up is booked for Tuesday at 10:00.";
const KEY: &str = "follow-up/CA0123456789abcdef0123456789abcdef";

/// Long enough for any answer on a loaded machine; the timeout test uses its own.
const TIMEOUT: Duration = Duration::from_secs(5);

fn client_with(base: &str, api_key: &str, timeout: Duration) -> Resend {
    Resend::new(ResendSettings {
        api_key: api_key.into(),
        base_url: base.into(),
        from: FROM.into(),
        timeout,
    })
}

fn client(fake: &FakeResend) -> Resend {
    client_with(&fake.base, API_KEY, TIMEOUT)
}

fn email() -> Email {
    Email {
        to: TO.into(),
        subject: SUBJECT.into(),
        text: TEXT.into(),
    }
}

#[actix_rt::test]
async fn a_send_posts_resends_json_and_headers_and_returns_its_id() {
    let fake = FakeResend::start();
    let id = client(&fake).send(&email(), KEY).await.unwrap();
    assert_eq!(id, fake::id(1));
    let received = fake.received();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(
        request.authorization.as_deref(),
        Some(format!("Bearer {API_KEY}").as_str())
    );
    assert_eq!(request.content_type.as_deref(), Some("application/json"));
    assert_eq!(request.idempotency_key.as_deref(), Some(KEY));
    assert!(
        request
            .user_agent
            .as_deref()
            .is_some_and(|agent| agent.starts_with("phone-agent/")),
        "{request:?}"
    );
    assert_eq!(
        request.body,
        json!({ "from": FROM, "to": [TO], "subject": SUBJECT, "text": TEXT })
    );
}

#[actix_rt::test]
async fn a_base_url_with_a_trailing_slash_posts_to_the_same_path() {
    let fake = FakeResend::start();
    let client = client_with(&format!("{}/", fake.base), API_KEY, TIMEOUT);
    assert_eq!(client.send(&email(), KEY).await.unwrap(), fake::id(1));
}

#[actix_rt::test]
async fn the_same_idempotency_key_twice_gives_the_same_id() {
    let fake = FakeResend::start();
    let client = client(&fake);
    let first = client.send(&email(), KEY).await.unwrap();
    let again = client.send(&email(), KEY).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(fake.received().len(), 2, "both attempts reached Resend");
    assert_eq!(fake.emails_sent(), 1);

    let other = client.send(&email(), "follow-up/CAother").await.unwrap();
    assert_ne!(other, first);
    assert_eq!(fake.emails_sent(), 2);
}

#[actix_rt::test]
async fn an_idempotency_key_reused_for_another_email_is_rejected_409() {
    let fake = FakeResend::start();
    let client = client(&fake);
    client.send(&email(), KEY).await.unwrap();
    let changed = Email {
        text: "Another text.".into(),
        ..email()
    };
    let error = client.send(&changed, KEY).await.unwrap_err();
    assert!(
        matches!(&error, EmailError::Rejected { status: 409, name, .. } if name == "invalid_idempotent_request"),
        "{error:?}"
    );
    assert!(!error.is_transient());
    assert_eq!(fake.emails_sent(), 1);
}

#[actix_rt::test]
async fn a_wrong_key_is_rejected_403_and_a_missing_one_401_neither_transient() {
    let fake = FakeResend::start();
    let error = client_with(&fake.base, "re_wrong_key", TIMEOUT)
        .send(&email(), KEY)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, EmailError::Rejected { status: 403, name, .. } if name == "invalid_api_key"),
        "{error:?}"
    );
    assert!(!error.is_transient());

    let error = client_with(&fake.base, "", TIMEOUT)
        .send(&email(), KEY)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, EmailError::Rejected { status: 401, name, .. } if name == "missing_api_key"),
        "{error:?}"
    );
    assert!(!error.is_transient());
    assert_eq!(fake.emails_sent(), 0);
}

#[actix_rt::test]
async fn an_invalid_address_is_a_validation_error_and_not_transient() {
    let fake = FakeResend::start();
    let bad = Email {
        to: "not-an-address".into(),
        ..email()
    };
    let error = client(&fake).send(&bad, KEY).await.unwrap_err();
    assert!(
        matches!(&error, EmailError::Rejected { status: 422, name, .. } if name == "validation_error"),
        "{error:?}"
    );
    assert!(!error.is_transient());
}

#[actix_rt::test]
async fn a_server_error_is_unavailable_and_transient() {
    let fake = FakeResend::start();
    fake.reply_next(Reply::ServerError(500));
    let error = client(&fake).send(&email(), KEY).await.unwrap_err();
    assert_eq!(error, EmailError::Unavailable { status: 500 });
    assert!(error.is_transient());

    // The retry the caller makes with the same key sends the email.
    let id = client(&fake).send(&email(), KEY).await.unwrap();
    assert_eq!(id, fake::id(1));
}

#[actix_rt::test]
async fn a_rate_limit_carries_retry_after_and_is_transient() {
    let fake = FakeResend::start();
    fake.reply_next(Reply::RateLimited {
        retry_after: Some(2),
    });
    let error = client(&fake).send(&email(), KEY).await.unwrap_err();
    assert_eq!(
        error,
        EmailError::RateLimited {
            retry_after: Some(Duration::from_secs(2))
        }
    );
    assert!(error.is_transient());

    fake.reply_next(Reply::RateLimited { retry_after: None });
    let error = client(&fake).send(&email(), KEY).await.unwrap_err();
    assert_eq!(error, EmailError::RateLimited { retry_after: None });
}

#[actix_rt::test]
async fn a_server_that_never_answers_times_out() {
    // Accepts every connection and holds it, reading nothing and answering nothing.
    let listener = actix_rt::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    actix_rt::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let client = client_with(&base, API_KEY, Duration::from_millis(200));
    let error = client.send(&email(), KEY).await.unwrap_err();
    assert_eq!(error, EmailError::TimedOut);
    assert!(error.is_transient());
}

#[actix_rt::test]
async fn a_refused_connection_is_a_transient_connection_error() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let error = client_with(&base, API_KEY, TIMEOUT)
        .send(&email(), KEY)
        .await
        .unwrap_err();
    assert!(matches!(error, EmailError::Connection(_)), "{error:?}");
    assert!(error.is_transient());
}

#[actix_rt::test]
async fn neither_errors_nor_debug_logs_carry_the_key_or_addresses() {
    let (captured, _guard) = Captured::start();

    let fake = FakeResend::start();
    let client = client(&fake);
    let id = client.send(&email(), KEY).await.unwrap();
    let mut errors = Vec::new();
    fake.reply_next(Reply::TestingModeOnly);
    errors.push(
        client
            .send(&email(), "follow-up/CAtesting")
            .await
            .unwrap_err(),
    );
    fake.reply_next(Reply::ServerError(503));
    errors.push(client.send(&email(), KEY).await.unwrap_err());
    fake.reply_next(Reply::RateLimited {
        retry_after: Some(1),
    });
    errors.push(client.send(&email(), KEY).await.unwrap_err());
    let wrong_key = "re_wrong_key_d41d8cd9";
    errors.push(
        client_with(&fake.base, wrong_key, TIMEOUT)
            .send(&email(), KEY)
            .await
            .unwrap_err(),
    );

    let logs = captured.text();
    assert!(logs.contains("status=200") && logs.contains(&id), "{logs}");
    assert!(
        logs.contains("status=403") && logs.contains("status=503"),
        "{logs}"
    );
    let testing = errors[0].to_string();
    assert!(
        testing.contains("your own email address ([address])"),
        "{testing}"
    );
    let texts: Vec<String> = errors
        .iter()
        .flat_map(|error| [error.to_string(), format!("{error:?}")])
        .chain([logs])
        .collect();
    for text in &texts {
        for forbidden in [
            API_KEY,
            wrong_key,
            TO,
            OWNER,
            "care@brightsmile",
            SUBJECT,
            TEXT,
        ] {
            assert!(!text.contains(forbidden), "{forbidden:?} in {text}");
        }
    }
}

/// A small fake of Resend's `POST /emails` on 127.0.0.1, faithful to what the client sees:
/// Bearer keys (none: 401 `missing_api_key`; another: 403 `invalid_api_key`), the JSON body
/// validated as Resend documents (`from`, `to` as a string or an array of addresses, `subject`,
/// and `text` or `html`; else 422 `validation_error`), idempotency keys (the same key and body:
/// the first id, nothing sent; the same key with another body: 409
/// `invalid_idempotent_request`), `{"id"}` on success and `{"statusCode","name","message"}` on
/// error.
pub mod fake {
    use std::collections::{HashMap, VecDeque};
    use std::net::TcpListener;
    use std::sync::Mutex;

    use actix_web::dev::ServerHandle;
    use actix_web::http::header;
    use actix_web::web::{self, Bytes};
    use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
    use serde_json::{json, Value};

    /// The API key the fake accepts.
    pub const API_KEY: &str = "re_fake_8f3c2a1b";
    /// The account owner's address, which Resend's testing-mode message names.
    pub const OWNER: &str = "owner@brightsmile.example";

    /// The id of the `n`th email sent (from 1), uuid-like as Resend's.
    pub fn id(n: u64) -> String {
        format!("49a3999c-0ce1-4ea6-ab68-{n:012x}")
    }

    /// An answer to give instead of the normal one, after the key was checked.
    #[derive(Debug, Clone, Copy)]
    pub enum Reply {
        /// A 5xx `application_error`.
        ServerError(u16),
        /// 429 `rate_limit_exceeded`, with `retry-after` in seconds when given.
        RateLimited {
            /// The header's value.
            retry_after: Option<u64>,
        },
        /// 403 `validation_error` of an account that has not verified a domain, naming the
        /// owner's address as Resend's message does.
        TestingModeOnly,
    }

    /// A request the fake received.
    #[derive(Debug, Clone)]
    pub struct Received {
        /// `Authorization`.
        pub authorization: Option<String>,
        /// `Content-Type`.
        pub content_type: Option<String>,
        /// `Idempotency-Key`.
        pub idempotency_key: Option<String>,
        /// `User-Agent`.
        pub user_agent: Option<String>,
        /// The JSON body (`null` when it is not JSON).
        pub body: Value,
    }

    #[derive(Default)]
    struct State {
        replies: Mutex<VecDeque<Reply>>,
        received: Mutex<Vec<Received>>,
        /// Idempotency key → the body first sent with it and its email's id.
        keys: Mutex<HashMap<String, (Value, String)>>,
        sent: Mutex<u64>,
    }

    /// The fake, listening until dropped.
    pub struct FakeResend {
        /// `http://127.0.0.1:PORT`, for the base URL.
        pub base: String,
        state: web::Data<State>,
        handle: ServerHandle,
    }

    impl FakeResend {
        /// Starts on an unused port.
        pub fn start() -> Self {
            let state = web::Data::new(State::default());
            let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
            let base = format!("http://{}", listener.local_addr().expect("bound"));
            let app_state = state.clone();
            let server = HttpServer::new(move || {
                App::new()
                    .app_data(app_state.clone())
                    .route("/emails", web::post().to(send_email))
            })
            .workers(1)
            .disable_signals()
            .listen(listener)
            .expect("listens")
            .run();
            let handle = server.handle();
            actix_rt::spawn(server);
            Self {
                base,
                state,
                handle,
            }
        }

        /// Gives `reply` to the next request with the right key (in the order queued).
        pub fn reply_next(&self, reply: Reply) {
            self.state.replies.lock().unwrap().push_back(reply);
        }

        /// Every request so far.
        pub fn received(&self) -> Vec<Received> {
            self.state.received.lock().unwrap().clone()
        }

        /// How many emails were sent (idempotent repeats not counted).
        pub fn emails_sent(&self) -> u64 {
            *self.state.sent.lock().unwrap()
        }
    }

    impl Drop for FakeResend {
        fn drop(&mut self) {
            // Sends the stop at once; nothing waits for it to finish.
            drop(self.handle.stop(false));
        }
    }

    /// `POST /emails`.
    async fn send_email(
        request: HttpRequest,
        body: Bytes,
        state: web::Data<State>,
    ) -> HttpResponse {
        let text_header = |name: header::HeaderName| {
            request
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        let received = Received {
            authorization: text_header(header::AUTHORIZATION),
            content_type: text_header(header::CONTENT_TYPE),
            idempotency_key: text_header(header::HeaderName::from_static("idempotency-key")),
            user_agent: text_header(header::USER_AGENT),
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        };
        state.received.lock().unwrap().push(received.clone());

        let key = received
            .authorization
            .as_deref()
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|key| !key.is_empty());
        match key {
            None => {
                return error(
                    401,
                    "missing_api_key",
                    "Missing API key in the authorization header. Include the following header \
                     in the request: Authorization: Bearer YOUR_API_KEY"
                        .into(),
                )
            }
            Some(key) if key != API_KEY => {
                return error(403, "invalid_api_key", "API key is invalid".into())
            }
            Some(_) => {}
        }
        if let Some(reply) = state.replies.lock().unwrap().pop_front() {
            return scripted(reply);
        }
        if let Err(message) = validate(&received) {
            return error(422, "validation_error", message);
        }
        let Some(idempotency_key) = received.idempotency_key else {
            return HttpResponse::Ok().json(json!({ "id": new_id(&state) }));
        };
        if idempotency_key.is_empty() || idempotency_key.chars().count() > 256 {
            return error(
                400,
                "invalid_idempotency_key",
                "The key must be between 1-256 chars.".into(),
            );
        }
        let mut keys = state.keys.lock().unwrap();
        match keys.get(&idempotency_key) {
            Some((first, id)) if *first == received.body => {
                HttpResponse::Ok().json(json!({ "id": id }))
            }
            Some(_) => error(
                409,
                "invalid_idempotent_request",
                "Same idempotency key used with a different request payload. Change your \
                 idempotency key or payload."
                    .into(),
            ),
            None => {
                let id = new_id(&state);
                keys.insert(idempotency_key, (received.body, id.clone()));
                HttpResponse::Ok().json(json!({ "id": id }))
            }
        }
    }

    /// The next email's id, counted as sent.
    fn new_id(state: &State) -> String {
        let mut sent = state.sent.lock().unwrap();
        *sent += 1;
        id(*sent)
    }

    /// The body's required fields, as Resend checks them: the message of the first missing or
    /// invalid one.
    fn validate(received: &Received) -> Result<(), String> {
        let body = &received.body;
        let string = |name: &str| body.get(name).and_then(Value::as_str);
        if !received
            .content_type
            .as_deref()
            .is_some_and(|value| value.starts_with("application/json"))
            || !body.is_object()
        {
            return Err("The request body must be JSON.".into());
        }
        for field in ["from", "to", "subject"] {
            if body.get(field).is_none() {
                return Err(format!("Missing `{field}` field."));
            }
        }
        if string("from").is_none_or(|from| !from.contains('@')) {
            return Err(
                "Invalid `from` field. The email address needs to follow the \
                 `email@example.com` or `Name <email@example.com>` format."
                    .into(),
            );
        }
        let to: Vec<&str> = match &body["to"] {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let to_count = body["to"].as_array().map_or(1, Vec::len);
        if to.is_empty() || to.len() != to_count || to.iter().any(|to| !to.contains('@')) {
            return Err("Invalid `to` field. The email address needs to follow the \
                 `email@example.com` or `Name <email@example.com>` format."
                .into());
        }
        if string("subject").is_none() {
            return Err("The `subject` field must be a `string`.".into());
        }
        if string("text").is_none() && string("html").is_none() {
            return Err("Missing `html` or `text` field.".into());
        }
        Ok(())
    }

    /// The queued answer, worded as Resend's.
    fn scripted(reply: Reply) -> HttpResponse {
        match reply {
            Reply::ServerError(status) => error(
                status,
                "application_error",
                "An unexpected error occurred.".into(),
            ),
            Reply::RateLimited { retry_after } => {
                let mut response = error(
                    429,
                    "rate_limit_exceeded",
                    "Too many requests. You can only make 2 requests per second. See rate limit \
                     response headers for more information. Or contact support to increase rate \
                     limit."
                        .into(),
                );
                if let Some(seconds) = retry_after {
                    response
                        .headers_mut()
                        .insert(header::RETRY_AFTER, seconds.into());
                }
                response
            }
            Reply::TestingModeOnly => error(
                403,
                "validation_error",
                format!(
                    "You can only send testing emails to your own email address ({OWNER}). To \
                     send emails to other recipients, please verify a domain at \
                     resend.com/domains, and change the `from` address to an email using this \
                     domain."
                ),
            ),
        }
    }

    /// Resend's error body.
    fn error(status: u16, name: &str, message: String) -> HttpResponse {
        let status = actix_web::http::StatusCode::from_u16(status).expect("a valid status");
        HttpResponse::build(status).json(json!({
            "statusCode": status.as_u16(),
            "name": name,
            "message": message,
        }))
    }
}
