//! One call's actor tree, driven the way the socket pumps drive it: marks heard, children stopped.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use phone_agent::engines;
use phone_agent::twilio::stream_token::StreamTokens;
use phone_agent_actors::call::messages::{GetPlayback, PlaybackStatus};
use phone_agent_actors::call::registry::LiveCalls;
use phone_agent_actors::call::supervision::RestartPolicy;
use phone_agent_actors::call::{CallActor, CallSettings};
use phone_agent_actors::engines::{
    CallContext, ChatMessage, Dialogue, DialogueSession, EngineError, EngineSet, EngineStream,
    SpeechToText, SttSession, TextToSpeech, TtsSession,
};
use phone_agent_actors::ids::{CallSid, MarkName, UtteranceId};
use phone_agent_actors::media::{MediaSettings, SocketCommand, SocketEvent, SOCKET_QUEUE_CAPACITY};
use phone_agent_actors::metrics::CallMetrics;
use tokio::sync::{mpsc, watch};

use crate::support::*;

/// Counts the engine sessions alive: each is owned by one child actor, so when the count is back to
/// zero, every child has stopped and dropped its session.
#[derive(Clone)]
struct SessionCount(Arc<watch::Sender<usize>>);

impl SessionCount {
    fn new() -> Self {
        Self(Arc::new(watch::channel(0).0))
    }

    fn guard(&self) -> SessionGuard {
        self.0.send_modify(|n| *n += 1);
        SessionGuard(self.clone())
    }

    fn now(&self) -> usize {
        *self.0.borrow()
    }
}

struct SessionGuard(SessionCount);

impl Drop for SessionGuard {
    fn drop(&mut self) {
        (self.0).0.send_modify(|n| *n -= 1);
    }
}

/// The loopback engines, each session carrying a [`SessionGuard`].
struct Counted {
    inner: EngineSet,
    sessions: SessionCount,
}

struct CountedDialogue {
    inner: Box<dyn DialogueSession>,
    _alive: SessionGuard,
}

struct CountedTts {
    inner: Box<dyn TtsSession>,
    _alive: SessionGuard,
}

impl SpeechToText for Counted {
    fn name(&self) -> &'static str {
        "counted"
    }
    fn open(&self, call: &CallContext) -> Result<SttSession, EngineError> {
        let session = self.inner.stt.open(call)?;
        // The guard lives inside the event stream, which the Transcriber owns while it runs.
        let alive = self.sessions.guard();
        let events = futures_util::StreamExt::map(session.events, move |event| {
            let _ = &alive;
            event
        });
        Ok(SttSession {
            audio: session.audio,
            events: Box::pin(events),
        })
    }
}

impl Dialogue for Counted {
    fn name(&self) -> &'static str {
        "counted"
    }
    fn open(&self, call: &CallContext) -> Result<Box<dyn DialogueSession>, EngineError> {
        Ok(Box::new(CountedDialogue {
            inner: self.inner.dialogue.open(call)?,
            _alive: self.sessions.guard(),
        }))
    }
}

impl DialogueSession for CountedDialogue {
    fn reply(&mut self, conversation: &[ChatMessage]) -> EngineStream<String> {
        self.inner.reply(conversation)
    }
}

impl TextToSpeech for Counted {
    fn name(&self) -> &'static str {
        "counted"
    }
    fn open(&self, call: &CallContext) -> Result<Box<dyn TtsSession>, EngineError> {
        Ok(Box::new(CountedTts {
            inner: self.inner.tts.open(call)?,
            _alive: self.sessions.guard(),
        }))
    }
}

impl TtsSession for CountedTts {
    fn synthesize(&mut self, utterance: UtteranceId, text: &str) -> EngineStream<Vec<u8>> {
        self.inner.synthesize(utterance, text)
    }
}

