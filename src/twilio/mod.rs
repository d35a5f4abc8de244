//! Twilio-side pieces of the server that are not HTTP handlers.
//!
//! - [`stream_token`]: single-use, short-lived tokens that bind a media stream to its CallSid.
//! - [`twiml`]: the TwiML documents we answer with.

pub mod stream_token;
pub mod twiml;
