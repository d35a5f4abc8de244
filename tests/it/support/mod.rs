//! Helpers: a real server on 127.0.0.1:0 and a Twilio-faithful client.

pub mod balancer;
pub mod browser;
pub mod directed;
pub mod fault_proxy;
pub mod hmac;
pub mod postgres;
pub mod process;
pub mod small_disk;

use std::collections::HashMap;
use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use awc::http::Method;
use phone_agent::client::sim::{MediaConnection, Received, StreamAnswer, TwilioSim};
use phone_agent::config::{Config, StorageSettings};
use phone_agent::engines;
use phone_agent::guard::admin::{ChangedBy, NewToken};
use phone_agent::guard::auth::CreateToken;
use phone_agent::guard::token::Scope;
use phone_agent::server::{self, RunningServer};
use phone_agent::store::sqlite_path;
use phone_agent::twilio::signature::TwilioSigner;
use phone_agent_actors::engines::EngineSet;

/// How long any single expected event may take before a test fails.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(5);

/// A server for one test, with its sim.
pub struct TestServer {
    pub server: RunningServer,
    pub sim: TwilioSim,
    pub base: String,
    /// The server's data directory (its SQLite file and data key), removed with the server.
    pub data: tempfile::TempDir,
}

/// The Twilio auth token test servers check signatures with (and the sim signs with).
pub const TWILIO_AUTH_TOKEN: &str = "test-twilio-auth-token";
/// The public host test servers believe Twilio uses.
pub const PUBLIC_HOST: &str = "agent.test";