fn settings(sessions: &SessionCount, tokens: Arc<StreamTokens>) -> CallSettings {
    let counted = Arc::new(Counted {
        inner: engines::loopback_set(),
        sessions: sessions.clone(),
    });
    CallSettings {
        engines: EngineSet {
            stt: counted.clone(),
            dialogue: counted.clone(),
            tts: counted,
        },
        media: MediaSettings {
            playback_lead: Duration::from_millis(100),
            idle_timeout: Duration::from_secs(15),
            ping_interval: Duration::from_secs(5),
            max_message_bytes: 65_536,
            start_timeout: Duration::from_secs(5),
        },
        restart: RestartPolicy::default(),
        live_calls: LiveCalls::new(),
        authorizer: tokens,
        conversation: Arc::new(test_config(&[]).conversation),
        metrics: Arc::new(CallMetrics::default()),
        call_control: None,
    }
}

fn text(json: serde_json::Value) -> SocketEvent {
    SocketEvent::Text(json.to_string())
}

async fn next_text(out: &mut mpsc::Receiver<SocketCommand>) -> serde_json::Value {
    loop {
        match within(out.recv()).await.expect("socket queue open") {
            SocketCommand::Text(text) => return serde_json::from_str(&text).unwrap(),
            SocketCommand::Ping | SocketCommand::Pong(_) => {}
            SocketCommand::Close(frame) => panic!("closed: {frame:?}"),
        }
    }
}

#[actix_rt::test]
async fn the_call_actor_knows_which_marks_were_heard_and_stops_every_child_at_the_end() {
    let sessions = SessionCount::new();
    let tokens = Arc::new(StreamTokens::new(Duration::from_secs(60)));
    let settings = settings(&sessions, tokens.clone());
    let live_calls = settings.live_calls.clone();
    let (commands, mut out) = mpsc::channel(SOCKET_QUEUE_CAPACITY);
    let call = CallActor::start(settings, commands);

    let sid = call_sid(7);
    let token = tokens.mint(&CallSid::parse(&sid).unwrap()).unwrap();
    let start = serde_json::json!({"event": "start", "start": {"streamSid": "MZ7", "callSid": sid,
        "customParameters": {"token": token},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}});
    call.media.send(text(start)).await.unwrap();

    for n in 0..3u32 {
        let payload = base64::engine::general_purpose::STANDARD.encode(frame(5, n));
        let media = serde_json::json!({"event": "media", "media": {"payload": payload}, "streamSid": "MZ7"});
        call.media.send(text(media)).await.unwrap();
        assert_eq!(next_text(&mut out).await["event"], "media");
        let mark = next_text(&mut out).await;
        let name = mark["mark"]["name"].as_str().unwrap().to_owned();
        assert_eq!(name, format!("u{}c0", n + 1));
        if n < 2 {
            // Twilio echoes a mark once the audio before it has played; the third is still playing.
            let echo =
                serde_json::json!({"event": "mark", "mark": {"name": name}, "streamSid": "MZ7"});
            call.media.send(text(echo)).await.unwrap();
        }
    }
    assert_eq!(sessions.now(), 3, "one session per engine child");
    let heard = call.call.send(GetPlayback).await.unwrap();
    assert_eq!(
        heard,
        PlaybackStatus {
            marks_heard: 2,
            last_heard: MarkName::parse("u2c0"),
            turns: 3,
        }
    );

    call.media
        .send(text(
            serde_json::json!({"event": "stop", "streamSid": "MZ7"}),
        ))
        .await
        .unwrap();
    let mut count = sessions.0.subscribe();
    within(count.wait_for(|&n| n == 0)).await.unwrap();
    within(live_calls.wait_until_empty()).await;
    assert_eq!(live_calls.count(), 0);
    expect_socket_close(&mut out).await;
}

/// After `stop`, the socket is told to close normally.
async fn expect_socket_close(out: &mut mpsc::Receiver<SocketCommand>) {
    loop {
        match within(out.recv()).await {
            Some(SocketCommand::Close(frame)) => {
                assert_eq!(frame.code, 1000);
                return;
            }
            Some(_) => {}
            None => panic!("socket queue closed without a close frame"),
        }
    }
}
