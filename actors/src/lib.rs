//! The real-time core of phone-agent: audio, the per-call actor tree and the engine traits.
//!
//! # Layout
//!
//! Floors, bottom up; a module imports only from the floors below it (and its own submodules):
//!
//! 1. Values and ports:
//!    - [`ids`]: `CallSid`, `StreamSid`, `UtteranceId`, `MarkName`.
//!    - [`audio`]: G.711 mu-law, 20 ms [`audio::AudioFrame`]s, the framer, resampling, energy VAD.
//!    - [`drops`]: counting dropped audio with log lines at powers of two.
//!    - [`engines`]: the engine traits (ports) the children use; implementations live in the server.
//! 2. [`events`]: every message that travels *up* to the CallActor (`StreamStarted`,
//!    `TranscriptReceived`, `ChunkSent`, `MarkPlayed`, `ChildGaveUp`, `EndCall`, …) with
//!    `EndReason` and `CloseFrame`. Commands travel *down* and live beside the actor that receives
//!    them (`PlayAudio` in [`media`], `Speak` in [`synthesizer`], `UserTurn` in [`responder`], …).
//! 3. [`runtime`]: what every call's actors share: supervision and the restart policy, the
//!    registry of live calls and actors, the latency clock and the metrics.
//! 4. The children, each over its own job, none naming the CallActor: each is given a `Recipient`
//!    per event it emits (its `…Reports`), so it runs alone against stub receivers.
//!    - [`media`]: the MediaStream actor, speaking Twilio Media Streams over an abstract socket
//!      ([`media::wire`] is the JSON, [`media::pacer`] the real-time pacing, [`media::admission`]
//!      the `start` check).
//!    - [`transcriber`]: caller audio to transcript events, over `SpeechToText`.
//!    - [`synthesizer`]: reply text to paced frames and marks, over `TextToSpeech`.
//!    - [`responder`]: turns to reply clauses, over `Dialogue` (sends `Speak` to a synthesizer).
//! 5. [`call`]: the CallActor, the only module that names every actor: it starts and supervises
//!    the children and carries out what its sans-I/O conversation (turn-taking, barge-in, the
//!    agent's lifecycle) decides.
//!
//! Nothing here speaks HTTP, opens a socket of its own or touches a database.

#![warn(missing_docs)]

pub mod audio;
pub mod call;
pub mod drops;
pub mod engines;
pub mod events;
pub mod ids;
pub mod media;
pub mod responder;
pub mod runtime;
pub mod synthesizer;
#[cfg(test)]
mod testing;
pub mod transcriber;
