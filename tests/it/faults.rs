//! Network faults injected between the real server and its peers: a [`FaultProxy`] in front of
//! each fake provider of a whole cloud call (Deepgram, the LLM, Cartesia) or between Twilio's side
//! and the server, cutting, stalling, dripping, truncating and corrupting the traffic. A fault
//! degrades the call, never drops it silently, and the call recovers by itself once it ends.

use std::sync::Arc;
use std::time::Duration;

use phone_agent::client::sim::{MediaConnection, Received as Heard, TwilioSim};
use phone_agent::engines::failover::FailoverTts;
use phone_agent::engines::script::agent::AgentScript;
use phone_agent_actors::audio::FRAME_BYTES;
use phone_agent_actors::runtime::metrics::CallMetrics;

use crate::cartesia::fake::{self as cartesia, audio_of};
use crate::cloud_call::{hear, padded, CloudSettings, AGENT};
use crate::deepgram::fake::{self as deepgram, results, speech_started, Finality};
use crate::openai::fake::{self as openai, Answer};
use crate::support::directed::{utterance_of, WordTts};
use crate::support::fault_proxy::{Fault, FaultProxy};
use crate::support::small_disk::SmallDisk;
use crate::support::*;

const QUESTION: &str = "is there parking near the office";
const REPLY: &str = "There is free parking, right behind the building.";

/// A cloud call whose three providers are each reached through a fault proxy; the greeting heard.
struct Rig {
    server: TestServer,
    media: MediaConnection,
    stt: deepgram::FakeDeepgram,
    llm: openai::Fake,
    _tts: cartesia::Fake,
    metrics: Arc<CallMetrics>,
    stt_link: FaultProxy,
    llm_link: FaultProxy,
    tts_link: FaultProxy,
    /// Frames of caller audio sent so far.
    frames: u32,
}

/// Starts the rig: the LLM gives `REPLY` to every request; `tune` adjusts the engines' settings
/// (short stall timeouts, no backoff).
async fn rig(tune: impl FnOnce(&mut CloudSettings)) -> Rig {
    rig_answering(vec![Answer::Text(vec![REPLY]); 4], tune).await
}

/// Starts the rig with the LLM giving `answers`, in order.
async fn rig_answering(answers: Vec<Answer>, tune: impl FnOnce(&mut CloudSettings)) -> Rig {
    let stt = deepgram::FakeDeepgram::start();
    let llm = openai::Fake::start(answers).await;
    let tts = cartesia::Fake::start(cartesia::Mode::Normal).await;
    let (stt_link, stt_url) = FaultProxy::in_front_of(&stt.base).await;
    let (llm_link, llm_url) = FaultProxy::in_front_of(&llm.base_url).await;
    let (tts_link, tts_url) = FaultProxy::in_front_of(&tts.base_url).await;
    let mut settings = CloudSettings::at(&stt_url, &llm_url, &tts_url);
    tune(&mut settings);
    let metrics = Arc::new(CallMetrics::default());
    let mut engines = settings.engines(&metrics);
    engines.tts = Arc::new(FailoverTts::new(engines.tts, Arc::new(WordTts), 3));
    let server = TestServer::start_with(&test_config(&[]), engines).await;
    let (_, mut media) = server.call(&call_sid(1)).await;
    let greeting = AgentScript::from_toml(AGENT).unwrap().persona.greeting;
    hear(&mut media, audio_of(&greeting).len()).await;
    Rig {
        server,
        media,
        stt,
        llm,
        _tts: tts,
        metrics,
        stt_link,
        llm_link,
        tts_link,
        frames: 0,
    }
}

impl Rig {
    /// Sends the caller's next frame of audio.
    async fn send_frame(&mut self) {
        self.media
            .send_media(&frame(9, self.frames))
            .await
            .expect("audio sent");
        self.frames += 1;
    }

    /// The next Deepgram stream, once a frame of audio reached it.
    async fn stream_with_audio(&mut self) -> deepgram::Stream {
        let mut stream = self.stt.next_stream().await;
        self.send_frame().await;
        loop {
            match stream.next().await {
                deepgram::Received::Audio(_) => return stream,
                deepgram::Received::KeepAlive => {}
                other => panic!("audio expected, got {other:?}"),
            }
        }
    }

    /// The caller asks `QUESTION` through `stream` and hears `REPLY` in Cartesia's voice.
    async fn asks_and_hears_the_reply(&mut self, stream: &deepgram::Stream) {
        stream.say(&speech_started());
        stream.say(&results(QUESTION, Finality::SpeechFinal));
        let expected = padded(audio_of(REPLY));
        assert_eq!(hear(&mut self.media, expected.len()).await, expected);
    }

