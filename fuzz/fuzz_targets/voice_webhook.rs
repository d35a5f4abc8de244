//! Twilio's voice webhook form as the route reads it (`web::Form<VoiceWebhook>`, then the
//! `CallSid` check): any body becomes the form or a client error (400), never a panic; a CallSid
//! accepted is `CA` and 32 hex digits; and the form's `Debug` (what a log line could print)
//! shows the numbers masked, never more than their first and last four digits.
#![no_main]

use actix_web::test::TestRequest;
use actix_web::{web, FromRequest as _};
use libfuzzer_sys::fuzz_target;
use phone_agent::http::twilio::VoiceWebhook;
use phone_agent::redact::mask_phone;
use phone_agent_actors::ids::CallSid;

thread_local! {
    static RUNTIME: actix_rt::Runtime = actix_rt::Runtime::new().expect("a runtime");
}

fuzz_target!(|body: &[u8]| {
    let (request, mut payload) = TestRequest::post()
        .uri("/twilio/voice")
        .insert_header(("content-type", "application/x-www-form-urlencoded"))
        .set_payload(body.to_vec())
        .to_http_parts();
    let read = web::Form::<VoiceWebhook>::from_request(&request, &mut payload);
    let form = match RUNTIME.with(|runtime| runtime.block_on(read)) {
        Ok(form) => form.into_inner(),
        Err(error) => {
            let status = error.as_response_error().status_code().as_u16();
            assert_eq!(status, 400, "{error}");
            return;
        }
    };
    // The same fields, read independently of the code under test.
    let field = |name: &str| {
        form_urlencoded::parse(body)
            .filter(|(key, _)| key == name)
            .last()
            .map(|(_, value)| value.into_owned())
    };
    if let Some(call_sid) = field("CallSid").as_deref().and_then(CallSid::parse) {
        let sid = call_sid.as_str();
        assert!(sid.len() == 34 && sid.starts_with("CA"), "{sid:?}");
        assert!(sid[2..].bytes().all(|b| b.is_ascii_hexdigit()), "{sid:?}");
    }
    // What a log line could print shows the numbers masked, and a mask at most five digits.
    let logged = format!("{form:?}");
    let (from, to) = (
        field("From").unwrap_or_default(),
        field("To").unwrap_or_default(),
    );
    let (from, to) = (mask_phone(&from), mask_phone(&to));
    assert!(
        logged.contains(&format!("from: {from}, to: {to},")),
        "{logged}"
    );
    for masked in [from, to] {
        let digits = masked.chars().filter(char::is_ascii_digit).count();
        assert!(digits <= 5, "{masked:?} shows {digits} digits");
    }
});
