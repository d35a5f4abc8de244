//! The browser console in a real browser (headless Chromium over the DevTools protocol): signing
//! in, a live call appearing as it happens, its transcript, what a token without the scope may
//! not do, the content security policy the browser enforces, and the softphone: a conversation
//! with the agent on the embedded engines from the browser's (fake) microphone, and a barge-in.

use std::time::Duration;

use phone_agent::client::caller::turns::CallerTurn;
use phone_agent::client::caller::CallerEngines;
use phone_agent::client::sim::{MediaConnection, Received};
use phone_agent::guard::token::Scope;
use phone_agent_actors::audio::mulaw;
use serde_json::json;

use crate::embedded::models_dir;
use crate::spoken::spoken_server_with;
use crate::support::browser::{Browser, Page};
use crate::support::directed::*;
use crate::support::*;

/// A server whose recogniser the test directs and whose agent answers "Hi, how can I help?".
async fn directed_server() -> (TestServer, DirectedStt) {
    let stt = DirectedStt::default();
    let dialogue = FixedDialogue::new(&[("Hi, how can I help?", None)], Duration::ZERO);
    let config = test_config(&[("SILENCE_CHECKIN_S", "0"), ("MAX_CALL_DURATION", "off")]);
    let server = TestServer::start_with(&config, directed_set(&stt, &dialogue)).await;
    (server, stt)
}

/// The console at `path` in a fresh browser, once its script shows the sign-in.
async fn console_at(server: &TestServer, path: &str) -> (Browser, Page) {
    console_in(Browser::launch(&[]), server, path).await
}

/// The console at `path` in `browser`, once its script shows the sign-in.
async fn console_in(browser: Browser, server: &TestServer, path: &str) -> (Browser, Page) {
    let mut page = browser.page().await;
    page.goto(&format!("{}{path}", server.base)).await;
    page.until("the sign-in", "document.body.dataset.view === 'signin'")
        .await;
    (browser, page)
}

/// The console open in a fresh browser, signed in with a token of `scopes`.
async fn signed_in(server: &TestServer, scopes: &[Scope]) -> (Browser, Page) {
    signed_in_with(Browser::launch(&[]), server, scopes).await
}

/// The console open in `browser`, signed in with a token of `scopes`.
async fn signed_in_with(
    browser: Browser,
    server: &TestServer,
    scopes: &[Scope],
) -> (Browser, Page) {
    let token = server.token(scopes).await;
    let (browser, mut page) = console_in(browser, server, "/console/").await;
    page.eval(&format!(
        "document.getElementById('token').value = {}; \
         document.getElementById('signin').requestSubmit(); true",
        json!(token)
    ))
    .await;
    page.until("the calls", "document.body.dataset.view === 'calls'")
        .await;
    (browser, page)
}

/// A call whose phone plays the agent's audio in real time and echoes each mark once the audio
/// before it has played, as Twilio does (an instant echo would make the reply heard before the
/// caller finished asking, every latency 0 ms).
async fn live_call(server: &TestServer, stt: &DirectedStt) {
    let (_, media) = server.call(&call_sid(1)).await;
    within(stt.opened()).await;
    actix_rt::spawn(play_in_real_time(media));
}

async fn play_in_real_time(mut media: MediaConnection) {
    let mut played_until = tokio::time::Instant::now();
    while let Some(received) = media.recv().await {
        match received {
            Received::Media(samples) => {
                let length = Duration::from_micros(samples.len() as u64 * 125); // 8 kHz
                played_until = played_until.max(tokio::time::Instant::now()) + length;
            }
            Received::Mark(name) => {
                tokio::time::sleep_until(played_until).await;
                let _ = media.send_mark(&name).await;
            }
            Received::Clear => played_until = tokio::time::Instant::now(),
            _ => {}
        }
    }
}

#[actix_rt::test]
async fn without_a_token_the_console_shows_the_sign_in() {
    let (server, _) = directed_server().await;
    let (_browser, mut page) = console_at(&server, "/console").await;
    let shown = page
        .eval("[location.pathname, sessionStorage.length, !!document.querySelector('#calls-view:not([hidden])')]")
        .await;
    assert_eq!(shown, json!(["/console/", 0, false]));
}

