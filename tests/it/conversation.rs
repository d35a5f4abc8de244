//! Conversation behaviour against a real server, with directed engines: the test says what the
//! recogniser hears, and every utterance's audio names its generation. The client echoes each mark
//! as it arrives; the server paces audio at real time, so that is when the caller hears it.

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

    /// Reads for `duration`, echoing marks.
    async fn listen(&mut self, duration: Duration) {
        let _ = actix_rt::time::timeout(duration, async {
            loop {
                self.read_one().await;
            }
        })
        .await;
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
    call.phone.listen(Duration::from_millis(500)).await;
    let after = call.phone.since(trigger);
    let clear = after
        .iter()
        .position(|h| *h == Heard::Clear)
        .expect("clear sent");
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

    // The caller's turn ends; the next reply is answered knowing what the caller heard.
    call.stt.hear(TranscriptEvent::Final {
        text: "wait stop".into(),
    });
    call.stt.hear(TranscriptEvent::EndOfTurn);
    call.phone.until(|log| marks_of(log, 2) >= 1).await;
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
async fn a_backchannel_pauses_the_agent_and_playback_resumes_without_a_clear() {
    let dialogue = FixedDialogue::new(&[(TEN_WORDS, None)], Duration::ZERO);
    let mut call = converse(dialogue, &[]).await;
    call.stt.say("tell me a story");
    call.phone.until(|log| marks_of(log, 1) >= 2).await;

    call.stt.hear(TranscriptEvent::SpeechStarted);
    let paused = Instant::now();
    call.phone.listen(Duration::from_millis(400)).await;
    let during = call.phone.since(paused);
    let frames = during.iter().filter(|h| **h == Heard::Audio(1)).count();
    assert!(frames <= 8, "{frames} frames sent while paused");

    call.stt.hear(TranscriptEvent::Final {
        text: "uh-huh".into(),
    });
    call.stt.hear(TranscriptEvent::EndOfTurn);
    call.phone.until(|log| marks_of(log, 1) == 10).await;
    assert_eq!(frames_of(&call.phone.log, 1).len(), 10 * FRAMES_PER_WORD);
    assert!(!call.phone.since(paused).contains(&Heard::Clear));
    call.phone.listen(Duration::from_millis(200)).await;
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
    actix_rt::time::sleep(Duration::from_millis(50)).await;
    call.stt.hear(TranscriptEvent::Final {
        text: "an appointment".into(),
    });
    call.phone.until(|log| !frames_of(log, 2).is_empty()).await;
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

    // Once the reply plays, a late final joins the turn's line in the history, unanswered.
    call.stt.hear(TranscriptEvent::Final {
        text: "please".into(),
    });
    call.phone.listen(Duration::from_millis(500)).await;
    assert_eq!(call.dialogue.seen().len(), 2);
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

#[actix_rt::test]
async fn silence_brings_two_check_ins_then_a_goodbye_and_a_hang_up() {
    let dialogue = FixedDialogue::new(&[("unused", None)], Duration::ZERO);
    let started = Instant::now();
    let mut call = converse(dialogue, &[("SILENCE_CHECKIN_S", "1")]).await;
    call.phone
        .until(|log| log.iter().any(|(_, h)| matches!(h, Heard::Close(_))))
        .await;
    let log = &call.phone.log;
    let (first, second, goodbye) = (frames_of(log, 1), frames_of(log, 2), frames_of(log, 3));
    // "Are you still there?" twice, then the eleven-word goodbye.
    assert_eq!(first.len(), 4 * FRAMES_PER_WORD);
    assert_eq!(second.len(), 4 * FRAMES_PER_WORD);
    assert_eq!(goodbye.len(), 11 * FRAMES_PER_WORD);
    let second_silence = second[0] - *first.last().unwrap();
    let third_silence = goodbye[0] - *second.last().unwrap();
    assert!(
        first[0] - started >= Duration::from_secs(1),
        "{:?}",
        first[0] - started
    );
    for silence in [second_silence, third_silence] {
        // The silence counts from the end of playback (the 100 ms lead is sent early).
        assert!(silence >= Duration::from_millis(1_000), "{silence:?}");
        assert!(silence < Duration::from_millis(1_600), "{silence:?}");
    }
    let (closed_at, close) = log.last().unwrap();
    assert_eq!(*close, Heard::Close(Some(1000)));
    assert!(*closed_at >= *goodbye.last().unwrap());
    assert_eq!(call.dialogue.seen().len(), 0);
}

#[actix_rt::test]
async fn the_maximum_duration_ends_with_a_goodbye_nothing_interrupts() {
    let dialogue = FixedDialogue::new(&[("unused", None)], Duration::ZERO);
    let mut call = converse(dialogue, &[("MAX_CALL_DURATION", "1s")]).await;
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
    call.phone.listen(Duration::from_millis(100)).await;
    let metrics = call.server.get_text("/metrics").await;
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
