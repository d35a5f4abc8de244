//! Cartesia synthesis against a fake of its WebSocket: what we send, mu-law audio passed through
//! unchanged, one context per utterance with flushed clauses, cancellation on barge-in, faults
//! that fail the clause at once (counted, keyless), reconnection, and failover to another voice.

pub mod fake;

use std::sync::Arc;
use std::time::Duration;

use fake::{audio_of, Fake, Mode, KEY, WORD_BYTES};
use futures_util::StreamExt as _;
use phone_agent::engines::cartesia::{CartesiaSettings, CartesiaTts};
use phone_agent::engines::failover::FailoverTts;
use phone_agent::redact::Secret;
use phone_agent_actors::engines::{
    CallContext, EngineError, Synthesized, TextToSpeech, TtsSession,
};
use phone_agent_actors::ids::{CallSid, StreamSid, UtteranceId};
use phone_agent_actors::runtime::metrics::CallMetrics;

use crate::support::directed::WordTts;

const VOICE: &str = "a0e99841-438c-4a64-b679-ae501e7d6091";
const CALL_SID: &str = "CA0123456789abcdef0123456789abcdef";

fn settings(fake: &Fake) -> CartesiaSettings {
    let mut settings = CartesiaSettings::new(Secret::new(KEY), VOICE);
    settings.base_url = fake.base_url.clone();
    settings.stall_timeout = Duration::from_millis(300);
    // Reconnect at once: the backoff's arithmetic is unit-tested (engines::reconnect).
    settings.reconnect_backoff = Duration::ZERO;
    settings.reconnect_max_backoff = Duration::ZERO;
    settings
}

fn call() -> CallContext {
    CallContext {
        call_sid: CallSid::parse(CALL_SID).unwrap(),
        stream_sid: StreamSid::new("MZ1"),
        custom_parameters: Default::default(),
    }
}

fn open(fake: &Fake, metrics: &Arc<CallMetrics>) -> Box<dyn TtsSession> {
    CartesiaTts::new(settings(fake), metrics.clone())
        .open(&call())
        .unwrap()
}

/// A clause's audio and word ends, or its error.
async fn synthesis(
    session: &mut Box<dyn TtsSession>,
    utterance: u64,
    text: &str,
) -> Result<(Vec<u8>, Vec<Duration>), EngineError> {
    let mut pieces = session.synthesize(UtteranceId(utterance), text);
    let (mut audio, mut ends) = (Vec::new(), Vec::new());
    while let Some(piece) = pieces.next().await {
        match piece? {
            Synthesized::Audio(chunk) => audio.extend(chunk),
            Synthesized::WordEnds(more) => ends.extend(more),
        }
    }
    Ok((audio, ends))
}

/// A clause's audio, or its error.
async fn clause(
    session: &mut Box<dyn TtsSession>,
    utterance: u64,
    text: &str,
) -> Result<Vec<u8>, EngineError> {
    synthesis(session, utterance, text)
        .await
        .map(|(audio, _)| audio)
}