#[actix_rt::test]
async fn a_live_call_shows_up_as_it_happens_and_its_transcript_opens() {
    let (server, stt) = directed_server().await;
    let (_browser, mut page) = signed_in(&server, &[Scope::CallsRead]).await;
    live_call(&server, &stt).await;
    let row = page
        .until(
            "the call, live",
            "document.querySelector('#calls tr[data-status=\"in-progress\"]')?.dataset.callId",
        )
        .await;
    stt.say("what time do you open");
    page.until(
        "the agent's answer as the last turn",
        "document.querySelector('#calls tr .last-turn')?.textContent.includes('how can I help')",
    )
    .await;
    page.eval("document.querySelector('#calls a.open').click(); true")
        .await;
    let turns = page
        .until(
            "the transcript",
            "document.body.dataset.view === 'call' \
             && document.querySelectorAll('#transcript li.turn').length >= 2 \
             && [...document.querySelectorAll('#transcript li.turn')] \
                  .map((turn) => [turn.classList.contains('agent') ? 'agent' : 'caller', \
                                  turn.querySelector('.text').textContent])",
        )
        .await;
    assert_eq!(
        turns,
        json!([
            ["caller", "what time do you open"],
            ["agent", "Hi, how can I help?"]
        ])
    );
    let shown = page
        .eval(
            "[document.getElementById('call-id').textContent, \
              document.querySelectorAll('#latency-chart g.bar').length]",
        )
        .await;
    let id = row.as_str().unwrap();
    assert!(shown[0].as_str().unwrap().contains(id), "{shown} for {id}");
    assert_eq!(shown[1], 1, "one agent turn, one bar: {shown}");
}

#[actix_rt::test]
async fn the_metrics_page_charts_the_servers_own_figures() {
    let (server, stt) = directed_server().await;
    let (_browser, mut page) = signed_in(&server, &[Scope::CallsRead]).await;
    live_call(&server, &stt).await;
    page.eval("location.hash = '#/metrics'; true").await;
    // The first sample is drawn at once (a rate such as calls per minute needs a second one).
    page.until(
        "one live call, charted",
        "document.body.dataset.view === 'metrics' \
         && document.getElementById('current-live').textContent === '1' \
         && document.querySelectorAll('#chart-live circle, #chart-live path.line').length > 0",
    )
    .await;
}

#[actix_rt::test]
async fn a_token_without_the_write_scope_cannot_hang_up() {
    let (server, stt) = directed_server().await;
    let (_browser, mut page) = signed_in(&server, &[Scope::CallsRead]).await;
    live_call(&server, &stt).await;
    page.until(
        "the hang-up button",
        "document.querySelector('#calls tr[data-status=\"in-progress\"] button.hangup')",
    )
    .await;
    page.eval("document.querySelector('button.hangup').click(); true")
        .await;
    let notice = page
        .until(
            "the refusal",
            "document.getElementById('notice').textContent",
        )
        .await;
    assert!(notice.as_str().unwrap().contains("not allowed"), "{notice}");
    assert_eq!(server.server.live_calls.count(), 1, "the call goes on");
}

#[actix_rt::test]
async fn the_console_runs_no_inline_script() {
    let (server, _) = directed_server().await;
    let response = server
        .request(awc::http::Method::GET, "/console/", None)
        .send()
        .await
        .unwrap();
    let policy = response
        .headers()
        .get("content-security-policy")
        .expect("a content security policy")
        .to_str()
        .unwrap()
        .to_owned();
    assert!(policy.contains("script-src 'self'"), "{policy}");
    assert!(!policy.contains("unsafe-inline"), "{policy}");
    // The browser enforces it: an inline script element the page adds is not run (it would run
    // as it is inserted).
    let (_browser, mut page) = console_at(&server, "/console/").await;
    let ran = page
        .eval(
            "(() => { const script = document.createElement('script'); \
               script.textContent = 'window.inlineRan = true'; \
               document.head.append(script); \
               return window.inlineRan === true; })()",
        )
        .await;
    assert_eq!(ran, json!(false), "inline script ran under {policy}");
}

