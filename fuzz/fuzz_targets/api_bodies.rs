//! The call-management API's JSON bodies as its extractor (`ApiJson`) reads them: any bytes, with
//! or without the JSON content type, become the body or a client error (400, 413 or 415), never a
//! server error and never a panic.
#![no_main]

use actix_web::test::TestRequest;
use actix_web::FromRequest as _;
use libfuzzer_sys::fuzz_target;
use phone_agent::http::api::call_control::TransferBody;
use phone_agent::http::api::calls::PlaceBody;
use phone_agent::http::api::dnc::DncBody;
use phone_agent::http::api::tokens::{CreateTokenBody, RotateTokenBody};
use phone_agent::http::api::ApiJson;
use serde::de::DeserializeOwned;

thread_local! {
    static RUNTIME: actix_rt::Runtime = actix_rt::Runtime::new().expect("a runtime");
}

/// Reads `body` as a `T` the way a route does; an error must be the client's.
fn read<T: DeserializeOwned + 'static>(body: &[u8], json: bool) {
    let mut request = TestRequest::post().uri("/api/fuzz");
    if json {
        request = request.insert_header(("content-type", "application/json"));
    }
    let (request, mut payload) = request.set_payload(body.to_vec()).to_http_parts();
    let read = ApiJson::<T>::from_request(&request, &mut payload);
    if let Err(error) = RUNTIME.with(|runtime| runtime.block_on(read)) {
        let status = error.as_response_error().status_code().as_u16();
        assert!(matches!(status, 400 | 413 | 415), "{status}: {error}");
    }
}

fuzz_target!(|input: (u8, bool, &[u8])| {
    let (which, json, body) = input;
    match which % 5 {
        0 => read::<PlaceBody>(body, json),
        1 => read::<CreateTokenBody>(body, json),
        2 => read::<RotateTokenBody>(body, json),
        3 => read::<TransferBody>(body, json),
        _ => read::<DncBody>(body, json),
    }
});
