//! The local Twilio emulator against a stand-in receiver (and once against the real server):
//! its REST answers field by field as Twilio documents them, every validation error, auth,
//! signed status callbacks in order (or shuffled), the signed voice webhook and media socket,
//! hang-up and transfer updates, the callee's outcomes, answering-machine detection, faults.

mod receiver;

use std::collections::HashMap;
use std::time::Duration;

use awc::http::header::HeaderMap;
use phone_agent::client::twilio_emulator::call::Status;
use phone_agent::client::twilio_emulator::observe::{CallView, DeliveryKind, Fault};
use phone_agent::client::twilio_emulator::settings::{Answer, ApiKey, CallbackOrder};
use phone_agent::client::twilio_emulator::{EmulatorSettings, RunningEmulator, TwilioEmulator};
use phone_agent::redact::Secret;
use serde_json::Value;

use crate::support::{within, TestServer, PUBLIC_HOST, TWILIO_AUTH_TOKEN};
use receiver::{Receiver, Seen, STREAM_TOKEN};

const ACCOUNT: &str = "AC00000000000000000000000000000000";
const TO: &str = "+14155550100";
const FROM: &str = "+14155550199";

/// Settings for a fast emulator calling `agent`: no ring, instant detection.
fn settings(agent: &str) -> EmulatorSettings {
    let mut settings = EmulatorSettings::new(agent, TWILIO_AUTH_TOKEN);
    settings.callee.ring = Duration::ZERO;
    settings.callee.detection = Duration::ZERO;
    settings
}

async fn emulator(settings: EmulatorSettings) -> RunningEmulator {
    TwilioEmulator::start(settings)
        .await
        .expect("emulator starts")
}

/// An answer of the REST API.
struct Reply {
    status: u16,
    headers: HeaderMap,
    json: Value,
}

/// A client of the emulator's REST API with Basic credentials.
struct Api {
    base: String,
    user: String,
    password: String,
}

impl Api {
    fn new(emulator: &RunningEmulator) -> Self {
        Self::with(emulator, ACCOUNT, TWILIO_AUTH_TOKEN)
    }

    fn with(emulator: &RunningEmulator, user: &str, password: &str) -> Self {
        Self {
            base: format!("{}/2010-04-01/Accounts/{ACCOUNT}", emulator.base_url),
            user: user.into(),
            password: password.into(),
        }
    }

