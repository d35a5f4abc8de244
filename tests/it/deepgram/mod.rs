//! Deepgram live speech-to-text against a fake Deepgram on 127.0.0.1: the upgrade's query and
//! key, the caller's mu-law arriving unchanged, Deepgram's results as transcript events, keepalives
//! and the goodbye, each fault as one error naming Deepgram but never the key, and a call that
//! survives Deepgram dropping its stream.

pub mod fake;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use fake::{
    metadata, results, speech_started, utterance_end, FakeDeepgram, Finality, Received, Upgrade,
    API_KEY, EXPECTED_QUERY,
};
use futures_util::StreamExt as _;
use phone_agent::client::sim::Received as Heard;
use phone_agent::engines::deepgram::{DeepgramSettings, DeepgramStt};
use phone_agent::engines::loopback::{LoopbackDialogue, LoopbackTape, LoopbackTts};
use phone_agent::redact::Secret;
use phone_agent_actors::audio::{AudioFrame, FRAME_DURATION};
use phone_agent_actors::engines::{
    CallContext, EngineError, EngineSet, SpeechToText, SttSession, TranscriptEvent,
};
use phone_agent_actors::ids::{CallSid, StreamSid};

use crate::support::*;

/// The adapter's defaults, pointed at the fake.
fn settings(fake: &FakeDeepgram) -> DeepgramSettings {
    DeepgramSettings {
        base_url: fake.base.clone(),
        ..DeepgramSettings::new(Secret::new(API_KEY))
    }
}

fn call() -> CallContext {
    CallContext {
        call_sid: CallSid::parse(&call_sid(7)).expect("a CallSid"),
        stream_sid: StreamSid::new(format!("MZ{:032x}", 7)),
        custom_parameters: Default::default(),
    }
}

fn open(settings: DeepgramSettings) -> SttSession {
    let stt = DeepgramStt::new(settings);
    assert_eq!(stt.name(), "deepgram");
    stt.open(&call()).expect("a session opens at once")
}

/// Caller audio numbered `n` (see [`frame`]).
fn audio(n: u32) -> AudioFrame {
    AudioFrame {
        sequence: u64::from(n),
        timestamp: FRAME_DURATION * n,
        payload: frame(0xD5, n),
    }
}

async fn next_event(session: &mut SttSession) -> Option<Result<TranscriptEvent, EngineError>> {
    within(session.events.next()).await
}

async fn event(session: &mut SttSession) -> TranscriptEvent {
    match next_event(session).await {
        Some(Ok(event)) => event,
        other => panic!("expected an event, got {other:?}"),
    }
}

/// The session's error, after which its event stream must end.
async fn fault(session: &mut SttSession) -> EngineError {
    let error = match next_event(session).await {
        Some(Err(error)) => error,
        other => panic!("expected an error, got {other:?}"),
    };
    assert!(
        next_event(session).await.is_none(),
        "the event stream ends after its error"
    );
    error
}

/// An error names Deepgram and says `what`, and neither it nor its debug form shows a key.
fn assert_fault(error: &EngineError, what: &str) {
    let shown = format!("{error} {error:?}");
    assert!(shown.contains("deepgram"), "{shown}");
    assert!(shown.contains(what), "{what:?} not in {shown}");
    for key in [API_KEY, WRONG_KEY, "Token "] {
        assert!(!shown.contains(key), "{key:?} in {shown}");
    }
}

const WRONG_KEY: &str = "dg-wrong-key-77f0b3d1e9a2c4";

fn partial(text: &str) -> TranscriptEvent {
    TranscriptEvent::Partial { text: text.into() }
}

fn settled(text: &str) -> TranscriptEvent {
    TranscriptEvent::Final { text: text.into() }
}

#[actix_rt::test]
async fn the_upgrade_asks_deepgram_for_twilio_audio_with_the_key() {
    let mut fake = FakeDeepgram::start();
    let _session = open(settings(&fake));
    let _stream = fake.next_stream().await;
    let expected_query: Vec<(String, String)> = EXPECTED_QUERY
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
    assert_eq!(
        fake.upgrades(),
        [Upgrade {
            method: "GET".into(),
            path: "/v1/listen".into(),
            query: expected_query,
            authorization: Some(format!("Token {API_KEY}")),
        }]
    );
}

