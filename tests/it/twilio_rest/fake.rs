//! A small fake of Twilio's Calls resource on 127.0.0.1, faithful to what the REST client sees:
//! HTTP Basic with the account's auth token or an API key (anything else: 401, error 20003, as
//! Twilio answers), form bodies read with repeated names kept, and Twilio's documented JSON: the
//! call resource (201 on create, 200 on update) and the error body
//! `{"code","message","more_info","status"}`. Its messages repeat phone numbers as Twilio's do, so
//! tests see that the client does not pass them on.
//!
//! Each request is recorded; a test queues the answers to give instead of the normal one
//! ([`Reply`]). The full emulator of issue 13 is another program; this one only serves these tests.

use std::collections::VecDeque;
use std::net::TcpListener;
use std::sync::Mutex;

use actix_web::dev::ServerHandle;
use actix_web::web::{self, Bytes};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::json;

/// The account the fake serves.
pub const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
/// Its auth token.
pub const AUTH_TOKEN: &str = "fake-auth-token-4f1c9e";
/// An API key of the account.
pub const API_KEY_SID: &str = "SK0123456789abcdef0123456789abcdef";
/// The key's secret.
pub const API_KEY_SECRET: &str = "fake-api-key-secret-77d2a0";
/// The SID the fake gives every new call.
pub const NEW_CALL_SID: &str = "CAaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/// An answer to give instead of the normal one.
#[derive(Debug, Clone, Copy)]
pub enum Reply {
    /// Twilio's error body with this code and status; the message repeats the numbers sent, as
    /// Twilio's messages do.
    Error {
        /// The HTTP status.
        status: u16,
        /// Twilio's error code.
        code: u32,
    },
    /// 429 with error 20429, and `Retry-After` in seconds when given.
    TooManyRequests {
        /// The header's value.
        retry_after: Option<u64>,
    },
    /// A 5xx with Twilio's error body (20500 or 20503).
    ServerError(u16),
    /// 201 with the first bytes of the body, then nothing more: a connection that hangs
    /// mid-answer.
    HangMidResponse,
}

/// A request the fake received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The path.
    pub path: String,
    /// The Basic user name (the account SID or the API key SID).
    pub user: String,
    /// The form fields in order.
    pub form: Vec<(String, String)>,
}

#[derive(Default)]
struct State {
    replies: Mutex<VecDeque<Reply>>,
    received: Mutex<Vec<Received>>,
}

/// The fake, listening until dropped.
pub struct FakeTwilio {
    /// `http://127.0.0.1:PORT`, for `TWILIO_API_BASE`.
    pub base: String,
    state: web::Data<State>,
    handle: ServerHandle,
}