    async fn send(&self, method: awc::http::Method, path: &str, form: &[(&str, &str)]) -> Reply {
        let request = awc::Client::new()
            .request(method, format!("{}{path}", self.base))
            .basic_auth(&self.user, &self.password);
        let mut response = request.send_form(&form).await.expect("emulator answers");
        let body = response.body().await.expect("body");
        Reply {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            json: serde_json::from_slice(&body).unwrap_or(Value::Null),
        }
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Reply {
        self.send(awc::http::Method::POST, path, form).await
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(awc::http::Method::GET, path, &[]).await
    }

    /// Creates a call to the receiver's webhook with `extra` fields; returns its sid.
    async fn create(&self, extra: &[(&str, &str)]) -> String {
        let voice = format!("https://{PUBLIC_HOST}/twilio/voice");
        let mut form = vec![("To", TO), ("From", FROM), ("Url", voice.as_str())];
        form.extend_from_slice(extra);
        let reply = self.post("/Calls.json", &form).await;
        assert_eq!(reply.status, 201, "{}", reply.json);
        reply.json["sid"].as_str().unwrap().to_owned()
    }
}

/// The fields that subscribe to every status callback.
const EVERY_EVENT: &[(&str, &str)] = &[
    ("StatusCallback", "https://agent.test/twilio/status"),
    ("StatusCallbackEvent", "initiated"),
    ("StatusCallbackEvent", "ringing"),
    ("StatusCallbackEvent", "answered"),
    ("StatusCallbackEvent", "completed"),
];

fn map(params: &[(String, String)]) -> HashMap<&str, &str> {
    params
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect()
}

/// The `completed` status callback of call `sid` (its final status).
async fn final_callback(receiver: &mut Receiver, sid: &str) -> Vec<(String, String)> {
    receiver
        .until(|log| {
            log.iter().find_map(|seen| match seen {
                Seen::Posted { path, params, .. } if path == "/twilio/status" => {
                    let fields = map(params);
                    let last = fields["CallSid"] == sid && fields.contains_key("CallDuration");
                    last.then(|| params.clone())
                }
                _ => None,
            })
        })
        .await
}

async fn ended(emulator: &RunningEmulator, sid: &str) -> CallView {
    within(emulator.wait_for_call(sid, CallView::is_ended)).await
}

#[actix_rt::test]
async fn creating_a_call_answers_twilios_call_resource() {
    let receiver = Receiver::start().await;
    let emulator = emulator(settings(&receiver.base)).await;
    let api = Api::new(&emulator);
    let reply = api
        .post(
            "/Calls.json",
            &[
                ("To", TO),
                ("From", FROM),
                ("Twiml", "<Response><Hangup/></Response>"),
            ],
        )
        .await;
    assert_eq!(reply.status, 201);
    let call = &reply.json;
    let sid = call["sid"].as_str().unwrap();
    assert!(sid.len() == 34 && sid.starts_with("CA"), "{sid}");
    assert!(sid[2..].bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(call["account_sid"], ACCOUNT);
    assert_eq!(call["to"], TO);
    assert_eq!(call["from"], FROM);
    assert_eq!(call["status"], "queued");
    assert_eq!(call["direction"], "outbound-api");
    assert_eq!(call["api_version"], "2010-04-01");
    assert_eq!(
        call["uri"],
        format!("/2010-04-01/Accounts/{ACCOUNT}/Calls/{sid}.json")
    );
    assert_eq!(
        call["subresource_uris"]["notifications"],
        format!("/2010-04-01/Accounts/{ACCOUNT}/Calls/{sid}/Notifications.json")
    );
    let created = call["date_created"].as_str().unwrap();
    assert!(
        created.ends_with(" +0000") && created.len() == 31,
        "{created}"
    );
    for null in [
        "duration",
        "start_time",
        "end_time",
        "answered_by",
        "parent_call_sid",
        "price",
    ] {
        assert!(call[null].is_null(), "{null}: {}", call[null]);
    }
    assert_eq!(call["price_unit"], "USD");

    // The TwiML hangs up at once; the call is then fetched as completed.
    ended(&emulator, sid).await;
    let fetched = api.get(&format!("/Calls/{sid}.json")).await;
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.json["sid"], sid);
    assert_eq!(fetched.json["status"], "completed");
    assert_eq!(fetched.json["duration"], "0");
    assert!(fetched.json["end_time"]
        .as_str()
        .unwrap()
        .ends_with(" +0000"));
}

#[actix_rt::test]
async fn every_validation_error_has_twilios_status_and_code() {
    let mut settings = settings("http://127.0.0.1:9");
    settings.owned_numbers = Some(vec![FROM.into()]);
    let emulator = emulator(settings).await;
    let api = Api::new(&emulator);
    let url = ("Url", "https://agent.test/twilio/voice");
    let cases: &[(&[(&str, &str)], u32)] = &[
        (&[("From", FROM), url], 21201),
        (&[("To", "4155550100"), ("From", FROM), url], 21211),
        (&[("To", TO), url], 21213),
        (&[("To", TO), ("From", "ACME"), url], 21212),
        (&[("To", TO), ("From", "+14155550111"), url], 21210),
        (&[("To", TO), ("From", FROM)], 21205),
        (
            &[("To", TO), ("From", FROM), url, ("Twiml", "<Response/>")],
            21205,
        ),
        (
            &[("To", TO), ("From", FROM), ("Url", "agent.test/voice")],
            21205,
        ),
        (
            &[("To", TO), ("From", FROM), ("Twiml", "<Response>")],
            12100,
        ),
        (
            &[
                ("To", TO),
                ("From", FROM),
                url,
                ("StatusCallbackEvent", "busy"),
            ],
            20001,
        ),
        (
            &[("To", TO), ("From", FROM), url, ("MachineDetection", "Yes")],
            20001,
        ),
        (&[("To", TO), ("From", FROM), url, ("Timeout", "0")], 20001),
        (
            &[("To", TO), ("From", FROM), url, ("Timeout", "601")],
            20001,
        ),
    ];
    for (form, code) in cases {
        let reply = api.post("/Calls.json", form).await;
        assert_eq!(
            (reply.status, reply.json["code"].as_u64()),
            (400, Some(u64::from(*code))),
            "{form:?}: {}",
            reply.json
        );
        assert_eq!(reply.json["status"], 400);
        assert!(reply.json["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        assert_eq!(
            reply.json["more_info"],
            format!("https://www.twilio.com/docs/errors/{code}")
        );
    }
    let unknown = format!("/Calls/CA{}.json", "0".repeat(32));
    for reply in [
        api.get(&unknown).await,
        api.post(&unknown, &[("Status", "completed")]).await,
    ] {
        assert_eq!(
            (reply.status, reply.json["code"].as_u64()),
            (404, Some(20404))
        );
    }
    let reply = api
        .send(awc::http::Method::DELETE, "/Calls.json", &[])
        .await;
    assert_eq!(
        (reply.status, reply.json["code"].as_u64()),
        (405, Some(20004))
    );
    assert!(emulator.calls().is_empty());
}

#[actix_rt::test]
async fn wrong_credentials_are_401_with_code_20003_and_an_api_key_works() {
    let mut settings = settings("http://127.0.0.1:9");
    settings.account.api_key = Some(ApiKey {
        sid: "SK00000000000000000000000000000001".into(),
        secret: Secret::new("key-secret"),
    });
    let emulator = emulator(settings).await;
    let form = [
        ("To", TO),
        ("From", FROM),
        ("Twiml", "<Response><Hangup/></Response>"),
    ];
    for (user, password) in [
        (ACCOUNT, "wrong"),
        ("SK00000000000000000000000000000001", TWILIO_AUTH_TOKEN),
        ("", ""),
    ] {
        let reply = Api::with(&emulator, user, password)
            .post("/Calls.json", &form)
            .await;
        assert_eq!(
            (reply.status, reply.json["code"].as_u64()),
            (401, Some(20003))
        );
        assert!(reply.headers.contains_key("www-authenticate"));
    }
    let other_account = Api {
        base: format!(
            "{}/2010-04-01/Accounts/AC{}",
            emulator.base_url,
            "1".repeat(32)
        ),
        user: ACCOUNT.into(),
        password: TWILIO_AUTH_TOKEN.into(),
    };
    assert_eq!(other_account.post("/Calls.json", &form).await.status, 401);
    assert!(emulator.calls().is_empty());
    let reply = Api::with(
        &emulator,
        "SK00000000000000000000000000000001",
        "key-secret",
    )
    .post("/Calls.json", &form)
    .await;
    assert_eq!(reply.status, 201);
}

#[actix_rt::test]
async fn a_call_is_signed_and_reported_in_order_until_the_agent_hangs_up() {
    let mut receiver = Receiver::start().await;
    let emulator = emulator(settings(&receiver.base)).await;
    let sid = Api::new(&emulator).create(EVERY_EVENT).await;

    // The voice webhook: signed over the URL as given, with the documented parameters.
    let (voice, signed) = receiver.posts("/twilio/voice", 1).await.remove(0);
    assert!(signed, "voice webhook signature");
    let voice = map(&voice);
    assert_eq!(voice["CallSid"], sid);
    assert_eq!(voice["AccountSid"], ACCOUNT);
    assert_eq!((voice["From"], voice["To"]), (FROM, TO));
    assert_eq!(voice["CallStatus"], "in-progress");
    assert_eq!(voice["Direction"], "outbound-api");
    assert!(!voice.contains_key("AnsweredBy"));

    // The media socket: a signed upgrade, then connected and start with the <Parameter>.
    assert!(receiver.media_opened().await, "upgrade signature");
    receiver.media_event("connected").await;
    let start = receiver.media_event("start").await;
    assert_eq!(start["start"]["callSid"], sid);
    assert_eq!(start["start"]["accountSid"], ACCOUNT);
    assert_eq!(start["start"]["customParameters"]["token"], STREAM_TOKEN);
    assert_eq!(start["start"]["mediaFormat"]["encoding"], "audio/x-mulaw");

    receiver.hang_up();
    let call = ended(&emulator, &sid).await;
    assert_eq!(
        call.statuses(),
        [
            Status::Queued,
            Status::Ringing,
            Status::InProgress,
            Status::Completed
        ]
    );
    let callbacks = within(emulator.wait_for_call(&sid, |call| {
        call.deliveries_of(DeliveryKind::Status).len() == 4
    }))
    .await;
    let received = receiver.posts("/twilio/status", 4).await;
    let expected = ["initiated", "ringing", "in-progress", "completed"];
    for (number, ((params, signed), status)) in received.iter().zip(expected).enumerate() {
        assert!(signed, "status callback signature");
        let params = map(params);
        assert_eq!(params["CallStatus"], status);
        assert_eq!(params["SequenceNumber"], number.to_string());
        assert_eq!(params["CallSid"], sid);
        assert_eq!(params["AccountSid"], ACCOUNT);
        assert_eq!((params["From"], params["To"]), (FROM, TO));
        assert_eq!(params["Direction"], "outbound-api");
        assert_eq!(params["CallbackSource"], "call-progress-events");
        assert!(params["Timestamp"].ends_with(" +0000"));
        assert_eq!(params.contains_key("CallDuration"), status == "completed");
    }
    assert!(callbacks.deliveries.iter().all(|d| d.answer.is_ok()));
}

/// A call whose stream is up; returns its sid once the receiver has seen `start`.
async fn streaming(receiver: &mut Receiver, api: &Api) -> String {
    let sid = api.create(EVERY_EVENT).await;
    receiver.media_event("start").await;
    sid
}

#[actix_rt::test]
async fn a_hang_up_update_stops_the_stream_and_completes_the_call() {
    let mut receiver = Receiver::start().await;
    let emulator = emulator(settings(&receiver.base)).await;
    let api = Api::new(&emulator);
    let sid = streaming(&mut receiver, &api).await;
    let reply = api
        .post(&format!("/Calls/{sid}.json"), &[("Status", "completed")])
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json["status"], "completed");
    let stop = receiver.media_event("stop").await;
    assert_eq!(stop["stop"]["callSid"], sid);
    receiver.media_closed().await;
    let call = ended(&emulator, &sid).await;
    assert_eq!(call.record.status, Status::Completed);
    assert_eq!(call.record.transfer_to, None);
    // Twilio answers 404 for an update of a call that has ended.
    let again = api
        .post(&format!("/Calls/{sid}.json"), &[("Status", "completed")])
        .await;
    assert_eq!(
        (again.status, again.json["code"].as_u64()),
        (404, Some(20404))
    );
}

#[actix_rt::test]
async fn a_dial_update_stops_the_stream_and_records_the_transfer() {
    let mut receiver = Receiver::start().await;
    let emulator = emulator(settings(&receiver.base)).await;
    let api = Api::new(&emulator);
    let sid = streaming(&mut receiver, &api).await;
    let transfer = "<Response><Dial>+14155550123</Dial></Response>";
    let reply = api
        .post(&format!("/Calls/{sid}.json"), &[("Twiml", transfer)])
        .await;
    assert_eq!(reply.status, 200);
    receiver.media_event("stop").await;
    receiver.media_closed().await;
    let call = ended(&emulator, &sid).await;
    assert_eq!(call.record.transfer_to.as_deref(), Some("+14155550123"));
    assert_eq!(call.record.status, Status::Completed);
    assert_eq!(
        call.record.documents.last().map(String::as_str),
        Some(transfer)
    );
}

#[actix_rt::test]
async fn a_callee_who_hangs_up_ends_the_stream_and_the_call() {
    let mut receiver = Receiver::start().await;
    let mut settings = settings(&receiver.base);
    settings.callee.timing.hang_up_after = Some(Duration::from_millis(200));
    let emulator = emulator(settings).await;
    let sid = streaming(&mut receiver, &Api::new(&emulator)).await;
    receiver.media_event("stop").await;
    let call = ended(&emulator, &sid).await;
    assert_eq!(call.record.status, Status::Completed);
    let conversation = call.conversation.expect("the callee's recording");
    assert!(!conversation.agent_hung_up);
    assert!(
        !conversation.caller_track.is_empty(),
        "silence was streamed"
    );
}

#[actix_rt::test]
async fn busy_no_answer_and_failed_calls_end_with_their_status() {
    let mut receiver = Receiver::start().await;
    for (answer, status, timeout) in [
        (Answer::Busy, "busy", "60"),
        (Answer::Failed, "failed", "60"),
        (Answer::NoAnswer, "no-answer", "1"),
    ] {
        let mut settings = settings(&receiver.base);
        settings.callee.answer = answer;
        let emulator = emulator(settings).await;
        let mut extra = EVERY_EVENT.to_vec();
        extra.push(("Timeout", timeout));
        let sid = Api::new(&emulator).create(&extra).await;
        let call = ended(&emulator, &sid).await;
        assert_eq!(call.record.status.as_str(), status);
        assert_eq!(call.record.duration, Some(0));
        assert!(call.deliveries_of(DeliveryKind::Voice).is_empty());
        let completed = final_callback(&mut receiver, &sid).await;
        assert_eq!(map(&completed)["CallStatus"], status);
        assert_eq!(map(&completed)["CallDuration"], "0");
        emulator.stop().await;
    }
}

#[actix_rt::test]
async fn a_machine_is_named_to_the_webhook_or_to_the_detection_callback() {
    let mut receiver = Receiver::start().await;
    let mut settings = settings(&receiver.base);
    settings.callee.answer = Answer::Machine;
    let emulator = emulator(settings).await;
    let api = Api::new(&emulator);

    // Synchronous: the webhook waits for the verdict and carries it; so do later callbacks.
    let mut sync = EVERY_EVENT.to_vec();
    sync.push(("MachineDetection", "Enable"));
    let sid = api.create(&sync).await;
    let (voice, _) = receiver.posts("/twilio/voice", 1).await.remove(0);
    assert_eq!(map(&voice)["AnsweredBy"], "machine_start");
    receiver.media_event("start").await;
    receiver.hang_up();
    let completed = final_callback(&mut receiver, &sid).await;
    assert_eq!(map(&completed)["AnsweredBy"], "machine_start");
    assert_eq!(
        ended(&emulator, &sid).await.record.answered_by.as_deref(),
        Some("machine_start")
    );

    // Asynchronous: the webhook comes at once, the verdict to its own signed callback.
    let sid = api
        .create(&[
            ("MachineDetection", "DetectMessageEnd"),
            ("AsyncAmd", "true"),
            ("AsyncAmdStatusCallback", "https://agent.test/twilio/amd"),
        ])
        .await;
    let (voice, _) = receiver.posts("/twilio/voice", 2).await.remove(1);
    assert!(!map(&voice).contains_key("AnsweredBy"));
    let (verdict, signed) = receiver.posts("/twilio/amd", 1).await.remove(0);
    assert!(signed, "detection callback signature");
    let verdict = map(&verdict);
    assert_eq!(verdict["CallSid"], sid);
    assert_eq!(verdict["AnsweredBy"], "machine_end_beep");
    assert!(verdict.contains_key("MachineDetectionDuration"));
}

#[actix_rt::test]
async fn shuffled_callbacks_arrive_out_of_order_with_their_sequence_numbers() {
    let mut receiver = Receiver::start().await;
    let mut settings = settings(&receiver.base);
    settings.callback_order = CallbackOrder::Shuffled;
    let emulator = emulator(settings).await;
    let api = Api::new(&emulator);
    let sid = api.create(EVERY_EVENT).await;
    receiver.media_event("start").await;
    receiver.hang_up();
    let mut numbers = Vec::new();
    for (params, signed) in receiver.posts("/twilio/status", 4).await {
        assert!(signed);
        assert_eq!(map(&params)["CallSid"], sid);
        numbers.push(map(&params)["SequenceNumber"].parse::<u32>().unwrap());
    }
    assert_ne!(numbers, [0, 1, 2, 3], "delivered in order");
    numbers.sort_unstable();
    assert_eq!(numbers, [0, 1, 2, 3]);
}

#[actix_rt::test]
async fn injected_faults_answer_the_next_requests() {
    let emulator = emulator(settings("http://127.0.0.1:9")).await;
    emulator.inject(Fault {
        status: 429,
        count: 2,
        retry_after: Some(3),
    });
    emulator.inject(Fault {
        status: 503,
        count: 1,
        retry_after: None,
    });
    let api = Api::new(&emulator);
    let form = [
        ("To", TO),
        ("From", FROM),
        ("Twiml", "<Response><Hangup/></Response>"),
    ];
    for _ in 0..2 {
        let reply = api.post("/Calls.json", &form).await;
        assert_eq!(
            (reply.status, reply.json["code"].as_u64()),
            (429, Some(20429))
        );
        assert_eq!(reply.headers.get("retry-after").unwrap(), "3");
    }
    let reply = api.post("/Calls.json", &form).await;
    assert_eq!(
        (reply.status, reply.json["code"].as_u64()),
        (503, Some(20503))
    );
    assert_eq!(api.post("/Calls.json", &form).await.status, 201);
    let statuses: Vec<u16> = emulator.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 429, 503, 201]);
    assert_eq!(emulator.calls().len(), 1);
}

