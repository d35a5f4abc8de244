//! Shared by the call-path benchmarks: call actor trees on the loopback engines, fed and read the
//! way the server's socket pumps feed and read them, without sockets.

// Each bench binary compiles this module and uses a different part of it.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix::Addr;
use base64::Engine as _;
use phone_agent::config::Config;
use phone_agent::engines;
use phone_agent::twilio::stream_token::StreamTokens;
use phone_agent_actors::call::settings::ConversationSettings;
use phone_agent_actors::call::{CallActor, CallSettings};
use phone_agent_actors::ids::{CallSid, UtteranceId};
use phone_agent_actors::media::{
    ClearAudio, MediaSettings, MediaStream, SocketCommand, SocketEvent, SOCKET_QUEUE_CAPACITY,
};
use phone_agent_actors::runtime::metrics::CallMetrics;
use phone_agent_actors::runtime::registry::LiveCalls;
use phone_agent_actors::runtime::supervision::RestartPolicy;
use tokio::sync::mpsc;

/// The conversation settings of `ENGINES=loopback` (barge-in off: each frame is a turn).
pub fn loopback_conversation() -> ConversationSettings {
    Config::from_lookup(|name| (name == "ENGINES").then(|| "loopback".to_owned()))
        .expect("loopback configuration")
        .conversation
}

/// One call's actor tree, driven as the socket reader would drive it.
pub struct BenchCall {
    /// The call's supervisor.
    pub call: Addr<CallActor>,
    media: Addr<MediaStream>,
    out: mpsc::Receiver<SocketCommand>,
    inbound: String,
}

/// Call settings with the loopback engines and real-time pacing.
pub fn settings(tokens: Arc<StreamTokens>) -> CallSettings {
    CallSettings {
        engines: engines::loopback_set(),
        media: MediaSettings {
            playback_lead: Duration::from_millis(100),
            idle_timeout: Duration::from_secs(600),
            ping_interval: Duration::from_secs(60),
            max_message_bytes: 65_536,
            start_timeout: Duration::from_secs(5),
        },
        restart: RestartPolicy::default(),
        live_calls: LiveCalls::new(),
        authorizer: tokens,
        conversation: Arc::new(loopback_conversation()),
        metrics: Arc::new(CallMetrics::default()),
        call_control: None,
        journal: None,
    }
}

/// Starts call `n` and admits its `start`.
pub async fn start_call(settings: &CallSettings, tokens: &StreamTokens, n: u32) -> BenchCall {
    let (commands, out) = mpsc::channel(SOCKET_QUEUE_CAPACITY);
    let handle = CallActor::start(settings.clone(), commands);
    let call_sid = CallSid::parse(&format!("CA{n:032x}")).expect("valid sid");
    let token = tokens.mint(&call_sid, SystemTime::now()).expect("token");
    let stream_sid = format!("MZ{n:032x}");
    let start = format!(
        r#"{{"event":"start","sequenceNumber":"1","start":{{"accountSid":"AC1","streamSid":"{stream_sid}","callSid":"{call_sid}","tracks":["inbound"],"customParameters":{{"token":"{token}"}},"mediaFormat":{{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}},"streamSid":"{stream_sid}"}}"#
    );
    handle
        .media
        .send(SocketEvent::Text(start))
        .await
        .expect("media stream up");
    let payload = base64::engine::general_purpose::STANDARD.encode([0xD5u8; 160]);
    let inbound = format!(
        r#"{{"event":"media","sequenceNumber":"2","media":{{"track":"inbound","chunk":"1","timestamp":"0","payload":"{payload}"}},"streamSid":"{stream_sid}"}}"#
    );
    BenchCall {
        call: handle.call,
        media: handle.media,
        out,
        inbound,
    }
}

impl BenchCall {
    /// Empties the playout model, as if everything sent had played.
    pub async fn reset_playout(&mut self) {
        self.media
            .send(ClearAudio {
                through: UtteranceId(0),
            })
            .await
            .expect("media stream up");
        self.drain();
    }

    /// Hands one inbound `media` frame to the MediaStream.
    pub async fn send(&self) {
        self.media
            .send(SocketEvent::Text(self.inbound.clone()))
            .await
            .expect("media stream up");
    }

    /// Waits for the next outbound `media` (skipping the marks that follow each chunk).
    pub async fn echoed(&mut self) {
        self.next_event("media").await;
    }

    /// Waits for the next outbound message whose `event` is `event`, skipping others.
    pub async fn next_event(&mut self, event: &str) {
        let prefix = format!(r#"{{"event":"{event}""#);
        loop {
            match self.out.recv().await {
                Some(SocketCommand::Text(text)) if text.starts_with(&prefix) => return,
                Some(_) => {}
                None => panic!("call ended"),
            }
        }
    }

    /// Drops whatever the socket queue holds.
    pub fn drain(&mut self) {
        while self.out.try_recv().is_ok() {}
    }
}
