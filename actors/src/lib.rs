//! The real-time core of phone-agent: audio, the per-call actor tree and the engine traits.
//!
//! # Layout
//!
//! In the order a call's data flows:
//!
//! - [`audio`]: G.711 mu-law, 20 ms [`audio::AudioFrame`]s, the framer, resampling, energy VAD.
//! - [`media`]: the MediaStream actor, speaking Twilio Media Streams over an abstract socket
//!   ([`media::wire`] is the JSON, [`media::pacer`] the real-time pacing, [`media::admission`]
//!   the `start` check).
//! - [`call`]: the CallActor that supervises a call, its messages, the registry of live calls and
//!   the restart policy.
//! - [`transcriber`], [`responder`], [`synthesizer`]: the call's children, each over an engine.
//! - [`engines`]: the engine traits (ports) those children use; implementations live in the server.
//! - [`ids`]: `CallSid`, `StreamSid`, `UtteranceId`, `MarkName`.
//! - [`drops`]: counting dropped audio with log lines at powers of two.
//! - [`metrics`]: per-turn latency histograms and barge-in and call-end counters.
//!
//! Nothing here speaks HTTP, opens a socket of its own or touches a database.

#![warn(missing_docs)]

pub mod audio;
pub mod call;
pub mod drops;
pub mod engines;
pub mod ids;
pub mod media;
pub mod metrics;
pub mod responder;
pub mod synthesizer;
pub mod transcriber;
