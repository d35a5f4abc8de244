//! A Twilio-faithful client for a phone-agent server: what Twilio does on a call, step by step.
//!
//! [`TwilioSim::place_call`] posts the voice webhook and reads the TwiML's stream URL and token;
//! [`TwilioSim::connect`] opens the media WebSocket and sends `connected` and `start`; the returned
//! [`MediaConnection`] sends `media`/`mark`/`dtmf`/`stop` exactly as Twilio writes them (numbers as
//! strings, base64 payloads) and reads what the server sends back. Used by the load generator and the
//! integration tests. The stream URL is `wss://PUBLIC_HOST/...`; the sim connects to the same path
//! on the server's own address over plain `ws://`.

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

/// How `phone-agent call` and `loadgen` sign like Twilio (flattened into their options).
#[derive(Debug, Clone, clap::Args)]
pub struct TwilioAccountArgs {
    /// The auth token to sign requests with. Default: the development token the server generated
    /// in DATA_DIR when TWILIO_AUTH_TOKEN is not set.
    #[arg(long, env = "TWILIO_AUTH_TOKEN", hide_env_values = true)]
    pub twilio_auth_token: Option<String>,
    /// The host the server believes Twilio uses (its PUBLIC_HOST). Default: the --url's host.
    #[arg(long, env = "PUBLIC_HOST")]
    pub public_host: Option<String>,
    /// Where the server keeps its data (for the development token).
    #[arg(long, env = "DATA_DIR", default_value = "data")]
    pub data_dir: std::path::PathBuf,
}

impl TwilioAccountArgs {
    /// A sim for the server at `url`, signing when a token is known (unsigned otherwise, for a
    /// server run with `TWILIO_VALIDATE=false`).
    pub fn sim(&self, url: &str) -> TwilioSim {
        let sim = TwilioSim::new(url);
        let token = self.twilio_auth_token.clone().or_else(|| {
            let path = self.data_dir.join(DEV_TWILIO_AUTH_TOKEN_FILE);
            std::fs::read_to_string(path)
                .ok()
                .map(|t| t.trim().to_owned())
        });
        let host = self.public_host.clone().unwrap_or_else(|| {
            let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
            rest.split('/').next().unwrap_or(rest).to_owned()
        });
        match token {
            Some(token) => sim.signing(&token, &host),
            None => sim,
        }
    }
}

/// Talks to one phone-agent server as Twilio would.
pub struct TwilioSim {
    http: awc::Client,
    base: String,
    signing: Option<Signing>,
}

/// How the sim signs its requests, as Twilio does: the account's auth token and the public host
/// the URLs are written with.
struct Signing {
    signer: TwilioSigner,
    public_host: String,
}

impl TwilioSim {
    /// A sim for the server at `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: impl Into<String>) -> Self {
        // Twilio's media frames are small and latency-bound; like the server, the sim disables
        // Nagle's algorithm, or each frame would wait for the previous one's (delayed) ACK.
        let tcp = TcpConnector::new(Resolver::default()).service().map(
            |connection: Connection<Uri, TcpStream>| {
                let _ = connection.io_ref().set_nodelay(true);
                connection
            },
        );
        let http = awc::Client::builder()
            .connector(awc::Connector::new().connector(tcp))
            .timeout(Duration::from_secs(10))
            .finish();
        Self {
            http,
            base: base.into().trim_end_matches('/').to_owned(),
            signing: None,
        }
    }

    /// Signs every request with `X-Twilio-Signature` under `auth_token`, over URLs on
    /// `public_host` (the server's `PUBLIC_HOST`).
    pub fn signing(mut self, auth_token: &str, public_host: &str) -> Self {
        self.signing = Some(Signing {
            signer: TwilioSigner::new(auth_token),
            public_host: public_host.to_owned(),
        });
        self
    }

    /// The signature header for `scheme://PUBLIC_HOST{path}` with `params`, when signing.
    fn signature(
        &self,
        scheme: &str,
        path: &str,
        params: &[(&str, &str)],
    ) -> Option<(&'static str, String)> {
        let signing = self.signing.as_ref()?;
        let url = format!("{scheme}://{}{path}", signing.public_host);
        let params: Vec<(String, String)> = params
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        Some((SIGNATURE_HEADER, signing.signer.sign(&url, &params)))
    }

    /// Posts the voice webhook for `call_sid` and reads the TwiML.
    pub async fn place_call(&self, call_sid: &str) -> Result<StreamAnswer, SimError> {
        let form = [
            ("CallSid", call_sid),
            ("AccountSid", "AC00000000000000000000000000000000"),
            ("From", "+14155550100"),
            ("To", "+14155550199"),
            ("CallStatus", "ringing"),
            ("Direction", "inbound"),
        ];
        let mut request = self.http.post(format!("{}/twilio/voice", self.base));
        if let Some(signature) = self.signature("https", "/twilio/voice", &form) {
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
        let twiml = String::from_utf8_lossy(&body).into_owned();
        if !response.status().is_success() {
            return Err(SimError::Http(format!("{}: {twiml}", response.status())));
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

    /// Opens the media socket without sending anything.
    pub async fn open(&self, path: &str) -> Result<MediaConnection, SimError> {
        let url = format!("{}{path}", self.base.replacen("http", "ws", 1));
        let mut request = self.http.ws(url).max_frame_size(1 << 20);
        if let Some(signature) = self.signature("wss", path, &[]) {
            request = request.set_header(signature.0, signature.1);
        }
        let (_, framed) = request
            .connect()
            .await
            .map_err(|e| SimError::WebSocket(e.to_string()))?;
        Ok(MediaConnection {
            framed,
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

/// An open media socket, on Twilio's side.
pub struct MediaConnection {
    framed: Framed<BoxedSocket, ws::Codec>,
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
        self.stream_sid = format!("MZ{}", &call_sid[2..]);
        let start = json!({
            "event": "start",
            "sequenceNumber": self.next_sequence(),
            "start": {
                "accountSid": "AC00000000000000000000000000000000",
                "streamSid": self.stream_sid,
                "callSid": call_sid,
                "tracks": ["inbound"],
                "customParameters": {"token": token},
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
            "stop": {"accountSid": "AC00000000000000000000000000000000", "callSid": format!("CA{}", &self.stream_sid[2..])},
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

    /// Closes the socket from Twilio's side.
    pub async fn close(&mut self) -> Result<(), SimError> {
        self.send_raw(ws::Message::Close(Some(CloseCode::Normal.into())))
            .await
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
