//! Conversation behaviour against a real server, with directed engines: the test says what the
//! recogniser hears, and every utterance's audio names its generation. The client echoes each mark
//! as it arrives; the server paces audio at real time, so that is when the caller hears it.
//!
//! The timing of turn-taking (silences, check-ins, the maximum duration, what was heard when) is
//! pinned on a fake clock by the unit tests of `phone_agent_actors::call::conversation`; these
//! tests check that the server carries it out, and wait for events, never for time to pass.

use std::time::{Duration, Instant};

use phone_agent::client::sim::{MediaConnection, Received};
use phone_agent::config::Config;
use phone_agent_actors::engines::{ChatMessage, DialogueAction, Role, TranscriptEvent};

use crate::support::directed::*;
use crate::support::*;

/// What the caller's phone saw, with when.
#[derive(Debug, Clone, PartialEq)]
enum Heard {
    /// A frame of the agent's audio, from this utterance.
    Audio(u64),
    /// A mark (echoed at once).
    Mark(String),
    Clear,
    Close(Option<u16>),
}

struct Phone {
    media: MediaConnection,
    log: Vec<(Instant, Heard)>,
}

impl Phone {
    /// Reads until `done` holds for the log, echoing marks; fails after 10 s.
    async fn until(&mut self, done: impl Fn(&[(Instant, Heard)]) -> bool) {
        let read = async {
            while !done(&self.log) {
                self.read_one().await;
            }
        };
        actix_rt::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("heard in time");
    }

    async fn read_one(&mut self) {
        let heard = match self.media.recv().await {
            Some(Received::Media(frame)) => Heard::Audio(utterance_of(&frame)),
            Some(Received::Mark(name)) => {
                self.media.send_mark(&name).await.expect("mark echoed");
                Heard::Mark(name)
            }
            Some(Received::Clear) => Heard::Clear,
            Some(Received::Close { code, .. }) => Heard::Close(code),
            Some(Received::Other(text)) => panic!("unexpected message {text}"),
            None => {
                // The socket is gone: nothing more will come.
                std::future::pending::<()>().await;
                unreachable!()
            }
        };
        self.log.push((Instant::now(), heard));
    }

    fn since(&self, at: Instant) -> Vec<Heard> {
        self.log
            .iter()
            .filter(|(when, _)| *when >= at)
            .map(|(_, heard)| heard.clone())
            .collect()
    }
}

fn marks_of(log: &[(Instant, Heard)], utterance: u64) -> usize {
    let prefix = format!("u{utterance}c");
    log.iter()
        .filter(|(_, h)| matches!(h, Heard::Mark(name) if name.starts_with(&prefix)))
        .count()
}

fn frames_of(log: &[(Instant, Heard)], utterance: u64) -> Vec<Instant> {
    log.iter()
        .filter(|(_, h)| *h == Heard::Audio(utterance))
        .map(|(at, _)| *at)
        .collect()
}

fn conversation_config(overrides: &[(&str, &str)]) -> Config {
    let mut all = vec![
        ("BARGE_IN", "on"),
        ("SILENCE_CHECKIN_S", "0"),
        ("MAX_CALL_DURATION", "off"),
    ];
    all.extend_from_slice(overrides);
    test_config(&all)
}

struct Conversation {
    server: TestServer,
    stt: DirectedStt,
    dialogue: FixedDialogue,
    phone: Phone,
}

async fn converse(dialogue: FixedDialogue, overrides: &[(&str, &str)]) -> Conversation {
    let stt = DirectedStt::default();
    let server = TestServer::start_with(
        &conversation_config(overrides),
        directed_set(&stt, &dialogue),
    )
    .await;
    let (_, media) = server.call(&call_sid(1)).await;
    within(stt.opened()).await;
    Conversation {
        server,
        stt,
        dialogue,
        phone: Phone {
            media,
            log: Vec::new(),
        },
    }
}

const TEN_WORDS: &str = "one two three four five six seven eight nine ten";

