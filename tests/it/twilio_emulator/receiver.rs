//! A stand-in for our server's Twilio side, for the emulator's tests: the voice webhook (answers
//! the TwiML it is given), status and detection callbacks, and the media socket (records what
//! Twilio sends, closes when told: the agent hanging up). Every request's signature is checked
//! with the server's own [`TwilioSigner`] over the public URL, and everything seen is reported
//! on a channel.

use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use actix_ws::{CloseCode, Message};
use futures_util::StreamExt;
use phone_agent::twilio::signature::{SignedRequest, TwilioSigner};
use phone_agent::twilio::twiml::connect_stream;
use serde_json::Value;
use tokio::sync::{mpsc, Notify};

use crate::support::{EVENT_TIMEOUT, PUBLIC_HOST, TWILIO_AUTH_TOKEN};

/// The stream token the receiver's TwiML carries.
pub const STREAM_TOKEN: &str = "stream-token-1";

/// Something the receiver saw.
#[derive(Debug, Clone)]
pub enum Seen {
    /// A webhook or callback on `path`, its form, and whether its signature was valid.
    Posted {
        path: String,
        params: Vec<(String, String)>,
        signed: bool,
    },
    /// The media socket's upgrade, and whether it was signed.
    MediaOpened { signed: bool },
    /// A media socket message other than `media` (connected, start, mark, stop).
    MediaEvent(Value),
    /// The socket closed (by either side).
    MediaClosed,
}

struct State {
    signer: TwilioSigner,
    twiml: Mutex<String>,
    seen: mpsc::UnboundedSender<Seen>,
    hang_up: Notify,
}

/// The receiver and what it saw.
pub struct Receiver {
    /// `http://127.0.0.1:PORT`: the emulator's agent.
    pub base: String,
    state: Arc<State>,
    seen: mpsc::UnboundedReceiver<Seen>,
    /// Everything seen so far, in order.
    log: Vec<Seen>,
}

/// A post's form and whether it was signed.
pub type Post = (Vec<(String, String)>, bool);

impl Receiver {
    /// Starts a receiver on an unused port, answering the server's own `<Connect><Stream>`.
    pub async fn start() -> Self {
        let (seen_tx, seen) = mpsc::unbounded_channel();
        let state = Arc::new(State {
            signer: TwilioSigner::new(TWILIO_AUTH_TOKEN),
            twiml: Mutex::new(connect_stream(PUBLIC_HOST, "token", STREAM_TOKEN)),
            seen: seen_tx,
            hang_up: Notify::new(),
        });
        let data = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/twilio/media", web::get().to(media))
                .default_service(web::post().to(posted))
        })
        .workers(1)
        .disable_signals()
        .bind("127.0.0.1:0")
        .expect("receiver binds");
        let base = format!("http://{}", server.addrs()[0]);
        actix_rt::spawn(server.run());
        Self {
            base,
            state,
            seen,
            log: Vec::new(),
        }
    }

    /// Answers the voice webhook with `twiml` from now on.
    pub fn answer_with(&self, twiml: &str) {
        *self.state.twiml.lock().unwrap() = twiml.to_owned();
    }

    /// Closes the media socket, as the agent does when it hangs up.
    pub fn hang_up(&self) {
        self.state.hang_up.notify_one();
    }

    /// Waits until `find` finds what it looks for in everything seen so far (fails after the
    /// event timeout).
    pub async fn until<T>(&mut self, find: impl Fn(&[Seen]) -> Option<T>) -> T {
        let log = &mut self.log;
        let seen = &mut self.seen;
        let found = actix_rt::time::timeout(EVENT_TIMEOUT, async {
            loop {
                if let Some(found) = find(log) {
                    return found;
                }
                log.push(seen.recv().await.expect("receiver running"));
            }
        })
        .await;
        found.unwrap_or_else(|_| panic!("not seen within the timeout; seen: {:#?}", self.log))
    }

    /// The first `count` posts on `path`.
    pub async fn posts(&mut self, path: &str, count: usize) -> Vec<Post> {
        self.until(|log| {
            let posts: Vec<Post> = log
                .iter()
                .filter_map(|seen| match seen {
                    Seen::Posted {
                        path: posted,
                        params,
                        signed,
                    } if posted == path => Some((params.clone(), *signed)),
                    _ => None,
                })
                .take(count)
                .collect();
            (posts.len() == count).then_some(posts)
        })
        .await
    }

    /// The first media event named `event`.
    pub async fn media_event(&mut self, event: &str) -> Value {
        self.until(|log| {
            log.iter().find_map(|seen| match seen {
                Seen::MediaEvent(message) if message["event"] == event => Some(message.clone()),
                _ => None,
            })
        })
        .await
    }

    /// Whether the media socket upgrade was signed.
    pub async fn media_opened(&mut self) -> bool {
        self.until(|log| {
            log.iter().find_map(|seen| match seen {
                Seen::MediaOpened { signed } => Some(*signed),
                _ => None,
            })
        })
        .await
    }

    /// Waits for the media socket to close.
    pub async fn media_closed(&mut self) {
        self.until(|log| {
            log.iter()
                .any(|seen| matches!(seen, Seen::MediaClosed))
                .then_some(())
        })
        .await
    }
}

fn signature(request: &HttpRequest) -> String {
    request
        .headers()
        .get("x-twilio-signature")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

async fn posted(request: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    let url = format!("https://{PUBLIC_HOST}{}", request.uri());
    let signed = state.signer.verify(
        SignedRequest {
            url: &url,
            form: Some(&body),
            raw: &body,
        },
        &signature(&request),
    );
    let params = phone_agent::twilio::signature::form_params(&body);
    let _ = state.seen.send(Seen::Posted {
        path: request.path().to_owned(),
        params,
        signed,
    });
    if request.path() == "/twilio/voice" {
        let twiml = state.twiml.lock().unwrap().clone();
        HttpResponse::Ok()
            .content_type("text/xml; charset=utf-8")
            .body(twiml)
    } else {
        HttpResponse::NoContent().finish()
    }
}

async fn media(
    request: HttpRequest,
    body: web::Payload,
    state: web::Data<State>,
) -> Result<HttpResponse, actix_web::Error> {
    let url = format!("wss://{PUBLIC_HOST}{}", request.uri());
    let signed = state.signer.verify(
        SignedRequest {
            url: &url,
            form: None,
            raw: &[],
        },
        &signature(&request),
    );
    let (response, session, mut messages) = actix_ws::handle(&request, body)?;
    let _ = state.seen.send(Seen::MediaOpened { signed });
    let state = state.into_inner();
    actix_rt::spawn(async move {
        loop {
            tokio::select! {
                message = messages.next() => match message {
                    Some(Ok(Message::Text(text))) => {
                        let value: Value = serde_json::from_str(&text).unwrap_or_default();
                        if value["event"] != "media" {
                            let _ = state.seen.send(Seen::MediaEvent(value));
                        }
                    }
                    // A well-behaved server answers a close with its own.
                    Some(Ok(Message::Close(reason))) => {
                        let _ = session.clone().close(reason).await;
                        break;
                    }
                    Some(Err(_)) | None => break,
                    Some(Ok(_)) => {}
                },
                () = state.hang_up.notified() => {
                    let _ = session.clone().close(Some(CloseCode::Normal.into())).await;
                    break;
                }
            }
        }
        let _ = state.seen.send(Seen::MediaClosed);
    });
    Ok(response)
}
