//! Twilio specifics: request signatures, stream tokens, TwiML, and the REST client that places
//! and changes calls.

pub mod rest;
pub mod signature;
pub mod stream_token;
pub mod twiml;
