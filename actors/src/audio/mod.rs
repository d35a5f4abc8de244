//! Telephony audio: what Twilio sends and expects, and the conversions engines need.
//!
//! - [`mulaw`]: G.711 mu-law encode/decode (table-driven).
//! - [`frame`]: [`AudioFrame`] (20 ms, 160 mu-law bytes) and the [`Framer`] that re-chunks audio of any
//!   length into frames, keeping the remainder for the next chunk.
//! - [`resample`]: linear resampling between 8 kHz and the 16/24 kHz rates engines use.
//! - [`vad`]: an energy-based voice-activity detector with hysteresis.

pub mod frame;
pub mod mulaw;
pub mod resample;
pub mod vad;

pub use frame::{AudioFrame, Framer, FRAME_BYTES, FRAME_DURATION};

/// Sample rate of Twilio's media streams, in Hz.
pub const TELEPHONY_SAMPLE_RATE_HZ: u32 = 8_000;