#[actix_rt::test]
async fn an_outbound_call_reaches_the_real_server_and_is_hung_up() {
    let server = TestServer::start(&[]).await;
    let emulator = emulator(settings(&server.base)).await;
    let api = Api::new(&emulator);
    let sid = api.create(&[]).await;
    // The server accepted the signed webhook and the signed stream: the call is live there.
    let call = within(emulator.wait_for_call(&sid, |call| {
        !call.deliveries_of(DeliveryKind::Voice).is_empty()
    }))
    .await;
    assert_eq!(call.deliveries_of(DeliveryKind::Voice)[0].answer, Ok(200));
    assert_eq!(call.record.status, Status::InProgress);
    within(async {
        while !server
            .get_text("/health")
            .await
            .contains("\"live_calls\":1")
        {}
    })
    .await;
    let reply = api
        .post(&format!("/Calls/{sid}.json"), &[("Status", "completed")])
        .await;
    assert_eq!(reply.json["status"], "completed");
    server.until_no_live_calls().await;
    let call = ended(&emulator, &sid).await;
    assert!(call.record.notices.is_empty(), "{:?}", call.record.notices);
}

#[actix_rt::test]
async fn fetched_twiml_without_a_stream_runs_its_verbs() {
    let mut receiver = Receiver::start().await;
    let document =
        r#"<?xml version="1.0" encoding="UTF-8"?><Response><Say>Goodbye</Say><Hangup/></Response>"#;
    receiver.answer_with(document);
    let emulator = emulator(settings(&receiver.base)).await;
    let sid = Api::new(&emulator).create(&[]).await;
    receiver.posts("/twilio/voice", 1).await;
    let call = ended(&emulator, &sid).await;
    assert_eq!(call.record.said, ["Goodbye"]);
    assert_eq!(call.record.documents, [document]);
    assert_eq!(call.record.status, Status::Completed);
}
