//! A whole call's actor tree (CallActor, MediaStream, Transcriber, Responder, Synthesizer, with
//! the loopback engines) fed a sequence of socket events: Twilio's messages well formed or not,
//! in any order (media before `start`, a second `start`, a bad token, marks never sent, `stop`
//! then more), binary and oversized frames, and the socket closing. Whatever the sequence: no
//! panic; everything written to the socket is a Twilio message (`media`, `mark` or `clear` of the
//! admitted stream) or one close with a code of RFC 6455; and once the socket has closed, every
//! actor of the call stops.
#![no_main]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use phone_agent::twilio::stream_token::StreamTokens;
use phone_agent_actors::call::settings::ConversationSettings;
use phone_agent_actors::call::{CallActor, CallSettings};
use phone_agent_actors::ids::CallSid;
use phone_agent_actors::media::{MediaSettings, SocketCommand, SocketEvent, SOCKET_QUEUE_CAPACITY};
use phone_agent_actors::runtime::metrics::CallMetrics;
use phone_agent_actors::runtime::registry::LiveCalls;
use phone_agent_actors::runtime::supervision::RestartPolicy;
use serde_json::{json, Value};
use tokio::sync::mpsc;

const CALL_SID: &str = "CA00000000000000000000000000000001";
const STREAM_SID: &str = "MZ00000000000000000000000000000001";

thread_local! {
    static SYSTEM: std::cell::RefCell<actix_rt::SystemRunner> =
        std::cell::RefCell::new(actix_rt::System::new());
}

/// The next socket event of the sequence.
fn event(u: &mut Unstructured, token: &str) -> Result<SocketEvent> {
    let sequence = u.int_in_range(0..=99_999u32)?.to_string();
    let message = match u.int_in_range(0..=9u8)? {
        0 => json!({"event": "connected", "protocol": "Call", "version": "1.0.0"}),
        1 => {
            let token = if u.arbitrary()? {
                token.to_owned()
            } else {
                u.arbitrary()?
            };
            let call_sid = if u.arbitrary()? {
                CALL_SID.to_owned()
            } else {
                u.arbitrary()?
            };
            json!({"event": "start", "sequenceNumber": sequence, "streamSid": STREAM_SID,
                "start": {"accountSid": "AC1", "streamSid": STREAM_SID, "callSid": call_sid,
                    "tracks": ["inbound"], "customParameters": {"token": token},
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}})
        }
        2 | 3 => {
            let len = u.int_in_range(0..=480usize)?;
            let payload = BASE64.encode(u.bytes(len)?);
            let timestamp = u.int_in_range(0..=10_000_000u64)?.to_string();
            json!({"event": "media", "sequenceNumber": sequence, "streamSid": STREAM_SID,
                "media": {"track": "inbound", "chunk": sequence, "timestamp": timestamp,
                    "payload": payload}})
        }
        4 => {
            let name: String = u.arbitrary()?;
            json!({"event": "mark", "streamSid": STREAM_SID, "mark": {"name": name}})
        }
        5 => {
            let digit: char = u.arbitrary()?;
            json!({"event": "dtmf", "streamSid": STREAM_SID,
                "dtmf": {"track": "inbound_track", "digit": digit.to_string()}})
        }
        6 => json!({"event": "stop", "sequenceNumber": sequence, "streamSid": STREAM_SID,
            "stop": {"accountSid": "AC1", "callSid": CALL_SID}}),
        7 => return Ok(SocketEvent::Text(u.arbitrary()?)),
        8 => return Ok(SocketEvent::Binary),
        _ => return Ok(SocketEvent::TooLarge),
    };
    Ok(SocketEvent::Text(message.to_string()))
}

/// Checks what the call wrote to its socket; returns whether it closed.
fn check(command: &SocketCommand, closed: bool) -> bool {
    assert!(!closed, "written after the close: {command:?}");
    match command {
        SocketCommand::Text(text) => {
            let message: Value = serde_json::from_str(text).expect("a JSON message");
            let event = message["event"].as_str().expect("an event");
            assert!(matches!(event, "media" | "mark" | "clear"), "{text}");
            assert_eq!(message["streamSid"], STREAM_SID, "{text}");
            false
        }
        SocketCommand::Close(frame) => {
            assert!(
                matches!(
                    frame.code,
                    1000 | 1001 | 1002 | 1003 | 1007 | 1008 | 1009 | 1011 | 1013
                ),
                "{frame:?}"
            );
            true
        }
        SocketCommand::Ping | SocketCommand::Pong(_) => false,
    }
}

fn run(data: &[u8]) -> Result<()> {
    let mut u = Unstructured::new(data);
    let tokens = Arc::new(StreamTokens::new(Duration::from_secs(60)));
    let call_sid = CallSid::parse(CALL_SID).expect("a CallSid");
    let token = tokens.mint(&call_sid, SystemTime::now()).expect("a token");
    let mut events = Vec::new();
    while !u.is_empty() && events.len() < 64 {
        events.push(event(&mut u, &token)?);
    }
    SYSTEM.with(|system| {
        system.borrow().block_on(async move {
            let live_calls = LiveCalls::new();
            let settings = CallSettings {
                engines: phone_agent::engines::loopback_set(),
                media: MediaSettings {
                    playback_lead: Duration::from_millis(100),
                    idle_timeout: Duration::from_secs(15),
                    ping_interval: Duration::from_secs(5),
                    max_message_bytes: 65_536,
                    start_timeout: Duration::from_secs(5),
                },
                restart: RestartPolicy::default(),
                live_calls: live_calls.clone(),
                authorizer: tokens,
                conversation: Arc::new(ConversationSettings::default()),
                metrics: Arc::new(CallMetrics::default()),
                call_control: None,
                journal: None,
            };
            let (socket, mut written) = mpsc::channel(SOCKET_QUEUE_CAPACITY);
            let call = CallActor::start(settings, socket);
            let mut closed = false;
            for event in events.into_iter().chain([SocketEvent::Closed]) {
                // A stream that has ended stops reading: later events find no one.
                let _ = call.media.send(event).await;
                while let Ok(command) = written.try_recv() {
                    closed |= check(&command, closed);
                }
            }
            drop(call);
            let stopped =
                tokio::time::timeout(Duration::from_secs(5), live_calls.wait_until_empty());
            assert!(
                stopped.await.is_ok(),
                "the call's actors stop once the socket closed"
            );
            while let Ok(command) = written.try_recv() {
                closed |= check(&command, closed);
            }
        })
    });
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(data);
});
