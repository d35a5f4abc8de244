//! A whole call through the cloud engine set, each provider a strict fake on 127.0.0.1: Twilio's
//! audio reaches Deepgram unchanged, Deepgram's turn goes to the LLM, the LLM's reply to Cartesia,
//! and Cartesia's mu-law to the caller, re-framed and unchanged.

use std::sync::Arc;

use phone_agent::client::sim::{MediaConnection, Received as Heard};
use phone_agent::engines::cartesia::{CartesiaSettings, CartesiaTts};
use phone_agent::engines::deepgram::{DeepgramSettings, DeepgramStt};
use phone_agent::engines::openai::{LlmDialogue, LlmSettings};
use phone_agent::engines::script::agent::AgentScript;
use phone_agent::redact::Secret;
use phone_agent_actors::audio::FRAME_BYTES;
use phone_agent_actors::engines::EngineSet;
use phone_agent_actors::runtime::metrics::CallMetrics;

use crate::cartesia::fake::{self as cartesia, audio_of};
use crate::deepgram::fake::{self as deepgram, results, speech_started, Finality};
use crate::openai::fake::{self as openai, Answer};
use crate::support::*;

/// The default agent, which the cloud set talks as.
pub(crate) const AGENT: &str = include_str!("../../agents/default.toml");

/// The next utterance's audio as the caller gets it (`bytes` of it, then mu-law silence up to the
/// end of its last frame), its last mark echoed: the agent has finished speaking.
pub(crate) async fn hear(media: &mut MediaConnection, bytes: usize) -> Vec<u8> {
    let frames = bytes.div_ceil(FRAME_BYTES);
    let mut heard = Vec::new();
    while heard.len() < frames * FRAME_BYTES {
        match next_non_mark(media).await {
            Heard::Media(payload) => heard.extend(payload),
            other => panic!("audio expected, got {other:?}"),
        }
    }
    match within(media.recv()).await {
        Some(Heard::Mark(name)) => media.send_mark(&name).await.expect("mark echoed"),
        other => panic!("the last chunk's mark expected, got {other:?}"),
    }
    heard
}

/// The cloud engines' settings, before they are built.
pub(crate) struct CloudSettings {
    pub deepgram: DeepgramSettings,
    pub llm: LlmSettings,
    pub cartesia: CartesiaSettings,
}

impl CloudSettings {
    /// The providers at these base URLs (Deepgram's, the LLM's, Cartesia's), with the fakes'
    /// keys and the defaults.
    pub(crate) fn at(stt: &str, llm: &str, tts: &str) -> Self {
        Self {
            deepgram: DeepgramSettings {
                base_url: stt.to_owned(),
                ..DeepgramSettings::new(Secret::new(deepgram::API_KEY))
            },
            llm: LlmSettings::new(llm, Secret::new(openai::KEY)),
            cartesia: CartesiaSettings {
                base_url: tts.to_owned(),
                ..CartesiaSettings::new(Secret::new(cartesia::KEY), "voice-1")
            },
        }
    }

    /// The engine set, with the default agent.
    pub(crate) fn engines(self, metrics: &Arc<CallMetrics>) -> EngineSet {
        EngineSet {
            stt: Arc::new(DeepgramStt::new(self.deepgram)),
            dialogue: Arc::new(LlmDialogue::new(
                self.llm,
                AgentScript::from_toml(AGENT).unwrap(),
                false,
                metrics.clone(),
            )),
            tts: Arc::new(CartesiaTts::new(self.cartesia, metrics.clone())),
        }
    }
}

/// Cloud engines pointed at the fakes.
fn cloud_set(
    stt: &deepgram::FakeDeepgram,
    llm: &openai::Fake,
    tts: &cartesia::Fake,
    metrics: &Arc<CallMetrics>,
) -> EngineSet {
    CloudSettings::at(&stt.base, &llm.base_url, &tts.base_url).engines(metrics)
}

/// `audio` padded with mu-law silence to whole frames, as the caller hears it.
pub(crate) fn padded(mut audio: Vec<u8>) -> Vec<u8> {
    audio.resize(audio.len().div_ceil(FRAME_BYTES) * FRAME_BYTES, 0xFF);
    audio
}