fn lines(conversation: &[ChatMessage]) -> Vec<(Role, &str)> {
    conversation
        .iter()
        .map(|line| (line.role, line.text.as_str()))
        .collect()
}

#[actix_rt::test]
async fn hard_barge_in_clears_first_cancels_the_reply_and_keeps_only_what_was_heard() {
    let dialogue = FixedDialogue::new(&[(TEN_WORDS, None), ("Sure.", None)], Duration::ZERO);
    let mut call = converse(dialogue, &[]).await;
    call.stt.say("tell me a story");
    call.phone.until(|log| marks_of(log, 1) >= 3).await;

    // The caller talks over the agent: speech starts (soft), then two words (hard).
    let trigger = Instant::now();
    call.stt.hear(TranscriptEvent::SpeechStarted);
    call.stt.hear(TranscriptEvent::Partial {
        text: "wait stop".into(),
    });
    call.phone
        .until(|log| log.iter().any(|(_, h)| *h == Heard::Clear))
        .await;

    // The caller's turn ends; the next reply is answered knowing what the caller heard.
    call.stt.hear(TranscriptEvent::Final {
        text: "wait stop".into(),
    });
    call.stt.hear(TranscriptEvent::EndOfTurn);
    call.phone.until(|log| marks_of(log, 2) >= 1).await;
    let after = call.phone.since(trigger);
    let clear = after.iter().position(|h| *h == Heard::Clear).unwrap();
    // Before the clear, only audio already on its way (the 100 ms lead, and frames in flight).
    let in_flight = after[..clear]
        .iter()
        .filter(|h| matches!(h, Heard::Audio(_)))
        .count();
    assert!(in_flight <= 8, "{in_flight} frames after the trigger");
    assert!(
        !after[clear + 1..].contains(&Heard::Audio(1)),
        "audio of the cancelled reply after the clear: {after:?}"
    );
    let seen = call.dialogue.seen();
    assert_eq!(seen.len(), 2);
    let history = lines(&seen[1]);
    assert_eq!(history.len(), 3, "{history:?}");
    assert_eq!(history[0], (Role::User, "tell me a story"));
    assert_eq!(history[2], (Role::User, "wait stop"));
    let (role, heard) = history[1];
    assert_eq!(role, Role::Assistant);
    let words = heard.split_whitespace().count();
    assert!(TEN_WORDS.starts_with(heard), "{heard:?}");
    assert!((3..=5).contains(&words), "heard {heard:?}");
}

#[actix_rt::test]
async fn a_backchannel_over_the_agent_plays_on_without_a_clear_and_is_not_answered() {
    let dialogue = FixedDialogue::new(&[(TEN_WORDS, None)], Duration::ZERO);
    let mut call = converse(dialogue, &[]).await;
    call.stt.say("tell me a story");
    call.phone.until(|log| marks_of(log, 1) >= 2).await;

    // Speech start pauses playback; the backchannel's end of turn resumes it.
    call.stt.say("uh-huh");
    call.phone.until(|log| marks_of(log, 1) == 10).await;
    assert_eq!(frames_of(&call.phone.log, 1).len(), 10 * FRAMES_PER_WORD);
    assert!(!call.phone.log.iter().any(|(_, h)| *h == Heard::Clear));
    // The end of turn came long before the end of the reply: an answer would have been asked for.
    assert_eq!(
        call.dialogue.seen().len(),
        1,
        "a backchannel is not answered"
    );
}

#[actix_rt::test]
async fn an_unconfirmed_soft_stage_resumes_after_the_resume_time() {
    let dialogue = FixedDialogue::new(&[(TEN_WORDS, None)], Duration::ZERO);
    let mut call = converse(dialogue, &[("BARGE_IN_RESUME_MS", "400")]).await;
    call.stt.say("tell me a story");
    call.phone.until(|log| marks_of(log, 1) >= 2).await;
    call.stt.hear(TranscriptEvent::SpeechStarted);
    call.phone.until(|log| marks_of(log, 1) == 10).await;

    let frames = frames_of(&call.phone.log, 1);
    assert_eq!(frames.len(), 10 * FRAMES_PER_WORD);
    let longest_gap = frames
        .windows(2)
        .map(|pair| pair[1] - pair[0])
        .max()
        .unwrap();
    assert!(
        longest_gap >= Duration::from_millis(250),
        "no pause: {longest_gap:?}"
    );
    assert!(!call.phone.log.iter().any(|(_, h)| *h == Heard::Clear));
}

