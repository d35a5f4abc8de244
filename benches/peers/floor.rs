//! The floor of `benches/peers/run.sh`: the least a server speaking Twilio Media Streams can do.
//!
//! A bare tokio-tungstenite server on one thread (tokio's current-thread runtime) that, for each
//! media socket, reads `start`'s `streamSid` and answers every inbound `media` with an outbound one
//! carrying the same audio: the JSON parsed, the payload decoded from base64 and encoded again (the
//! work any server must do to hear and speak), nothing else — no webhook, no actors, no records.
//! Usage: `cargo run --release --example peer-floor -- [ADDRESS]` (default `127.0.0.1:8766`).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use futures_util::{SinkExt as _, StreamExt as _};
use serde::Deserialize;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

/// The fields of an inbound message the floor reads.
#[derive(Deserialize)]
struct Inbound<'a> {
    event: &'a str,
    #[serde(rename = "streamSid", default)]
    stream_sid: Option<&'a str>,
    #[serde(borrow, default)]
    media: Option<Media<'a>>,
}

#[derive(Deserialize)]
struct Media<'a> {
    payload: &'a str,
}

fn main() -> std::io::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8766".to_owned());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = TcpListener::bind(&address).await?;
        println!("listening on {address}");
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async move {
                loop {
                    let (stream, _) = listener.accept().await?;
                    tokio::task::spawn_local(serve(stream));
                }
            })
            .await
    })
}

/// One media socket: echo until `stop` or the socket ends.
async fn serve(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let mut stream_sid = String::new();
    let mut audio = Vec::with_capacity(160);
    while let Some(Ok(message)) = socket.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        let Ok(inbound) = serde_json::from_str::<Inbound>(&text) else {
            continue;
        };
        match (inbound.event, inbound.media) {
            ("start", _) => stream_sid = inbound.stream_sid.unwrap_or_default().to_owned(),
            ("media", Some(media)) => {
                audio.clear();
                if BASE64.decode_vec(media.payload, &mut audio).is_err() {
                    continue;
                }
                let outbound = serde_json::json!({
                    "event": "media",
                    "streamSid": stream_sid,
                    "media": {"payload": BASE64.encode(&audio)},
                });
                if socket
                    .send(Message::text(outbound.to_string()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            ("stop", _) => break,
            _ => {}
        }
    }
    let _ = socket.close(None).await;
}
