//! Twilio specifics: request signatures, stream tokens and TwiML.

pub mod signature;
pub mod stream_token;
pub mod twiml;