/// Configuration for tests: an ephemeral port, two workers, overrides on top. Admission on
/// measured lateness is off: tests run many servers at once on a loaded machine, where a late
/// event loop says nothing about the server under test (it has a test of its own).
pub fn test_config(overrides: &[(&str, &str)]) -> Config {
    let mut vars: HashMap<String, String> = [
        ("LISTEN_ADDR", "127.0.0.1:0"),
        ("HTTP_WORKERS", "2"),
        ("PUBLIC_HOST", PUBLIC_HOST),
        ("ENGINES", "loopback"),
        ("TWILIO_AUTH_TOKEN", TWILIO_AUTH_TOKEN),
        ("ADMISSION_LAG_MS", "0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (key, value) in overrides {
        vars.insert((*key).to_owned(), (*value).to_owned());
    }
    Config::from_lookup(|name| vars.get(name).cloned()).expect("test config is valid")
}

impl TestServer {
    /// Starts a loopback server with `overrides` applied to the test configuration.
    pub async fn start(overrides: &[(&str, &str)]) -> Self {
        let config = test_config(overrides);
        Self::start_with(&config, engines::loopback_set()).await
    }

    /// Starts a server with the given engines, its data directory a fresh temporary one (so a
    /// fresh SQLite file, unless the configuration names a PostgreSQL database).
    pub async fn start_with(config: &Config, engines: EngineSet) -> Self {
        let data = tempfile::tempdir().expect("temporary data directory");
        Self::start_in(config, engines, data).await
    }

    /// Starts a server whose data directory is `data` (a restart: its SQLite file and key).
    pub async fn start_in(config: &Config, engines: EngineSet, data: tempfile::TempDir) -> Self {
        let mut config = config.clone();
        let storage = &mut config.security.storage;
        let (url, data_key) = (storage.database_url.clone(), storage.data_key.take());
        *storage = StorageSettings::in_dir(data.path().to_owned());
        if sqlite_path(url.expose()).is_none() {
            storage.database_url = url;
        }
        storage.data_key = data_key;
        let server = server::start(&config, engines, Arc::default())
            .await
            .expect("server starts");
        let base = format!("http://{}", server.local_addr);
        Self {
            sim: TwilioSim::new(base.clone()).signing(TWILIO_AUTH_TOKEN, PUBLIC_HOST),
            server,
            base,
            data,
        }
    }

    /// Places a call and opens its media stream (`connected` + `start` sent).
    pub async fn call(&self, call_sid: &str) -> (StreamAnswer, MediaConnection) {
        let answer = self
            .sim
            .place_call(call_sid)
            .await
            .expect("voice webhook answers");
        let media = self.sim.connect(&answer).await.expect("media socket opens");
        (answer, media)
    }

    /// The body of a `GET` on `path`.
    pub async fn get_text(&self, path: &str) -> String {
        let mut response = awc::Client::new()
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("server answers");
        let body = response.body().await.expect("body");
        String::from_utf8(body.to_vec()).expect("text body")
    }

    /// `/metrics` once `ready` holds for it (calls report as they go); fails after the event
    /// timeout.
    pub async fn metrics_until(&self, ready: impl Fn(&str) -> bool) -> String {
        within(async {
            loop {
                let text = self.get_text("/metrics").await;
                if ready(&text) {
                    return text;
                }
            }
        })
        .await
    }

    /// Creates a token with `scopes` through the server's AuthActor (so its cache has it).
    pub async fn token(&self, scopes: &[Scope]) -> String {
        let request = NewToken {
            name: "test".into(),
            scopes: scopes.iter().copied().collect(),
            expires_in: None,
        };
        self.server
            .auth
            .send(CreateToken {
                token: request,
                by: ChangedBy::Cli,
            })
            .await
            .expect("auth actor answers")
            .expect("token created")
            .token
    }

    /// A request to `path` with `Authorization: Bearer token` when given.
    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> awc::ClientRequest {
        let request = awc::Client::new().request(method, format!("{}{path}", self.base));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Posts the voice webhook with `form`, signed as Twilio signs it.
    pub fn voice_post(&self, form: &[(&str, &str)]) -> awc::SendClientRequest {
        let url = format!("https://{PUBLIC_HOST}/twilio/voice");
        self.voice_post_signed(form, &voice_signature(TWILIO_AUTH_TOKEN, &url, form))
    }

    /// Posts the voice webhook with `form` and `signature` as `X-Twilio-Signature`.
    pub fn voice_post_signed(
        &self,
        form: &[(&str, &str)],
        signature: &str,
    ) -> awc::SendClientRequest {
        self.request(Method::POST, "/twilio/voice", None)
            .insert_header(("x-twilio-signature", signature.to_owned()))
            .send_form(&form)
    }

    /// Shuts the server down (draining its calls) and hands back its data directory.
    pub async fn stop(self) -> tempfile::TempDir {
        self.server.shutdown();
        self.server.stopped().await.expect("server stops cleanly");
        self.data
    }

    /// Waits until no call is alive.
    pub async fn until_no_live_calls(&self) {
        within(self.server.live_calls.wait_until_empty()).await;
    }
}

/// A CallSid made from a number.
pub fn call_sid(n: u32) -> String {
    format!("CA{n:032x}")
}

/// A 20 ms frame whose bytes identify (`tag`, `n`).
pub fn frame(tag: u8, n: u32) -> [u8; 160] {
    let mut frame = [tag; 160];
    frame[..4].copy_from_slice(&n.to_be_bytes());
    frame
}

/// Fails the test if `future` takes longer than [`EVENT_TIMEOUT`].
pub async fn within<F: Future>(future: F) -> F::Output {
    actix_rt::time::timeout(EVENT_TIMEOUT, future)
        .await
        .expect("event within the timeout")
}

/// Asks `probe` every 20 ms until it answers `Some`, and gives that; fails the test after
/// [`EVENT_TIMEOUT`]. For what another process changes, which sends no signal to wait for.
pub async fn polled<T, P: Future<Output = Option<T>>>(mut probe: impl FnMut() -> P) -> T {
    within(async {
        loop {
            if let Some(answer) = probe().await {
                return answer;
            }
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// Reads a streamed response (Server-Sent Events) until `done` holds for all its text so far, and
/// returns that text; fails after [`EVENT_TIMEOUT`].
pub async fn stream_until<S, E>(stream: &mut S, done: impl Fn(&str) -> bool) -> String
where
    S: futures_util::Stream<Item = Result<actix_web::web::Bytes, E>> + Unpin,
    E: std::fmt::Debug,
{
    use futures_util::StreamExt as _;
    let mut seen = String::new();
    within(async {
        while !done(&seen) {
            let chunk = stream.next().await.expect("stream open").expect("chunk");
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await;
    seen
}

/// The next message that is not a mark (marks are echoed back, as Twilio does once played).
pub async fn next_non_mark(media: &mut MediaConnection) -> Received {
    loop {
        match within(media.recv()).await {
            Some(Received::Mark(name)) => media.send_mark(&name).await.expect("mark echo sent"),
            Some(other) => return other,
            None => panic!("socket ended without a close frame"),
        }
    }
}

/// Waits for the server's close frame, skipping (and echoing) anything else.
pub async fn expect_close(media: &mut MediaConnection) -> (Option<u16>, String) {
    loop {
        match next_non_mark(media).await {
            Received::Close { code, reason } => return (code, reason),
            Received::Media(_) => {}
            other => panic!("unexpected {other:?} before close"),
        }
    }
}

/// Waits for the server's close frame and checks its `code` and `reason`.
pub async fn assert_closed(media: &mut MediaConnection, code: u16, reason: &str) {
    assert_eq!(expect_close(media).await, (Some(code), reason.to_owned()));
}

/// Sends `count` frames one at a time and checks each comes back unchanged.
pub async fn exchange(media: &mut MediaConnection, tag: u8, from: u32, count: u32) {
    for n in from..from + count {
        let sent = frame(tag, n);
        media.send_media(&sent).await.expect("media sent");
        match next_non_mark(media).await {
            Received::Media(audio) => {
                assert_eq!(audio, sent, "frame {n} of call {tag} came back changed")
            }
            other => panic!("expected media, got {other:?}"),
        }
    }
}

/// The signature Twilio would send with `form` posted to `url`, under `auth_token`.
pub fn voice_signature(auth_token: &str, url: &str, form: &[(&str, &str)]) -> String {
    let params: Vec<(String, String)> = form
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    TwilioSigner::new(auth_token).sign(url, &params)
}

/// The status, headers and JSON body of a response.
pub async fn json(
    response: awc::SendClientRequest,
) -> (u16, awc::http::header::HeaderMap, serde_json::Value) {
    let mut response = response.await.expect("server answers");
    let body = response.body().await.expect("body");
    let json = if body.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&body).unwrap_or_else(|_| panic!("JSON body: {body:?}"))
    };
    (response.status().as_u16(), response.headers().clone(), json)
}

/// This thread's log lines at DEBUG and above, for tests of what never reaches a log.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// Captures this thread's log lines until the guard drops.
    pub fn start() -> (Self, tracing::subscriber::DefaultGuard) {
        let captured = Self::default();
        let sink = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .finish();
        (captured, tracing::subscriber::set_default(subscriber))
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).expect("log lines are text")
    }
}

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
