//! The browser console in a real browser (headless Chromium over the DevTools protocol): signing
//! in, a live call appearing as it happens, its transcript, what a token without the scope may
//! not do, and the content security policy the browser enforces.

use std::time::Duration;

use phone_agent::client::sim::{MediaConnection, Received};
use phone_agent::guard::token::Scope;
use serde_json::json;

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
    let browser = Browser::launch(&[]);
    let mut page = browser.page().await;
    page.goto(&format!("{}{path}", server.base)).await;
    page.until("the sign-in", "document.body.dataset.view === 'signin'")
        .await;
    (browser, page)
}

/// The console open in a fresh browser, signed in with a token of `scopes`.
async fn signed_in(server: &TestServer, scopes: &[Scope]) -> (Browser, Page) {
    let token = server.token(scopes).await;
    let (browser, mut page) = console_at(server, "/console/").await;
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

/// A call whose phone echoes every mark (the agent's audio is heard as it is sent).
async fn live_call(server: &TestServer, stt: &DirectedStt) {
    let (_, media) = server.call(&call_sid(1)).await;
    within(stt.opened()).await;
    actix_rt::spawn(echo_marks(media));
}

async fn echo_marks(mut media: MediaConnection) {
    while let Some(received) = media.recv().await {
        if let Received::Mark(name) = received {
            let _ = media.send_mark(&name).await;
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
