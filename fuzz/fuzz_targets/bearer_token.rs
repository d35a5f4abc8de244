//! `Authorization` headers and token scopes as the API reads them: any bytes give a token or
//! none, never a panic; a token found is a trimmed, non-empty part of the header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phone_agent::guard::auth::bearer_token;
use phone_agent::guard::token::{hash_token, Scopes};

fuzz_target!(|input: (&[u8], &str)| {
    let (header, scopes) = input;
    if let Some(token) = bearer_token(header) {
        assert!(!token.is_empty() && token.trim() == token);
        let _ = hash_token(token);
    }
    if let Ok(parsed) = Scopes::parse(scopes) {
        assert!(Scopes::parse(&parsed.to_names()).ok() == Some(parsed));
    }
});