fn faults(metrics: &CallMetrics) -> String {
    metrics
        .render()
        .lines()
        .filter(|l| l.starts_with("phone_agent_engine_faults_total"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[actix_rt::test]
async fn clauses_of_an_utterance_share_a_flushed_context_and_their_audio_passes_unchanged() {
    let fake = Fake::start(Mode::Normal).await;
    let metrics = Arc::new(CallMetrics::default());
    let mut session = open(&fake, &metrics);
    assert_eq!(
        clause(&mut session, 1, "Hello there,").await.unwrap(),
        audio_of("Hello there,")
    );
    assert_eq!(
        clause(&mut session, 1, "how can I help?").await.unwrap(),
        audio_of("how can I help?")
    );
    session.finish(UtteranceId(1));
    assert_eq!(
        clause(&mut session, 2, "Bye.").await.unwrap(),
        audio_of("Bye.")
    );
    let seen = fake.seen();
    assert_eq!(seen.connections, 1, "one socket per call");
    let (version, key) = seen.headers.unwrap();
    assert_eq!(version, "2025-04-16");
    assert_eq!(key, KEY);
    let context = |n: usize| seen.messages[n]["context_id"].as_str().unwrap().to_owned();
    assert_eq!(context(0), format!("{CALL_SID}-u1"));
    assert_eq!(context(1), context(0));
    assert_eq!(
        seen.messages[1]["transcript"], " how can I help?",
        "continues the text"
    );
    assert_eq!(seen.messages[0]["continue"], true);
    assert_eq!(seen.messages[0]["flush"], true);
    assert_eq!(seen.messages[0]["add_timestamps"], true);
    assert_eq!(seen.messages[0]["voice"]["id"], VOICE);
    assert_eq!(seen.messages[2]["context_id"], context(0));
    assert_eq!(seen.messages[2]["transcript"], "");
    assert_eq!(
        seen.messages[2]["continue"], false,
        "the utterance's end closes it"
    );
    assert_eq!(context(3), format!("{CALL_SID}-u2"));
    assert!(faults(&metrics).is_empty());
}

/// Where each of `words` words ends, from its clause's start, as the fake times them.
fn word_ends(words: u32) -> Vec<Duration> {
    let word = Duration::from_secs_f64(WORD_BYTES as f64 / 8_000.0);
    (1..=words).map(|n| word * n).collect()
}

/// Whether `got` are `words` word ends, to the microsecond (the seconds came as JSON floats).
fn ends_of_words(got: &[Duration], words: u32) -> bool {
    let want = word_ends(words);
    got.len() == want.len()
        && got
            .iter()
            .zip(&want)
            .all(|(got, want)| got.abs_diff(*want) < Duration::from_micros(1))
}

#[actix_rt::test]
async fn word_timestamps_come_relative_to_each_clause_of_a_context() {
    let fake = Fake::start(Mode::Normal).await;
    let metrics = Arc::new(CallMetrics::default());
    let mut session = open(&fake, &metrics);
    let (_, first) = synthesis(&mut session, 1, "Hello there,").await.unwrap();
    assert!(ends_of_words(&first, 2), "{first:?}");
    // Cartesia's timeline runs on through the context (0.09 s to 0.18 s here): each clause's
    // words are counted from its own first audio.
    let (_, second) = synthesis(&mut session, 1, "how can I help?").await.unwrap();
    assert!(ends_of_words(&second, 4), "{second:?}");
    session.finish(UtteranceId(1));
    let (_, next) = synthesis(&mut session, 2, "Bye now.").await.unwrap();
    assert!(
        ends_of_words(&next, 2),
        "a new context, a new timeline: {next:?}"
    );
}

#[actix_rt::test]
async fn a_clause_dropped_on_barge_in_cancels_its_context() {
    let fake = Fake::start(Mode::OneChunkThenSilence).await;
    let metrics = Arc::new(CallMetrics::default());
    let mut session = open(&fake, &metrics);
    let mut audio = session.synthesize(UtteranceId(3), "A long answer about implants.");
    let first = tokio::time::timeout(Duration::from_secs(5), audio.next())
        .await
        .unwrap();
    assert!(first.unwrap().is_ok());
    drop(audio);
    let cancelled = async {
        loop {
            let seen = fake.seen();
            if let Some(cancel) = seen.messages.iter().find(|m| m.get("cancel").is_some()) {
                return cancel.clone();
            }
            actix_rt::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let cancel = tokio::time::timeout(Duration::from_secs(5), cancelled)
        .await
        .unwrap();
    assert_eq!(cancel["context_id"], format!("{CALL_SID}-u3"));
    assert_eq!(cancel["cancel"], true);
}

#[actix_rt::test]
async fn each_fault_fails_the_clause_at_once_counted_and_keyless() {
    let cases = [
        (Mode::Refuse(401), "auth"),
        (Mode::Refuse(429), "rate_limited"),
        (Mode::Refuse(503), "server_error"),
        (Mode::CloseOnClause, "lost"),
        (Mode::Silent, "stall"),
        (Mode::ErrorAnswer, "error"),
        (Mode::Garbage, "malformed"),
    ];
    for (mode, kind) in cases {
        let fake = Fake::start(mode).await;
        let metrics = Arc::new(CallMetrics::default());
        let mut session = open(&fake, &metrics);
        let error = clause(&mut session, 1, "Hello.").await.unwrap_err();
        let message = error.to_string();
        assert!(message.starts_with("cartesia:"), "{mode:?}: {message}");
        assert!(!message.contains(KEY), "{mode:?}: {message}");
        let faults = faults(&metrics);
        assert!(
            faults.contains(&format!("engine=\"cartesia\",kind=\"{kind}\"")),
            "{mode:?}: {faults}"
        );
        fake.stop().await;
    }
}

#[actix_rt::test]
async fn after_a_fault_the_next_clause_reconnects() {
    let fake = Fake::start(Mode::CloseOnClause).await;
    let metrics = Arc::new(CallMetrics::default());
    let mut session = open(&fake, &metrics);
    assert!(clause(&mut session, 1, "Hello.").await.is_err());
    fake.set_mode(Mode::Normal);
    assert_eq!(
        clause(&mut session, 2, "Hi again.").await.unwrap(),
        audio_of("Hi again.")
    );
    assert_eq!(fake.seen().connections, 2);
}

#[actix_rt::test]
async fn a_failing_provider_is_replaced_by_the_fallback_voice_for_that_clause() {
    let fake = Fake::start(Mode::Refuse(503)).await;
    let metrics = Arc::new(CallMetrics::default());
    let tts = FailoverTts::new(
        Arc::new(CartesiaTts::new(settings(&fake), metrics.clone())),
        Arc::new(WordTts),
        3,
    );
    let mut session = tts.open(&call()).unwrap();
    let audio = clause(&mut session, 1, "Two words").await.unwrap();
    assert_eq!(audio.len(), 2 * 10 * 160, "the fallback's 200 ms per word");
    assert!(faults(&metrics).contains("kind=\"server_error\""));
}

#[actix_rt::test]
async fn more_than_a_hundred_calls_on_one_thread_each_get_their_socket() {
    // awc caps a client's connections at 100 unless told otherwise; calls hold their sockets.
    let fake = Fake::start(Mode::Normal).await;
    let metrics = Arc::new(CallMetrics::default());
    let tts = CartesiaTts::new(settings(&fake), metrics.clone());
    let sessions: Vec<_> = (0..120).map(|_| tts.open(&call()).unwrap()).collect();
    let all_open = async {
        while fake.seen().connections < sessions.len() {
            actix_rt::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), all_open)
        .await
        .expect("every session's socket opens");
    assert!(faults(&metrics).is_empty(), "{}", faults(&metrics));
}

#[actix_rt::test]
async fn clauses_during_the_reconnect_backoff_go_to_the_fallback_without_counting_as_faults() {
    let fake = Fake::start(Mode::CloseOnClause).await;
    let metrics = Arc::new(CallMetrics::default());
    let mut settings = settings(&fake);
    settings.reconnect_backoff = Duration::from_secs(60);
    settings.reconnect_max_backoff = Duration::from_secs(60);
    let tts = FailoverTts::new(
        Arc::new(CartesiaTts::new(settings, metrics.clone())),
        Arc::new(WordTts),
        2,
    );
    let mut session = tts.open(&call()).unwrap();
    // One fault, then clauses while the (long) backoff runs: the fallback speaks them all, and
    // the provider is not given up on for them.
    for n in 1..=4 {
        let audio = clause(&mut session, n, "Two words").await.unwrap();
        assert_eq!(audio.len(), 2 * 10 * 160, "clause {n}");
    }
    let faults = faults(&metrics);
    assert!(faults.contains("kind=\"lost\"} 1"), "{faults}");
    assert!(!faults.contains("backing_off"), "{faults}");
}

#[actix_rt::test]
async fn a_clause_after_the_context_expired_starts_a_new_context_for_the_rest() {
    // Cartesia expires a context a second after its last audio; here at once.
    let fake = Fake::start(Mode::Normal).await;
    let metrics = Arc::new(CallMetrics::default());
    let mut settings = settings(&fake);
    settings.context_idle = Duration::ZERO;
    let mut session = CartesiaTts::new(settings, metrics).open(&call()).unwrap();
    clause(&mut session, 1, "First part,").await.unwrap();
    clause(&mut session, 1, "after a long pause.")
        .await
        .unwrap();
    session.finish(UtteranceId(1));
    clause(&mut session, 2, "Next.").await.unwrap();
    let seen = fake.seen();
    let sent: Vec<(&str, &str)> = seen
        .messages
        .iter()
        .map(|m| {
            (
                m["context_id"].as_str().unwrap(),
                m["transcript"].as_str().unwrap(),
            )
        })
        .collect();
    let u = |suffix: &str| format!("{CALL_SID}-{suffix}");
    assert_eq!(sent[0], (u("u1").as_str(), "First part,"));
    assert_eq!(
        sent[1],
        (u("u1-1").as_str(), "after a long pause."),
        "a new context"
    );
    assert_eq!(
        sent[2],
        (u("u1-1").as_str(), ""),
        "the utterance's end closes its last part"
    );
    assert_eq!(sent[3], (u("u2").as_str(), "Next."));
}