#[actix_rt::test]
async fn voiced_audio_confirms_a_barge_in_without_words() {
    let dialogue = FixedDialogue::new(&[(TEN_WORDS, None)], Duration::ZERO);
    let mut call = converse(dialogue, &[("BARGE_IN_MIN_SPEECH_MS", "200")]).await;
    call.stt.say("tell me a story");
    call.phone.until(|log| marks_of(log, 1) >= 2).await;
    call.stt.hear(TranscriptEvent::SpeechStarted);
    // Loud caller audio: 240 ms of it, past the 200 ms threshold.
    for _ in 0..12 {
        call.phone.media.send_media(&[0x00; 160]).await.unwrap();
    }
    call.phone
        .until(|log| log.iter().any(|(_, h)| *h == Heard::Clear))
        .await;
}

#[actix_rt::test]
async fn late_finals_are_merged_into_their_turn_not_answered_twice() {
    let dialogue = FixedDialogue::new(
        &[("first", None), ("Booked.", None), ("Bye.", None)],
        Duration::from_millis(300),
    );
    let mut call = converse(dialogue, &[("TURN_SILENCE_MS", "200")]).await;
    call.stt.say("I want to book");
    // The recogniser settles the last words after the end of turn, while the reply is composed.
    within(call.dialogue.asked(1)).await;
    call.stt.hear(TranscriptEvent::Final {
        text: "an appointment".into(),
    });
    // The reply to the whole turn plays whole.
    call.phone.until(|log| marks_of(log, 2) == 1).await;
    assert!(
        frames_of(&call.phone.log, 1).is_empty(),
        "the first reply never plays"
    );
    let seen = call.dialogue.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(lines(&seen[0]), vec![(Role::User, "I want to book")]);
    assert_eq!(
        lines(&seen[1]),
        vec![(Role::User, "I want to book an appointment")]
    );

    // Once the reply has played (the server has its echoed mark, so the agent's turn is recorded),
    // a late final joins the turn's line in the history, unanswered (were it answered, the reply
    // below would be to it, not to "thanks").
    let played = agent_turns(&call, 1).await;
    assert_eq!(played[0].text, "Booked.");
    call.stt.hear(TranscriptEvent::Final {
        text: "please".into(),
    });
    call.stt.hear(TranscriptEvent::EndOfTurn);
    call.stt.say("thanks");
    call.phone.until(|log| !frames_of(log, 3).is_empty()).await;
    assert_eq!(
        lines(&call.dialogue.seen()[2]),
        vec![
            (Role::User, "I want to book an appointment please"),
            (Role::Assistant, "Booked."),
            (Role::User, "thanks"),
        ]
    );
}

