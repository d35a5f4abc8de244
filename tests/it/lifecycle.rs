//! The call's lifecycle beyond audio: `end_call` hangs up once the goodbye was heard; keypad
//! digits are caller turns. (When, on a fake clock: the unit tests of
//! `phone_agent_actors::call::conversation`.)

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream;
use phone_agent::client::sim::Received;
use phone_agent::engines;
use phone_agent_actors::engines::{
    last_caller_line, CallContext, ChatMessage, Dialogue, DialogueAction, DialogueSession,
    EngineError, EngineStream,
};

use crate::support::directed::FixedDialogue;
use crate::support::*;

/// Says back what it heard, then ends the call.
struct SayThenHangUp;

impl Dialogue for SayThenHangUp {
    fn name(&self) -> &'static str {
        "say-then-hang-up"
    }

    fn open(&self, _: &CallContext) -> Result<Box<dyn DialogueSession>, EngineError> {
        Ok(Box::new(SayThenHangUp))
    }
}

impl DialogueSession for SayThenHangUp {
    fn reply(&mut self, conversation: &[ChatMessage]) -> EngineStream<String> {
        let heard = last_caller_line(conversation).to_owned();
        Box::pin(stream::once(async move { Ok(heard) }))
    }

    fn take_action(&mut self) -> Option<DialogueAction> {
        Some(DialogueAction::EndCall)
    }
}

#[actix_rt::test]
async fn end_call_hangs_up_when_the_last_mark_comes_back_not_before() {
    let mut engines = engines::loopback_set();
    engines.dialogue = Arc::new(SayThenHangUp);
    let server = TestServer::start_with(&test_config(&[]), engines).await;
    let (_, mut media) = server.call(&call_sid(1)).await;

    // One frame is one loopback turn: its reply is that frame, then the mark after it.
    media.send_media(&frame(3, 0)).await.unwrap();
    assert_eq!(
        within(media.recv()).await,
        Some(Received::Media(frame(3, 0).to_vec()))
    );
    assert_eq!(
        within(media.recv()).await,
        Some(Received::Mark("u1c0".into()))
    );

    // The caller talking over the goodbye is not answered any more (its answer would come before
    // the close); the call ends once the caller's phone has played the goodbye (echoed its mark).
    media.send_media(&frame(4, 1)).await.unwrap();
    media.send_mark("u1c0").await.unwrap();
    assert_eq!(
        within(media.recv()).await,
        Some(Received::Close {
            code: Some(1000),
            reason: "call ended".into()
        })
    );
}

/// The caller's last line in each conversation the dialogue was given, once there are `count`.
async fn heard_after(dialogue: &FixedDialogue, count: usize) -> Vec<String> {
    let seen = within(dialogue.asked(count)).await;
    seen.iter()
        .map(|conversation| last_caller_line(conversation).to_owned())
        .collect()
}

#[actix_rt::test]
async fn keypad_digits_reach_the_dialogue_as_a_turn() {
    // Answers nothing; remembers what it was given.
    let dialogue = FixedDialogue::new(&[("", None)], Duration::ZERO);
    let mut engines = engines::loopback_set();
    engines.dialogue = Arc::new(dialogue.clone());
    let server = TestServer::start_with(&test_config(&[]), engines).await;
    let (_, mut media) = server.call(&call_sid(1)).await;

    // `#` ends a keypad turn at once; a key that is not on a keypad is ignored.
    for key in ['1', '2', 'x', '3', '#'] {
        media.send_dtmf(key).await.unwrap();
    }
    assert_eq!(heard_after(&dialogue, 1).await, vec!["123"]);
}