#[actix_rt::test]
async fn caller_audio_reaches_deepgram_unchanged_and_in_order() {
    let mut fake = FakeDeepgram::start();
    let session = open(settings(&fake));
    // Sent before the stream opens: they wait in the session's buffer.
    for n in 0..20 {
        session.audio.send(audio(n)).await.unwrap();
    }
    let mut stream = fake.next_stream().await;
    for n in 20..40 {
        session.audio.send(audio(n)).await.unwrap();
    }
    for n in 0..40 {
        assert_eq!(
            stream.next().await,
            Received::Audio(frame(0xD5, n).to_vec()),
            "frame {n}"
        );
    }
}

#[actix_rt::test]
async fn deepgram_results_become_partials_finals_and_one_end_per_turn() {
    let mut fake = FakeDeepgram::start();
    let mut session = open(settings(&fake));
    let stream = fake.next_stream().await;
    for message in [
        speech_started(),
        results("I'd like", Finality::Interim),
        results("I'd like to book", Finality::Final),
        results("", Finality::Interim),
        results("a cleaning", Finality::Interim),
        results("a cleaning, please.", Finality::SpeechFinal),
        // Right after speech_final: the same turn, not a second, empty one.
        utterance_end(),
        serde_json::json!({"type": "Warning", "description": "a type from later"}),
        results("", Finality::Final),
        // A turn endpointing missed, ended by UtteranceEnd.
        results("Thanks.", Finality::Final),
        utterance_end(),
    ] {
        stream.say(&message);
    }
    let expected = [
        TranscriptEvent::SpeechStarted,
        partial("I'd like"),
        settled("I'd like to book"),
        partial("a cleaning"),
        settled("a cleaning, please."),
        TranscriptEvent::EndOfTurn,
        settled("Thanks."),
        TranscriptEvent::EndOfTurn,
    ];
    for expected in expected {
        assert_eq!(event(&mut session).await, expected);
    }
    // Deepgram's goodbye metadata and its close end nothing else.
    stream.say(&metadata());
    stream.say(&utterance_end());
    stream.say(&results("Bye.", Finality::SpeechFinal));
    assert_eq!(event(&mut session).await, settled("Bye."));
    assert_eq!(event(&mut session).await, TranscriptEvent::EndOfTurn);
}

#[actix_rt::test]
async fn a_keepalive_goes_to_deepgram_while_no_audio_flows() {
    let mut fake = FakeDeepgram::start();
    let session = open(DeepgramSettings {
        keepalive_interval: Duration::from_millis(50),
        ..settings(&fake)
    });
    let mut stream = fake.next_stream().await;
    assert_eq!(stream.next().await, Received::KeepAlive);
    session.audio.send(audio(0)).await.unwrap();
    // Once the audio pauses, keepalives resume; the audio itself is never held back for them.
    loop {
        match stream.next().await {
            Received::KeepAlive => continue,
            Received::Audio(bytes) => {
                assert_eq!(bytes, frame(0xD5, 0));
                break;
            }
            other => panic!("expected audio or keepalives, got {other:?}"),
        }
    }
    assert_eq!(stream.next().await, Received::KeepAlive);
}

#[actix_rt::test]
async fn dropping_the_session_closes_the_deepgram_stream() {
    let mut fake = FakeDeepgram::start();
    let session = open(settings(&fake));
    let mut stream = fake.next_stream().await;
    session.audio.send(audio(0)).await.unwrap();
    assert_eq!(
        stream.next().await,
        Received::Audio(frame(0xD5, 0).to_vec())
    );
    drop(session);
    assert_eq!(stream.next().await, Received::CloseStream);
}

