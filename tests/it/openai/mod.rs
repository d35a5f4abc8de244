//! The LLM agent against a fake OpenAI-compatible API: what we send, text streamed as it comes,
//! tool calls assembled from split deltas, hybrid routing, cancellation on barge-in, and each
//! fault answered by the script at once, counted, and without the key.

pub mod fake;

use std::sync::Arc;
use std::time::Duration;

use fake::{Answer, Fake, KEY, WAIT};
use futures_util::StreamExt as _;
use phone_agent::engines::openai::{LlmDialogue, LlmSettings};
use phone_agent::engines::script::agent::AgentScript;
use phone_agent::redact::Secret;
use phone_agent_actors::engines::{
    CallContext, ChatMessage, Dialogue, DialogueAction, DialogueSession, Role,
};
use phone_agent_actors::ids::{CallSid, StreamSid};
use phone_agent_actors::runtime::metrics::CallMetrics;
use serde_json::json;

const AGENT: &str = include_str!("../../../agents/default.toml");

struct Agent {
    session: Box<dyn DialogueSession>,
    history: Vec<ChatMessage>,
    metrics: Arc<CallMetrics>,
}

impl Agent {
    fn new(fake: &Fake, transfers: bool) -> Self {
        Self::with(fake, transfers, |_| {})
    }

    fn with(fake: &Fake, transfers: bool, change: impl FnOnce(&mut LlmSettings)) -> Self {
        let mut settings = LlmSettings::new(&fake.base_url, Secret::new(KEY));
        settings.stall_timeout = Duration::from_millis(300);
        // Ask again at once: the backoff's arithmetic is unit-tested (engines::reconnect).
        settings.retry_backoff = Duration::ZERO;
        change(&mut settings);
        let metrics = Arc::new(CallMetrics::default());
        let script = AgentScript::from_toml(AGENT).unwrap();
        let dialogue = LlmDialogue::new(settings, script, transfers, metrics.clone());
        let call = CallContext {
            call_sid: CallSid::parse("CA0123456789abcdef0123456789abcdef").unwrap(),
            stream_sid: StreamSid::new("MZ1"),
            custom_parameters: Default::default(),
        };
        let mut session = dialogue.open(&call).unwrap();
        let greeting = session.greeting().unwrap();
        Self {
            session,
            history: vec![line(Role::Assistant, &greeting)],
            metrics,
        }
    }

    /// The caller says `said`; the reply's fragments, in order.
    async fn turn(&mut self, said: &str) -> Vec<String> {
        self.history.push(line(Role::User, said));
        let fragments: Vec<String> = self
            .session
            .reply(&self.history)
            .map(|item| item.expect("replies never fail: the script answers"))
            .collect()
            .await;
        self.history
            .push(line(Role::Assistant, &fragments.concat()));
        fragments
    }