    /// The fault on Deepgram's link ends: audio reaches a new stream, and the caller's next
    /// question is answered.
    async fn deepgram_heals_and_the_next_turn_is_answered(&mut self) {
        self.stt_link.set(Fault::Pass);
        let reopened = self.stream_with_audio().await;
        self.asks_and_hears_the_reply(&reopened).await;
    }

    /// Sends audio (a frame every 20 ms, as Twilio does) until `done` holds.
    async fn talk_until(&mut self, done: impl Fn(&Self) -> bool) {
        within(async {
            while !done(self) {
                self.send_frame().await;
                actix_rt::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    }

    /// The faults the engines counted, one metrics line each.
    fn faults(&self) -> Vec<String> {
        self.metrics
            .render()
            .lines()
            .filter(|line| line.starts_with("phone_agent_engine_faults_total"))
            .map(str::to_owned)
            .collect()
    }
}

/// Reads the caller's side until the next utterance's first mark (echoed): the agent said
/// something. Its audio.
async fn hear_something(media: &mut MediaConnection) -> Vec<u8> {
    let mut heard = Vec::new();
    loop {
        match within(media.recv()).await {
            Some(Heard::Media(payload)) => heard.extend(payload),
            Some(Heard::Mark(name)) if !heard.is_empty() => {
                media.send_mark(&name).await.expect("mark echoed");
                return heard;
            }
            Some(Heard::Mark(name)) => media.send_mark(&name).await.expect("mark echoed"),
            other => panic!("audio expected, got {other:?}"),
        }
    }
}

/// Reads the caller's side, echoing marks, until what was heard ends with `expected` (whatever
/// played before it, such as the rest of an earlier answer).
async fn hear_ending_with(media: &mut MediaConnection, expected: &[u8]) {
    let mut heard = Vec::new();
    while !heard.ends_with(expected) {
        match within(media.recv()).await {
            Some(Heard::Media(payload)) => heard.extend(payload),
            Some(Heard::Mark(name)) => media.send_mark(&name).await.expect("mark echoed"),
            Some(Heard::Clear) => {}
            other => panic!("audio expected, got {other:?}"),
        }
    }
}

#[actix_rt::test]
async fn deepgram_reset_by_the_network_mid_utterance_is_reopened_and_the_next_turn_answered() {
    let mut rig = rig(|_| {}).await;
    let mut stream = rig.stream_with_audio().await;
    stream.say(&speech_started());
    stream.say(&results("is there", Finality::Interim));

    rig.stt_link.set(Fault::Cut);
    loop {
        if stream.next().await == deepgram::Received::Closed {
            break;
        }
    }
    rig.deepgram_heals_and_the_next_turn_is_answered().await;
    assert_eq!(rig.stt_link.connections(), 2);
}

#[actix_rt::test]
async fn deepgram_behind_a_black_hole_is_found_stalled_and_reopened_once_it_clears() {
    let mut rig = rig(|settings| {
        settings.deepgram.stall_timeout = Duration::from_millis(300);
    })
    .await;
    rig.stream_with_audio().await;

    // Nothing passes; audio keeps flowing, unanswered: the stall timeout fails the stream and
    // the Transcriber opens another (held by the black hole too).
    rig.stt_link.set(Fault::Stall);
    rig.talk_until(|rig| rig.stt_link.connections() == 2).await;
    rig.deepgram_heals_and_the_next_turn_is_answered().await;
}

#[actix_rt::test]
async fn corrupted_deepgram_messages_fail_the_stream_and_a_clean_one_takes_over() {
    let mut rig = rig(|_| {}).await;
    let mut stream = rig.stream_with_audio().await;

    rig.stt_link.set(Fault::Corrupt);
    stream.say(&results("is there", Finality::Interim));
    loop {
        match stream.next().await {
            deepgram::Received::Closed | deepgram::Received::Rejected(_) => break,
            deepgram::Received::Audio(_) | deepgram::Received::KeepAlive => {}
            other => panic!("the client leaves the corrupt stream, got {other:?}"),
        }
    }
    rig.deepgram_heals_and_the_next_turn_is_answered().await;
}

#[actix_rt::test]
async fn an_llm_answer_dripping_a_byte_at_a_time_is_heard_whole() {
    let mut rig = rig(|_| {}).await;
    let stream = rig.stream_with_audio().await;
    rig.llm_link.set(Fault::Drip(Duration::from_millis(1)));
    rig.asks_and_hears_the_reply(&stream).await;
    assert_eq!(rig.faults(), Vec::<String>::new());
}

#[actix_rt::test]
async fn an_llm_stalled_by_the_network_leaves_the_script_to_answer_then_is_asked_again() {
    let mut rig = rig(|settings| {
        settings.llm.stall_timeout = Duration::from_millis(300);
        settings.llm.retry_backoff = Duration::ZERO;
    })
    .await;
    let stream = rig.stream_with_audio().await;

    rig.llm_link.set(Fault::Stall);
    stream.say(&speech_started());
    stream.say(&results("what colour is the door", Finality::SpeechFinal));
    let fallback = AgentScript::from_toml(AGENT).unwrap().persona.fallback;
    let expected = padded(audio_of(&fallback));
    assert_eq!(hear(&mut rig.media, expected.len()).await, expected);
    assert!(
        rig.faults()
            .iter()
            .any(|line| line.contains("kind=\"stall\"")),
        "{:?}",
        rig.faults()
    );

    rig.llm_link.set(Fault::Pass);
    rig.asks_and_hears_the_reply(&stream).await;
    assert!(!rig.llm.requests().is_empty());
}

#[actix_rt::test]
async fn cartesia_cut_short_mid_answer_is_stood_in_for_and_used_again_once_it_heals() {
    let mut rig = rig(|settings| {
        settings.cartesia.reconnect_backoff = Duration::ZERO;
        settings.cartesia.reconnect_max_backoff = Duration::ZERO;
    })
    .await;
    let stream = rig.stream_with_audio().await;

    // Less than Cartesia's first audio message passes: the answer starts in the stand-in voice.
    rig.tts_link.set(Fault::Truncate(200));
    stream.say(&speech_started());
    stream.say(&results(QUESTION, Finality::SpeechFinal));
    let heard = hear_something(&mut rig.media).await;
    assert!(
        heard
            .chunks(FRAME_BYTES)
            .any(|frame| utterance_of(frame) == 1),
        "the answer is heard in the stand-in voice"
    );
    assert!(!rig.faults().is_empty(), "the cut is counted");

    // Healed: the next answer is Cartesia's again, on a new socket.
    rig.tts_link.set(Fault::Pass);
    stream.say(&speech_started());
    stream.say(&results(QUESTION, Finality::SpeechFinal));
    hear_ending_with(&mut rig.media, &padded(audio_of(REPLY))).await;
    assert_eq!(rig.tts_link.connections(), 2, "Cartesia reconnected");
}

#[actix_rt::test]
async fn an_llm_5xx_storm_is_answered_by_the_script_without_hammering_and_the_next_call_has_it_back(
) {
    let storm = vec![Answer::Error(503); 3];
    let mut rig = rig_answering(
        [storm, vec![Answer::Text(vec![REPLY])]].concat(),
        |settings| {
            settings.llm.retry_backoff = Duration::ZERO;
        },
    )
    .await;
    let stream = rig.stream_with_audio().await;
    let fallback = AgentScript::from_toml(AGENT).unwrap().persona.fallback;
    let expected = padded(audio_of(&fallback));
    for turn in 0..5 {
        stream.say(&speech_started());
        stream.say(&results(
            &format!("what colour is door {turn}"),
            Finality::SpeechFinal,
        ));
        assert_eq!(hear(&mut rig.media, expected.len()).await, expected);
    }
    assert_eq!(
        rig.llm.requests().len(),
        3,
        "after three failures in a row the call stays with the script"
    );

    // The storm is over: the next call asks the LLM again.
    let (_, mut media) = rig.server.call(&call_sid(2)).await;
    let greeting = AgentScript::from_toml(AGENT).unwrap().persona.greeting;
    hear(&mut media, audio_of(&greeting).len()).await;
    let stream = rig.stt.next_stream().await;
    stream.say(&speech_started());
    stream.say(&results(QUESTION, Finality::SpeechFinal));
    let expected = padded(audio_of(REPLY));
    assert_eq!(hear(&mut media, expected.len()).await, expected);
    assert_eq!(rig.llm.requests().len(), 4);
}

/// A server with loopback engines reached through a fault proxy, as Twilio reaches it.
async fn behind_a_proxy(overrides: &[(&str, &str)]) -> (TestServer, FaultProxy, TwilioSim) {
    let server = TestServer::start(overrides).await;
    let (link, base) = FaultProxy::in_front_of(&server.base).await;
    let sim = TwilioSim::new(base).signing(TWILIO_AUTH_TOKEN, PUBLIC_HOST);
    (server, link, sim)
}

#[actix_rt::test]
async fn a_twilio_socket_reset_ends_its_call_and_the_next_call_goes_through() {
    let (server, link, sim) = behind_a_proxy(&[]).await;
    let answer = sim.place_call(&call_sid(1)).await.unwrap();
    let mut media = sim.connect(&answer).await.unwrap();
    exchange(&mut media, 1, 0, 3).await;

    link.set(Fault::Cut);
    within(server.until_no_live_calls()).await;
    link.set(Fault::Pass);

    let answer = sim.place_call(&call_sid(2)).await.unwrap();
    let mut media = sim.connect(&answer).await.unwrap();
    exchange(&mut media, 2, 0, 3).await;
    let metrics = server.get_text("/metrics").await;
    assert!(
        metrics.contains("phone_agent_calls_ended_total{reason=\"socket_closed\"} 1"),
        "{metrics}"
    );
}

#[actix_rt::test]
async fn a_twilio_socket_gone_half_open_is_closed_by_the_idle_timeout() {
    let (server, link, sim) = behind_a_proxy(&[
        ("MEDIA_IDLE_TIMEOUT", "500ms"),
        ("MEDIA_WRITE_TIMEOUT", "500ms"),
        ("MEDIA_PING_INTERVAL", "200ms"),
    ])
    .await;
    let answer = sim.place_call(&call_sid(1)).await.unwrap();
    let mut media = sim.connect(&answer).await.unwrap();
    exchange(&mut media, 1, 0, 3).await;

    // Nothing passes either way and no FIN comes: only the server's own clock can tell.
    link.set(Fault::Stall);
    within(server.until_no_live_calls()).await;
    let metrics = server.get_text("/metrics").await;
    assert!(
        metrics.contains("phone_agent_calls_ended_total{reason=\"idle_timeout\"} 1"),
        "{metrics}"
    );
}

/// One connection of a storm: an upgrade to the media stream with no token; the status line's
/// code, or `None` if the connection failed or no answer came.
async fn storm_attempt(server: std::net::SocketAddr) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(server).await.ok()?;
    let request = format!(
        "GET /twilio/media HTTP/1.1\r\nHost: {server}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    );
    socket.write_all(request.as_bytes()).await.ok()?;
    let mut head = [0; 12];
    socket.read_exact(&mut head).await.ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

#[actix_rt::test]
async fn a_storm_of_a_thousand_connections_leaves_live_calls_untouched() {
    let server = TestServer::start(&[]).await;
    let mut calls = Vec::new();
    for n in 1..=3 {
        let (_, mut media) = server.call(&call_sid(n)).await;
        exchange(&mut media, n as u8, 0, 2).await;
        calls.push(media);
    }

    let address = server.server.local_addr;
    let storm = futures_util::future::join_all((0..1000).map(|_| storm_attempt(address)));
    let talk = async {
        for round in 0..10 {
            for (media, tag) in calls.iter_mut().zip(1..) {
                exchange(media, tag, 2 + round, 1).await;
            }
        }
    };
    let (answers, ()) = within(futures_util::future::join(storm, talk)).await;
    let refused = answers
        .iter()
        .filter(|answer| **answer == Some(403))
        .count();
    assert_eq!(refused, 1000, "every attempt answered 403: {answers:?}");

    let (_, mut media) = server.call(&call_sid(4)).await;
    exchange(&mut media, 4, 0, 3).await;
}

#[actix_rt::test]
async fn turns_taken_while_the_disk_is_full_are_recorded_once_space_is_freed() {
    use phone_agent_actors::runtime::journal::Speaker;

    let data = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount(data.path(), "16m") else {
        return;
    };
    // The journal's writer runs on this thread: its log lines are captured.
    let (logs, _guard) = Captured::start();
    let config = test_config(&[]);
    let server = TestServer::start_in(&config, phone_agent::engines::loopback_set(), data).await;
    let sid = call_sid(1);
    let (_, mut media) = server.call(&sid).await;
    exchange(&mut media, 1, 0, 1).await;

    disk.fill();
    // The call goes on meanwhile: every loopback frame is a caller turn and an agent turn.
    exchange(&mut media, 1, 1, 3).await;
    let callers = |transcript: &[phone_agent::store::transcripts::StoredTurn]| {
        transcript
            .iter()
            .filter(|t| t.turn.speaker == Speaker::Caller)
            .count()
    };
    within(async {
        while !logs.text().contains("database or disk is full") {
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        logs.text()
            .contains("call journal: the database cannot take it yet, trying again"),
        "{}",
        logs.text()
    );
    disk.free();

    // The journal waited for space instead of dropping the turns: the four caller turns are
    // stored.
    within(async {
        while callers(&server.server.store.transcript(&sid).await.unwrap()) < 4 {
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    media.send_stop().await.unwrap();
    expect_close(&mut media).await;
    let data = server.stop().await;
    drop(disk);
    drop(data);
}
