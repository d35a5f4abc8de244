//! A Twilio-faithful client for a phone-agent server: what Twilio does on a call, step by step.
//!
//! [`TwilioSim::place_call`] posts the voice webhook and reads the TwiML's stream URL and token;
//! [`TwilioSim::connect`] opens the media WebSocket and sends `connected` and `start`; the returned
//! [`MediaConnection`] sends `media`/`mark`/`dtmf`/`stop` exactly as Twilio writes them (numbers as
//! strings, base64 payloads) and reads what the server sends back. Used by the load generator and the
//! integration tests. The stream URL is `wss://PUBLIC_HOST/...`; the sim connects to the same path
//! on the server's own address: `ws://`, or `wss://` for an `https://` base
//! ([`TwilioSim::with_tls`]). [`TwilioSim::post_form`] and
//! [`TwilioSim::open_stream`] do the same for any URL written for the public host (the Twilio
//! emulator's webhooks and streams): sent to the server's own address, signed as written.

use std::time::Duration;

use actix_codec::Framed;
use actix_rt::net::TcpStream;
use actix_service::ServiceExt as _;
use actix_tls::connect::{Connection, Connector as TcpConnector, Resolver};
use awc::http::Uri;
use awc::ws::{self, CloseCode};
use awc::BoxedSocket;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};

use crate::twilio::signature::{TwilioSigner, DEV_TWILIO_AUTH_TOKEN_FILE, SIGNATURE_HEADER};

/// The sim's HTTP and WebSocket client: TCP without Nagle's algorithm (Twilio's media frames
/// are small and latency-bound; like the server, the sim sends each at once instead of waiting
/// for the previous one's delayed ACK), no cap on connections (awc's default is 100; each call
/// holds a media socket), TLS with `tls` when given.
fn http_client(tls: Option<std::sync::Arc<rustls::ClientConfig>>) -> awc::Client {
    let tcp = TcpConnector::new(Resolver::default()).service().map(
        |connection: Connection<Uri, TcpStream>| {
            let _ = connection.io_ref().set_nodelay(true);
            connection
        },
    );
    let mut connector = awc::Connector::new().connector(tcp).limit(0);
    if let Some(config) = tls {
        connector = connector.rustls_0_23(config);
    }
    awc::Client::builder()
        .connector(connector)
        .timeout(Duration::from_secs(10))
        .finish()
}

/// What went wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// An HTTP request failed.
    #[error("http: {0}")]
    Http(String),
    /// The voice webhook did not answer `<Connect><Stream>` TwiML.
    #[error("unexpected TwiML: {0}")]
    Twiml(String),
    /// The WebSocket failed.
    #[error("websocket: {0}")]
    WebSocket(String),
}

/// The account Twilio's test requests name when no other is configured: `AC` and 32 zeros.
pub use crate::config::LOCAL_ACCOUNT_SID as DEFAULT_ACCOUNT_SID;

/// What the voice webhook told Twilio to do.
#[derive(Debug, Clone)]
pub struct StreamAnswer {
    /// The call this answer is for.
    pub call_sid: String,
    /// Path of the stream URL (`/twilio/media`).
    pub path: String,
    /// The stream token `<Parameter>`.
    pub token: String,
}

/// One message the server sent on the media socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// Outbound audio (decoded mu-law).
    Media(Vec<u8>),
    /// A mark to echo once the audio before it has played.
    Mark(String),
    /// Drop buffered audio.
    Clear,
    /// The server closed the socket.
    Close {
        /// Close code, if any.
        code: Option<u16>,
        /// Close reason.
        reason: String,
    },
    /// A text message that is none of the above.
    Other(String),
}

