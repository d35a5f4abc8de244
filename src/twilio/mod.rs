//! Twilio specifics: request signatures, stream tokens, TwiML, and the REST client that places
//! and changes calls.

pub mod rest;
pub mod signature;
pub mod stream_token;
pub mod twiml;

/// A sid of Twilio's shape: `prefix` (`CA` a call, `MZ` a stream) and 32 random hex digits.
pub fn random_sid(prefix: &str) -> Result<String, ring::error::Unspecified> {
    use ring::rand::{SecureRandom as _, SystemRandom};
    let mut bytes = [0_u8; 16];
    SystemRandom::new().fill(&mut bytes)?;
    Ok(format!("{prefix}{}", crate::guard::token::hex(&bytes)))
}
