//! The Twilio signature check on hostile requests: any URL, body and header value is judged
//! without a panic, and a request signed by the signer over the parameters the checker reads
//! from the same body always passes (so the two agree on how a form is read).
#![no_main]

use libfuzzer_sys::fuzz_target;
use phone_agent::twilio::signature::{form_params, SignedRequest, TwilioSigner};

fuzz_target!(|input: (&str, &[u8], &str)| {
    let (url, body, signature) = input;
    let signer = TwilioSigner::new("fuzz-auth-token");
    for form in [Some(body), None] {
        let request = SignedRequest {
            url,
            form,
            raw: body,
        };
        let _ = signer.verify(request, signature);
    }
    let signed = signer.sign(url, &form_params(body));
    let request = SignedRequest {
        url,
        form: Some(body),
        raw: body,
    };
    assert!(signer.verify(request, &signed), "{url:?} {body:?}");
});
