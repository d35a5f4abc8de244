//! The client tools: what talks *to* a phone-agent server, as Twilio would. Nothing in the server
//! depends on them.
//!
//! - [`sim`]: a Twilio-faithful client (signed voice webhook, media WebSocket), used by the tools
//!   below and the integration tests.
//! - [`caller`]: `phone-agent call`, one conversation spoken with the embedded voice, transcribed
//!   with the embedded recogniser.
//! - [`eval`]: `phone-agent eval`, the turn-taking evaluation suite: labelled caller recordings
//!   replayed through a real server, scored per turn-detection mode.
//! - [`loadgen`]: `phone-agent loadgen`, many simulated calls measuring the latency the server adds.
//! - [`twilio_emulator`]: `phone-agent twilio-emulator`, a local Twilio (REST API, callbacks,
//!   the callee on the media stream) for placing outbound calls without a Twilio account.

pub mod caller;
pub mod eval;
pub mod loadgen;
pub mod sim;
pub mod twilio_emulator;