impl FakeTwilio {
    /// Starts on an unused port.
    pub fn start() -> Self {
        let state = web::Data::new(State::default());
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let base = format!("http://{}", listener.local_addr().expect("bound"));
        let app_state = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .route(
                    "/2010-04-01/Accounts/{account}/Calls.json",
                    web::post().to(create_call),
                )
                .route(
                    "/2010-04-01/Accounts/{account}/Calls/{call}.json",
                    web::post().to(update_call),
                )
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

    /// Gives `reply` to the next request instead of the normal answer (in the order queued).
    pub fn reply_next(&self, reply: Reply) {
        self.state.replies.lock().unwrap().push_back(reply);
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }
}

impl Drop for FakeTwilio {
    fn drop(&mut self) {
        // Sends the stop at once; nothing waits for it to finish.
        drop(self.handle.stop(false));
    }
}

/// `POST …/Calls.json`: 201 with the new call resource.
async fn create_call(request: HttpRequest, body: Bytes, state: web::Data<State>) -> HttpResponse {
    let Some(received) = admit(&request, &body, &state) else {
        return unauthorized();
    };
    let field = |name: &str| {
        received
            .form
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    let (Some(to), Some(from)) = (field("To"), field("From")) else {
        return twilio_error(400, 21201, "No 'To' number is specified".into());
    };
    if field("Url").is_none() && field("Twiml").is_none() {
        return twilio_error(400, 21205, "Url parameter is required.".into());
    }
    if let Some(reply) = next_reply(&state) {
        return scripted(reply, &received.path, &to, &from);
    }
    HttpResponse::Created().json(call_resource("queued", &to, &from))
}

/// `POST …/Calls/{Sid}.json`: 200 with the call resource in its new status.
async fn update_call(request: HttpRequest, body: Bytes, state: web::Data<State>) -> HttpResponse {
    let Some(received) = admit(&request, &body, &state) else {
        return unauthorized();
    };
    if let Some(reply) = next_reply(&state) {
        return scripted(reply, &received.path, "+14155550100", "+14155550199");
    }
    let status = received
        .form
        .iter()
        .find(|(key, _)| key == "Status")
        .map_or("in-progress", |(_, status)| status.as_str());
    HttpResponse::Ok().json(call_resource(status, "+14155550100", "+14155550199"))
}

/// Records the request, then checks Basic auth against the account in the path: `None` when
/// refused.
fn admit(request: &HttpRequest, body: &Bytes, state: &State) -> Option<Received> {
    let credentials = request
        .headers()
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Basic "))
        .and_then(|encoded| STANDARD.decode(encoded).ok())
        .and_then(|decoded| String::from_utf8(decoded).ok())
        .and_then(|pair| {
            pair.split_once(':')
                .map(|(u, p)| (u.to_owned(), p.to_owned()))
        });
    let (user, password) = credentials.unwrap_or_default();
    let received = Received {
        path: request.path().to_owned(),
        user: user.clone(),
        form: form_urlencoded::parse(body).into_owned().collect(),
    };
    state.received.lock().unwrap().push(received.clone());
    let account_matches = request.match_info().get("account") == Some(ACCOUNT_SID);
    let valid = matches!(
        (user.as_str(), password.as_str()),
        (ACCOUNT_SID, AUTH_TOKEN) | (API_KEY_SID, API_KEY_SECRET)
    );
    (valid && account_matches).then_some(received)
}

/// Twilio's answer to bad credentials.
fn unauthorized() -> HttpResponse {
    let mut refusal = twilio_error(401, 20003, "Authenticate".into());
    refusal.headers_mut().insert(
        actix_web::http::header::WWW_AUTHENTICATE,
        actix_web::http::header::HeaderValue::from_static("Basic realm=\"Twilio API\""),
    );
    refusal
}

fn next_reply(state: &State) -> Option<Reply> {
    state.replies.lock().unwrap().pop_front()
}

/// The queued answer, its message worded as Twilio's (numbers included).
fn scripted(reply: Reply, path: &str, to: &str, from: &str) -> HttpResponse {
    match reply {
        Reply::Error { status, code } => {
            let message = match code {
                21211 => format!("The 'To' number {to} is not a valid phone number."),
                21210 => format!(
                    "The source phone number provided, {from}, is not yet verified for your account. \
                     You may only make calls from phone numbers that you've verified or purchased from Twilio."
                ),
                21212 => format!("The 'From' number {from} is not a valid phone number, shortcode, or alphanumeric sender ID."),
                20404 => format!("The requested resource {path} was not found"),
                _ => format!("Error {code} for a call from {from} to {to}"),
            };
            twilio_error(status, code, message)
        }
        Reply::TooManyRequests { retry_after } => {
            let mut response = twilio_error(429, 20429, "Too Many Requests".into());
            if let Some(seconds) = retry_after {
                response
                    .headers_mut()
                    .insert(actix_web::http::header::RETRY_AFTER, seconds.into());
            }
            response
        }
        Reply::ServerError(status) => {
            twilio_error(status, 20000 + u32::from(status), "Service error".into())
        }
        Reply::HangMidResponse => {
            let start = futures_util::stream::once(async {
                Ok::<_, actix_web::Error>(Bytes::from_static(b"{\"account_sid\": \"AC"))
            });
            HttpResponse::Created()
                .content_type("application/json")
                .streaming(futures_util::StreamExt::chain(
                    start,
                    futures_util::stream::pending(),
                ))
        }
    }
}

/// Twilio's error body.
fn twilio_error(status: u16, code: u32, message: String) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status).expect("a valid status");
    HttpResponse::build(status).json(json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status.as_u16(),
    }))
}

/// The call resource as Twilio documents it (helper-library fixtures), for [`NEW_CALL_SID`].
fn call_resource(status: &str, to: &str, from: &str) -> serde_json::Value {
    let uri = format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{NEW_CALL_SID}");
    json!({
        "account_sid": ACCOUNT_SID,
        "annotation": null,
        "answered_by": null,
        "api_version": "2010-04-01",
        "caller_name": null,
        "date_created": "Tue, 31 Aug 2010 20:36:28 +0000",
        "date_updated": "Tue, 31 Aug 2010 20:36:28 +0000",
        "direction": "outbound-api",
        "duration": null,
        "end_time": null,
        "forwarded_from": null,
        "from": from,
        "from_formatted": from,
        "group_sid": null,
        "parent_call_sid": null,
        "phone_number_sid": "PNaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "price": null,
        "price_unit": "USD",
        "queue_time": "0",
        "sid": NEW_CALL_SID,
        "start_time": null,
        "status": status,
        "subresource_uris": {
            "notifications": format!("{uri}/Notifications.json"),
            "recordings": format!("{uri}/Recordings.json"),
        },
        "to": to,
        "to_formatted": to,
        "trunk_sid": null,
        "uri": format!("{uri}.json"),
    })
}
