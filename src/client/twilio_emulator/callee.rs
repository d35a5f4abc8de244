//! The person who answers: on the media stream the TwiML opened, Twilio's `connected` and
//! `start`, then the caller tools' conversation loop ([`session::talk`]) from the callee's side:
//! silence or the configured turns at real-time pacing, marks echoed as a phone plays them,
//! until the agent closes the socket, the callee hangs up, or the emulator stops the stream.

use tokio::sync::oneshot;

use super::call::StreamEnd;
use super::settings::{Callee, Voice};
use crate::client::caller::session::{self, Recording};
use crate::client::sim::{StreamStart, TwilioSim};

/// Opens the stream at `url` and talks until it ends; `stop` (or its sender dropping) makes the
/// emulator end it. Returns how it ended and, when it ran, the callee's recording of it.
pub async fn answer(
    sim: &TwilioSim,
    url: &str,
    start: StreamStart<'_>,
    callee: &Callee,
    stop: oneshot::Receiver<()>,
) -> (StreamEnd, Option<Recording>) {
    let turns: &[Vec<u8>] = match &callee.voice {
        Voice::Silent => &[],
        Voice::Turns(turns) => turns,
    };
    let talked = async {
        let mut connection = sim.open_stream(url).await?;
        connection.send_connected().await?;
        connection.send_start_with(start).await?;
        session::talk(&mut connection, turns, callee.timing, async {
            let _ = stop.await;
        })
        .await
    };
    match talked.await {
        Ok(recording) if recording.agent_hung_up => (StreamEnd::ByAgent, Some(recording)),
        Ok(recording) => (StreamEnd::ByCallee, Some(recording)),
        // The server closing with another code, or the socket failing, ends the stream too.
        Err(error) => (StreamEnd::Failed(format!("31921 Stream: {error}")), None),
    }
}