    fn faults(&self) -> String {
        self.metrics
            .render()
            .lines()
            .filter(|l| l.starts_with("phone_agent_engine_faults_total"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn line(role: Role, text: &str) -> ChatMessage {
    ChatMessage {
        role,
        text: text.into(),
    }
}

#[actix_rt::test]
async fn streams_the_reply_as_it_arrives_and_sends_what_the_api_documents() {
    let fake = Fake::start(vec![Answer::Text(vec![
        "We can ",
        "see you ",
        "on Tuesday.",
    ])])
    .await;
    let mut agent = Agent::new(&fake, false);
    let fragments = agent
        .turn("Do you have anything next week for a filling?")
        .await;
    assert_eq!(fragments, ["We can ", "see you ", "on Tuesday."]);
    let request = &fake.requests()[0];
    assert_eq!(request["model"], "llama-3.3-70b-versatile");
    assert_eq!(request["stream"], true);
    assert_eq!(request["temperature"], 0.3);
    assert_eq!(request["max_tokens"], 200);
    let messages = request["messages"].as_array().unwrap();
    assert_eq!(messages[0]["role"], "system");
    assert!(messages[0]["content"]
        .as_str()
        .unwrap()
        .contains("ninety-five dollars"));
    assert_eq!(messages[1]["role"], "assistant");
    assert!(messages[1]["content"]
        .as_str()
        .unwrap()
        .contains("AI assistant"));
    assert_eq!(
        messages[2],
        json!({"role": "user", "content": "Do you have anything next week for a filling?"})
    );
    let tools: Vec<_> = request["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        tools,
        ["end_call", "save_details"],
        "no transfer_call without transfers"
    );
    assert_eq!(agent.session.take_action(), None);
}

#[actix_rt::test]
async fn the_script_answers_when_it_is_sure_without_asking_the_model() {
    let fake = Fake::start(vec![]).await;
    let mut agent = Agent::new(&fake, false);
    let reply = agent.turn("what are your opening hours").await.concat();
    assert!(reply.starts_with("We're open Monday to Friday"), "{reply}");
    assert!(fake.requests().is_empty());
    let goodbye = agent.turn("goodbye").await.concat();
    assert!(goodbye.contains("Goodbye"), "{goodbye}");
    assert_eq!(agent.session.take_action(), Some(DialogueAction::EndCall));
    assert!(fake.requests().is_empty());
    assert_eq!(
        agent.session.extraction().unwrap().intent.as_deref(),
        Some("goodbye")
    );
}

#[actix_rt::test]
async fn a_tool_call_split_inside_its_strings_saves_details_and_the_model_answers_again() {
    let fake = Fake::start(vec![
        Answer::Tools(vec![(
            "call_1",
            "save_details",
            vec![
                r#"{"name": "Ma"#,
                r#"ria \"Mia\" Lo"#,
                r#"pez", "phone": "415 555"#,
                r#" 0100", "consent_to_follow_up": tr"#,
                "ue}",
            ],
        )]),
        Answer::Text(vec!["Thanks, Maria. ", "We'll call you to confirm."]),
    ])
    .await;
    let mut agent = Agent::new(&fake, false);
    let reply = agent
        .turn("I'd like to book, I'm Maria Mia Lopez, 415 555 0100, yes you can call me")
        .await
        .concat();
    assert_eq!(reply, "Thanks, Maria. We'll call you to confirm.");
    let extraction = agent.session.extraction().unwrap();
    assert_eq!(extraction.name.as_deref(), Some("Maria \"Mia\" Lopez"));
    assert_eq!(extraction.phone.as_deref(), Some("4155550100"));
    assert_eq!(extraction.consent_to_follow_up, Some(true));
    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    let follow_up = requests[1]["messages"].as_array().unwrap();
    let n = follow_up.len();
    assert_eq!(follow_up[n - 2]["role"], "assistant");
    assert_eq!(follow_up[n - 2]["tool_calls"][0]["id"], "call_1");
    assert_eq!(
        follow_up[n - 2]["tool_calls"][0]["function"]["name"],
        "save_details"
    );
    assert_eq!(
        follow_up[n - 1],
        json!({"role": "tool", "content": "{\"ok\":true}", "tool_call_id": "call_1"})
    );
}

#[actix_rt::test]
async fn end_and_transfer_calls_without_words_say_the_personas_lines() {
    let fake = Fake::start(vec![
        Answer::Tools(vec![("call_9", "transfer_call", vec!["{}"])]),
        Answer::Tools(vec![("call_10", "end_call", vec![])]),
    ])
    .await;
    let mut agent = Agent::new(&fake, true);
    let reply = agent
        .turn("my crown fell out and I'm in pain")
        .await
        .concat();
    assert!(reply.contains("connect you with a person"), "{reply}");
    assert_eq!(
        agent.session.take_action(),
        Some(DialogueAction::TransferCall)
    );
    assert_eq!(
        agent.session.extraction().unwrap().next_step.as_deref(),
        Some("transfer_to_person")
    );
    let reply = agent
        .turn("alright then, that is everything for today")
        .await
        .concat();
    assert!(reply.contains("Goodbye"), "{reply}");
    assert_eq!(agent.session.take_action(), Some(DialogueAction::EndCall));
}

#[actix_rt::test]
async fn dropping_the_reply_on_barge_in_closes_the_stream_at_the_provider() {
    let fake = Fake::start(vec![Answer::Fed]).await;
    let mut agent = Agent::with(&fake, false, |s| s.stall_timeout = Duration::from_secs(30));
    agent
        .history
        .push(line(Role::User, "tell me everything about implants"));
    let mut reply = agent.session.reply(&agent.history);
    let first = async {
        while fake.requests().is_empty() {
            actix_rt::task::yield_now().await;
        }
        fake.feed("Implants are ");
        reply.next().await
    };
    let first = tokio::time::timeout(WAIT, first).await.unwrap();
    assert_eq!(first.unwrap().unwrap(), "Implants are ");
    drop(reply);
    // The provider keeps generating; its writes fail once our side has closed the connection,
    // and it stops.
    let closed = async {
        while fake.dropped() == 0 {
            fake.feed("and more ");
            actix_rt::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(WAIT, closed)
        .await
        .expect("the provider sees the stream closed");
}

#[actix_rt::test]
async fn each_fault_is_answered_by_the_script_at_once_counted_and_keyless() {
    let faults = [
        (Answer::Error(401), "auth"),
        (Answer::Error(429), "rate_limited"),
        (Answer::Error(503), "server_error"),
        (Answer::Raw(vec!["data: {not json\n\n"]), "malformed"),
        (Answer::Raw(vec![": hello\n\n"]), "lost"),
        (Answer::StallAfter(""), "stall"),
        (Answer::Text(vec![]), "malformed"),
    ];
    for (answer, kind) in faults {
        let fake = Fake::start(vec![answer.clone()]).await;
        let mut agent = Agent::new(&fake, false);
        let reply = agent
            .turn("do you do root canals on weekends")
            .await
            .concat();
        assert_eq!(
            reply, "Sorry, I didn't catch that. Could you say it another way?",
            "{answer:?}"
        );
        let faults = agent.faults();
        assert!(
            faults.contains(&format!("engine=\"openai\",kind=\"{kind}\"")),
            "{answer:?}: {faults}"
        );
        assert!(!faults.contains(KEY));
        fake.stop().await;
    }
}

#[actix_rt::test]
async fn a_provider_that_cannot_be_reached_is_a_connect_fault() {
    let fake = Fake::start(vec![]).await;
    let mut agent = Agent::with(&fake, false, |s| {
        // Port 1 (tcpmux): nothing listens there, and no test can take it as it can take a port
        // another test freed (a free port picked and let go was once another test's server).
        s.base_url = "http://127.0.0.1:1/v1".into();
    });
    let reply = agent.turn("can you whiten my teeth").await.concat();
    assert!(reply.starts_with("Sorry"), "{reply}");
    assert!(
        agent.faults().contains("kind=\"connect\""),
        "{}",
        agent.faults()
    );
}

#[actix_rt::test]
async fn after_repeated_failures_the_call_stays_with_the_script() {
    let fake = Fake::start(vec![Answer::Error(503), Answer::Error(503)]).await;
    let mut agent = Agent::with(&fake, false, |s| s.max_failures = 2);
    for _ in 0..2 {
        agent.turn("do you take my insurance").await;
    }
    assert_eq!(fake.requests().len(), 2);
    let reply = agent.turn("i want to book an appointment").await.concat();
    assert!(reply.starts_with("Sure, I can help you book"), "{reply}");
    assert_eq!(fake.requests().len(), 2, "no more requests once degraded");
}

#[actix_rt::test]
async fn a_wrong_key_is_refused_like_the_real_api_and_never_logged() {
    let fake = Fake::start(vec![]).await;
    let mut agent = Agent::with(&fake, false, |s| s.api_key = Secret::new("sk-wrong-key"));
    let reply = agent.turn("how long does a cleaning take").await.concat();
    assert!(reply.starts_with("Sorry"), "{reply}");
    assert!(agent.faults().contains("kind=\"auth\""));
}

#[actix_rt::test]
async fn a_rate_limited_api_is_not_asked_again_before_its_retry_after() {
    let fake = Fake::start(vec![Answer::Error(429)]).await;
    let mut agent = Agent::new(&fake, false);
    agent.turn("do you do root canals on weekends").await;
    let reply = agent.turn("what about on holidays then").await.concat();
    assert!(reply.starts_with("Sorry"), "the script answers: {reply}");
    assert_eq!(
        fake.requests().len(),
        1,
        "Retry-After: 7 s not waited out yet"
    );
}
