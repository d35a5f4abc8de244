//! One call's actor tree, driven the way the socket pumps drive it: marks heard, children stopped.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use phone_agent::engines;
use phone_agent::twilio::stream_token::StreamTokens;
use phone_agent_actors::call::{CallActor, CallHandle, CallSettings};
use phone_agent_actors::call::{GetPlayback, PlaybackStatus};
use phone_agent_actors::engines::{
    CallContext, CallControl, ChatMessage, Dialogue, DialogueAction, DialogueSession, EngineError,
    EngineSet, EngineStream, SpeechToText, SttSession, Synthesized, TextToSpeech, TtsSession,
};
use phone_agent_actors::ids::{CallSid, MarkName, UtteranceId};
use phone_agent_actors::media::{MediaSettings, SocketCommand, SocketEvent, SOCKET_QUEUE_CAPACITY};
use phone_agent_actors::runtime::metrics::CallMetrics;
use phone_agent_actors::runtime::registry::LiveCalls;
use phone_agent_actors::runtime::supervision::RestartPolicy;
use tokio::sync::{mpsc, watch};

use crate::support::directed::{FixedDialogue, WordTts};
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
    fn synthesize(&mut self, utterance: UtteranceId, text: &str) -> EngineStream<Synthesized> {
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
        journal: None,
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

async fn send_start(call: &CallHandle, tokens: &StreamTokens, sid: &str) {
    let token = tokens
        .mint(&CallSid::parse(sid).unwrap(), SystemTime::now())
        .unwrap();
    let start = serde_json::json!({"event": "start", "start": {"streamSid": "MZ7", "callSid": sid,
        "customParameters": {"token": token},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}});
    call.media.send(text(start)).await.unwrap();
}

async fn send_frame(call: &CallHandle, frame: [u8; 160]) {
    let payload = base64::engine::general_purpose::STANDARD.encode(frame);
    let media =
        serde_json::json!({"event": "media", "media": {"payload": payload}, "streamSid": "MZ7"});
    call.media.send(text(media)).await.unwrap();
}

async fn echo_mark(call: &CallHandle, name: &str) {
    let echo = serde_json::json!({"event": "mark", "mark": {"name": name}, "streamSid": "MZ7"});
    call.media.send(text(echo)).await.unwrap();
}

#[actix_rt::test]
async fn the_call_actor_knows_which_marks_were_heard_and_stops_every_child_at_the_end() {
    let sessions = SessionCount::new();
    let tokens = Arc::new(StreamTokens::new(Duration::from_secs(60)));
    let settings = settings(&sessions, tokens.clone());
    let live_calls = settings.live_calls.clone();
    let (commands, mut out) = mpsc::channel(SOCKET_QUEUE_CAPACITY);
    let call = CallActor::start(settings, commands);

    send_start(&call, &tokens, &call_sid(7)).await;
    for n in 0..3u32 {
        send_frame(&call, frame(5, n)).await;
        assert_eq!(next_text(&mut out).await["event"], "media");
        let mark = next_text(&mut out).await;
        let name = mark["mark"]["name"].as_str().unwrap().to_owned();
        assert_eq!(name, format!("u{}c0", n + 1));
        if n < 2 {
            // Twilio echoes a mark once the audio before it has played; the third is still playing.
            echo_mark(&call, &name).await;
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

/// Records the calls it was asked to transfer.
#[derive(Default)]
struct RecordingControl(Mutex<Vec<String>>);

impl CallControl for RecordingControl {
    fn transfer(&self, call: &CallSid) -> Pin<Box<dyn Future<Output = Result<(), EngineError>>>> {
        self.0.lock().unwrap().push(call.to_string());
        Box::pin(async { Ok(()) })
    }
}

#[actix_rt::test]
async fn a_transfer_goes_through_call_control_once_the_reply_was_heard() {
    let tokens = Arc::new(StreamTokens::new(Duration::from_secs(60)));
    let mut settings = settings(&SessionCount::new(), tokens.clone());
    let reply = ("Connecting you now.", Some(DialogueAction::TransferCall));
    settings.engines.dialogue = Arc::new(FixedDialogue::new(&[reply], Duration::ZERO));
    settings.engines.tts = Arc::new(WordTts);
    let control = Arc::new(RecordingControl::default());
    settings.call_control = Some(control.clone());
    let (commands, mut out) = mpsc::channel(SOCKET_QUEUE_CAPACITY);
    let call = CallActor::start(settings, commands);
    send_start(&call, &tokens, &call_sid(8)).await;
    send_frame(&call, frame(5, 0)).await;

    // Three words, a mark after each; the transfer waits for the last echo.
    let mut marks = Vec::new();
    while marks.len() < 3 {
        let message = next_text(&mut out).await;
        if message["event"] == "mark" {
            marks.push(message["mark"]["name"].as_str().unwrap().to_owned());
        }
    }
    for name in &marks[..2] {
        echo_mark(&call, name).await;
    }
    actix_rt::time::sleep(Duration::from_millis(100)).await;
    assert!(control.0.lock().unwrap().is_empty());
    echo_mark(&call, &marks[2]).await;
    within(async {
        while control.0.lock().unwrap().is_empty() {
            actix_rt::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(*control.0.lock().unwrap(), vec![call_sid(8)]);
    // No refusal follows: the carrier takes the call away.
    let more = actix_rt::time::timeout(Duration::from_millis(300), out.recv()).await;
    assert!(
        !matches!(more, Ok(Some(SocketCommand::Text(_)))),
        "{more:?}"
    );
}