/// Silence before the caller's first question: the greeting is heard out (about eight seconds).
const GREETING: Duration = Duration::from_secs(9);

/// Barge-in as the embedded engines have it by default (the test configuration's loopback engines
/// turn it off).
const AS_SHIPPED: &[(&str, &str)] = &[("BARGE_IN", "on")];

/// A browser whose microphone says each line (the embedded voice) after its silence, then is
/// silent; the file is kept in `dir`.
fn browser_saying(dir: &tempfile::TempDir, lines: &[(Duration, &str)]) -> Browser {
    let mut engines = CallerEngines::load(models_dir()).unwrap();
    let mut samples = Vec::new();
    for (silence, said) in lines {
        let speech = engines.audio(&CallerTurn::Say((*said).into())).unwrap();
        samples.extend(std::iter::repeat_n(
            0_i16,
            (silence.as_millis() * 8) as usize,
        ));
        mulaw::decode_into(&speech, &mut samples);
    }
    samples.extend(std::iter::repeat_n(0, 8000));
    let path = dir.path().join("microphone.wav");
    std::fs::write(&path, phone_agent::wav::write_pcm16(8000, 1, &samples)).unwrap();
    Browser::launch(&[
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        &format!(
            "--use-file-for-fake-audio-capture={}%noloop",
            path.display()
        ),
        "--autoplay-policy=no-user-gesture-required",
    ])
}

/// Starts the softphone and waits until its call is live; its call id.
async fn talk(page: &mut Page) -> String {
    page.eval("document.getElementById('softphone-start').click(); true")
        .await;
    page.until(
        "the softphone's call live",
        "document.getElementById('softphone').dataset.state === 'live' && softphone.callId",
    )
    .await
    .as_str()
    .unwrap()
    .to_owned()
}

/// The call's transcript (through the API, as the page reads it, four times a second: within the
/// API's rate limit) once `done` holds for it.
async fn transcript_once(page: &mut Page, what: &str, done: &str) -> serde_json::Value {
    page.until_within(
        Duration::from_secs(60),
        what,
        &format!(
            "new Promise((wait) => setTimeout(wait, 250)) \
               .then(() => api('/api/calls/' + softphone.callId)) \
               .then((call) => {{ const turns = call.transcript; return ({done}) ? turns : null; }})"
        ),
    )
    .await
}

/// Hangs the softphone up and returns its recording: what the caller said and what it heard,
/// sample-aligned at 8 kHz.
async fn hang_up_and_record(page: &mut Page) -> (Vec<f32>, Vec<f32>) {
    page.eval("document.getElementById('softphone-hangup').click(); true")
        .await;
    let encoded = page
        .until(
            "the recording",
            "!document.getElementById('softphone-recording').hidden \
             && softphone.recording.arrayBuffer().then((b) => \
                  btoa(Array.from(new Uint8Array(b), (c) => String.fromCharCode(c)).join('')))",
        )
        .await;
    use base64::Engine as _;
    let wav = base64::engine::general_purpose::STANDARD
        .decode(encoded.as_str().unwrap())
        .unwrap();
    assert_eq!(&wav[..4], b"RIFF");
    let samples: Vec<f32> = wav[44..]
        .chunks_exact(2)
        .map(|pair| f32::from(i16::from_le_bytes([pair[0], pair[1]])) / 32768.0)
        .collect();
    let said = samples.iter().step_by(2).copied().collect();
    let heard = samples.iter().skip(1).step_by(2).copied().collect();
    (said, heard)
}

/// What the embedded recogniser hears in 8 kHz samples.
fn recognised(samples: &[f32]) -> String {
    let mut engines = CallerEngines::load(models_dir()).unwrap();
    let mut codes = Vec::new();
    mulaw::encode_float_into(samples, &mut codes);
    engines.transcribe(&codes).unwrap().to_lowercase()
}

/// Loud enough to be speech.
fn loud(sample: &f32) -> bool {
    sample.abs() > 0.02
}

/// Where the caller's speech ends in a recording: after its last loud sample.
fn end_of_speech(said: &[f32]) -> usize {
    said.iter().rposition(loud).unwrap_or(0)
}