#[actix_rt::test]
async fn a_refused_key_is_an_error_naming_the_status_not_the_key() {
    let mut fake = FakeDeepgram::start();
    let mut session = open(DeepgramSettings {
        api_key: Secret::new(WRONG_KEY),
        ..settings(&fake)
    });
    let error = fault(&mut session).await;
    assert!(matches!(error, EngineError::Connection { .. }), "{error:?}");
    assert_fault(&error, "HTTP 401");
    assert_fault(&error, "the API key was refused");
    let upgrades = fake.upgrades();
    assert_eq!(
        upgrades[0].authorization.as_deref(),
        Some(format!("Token {WRONG_KEY}").as_str())
    );
    // The stream the fake opens next is the one with the right key.
    drop(session);
    let mut good = open(settings(&fake));
    let stream = fake.next_stream().await;
    stream.say(&results("Hello.", Finality::Final));
    assert_eq!(event(&mut good).await, settled("Hello."));
}

#[actix_rt::test]
async fn a_key_that_cannot_be_sent_is_refused_at_open_without_showing_it() {
    let fake = FakeDeepgram::start();
    let stt = DeepgramStt::new(DeepgramSettings {
        api_key: Secret::new("dg-key\nInjected: header"),
        ..settings(&fake)
    });
    let error = stt.open(&call()).err().expect("refused at once");
    assert!(
        matches!(error, EngineError::Unavailable { .. }),
        "{error:?}"
    );
    assert_fault(&error, "the API key is not a valid header value");
    assert!(!format!("{error:?}").contains("Injected"));
    assert!(fake.upgrades().is_empty());
}

#[actix_rt::test]
async fn rate_limits_and_outages_on_the_upgrade_are_errors_naming_the_status() {
    let fake = FakeDeepgram::start();
    for (status, words) in [
        (429, "HTTP 429 Too Many Requests"),
        (503, "HTTP 503 Service Unavailable"),
    ] {
        fake.refuse_next(status);
        let mut session = open(settings(&fake));
        let error = fault(&mut session).await;
        assert_fault(&error, words);
    }
}

#[actix_rt::test]
async fn deepgram_closing_the_stream_mid_call_is_an_error() {
    let mut fake = FakeDeepgram::start();
    let mut session = open(settings(&fake));
    let stream = fake.next_stream().await;
    stream.say(&results("Hello", Finality::Interim));
    assert_eq!(event(&mut session).await, partial("Hello"));
    stream.close(1011, "NET-0001");
    let error = fault(&mut session).await;
    assert!(matches!(error, EngineError::Connection { .. }), "{error:?}");
    assert_fault(&error, "closed the stream mid-call (1011 NET-0001)");
}

#[actix_rt::test]
async fn a_deepgram_gone_silent_while_audio_flows_is_a_stall() {
    let mut fake = FakeDeepgram::start();
    let mut session = open(DeepgramSettings {
        stall_timeout: Duration::from_millis(500),
        ..settings(&fake)
    });
    let mut stream = fake.next_stream().await;
    // Answered audio is no stall; audio Deepgram never answers is.
    session.audio.send(audio(0)).await.unwrap();
    assert!(matches!(stream.next().await, Received::Audio(_)));
    stream.say(&results("Hello", Finality::Interim));
    assert_eq!(event(&mut session).await, partial("Hello"));
    session.audio.send(audio(1)).await.unwrap();
    assert!(matches!(stream.next().await, Received::Audio(_)));
    let error = fault(&mut session).await;
    assert!(matches!(error, EngineError::Connection { .. }), "{error:?}");
    assert_fault(&error, "no message for 500 ms while audio flowed");
}

#[actix_rt::test]
async fn a_message_deepgram_never_sends_is_a_protocol_error() {
    let mut fake = FakeDeepgram::start();
    for (text, words) in [
        ("Results: hello", "a message that is not JSON"),
        (
            r#"{"type":"Results","is_final":true,"speech_final":false}"#,
            "a Results message without its fields",
        ),
        (r#"{"transcript":"hello"}"#, "a message without a type"),
    ] {
        let mut session = open(settings(&fake));
        let stream = fake.next_stream().await;
        stream.say_raw(text);
        let error = fault(&mut session).await;
        assert!(matches!(error, EngineError::Protocol { .. }), "{error:?}");
        assert_fault(&error, words);
    }
}

#[actix_rt::test]
async fn an_upgrade_never_answered_times_out() {
    // Accepted by the kernel, never answered: the TCP connection opens, the upgrade hangs.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut session = open(DeepgramSettings {
        base_url: format!("ws://{}", silent.local_addr().unwrap()),
        connect_timeout: Duration::from_millis(200),
        ..DeepgramSettings::new(Secret::new(API_KEY))
    });
    let error = fault(&mut session).await;
    assert!(matches!(error, EngineError::Connection { .. }), "{error:?}");
    assert_fault(&error, "no answer to the upgrade within 200 ms");
}