#[actix_rt::test]
async fn a_whole_call_through_deepgram_the_llm_and_cartesia() {
    let mut stt = deepgram::FakeDeepgram::start();
    let reply = "There is free parking, right behind the building.";
    let llm = openai::Fake::start(vec![Answer::Text(vec![
        "There is free parking, ",
        "right behind the building.",
    ])])
    .await;
    let tts = cartesia::Fake::start(cartesia::Mode::Normal).await;
    let metrics = Arc::new(CallMetrics::default());
    let engines = cloud_set(&stt, &llm, &tts, &metrics);
    let server = TestServer::start_with(&test_config(&[]), engines).await;
    let (_, mut media) = server.call(&call_sid(1)).await;

    // The greeting, from the agent file, in Cartesia's voice.
    let greeting = AgentScript::from_toml(AGENT).unwrap().persona.greeting;
    let expected = padded(audio_of(&greeting));
    assert_eq!(hear(&mut media, expected.len()).await, expected);

    // The caller's audio reaches Deepgram byte for byte; Deepgram hears a question.
    let mut stream = stt.next_stream().await;
    media.send_media(&frame(9, 0)).await.unwrap();
    assert_eq!(
        stream.next().await,
        deepgram::Received::Audio(frame(9, 0).to_vec())
    );
    let question = "is there parking near the office";
    stream.say(&speech_started());
    stream.say(&results(question, Finality::SpeechFinal));

    // The LLM's reply, clause by clause through Cartesia, is what the caller hears.
    let expected = padded(audio_of(reply));
    assert_eq!(hear(&mut media, expected.len()).await, expected);
    let request = &llm.requests()[0];
    let messages = request["messages"].as_array().unwrap();
    assert_eq!(messages.last().unwrap()["content"], question);
    assert_eq!(
        messages[1]["content"], greeting,
        "the greeting is in the history"
    );
    let seen = tts.seen();
    assert_eq!(seen.connections, 1, "one Cartesia socket for the call");
    let transcripts: Vec<&str> = seen
        .messages
        .iter()
        .filter_map(|m| m["transcript"].as_str())
        .filter(|t| !t.is_empty())
        .collect();
    assert_eq!(
        transcripts.concat(),
        format!("{greeting}{reply}"),
        "an utterance's clauses join with their spaces"
    );
    assert!(metrics
        .render()
        .lines()
        .all(|line| !line.starts_with("phone_agent_engine_faults_total")));
}

#[actix_rt::test]
async fn barge_in_cancels_the_llm_stream_and_the_cartesia_context_and_nothing_stale_plays() {
    let mut stt = deepgram::FakeDeepgram::start();
    let llm = openai::Fake::start(vec![Answer::Fed, Answer::Text(vec!["Okay."])]).await;
    let tts = cartesia::Fake::start(cartesia::Mode::Normal).await;
    let metrics = Arc::new(CallMetrics::default());
    let config = test_config(&[
        ("BARGE_IN", "on"),
        ("SILENCE_CHECKIN_S", "0"),
        ("MAX_CALL_DURATION", "off"),
    ]);
    let server = TestServer::start_with(&config, cloud_set(&stt, &llm, &tts, &metrics)).await;
    let (_, mut media) = server.call(&call_sid(2)).await;
    let greeting = AgentScript::from_toml(AGENT).unwrap().persona.greeting;
    hear(&mut media, audio_of(&greeting).len()).await;

    // A question; the model starts a long answer, whose first clause plays (Cartesia sends the
    // first half of its audio and then is slow with the rest).
    tts.set_mode(cartesia::Mode::OneChunkThenSilence);
    let stream = stt.next_stream().await;
    stream.say(&speech_started());
    stream.say(&results("tell me about implants", Finality::SpeechFinal));
    while llm.requests().is_empty() {
        actix_rt::task::yield_now().await;
    }
    llm.feed("Our implants are made of titanium and last for decades. ");
    match next_non_mark(&mut media).await {
        Heard::Media(_) => {}
        other => panic!("the answer's audio expected, got {other:?}"),
    }

    // The caller talks over it: the audio is cleared, the reply's stream and context cancelled.
    stream.say(&speech_started());
    stream.say(&results("wait stop", Finality::Interim));
    loop {
        match next_non_mark(&mut media).await {
            Heard::Clear => break,
            Heard::Media(_) => {}
            other => panic!("audio or a clear expected, got {other:?}"),
        }
    }
    let cancelled = async {
        loop {
            let cancel = tts
                .seen()
                .messages
                .into_iter()
                .find(|m| m.get("cancel").is_some());
            if let Some(cancel) = cancel {
                return cancel;
            }
            actix_rt::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    };
    let cancel = within(cancelled).await;
    assert_eq!(cancel["context_id"], format!("{}-u1", call_sid(2)));
    let closed = async {
        while llm.dropped() == 0 {
            llm.feed("More about implants. ");
            actix_rt::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    };
    within(closed).await;

    // The caller's turn is answered; the next audio is the new answer, nothing of the old one.
    tts.set_mode(cartesia::Mode::Normal);
    stream.say(&results("wait stop", Finality::SpeechFinal));
    let expected = padded(audio_of("Okay."));
    assert_eq!(hear(&mut media, expected.len()).await, expected);
    let asked = llm.requests();
    assert_eq!(asked.len(), 2);
    let messages = asked[1]["messages"].as_array().unwrap();
    assert_eq!(messages.last().unwrap()["content"], "wait stop");
}