/// `samples` from a tenth of a second before the first loud one to a tenth after the last.
fn loud_part(samples: &[f32]) -> &[f32] {
    let first = samples
        .iter()
        .position(loud)
        .unwrap_or(0)
        .saturating_sub(800);
    let last = samples.iter().rposition(loud).unwrap_or(0) + 800;
    &samples[first..last.min(samples.len())]
}

#[actix_rt::test]
async fn softphone_a_conversation_from_the_browser_is_heard_both_ways_and_can_interrupt() {
    let (server, _) = spoken_server_with(AS_SHIPPED).await;
    let dir = tempfile::tempdir().unwrap();
    // The first question comes after the greeting (about 8 s; it is not interrupted: it carries
    // the AI disclosure); the second about two seconds into the first answer (about ten seconds
    // long).
    let browser = browser_saying(
        &dir,
        &[
            (GREETING, "What are your prices?"),
            (Duration::from_secs(3), "And when are you open?"),
        ],
    );
    let (_browser, mut page) =
        signed_in_with(browser, &server, &[Scope::CallsRead, Scope::CallsSoftphone]).await;
    talk(&mut page).await;
    let turns = transcript_once(
        &mut page,
        "the first answer interrupted, then the second answer",
        "turns.some((turn) => turn.interrupted) \
         && turns[turns.length - 1].speaker === 'agent' && !turns[turns.length - 1].interrupted",
    )
    .await;
    let turns = turns.as_array().unwrap();
    let asked: Vec<String> = turns
        .iter()
        .filter(|turn| turn["speaker"] == "caller")
        .map(|turn| turn["text"].as_str().unwrap().to_lowercase())
        .collect();
    assert!(
        asked[0].contains("price"),
        "the server heard the browser say {asked:?}"
    );
    // The page dropped the first answer's queued audio at `clear` and echoed its marks: the
    // server knows the caller heard only its beginning.
    let answer = turns
        .iter()
        .find(|turn| turn["interrupted"] == true)
        .unwrap();
    let (said, heard) = (answer["text"].as_str().unwrap(), answer["heard"].as_str());
    assert!(said.contains("ninety-five dollars"), "{turns:#?}");
    let heard = heard.unwrap_or_default();
    assert!(
        heard.len() < said.len() && said.starts_with(heard.trim_end()),
        "{answer}"
    );
    // The first answer followed a question asked in silence: its latency as the page heard it.
    let latencies: Vec<f64> =
        serde_json::from_value(page.eval("softphone.latencies").await).unwrap();
    assert!(
        !latencies.is_empty() && latencies.iter().all(|&ms| ms > 0.0 && ms < 5_000.0),
        "{latencies:?}"
    );
    eprintln!("softphone voice-to-voice as the browser heard it: {latencies:?} ms");
    // The second answer as the page played it, recognised again.
    let (said, heard) = hang_up_and_record(&mut page).await;
    let answer = recognised(loud_part(&heard[end_of_speech(&said)..]));
    assert!(
        answer.contains("monday") || answer.contains("open"),
        "the page played {answer:?}"
    );
}

#[actix_rt::test]
async fn the_softphone_codes_mu_law_exactly_as_the_server_does() {
    let (server, _) = directed_server().await;
    let (_browser, mut page) = console_at(&server, "/console/").await;
    let encoded = page
        .eval("Array.from({ length: 65536 }, (_, i) => muLawEncode((i - 32768) / 32767))")
        .await;
    let encoded: Vec<u8> = serde_json::from_value(encoded).unwrap();
    let expected: Vec<u8> = (i16::MIN..=i16::MAX).map(mulaw::encode_sample).collect();
    let differ = (0..expected.len())
        .filter(|&i| encoded[i] != expected[i])
        .count();
    assert_eq!(differ, 0, "{differ} of 65,536 samples encode differently");
    let decoded = page
        .eval("Array.from({ length: 256 }, (_, code) => Math.round(muLawDecode(code) * 32768))")
        .await;
    let decoded: Vec<i16> = serde_json::from_value(decoded).unwrap();
    let expected: Vec<i16> = (0..=255).map(mulaw::decode_sample).collect();
    assert_eq!(decoded, expected);
}
