//! The inbound webhook verifier (Resend's Svix headers and Standard Webhooks): any headers and
//! body are judged without a panic, and nothing unsigned passes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phone_agent::webhooks::signature::WebhookKeys;

/// `whsec_` and base64 of "fuzz-standard-webhooks-secret".
const STANDARD: &str = "whsec_ZnV6ei1zdGFuZGFyZC13ZWJob29rcy1zZWNyZXQ=";

fuzz_target!(|input: (&str, &str, &str, bool, &[u8], i64)| {
    let (id, timestamp, signature, svix, body, now) = input;
    let keys = WebhookKeys::new(Some("fuzz-resend-secret"), Some(STANDARD)).unwrap();
    let prefix = if svix { "svix" } else { "webhook" };
    let header = |name: &str| match name.strip_prefix(prefix) {
        Some("-id") => Some(id),
        Some("-timestamp") => Some(timestamp),
        Some("-signature") => Some(signature),
        _ => None,
    };
    assert!(
        keys.verify(header, body, now).is_err(),
        "forged: {signature:?}"
    );
});
