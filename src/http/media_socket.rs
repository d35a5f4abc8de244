//! The two pumps between an actix-ws socket and the call's MediaStream actor.
//!
//! The reader hands each frame to the MediaStream with `send().await`, so reading waits for
//! processing (backpressure to the peer, not a growing mailbox). The writer drains the MediaStream's
//! command channel; every write is bounded by a timeout, since a half-dead peer can block a write
//! forever. The reader holds no `Session`, so once the writer closes, the connection ends.

use std::time::Duration;

use actix::Addr;
use actix_ws::{
    AggregatedMessage, AggregatedMessageStream, CloseCode, CloseReason, ProtocolError, Session,
};
use phone_agent_actors::media::{MediaStream, SocketCommand, SocketEvent};
use tokio::sync::mpsc;

/// Reads frames from the socket into `media` until either side is done.
pub async fn read(
    media: Addr<MediaStream>,
    mut messages: AggregatedMessageStream,
    pongs: mpsc::WeakSender<SocketCommand>,
) {
    while let Some(message) = messages.recv().await {
        let event = match message {
            Ok(AggregatedMessage::Text(text)) => SocketEvent::Text(text.to_string()),
            Ok(AggregatedMessage::Binary(_)) => SocketEvent::Binary,
            Ok(AggregatedMessage::Ping(bytes)) => {
                if let Some(commands) = pongs.upgrade() {
                    let _ = commands.try_send(SocketCommand::Pong(bytes.to_vec()));
                }
                continue;
            }
            Ok(AggregatedMessage::Pong(_)) => continue,
            Ok(AggregatedMessage::Close(_)) => break,
            Err(ProtocolError::Overflow) => SocketEvent::TooLarge,
            Err(error) => {
                tracing::debug!(%error, "media socket read failed");
                break;
            }
        };
        let fatal = matches!(event, SocketEvent::TooLarge);
        if media.send(event).await.is_err() || fatal {
            return;
        }
    }
    // The stream may already have ended itself; then nobody is listening, which is fine.
    let _ = media.send(SocketEvent::Closed).await;
}

/// Writes the MediaStream's commands to the socket until it says close or the socket fails.
pub async fn write(
    mut commands: mpsc::Receiver<SocketCommand>,
    mut session: Session,
    timeout: Duration,
) {
    while let Some(command) = commands.recv().await {
        let written = match command {
            SocketCommand::Text(text) => tokio::time::timeout(timeout, session.text(text)).await,
            SocketCommand::Ping => tokio::time::timeout(timeout, session.ping(b"")).await,
            SocketCommand::Pong(bytes) => tokio::time::timeout(timeout, session.pong(&bytes)).await,
            SocketCommand::Close(frame) => {
                let reason = CloseReason {
                    code: CloseCode::from(frame.code),
                    description: Some(frame.reason.to_owned()),
                };
                let _ = tokio::time::timeout(timeout, session.close(Some(reason))).await;
                return;
            }
        };
        match written {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return,
            Err(_) => {
                tracing::warn!(
                    ?timeout,
                    "media socket write timed out: dropping the connection"
                );
                return;
            }
        }
    }
}