#[actix_rt::test]
async fn neither_deepgram_errors_nor_debug_logs_carry_the_key() {
    let (captured, _guard) = Captured::start();
    let mut fake = FakeDeepgram::start();
    let mut errors = Vec::new();

    let mut refused = open(DeepgramSettings {
        api_key: Secret::new(WRONG_KEY),
        ..settings(&fake)
    });
    errors.push(fault(&mut refused).await);

    let mut session = open(settings(&fake));
    let stream = fake.next_stream().await;
    session.audio.send(audio(0)).await.unwrap();
    stream.say(&results("My card is 4111.", Finality::SpeechFinal));
    stream.say(&serde_json::json!({"type": "Warning"}));
    assert_eq!(event(&mut session).await, settled("My card is 4111."));
    assert_eq!(event(&mut session).await, TranscriptEvent::EndOfTurn);
    stream.say_raw("{not json");
    errors.push(fault(&mut session).await);

    let logs = captured.text();
    assert!(logs.contains("deepgram"), "{logs}");
    assert!(logs.contains("message_type=Warning"), "{logs}");
    let shown: Vec<String> = errors
        .iter()
        .map(|error| format!("{error} {error:?}"))
        .collect();
    for text in shown.iter().chain([&logs]) {
        for forbidden in [API_KEY, WRONG_KEY, "Token ", "4111"] {
            assert!(!text.contains(forbidden), "{forbidden:?} in {text}");
        }
    }
}

/// The loopback dialogue and voice behind Deepgram: the agent says back the audio on `tape` that
/// the text Deepgram "heard" names.
fn deepgram_set(settings: DeepgramSettings, tape: &LoopbackTape) -> EngineSet {
    EngineSet {
        stt: Arc::new(DeepgramStt::new(settings)),
        dialogue: Arc::new(LoopbackDialogue),
        tts: Arc::new(LoopbackTts::new(tape.clone())),
    }
}

#[actix_rt::test]
async fn a_call_heard_by_deepgram_is_answered_and_survives_deepgram_dropping_it() {
    let mut fake = FakeDeepgram::start();
    let tape = LoopbackTape::default();
    let call = CallSid::parse(&call_sid(1)).unwrap();
    let set = deepgram_set(settings(&fake), &tape);
    let server = TestServer::start_with(&test_config(&[]), set).await;
    let (_, mut media) = server.call(&call_sid(1)).await;

    // Twilio's media payload reaches Deepgram byte for byte.
    let mut stream = fake.next_stream().await;
    media.send_media(&frame(1, 0)).await.unwrap();
    assert_eq!(stream.next().await, Received::Audio(frame(1, 0).to_vec()));

    // Deepgram's turn is the one answered.
    let said = frame(2, 0);
    stream.say(&speech_started());
    stream.say(&results(
        &tape.record(&call, said.to_vec()),
        Finality::SpeechFinal,
    ));
    stream.say(&utterance_end());
    assert_eq!(next_non_mark(&mut media).await, Heard::Media(said.to_vec()));

    // Deepgram drops the stream: the Transcriber opens another, and the call goes on with it.
    stream.close(1011, "NET-0000");
    let mut reopened = fake.next_stream().await;
    media.send_media(&frame(1, 1)).await.unwrap();
    assert_eq!(reopened.next().await, Received::Audio(frame(1, 1).to_vec()));
    let said = frame(3, 0);
    reopened.say(&speech_started());
    reopened.say(&results(
        &tape.record(&call, said.to_vec()),
        Finality::SpeechFinal,
    ));
    assert_eq!(next_non_mark(&mut media).await, Heard::Media(said.to_vec()));
    assert_eq!(fake.upgrades().len(), 2);
}