/// The agent turns of the call, with their latencies, once its event stream has shown `count`
/// of them (an agent turn is recorded, and its event sent, once it is done).
async fn agent_turns(
    call: &Conversation,
    count: usize,
) -> Vec<phone_agent::store::transcripts::Turn> {
    use phone_agent::guard::token::Scope;
    use phone_agent::store::transcripts::Speaker;
    let token = call.server.token(&[Scope::CallsRead]).await;
    let path = format!("/api/calls/{}/events", call_sid(1));
    let mut events = call
        .server
        .request(awc::http::Method::GET, &path, Some(&token))
        .send()
        .await
        .expect("event stream opens");
    stream_until(&mut events, |seen| {
        seen.matches(r#""speaker":"agent""#).count() >= count
    })
    .await;
    let turns = call.server.server.store.transcript(&call_sid(1)).await;
    turns
        .unwrap()
        .into_iter()
        .map(|stored| stored.turn)
        .filter(|turn| turn.speaker == Speaker::Agent)
        .collect()
}

/// A call whose first exchange is over: the agent is quiet, so a reply may be prepared.
async fn after_a_first_exchange(replies: &[(&str, Option<DialogueAction>)]) -> Conversation {
    let dialogue = FixedDialogue::new(replies, Duration::ZERO);
    let mut call = converse(dialogue, &[]).await;
    call.stt.say("hello");
    call.phone.until(|log| marks_of(log, 1) == 1).await;
    agent_turns(&call, 1).await;
    call
}

/// The caller stops after `words`, which the recogniser says is probably the end of the turn.
fn pause_after(call: &Conversation, words: &str) {
    call.stt.hear(TranscriptEvent::SpeechStarted);
    call.stt
        .hear(TranscriptEvent::ProbableEnd { text: words.into() });
}

/// The turn ends with `words`.
fn end_with(call: &Conversation, words: &str) {
    call.stt.hear(TranscriptEvent::Final { text: words.into() });
    call.stt.hear(TranscriptEvent::EndOfTurn);
}

#[actix_rt::test]
async fn a_reply_prepared_while_the_turn_was_probably_over_is_played_once_it_ends() {
    let mut call = after_a_first_exchange(&[("Hi.", None), ("We open at nine.", None)]).await;
    pause_after(&call, "when do you open");
    within(call.dialogue.answered(2)).await;
    end_with(&call, "when do you open");
    call.phone.until(|log| marks_of(log, 2) == 4).await;
    assert_eq!(
        call.dialogue.seen().len(),
        2,
        "the prepared reply is the answer"
    );
    // Its text came before the turn ended; its audio went out only after.
    let reply = agent_turns(&call, 2).await.remove(1);
    assert_eq!(reply.text, "We open at nine.");
    let stages = reply.latencies;
    let (ended, text, audio) = (
        stages.end_of_turn_ms.unwrap(),
        stages.first_text_ms.unwrap(),
        stages
            .first_audio_ms
            .expect("audio sent after the clock started"),
    );
    assert!(text <= ended && ended <= audio, "{stages:?}");
}

#[actix_rt::test]
async fn a_reply_prepared_for_a_pause_the_caller_talked_on_after_is_never_heard() {
    let replies = [("Hi.", None), ("Unheard.", None), ("Booked.", None)];
    let mut call = after_a_first_exchange(&replies).await;
    pause_after(&call, "I want to book");
    within(call.dialogue.answered(2)).await;
    // The caller goes on.
    call.stt.say("I want to book a table");
    call.phone.until(|log| marks_of(log, 3) == 1).await;
    assert!(
        frames_of(&call.phone.log, 2).is_empty(),
        "{:?}",
        call.phone.log
    );
    let seen = call.dialogue.seen();
    assert_eq!(
        lines(&seen[2]),
        [
            (Role::User, "hello"),
            (Role::Assistant, "Hi."),
            (Role::User, "I want to book a table")
        ],
        "the dropped turn and reply are not in the history"
    );
}

#[actix_rt::test]
async fn silence_brings_a_check_in_after_the_check_in_time() {
    let dialogue = FixedDialogue::new(&[("unused", None)], Duration::ZERO);
    let started = Instant::now();
    let mut call = converse(dialogue, &[("SILENCE_CHECKIN_S", "1")]).await;
    call.phone.until(|log| marks_of(log, 1) == 4).await;
    // "Are you still there?"
    let first = frames_of(&call.phone.log, 1);
    assert_eq!(first.len(), 4 * FRAMES_PER_WORD);
    let waited = first[0] - started;
    assert!(waited >= Duration::from_secs(1), "{waited:?}");
    assert_eq!(call.dialogue.seen().len(), 0);
}

#[actix_rt::test]
async fn the_maximum_duration_ends_with_a_goodbye_nothing_interrupts() {
    let dialogue = FixedDialogue::new(&[("unused", None)], Duration::ZERO);
    let mut call = converse(dialogue, &[("MAX_CALL_DURATION", "300ms")]).await;
    call.phone.until(|log| marks_of(log, 1) >= 2).await;
    // The caller talks over the goodbye: it plays on.
    call.stt.hear(TranscriptEvent::SpeechStarted);
    call.stt.hear(TranscriptEvent::Partial {
        text: "wait a moment".into(),
    });
    call.phone
        .until(|log| log.iter().any(|(_, h)| matches!(h, Heard::Close(_))))
        .await;
    let log = &call.phone.log;
    assert_eq!(frames_of(log, 1).len(), 13 * FRAMES_PER_WORD);
    assert!(!log.iter().any(|(_, h)| *h == Heard::Clear));
    assert_eq!(log.last().unwrap().1, Heard::Close(Some(1000)));
    let metrics = call.server.get_text("/metrics").await;
    assert!(
        metrics.contains("phone_agent_calls_ended_total{reason=\"max_duration\"} 1"),
        "{metrics}"
    );
}

#[actix_rt::test]
async fn a_call_still_up_when_the_server_drains_ends_after_the_closing_goodbye_is_heard() {
    let dialogue = FixedDialogue::new(&[("unused", None)], Duration::ZERO);
    // The goodbye starts 5 s before the drain timeout: time for its 17 words (3.4 s) to play.
    let mut call = converse(dialogue, &[("DRAIN_TIMEOUT", "10s")]).await;
    let draining = Instant::now();
    call.server.server.shutdown();
    call.phone
        .until(|log| log.iter().any(|(_, h)| matches!(h, Heard::Close(_))))
        .await;
    let log = &call.phone.log;
    let goodbye = phone_agent_actors::call::settings::AgentLines::default().closing_goodbye;
    let words = goodbye.split_whitespace().count();
    assert_eq!(frames_of(log, 1).len(), words * FRAMES_PER_WORD);
    let last_mark = log
        .iter()
        .rposition(|(_, h)| matches!(h, Heard::Mark(name) if name.starts_with("u1c")))
        .expect("the goodbye's marks");
    assert_eq!(
        log[last_mark + 1..]
            .iter()
            .map(|(_, h)| h)
            .collect::<Vec<_>>(),
        [&Heard::Close(Some(1001))],
        "closed once the goodbye was heard"
    );
    assert!(
        draining.elapsed() < Duration::from_secs(10),
        "before the drain timeout"
    );
    within(call.server.server.stopped()).await.unwrap();
}

#[actix_rt::test]
async fn a_transfer_without_call_control_is_refused_in_words() {
    let dialogue = FixedDialogue::new(
        &[("Let me connect you.", Some(DialogueAction::TransferCall))],
        Duration::ZERO,
    );
    let mut call = converse(dialogue, &[]).await;
    call.stt.say("a person please");
    call.phone.until(|log| marks_of(log, 2) >= 1).await;
    let log = &call.phone.log;
    assert_eq!(frames_of(log, 1).len(), 4 * FRAMES_PER_WORD);
    assert!(frames_of(log, 2)[0] > *frames_of(log, 1).last().unwrap());
    assert_eq!(call.dialogue.seen().len(), 1);
}

#[actix_rt::test]
async fn every_turn_reports_its_latency_stages_on_metrics() {
    let dialogue = FixedDialogue::new(&[("Hello there.", None)], Duration::from_millis(50));
    let mut call = converse(dialogue, &[]).await;
    call.stt.say("hi");
    call.phone.until(|log| marks_of(log, 1) >= 1).await;
    // The turn is reported once the server has the echo of its first mark.
    let heard = "phone_agent_turn_latency_seconds_count{stage=\"first_heard\"} 1";
    let metrics = call.server.metrics_until(|text| text.contains(heard)).await;
    for stage in [
        "stt_final",
        "end_of_turn",
        "first_text",
        "first_audio",
        "first_sent",
        "first_heard",
    ] {
        let count = format!("phone_agent_turn_latency_seconds_count{{stage=\"{stage}\"}} 1");
        assert!(metrics.contains(&count), "{stage}: {metrics}");
    }
}