/// The auth token Twilio signs with, as the client tools find it (flattened into their options).
#[derive(Debug, Clone, clap::Args)]
pub struct AuthTokenArgs {
    /// The auth token to sign requests with. Default: the development token the server generated
    /// in DATA_DIR when TWILIO_AUTH_TOKEN is not set.
    #[arg(
        long,
        visible_alias = "auth-token",
        env = "TWILIO_AUTH_TOKEN",
        hide_env_values = true
    )]
    pub twilio_auth_token: Option<String>,
    /// Where the server keeps its data (for the development token).
    #[arg(long, env = "DATA_DIR", default_value = "data")]
    pub data_dir: std::path::PathBuf,
}

impl AuthTokenArgs {
    /// The token given, or else the server's development token, if it has written one.
    pub fn token(&self) -> Option<String> {
        self.twilio_auth_token.clone().or_else(|| {
            let path = self.data_dir.join(DEV_TWILIO_AUTH_TOKEN_FILE);
            std::fs::read_to_string(path)
                .ok()
                .map(|t| t.trim().to_owned())
        })
    }
}

/// How `phone-agent call` and `loadgen` sign like Twilio (flattened into their options).
#[derive(Debug, Clone, clap::Args)]
pub struct TwilioAccountArgs {
    /// The auth token.
    #[command(flatten)]
    pub auth: AuthTokenArgs,
    /// The host the server believes Twilio uses (its PUBLIC_HOST). Default: the --url's host.
    #[arg(long, env = "PUBLIC_HOST")]
    pub public_host: Option<String>,
}

impl TwilioAccountArgs {
    /// A sim for the server at `url`, signing when a token is known (unsigned otherwise, for a
    /// server run with `TWILIO_VALIDATE=false`).
    pub fn sim(&self, url: &str) -> TwilioSim {
        let sim = TwilioSim::new(url);
        let host = self
            .public_host
            .clone()
            .unwrap_or_else(|| host_of(url).to_owned());
        match self.auth.token() {
            Some(token) => sim.signing(&token, &host),
            None => sim,
        }
    }
}

/// Talks to one phone-agent server as Twilio would.
pub struct TwilioSim {
    http: awc::Client,
    base: String,
    /// The host the URLs Twilio requests are written with (the server's `PUBLIC_HOST`).
    public_host: String,
    /// Signs requests as Twilio does, with the account's auth token, when set.
    signer: Option<TwilioSigner>,
}

/// What a server answered to a form post.
#[derive(Debug, Clone)]
pub struct FormAnswer {
    /// The HTTP status.
    pub status: u16,
    /// The `Content-Type` header (empty when absent).
    pub content_type: String,
    /// The body, as text.
    pub body: String,
}

impl TwilioSim {
    /// A sim for the server at `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: impl Into<String>) -> Self {
        let http = http_client(None);
        let base = base.into().trim_end_matches('/').to_owned();
        Self {
            http,
            public_host: host_of(&base).to_owned(),
            base,
            signer: None,
        }
    }

    /// Speaks TLS to an `https://` base (webhooks over HTTPS, media over `wss://`) with
    /// `config` (its trusted roots and protocol versions).
    pub fn with_tls(mut self, config: std::sync::Arc<rustls::ClientConfig>) -> Self {
        self.http = http_client(Some(config));
        self
    }

    /// Signs every request with `X-Twilio-Signature` under `auth_token`, over URLs on
    /// `public_host` (the server's `PUBLIC_HOST`).
    pub fn signing(self, auth_token: &str, public_host: &str) -> Self {
        let mut sim = self.signed(auth_token);
        sim.public_host = public_host.to_owned();
        sim
    }

    /// Signs every request with `X-Twilio-Signature` under `auth_token`, over the URLs given to
    /// [`Self::post_form`] and [`Self::open_stream`].
    pub fn signed(mut self, auth_token: &str) -> Self {
        self.signer = Some(TwilioSigner::new(auth_token));
        self
    }

    /// The signature header for `url` (as written) with `params`, when signing.
    fn signature(&self, url: &str, params: &[(String, String)]) -> Option<(&'static str, String)> {
        let signer = self.signer.as_ref()?;
        Some((SIGNATURE_HEADER, signer.sign(url, params)))
    }

    /// Where a request for `url` goes: its path and query on the server's own address.
    fn local(&self, url: &str) -> String {
        format!("{}{}", self.base, path_and_query(url))
    }

    /// Posts `form` to `url` as Twilio posts a webhook: to the server's own address (same path
    /// and query), signed over `url` exactly as written.
    pub async fn post_form(
        &self,
        url: &str,
        form: &[(String, String)],
    ) -> Result<FormAnswer, SimError> {
        let mut request = self.http.post(self.local(url));
        if let Some(signature) = self.signature(url, form) {
            request = request.insert_header(signature);
        }
        let mut response = request
            .send_form(&form)
            .await
            .map_err(|e| SimError::Http(e.to_string()))?;
        let body = response
            .body()
            .await
            .map_err(|e| SimError::Http(e.to_string()))?;
        let content_type = response
            .headers()
            .get(awc::http::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        Ok(FormAnswer {
            status: response.status().as_u16(),
            content_type,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    /// Posts the voice webhook for `call_sid` and reads the TwiML.
    pub async fn place_call(&self, call_sid: &str) -> Result<StreamAnswer, SimError> {
        let form: Vec<(String, String)> = [
            ("CallSid", call_sid),
            ("AccountSid", DEFAULT_ACCOUNT_SID),
            ("From", "+14155550100"),
            ("To", "+14155550199"),
            ("CallStatus", "ringing"),
            ("Direction", "inbound"),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
        let url = format!("https://{}/twilio/voice", self.public_host);
        let answer = self.post_form(&url, &form).await?;
        let twiml = answer.body;
        if !(200..300).contains(&answer.status) {
            return Err(SimError::Http(format!("{}: {twiml}", answer.status)));
        }
        let url = attribute(&twiml, "url").ok_or_else(|| SimError::Twiml(twiml.clone()))?;
        let token = attribute(&twiml, "value").ok_or_else(|| SimError::Twiml(twiml.clone()))?;
        let path = url
            .strip_prefix("wss://")
            .and_then(|rest| rest.find('/').map(|i| rest[i..].to_owned()))
            .ok_or_else(|| SimError::Twiml(twiml.clone()))?;
        Ok(StreamAnswer {
            call_sid: call_sid.to_owned(),
            path,
            token,
        })
    }

    /// Opens the media socket at `path` on the public host without sending anything.
    pub async fn open(&self, path: &str) -> Result<MediaConnection, SimError> {
        self.open_stream(&format!("wss://{}{path}", self.public_host))
            .await
    }

    /// Opens the media socket of a `<Stream url>` (`wss://…`) without sending anything: the same
    /// path and query over `ws://` on the server's own address, signed over `url` as written.
    pub async fn open_stream(&self, url: &str) -> Result<MediaConnection, SimError> {
        let local = self.local(url).replacen("http", "ws", 1);
        let mut request = self.http.ws(local).max_frame_size(1 << 20);
        if let Some(signature) = self.signature(url, &[]) {
            request = request.set_header(signature.0, signature.1);
        }
        let (_, framed) = request
            .connect()
            .await
            .map_err(|e| SimError::WebSocket(e.to_string()))?;
        Ok(MediaConnection {
            framed,
            account_sid: String::new(),
            call_sid: String::new(),
            stream_sid: String::new(),
            sequence: 0,
            chunk: 0,
        })
    }

    /// Opens the media socket of `answer` and sends `connected` and `start`, as Twilio does.
    pub async fn connect(&self, answer: &StreamAnswer) -> Result<MediaConnection, SimError> {
        let mut connection = self.open(&answer.path).await?;
        connection.send_connected().await?;
        connection
            .send_start(&answer.call_sid, &answer.token)
            .await?;
        Ok(connection)
    }
}

/// A sid of Twilio's shape: `prefix` (`CA` a call, `MZ` a stream) and 32 random hex digits.
pub fn random_sid(prefix: &str) -> String {
    crate::twilio::random_sid(prefix).expect("system randomness")
}

/// The host (and port) of a URL: `http://127.0.0.1:8080/x` → `127.0.0.1:8080`.
fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split(['/', '?']).next().unwrap_or(rest)
}

/// The path and query of a URL: `https://host/a?b=1` → `/a?b=1` (`/` when it has neither).
fn path_and_query(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    match rest.find(['/', '?']) {
        Some(at) if rest[at..].starts_with('/') => rest[at..].to_owned(),
        Some(at) => format!("/{}", &rest[at..]),
        None => "/".to_owned(),
    }
}

/// What `start` announces: the call, its account and the `<Parameter>`s of its `<Stream>`.
#[derive(Debug, Clone, Copy)]
pub struct StreamStart<'a> {
    /// The account the call belongs to.
    pub account_sid: &'a str,
    /// The call.
    pub call_sid: &'a str,
    /// `start.customParameters`, in the TwiML's order.
    pub custom_parameters: &'a [(String, String)],
}

/// The longest [`MediaConnection::close`] waits for the server's close frame.
pub const CLOSE_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);

/// An open media socket, on Twilio's side.
pub struct MediaConnection {
    framed: Framed<BoxedSocket, ws::Codec>,
    account_sid: String,
    call_sid: String,
    stream_sid: String,
    sequence: u64,
    chunk: u64,
}

impl MediaConnection {
    /// Sends `connected`.
    pub async fn send_connected(&mut self) -> Result<(), SimError> {
        self.send_json(json!({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
            .await
    }

    /// Sends `start` for `call_sid` with the stream token.
    pub async fn send_start(&mut self, call_sid: &str, token: &str) -> Result<(), SimError> {
        let parameters = [("token".to_owned(), token.to_owned())];
        self.send_start_with(StreamStart {
            account_sid: DEFAULT_ACCOUNT_SID,
            call_sid,
            custom_parameters: &parameters,
        })
        .await
    }

    /// Sends `start` as `start` describes it.
    pub async fn send_start_with(&mut self, start: StreamStart<'_>) -> Result<(), SimError> {
        self.account_sid = start.account_sid.to_owned();
        self.call_sid = start.call_sid.to_owned();
        self.stream_sid = format!("MZ{}", start.call_sid.get(2..).unwrap_or_default());
        let parameters: serde_json::Map<String, Value> = start
            .custom_parameters
            .iter()
            .map(|(name, value)| (name.clone(), Value::String(value.clone())))
            .collect();
        let start = json!({
            "event": "start",
            "sequenceNumber": self.next_sequence(),
            "start": {
                "accountSid": self.account_sid,
                "streamSid": self.stream_sid,
                "callSid": self.call_sid,
                "tracks": ["inbound"],
                "customParameters": parameters,
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
            },
            "streamSid": self.stream_sid,
        });
        self.send_json(start).await
    }

    /// Sends `media` with `payload` (raw mu-law).
    pub async fn send_media(&mut self, payload: &[u8]) -> Result<(), SimError> {
        self.chunk += 1;
        let media = json!({
            "event": "media",
            "sequenceNumber": self.next_sequence(),
            "media": {
                "track": "inbound",
                "chunk": self.chunk.to_string(),
                "timestamp": ((self.chunk - 1) * 20).to_string(),
                "payload": BASE64.encode(payload),
            },
            "streamSid": self.stream_sid,
        });
        self.send_json(media).await
    }

    /// Echoes a mark, as Twilio does once the audio before it has played.
    pub async fn send_mark(&mut self, name: &str) -> Result<(), SimError> {
        let mark = json!({
            "event": "mark",
            "sequenceNumber": self.next_sequence(),
            "mark": {"name": name},
            "streamSid": self.stream_sid,
        });
        self.send_json(mark).await
    }

    /// Sends `dtmf` for one keypad key, as Twilio does for each key the caller presses.
    pub async fn send_dtmf(&mut self, digit: char) -> Result<(), SimError> {
        let dtmf = json!({
            "event": "dtmf",
            "sequenceNumber": self.next_sequence(),
            "dtmf": {"track": "inbound_track", "digit": digit.to_string()},
            "streamSid": self.stream_sid,
        });
        self.send_json(dtmf).await
    }

    /// Sends `stop`.
    pub async fn send_stop(&mut self) -> Result<(), SimError> {
        let stop = json!({
            "event": "stop",
            "sequenceNumber": self.next_sequence(),
            "stop": {"accountSid": self.account_sid, "callSid": self.call_sid},
            "streamSid": self.stream_sid,
        });
        self.send_json(stop).await
    }

    /// Sends any WebSocket message (for malformed input).
    pub async fn send_raw(&mut self, message: ws::Message) -> Result<(), SimError> {
        self.framed
            .send(message)
            .await
            .map_err(|e| SimError::WebSocket(e.to_string()))
    }

    /// Closes the socket from Twilio's side, and waits (at most [`CLOSE_HANDSHAKE_TIMEOUT`])
    /// for the server's close in answer, as RFC 6455 asks: dropping the connection at once could
    /// make the server see it gone before it has read what was sent last (`stop`).
    pub async fn close(&mut self) -> Result<(), SimError> {
        self.send_raw(ws::Message::Close(Some(CloseCode::Normal.into())))
            .await?;
        let _ = actix_rt::time::timeout(CLOSE_HANDSHAKE_TIMEOUT, async {
            while let Some(message) = self.recv().await {
                if matches!(message, Received::Close { .. }) {
                    break;
                }
            }
        })
        .await;
        Ok(())
    }

    /// The next message from the server; `None` once the socket is gone. Pings are answered.
    pub async fn recv(&mut self) -> Option<Received> {
        loop {
            let frame = match self.framed.next().await? {
                Ok(frame) => frame,
                Err(_) => return None,
            };
            match frame {
                ws::Frame::Text(bytes) => return Some(parse(&bytes)),
                ws::Frame::Ping(bytes) => {
                    let _ = self.framed.send(ws::Message::Pong(bytes)).await;
                }
                ws::Frame::Close(reason) => {
                    return Some(Received::Close {
                        code: reason.as_ref().map(|r| u16::from(r.code)),
                        reason: reason.and_then(|r| r.description).unwrap_or_default(),
                    })
                }
                ws::Frame::Binary(_) | ws::Frame::Pong(_) | ws::Frame::Continuation(_) => {}
            }
        }
    }

    async fn send_json(&mut self, value: Value) -> Result<(), SimError> {
        self.send_raw(ws::Message::Text(value.to_string().into()))
            .await
    }

    fn next_sequence(&mut self) -> String {
        self.sequence += 1;
        self.sequence.to_string()
    }
}

fn parse(bytes: &[u8]) -> Received {
    let text = String::from_utf8_lossy(bytes).into_owned();
    let Ok(value) = serde_json::from_str::<Value>(&text) else {
        return Received::Other(text);
    };
    match value["event"].as_str() {
        Some("media") => match value["media"]["payload"].as_str().map(|p| BASE64.decode(p)) {
            Some(Ok(audio)) => Received::Media(audio),
            _ => Received::Other(text),
        },
        Some("mark") => match value["mark"]["name"].as_str() {
            Some(name) => Received::Mark(name.to_owned()),
            None => Received::Other(text),
        },
        Some("clear") => Received::Clear,
        _ => Received::Other(text),
    }
}

/// Value of the first `name="…"` attribute in `xml`, unescaped.
fn attribute(xml: &str, name: &str) -> Option<String> {
    let start = xml.find(&format!(" {name}=\""))? + name.len() + 3;
    let end = start + xml[start..].find('"')?;
    Some(
        xml[start..end]
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}
