//! phone-agent: answers phone calls with an AI voice agent over Twilio Media Streams.
//!
//! # Layout
//!
//! The real-time core (audio, the per-call actor tree, engine traits) is the `phone-agent-actors`
//! crate in `actors/`. This crate holds its edges, then the tools that talk to a server, then the
//! command line that starts either.
//!
//! The server, from start-up inwards along a request:
//!
//! - [`config`]: environment/`.env` → a validated [`config::Config`].
//! - [`logging`]: tracing set-up; [`redact`]: masked phone numbers and secrets that never print.
//! - [`server`]: opening the store, binding, serving, draining shutdown.
//! - [`http`]: the actix-web app: request ids and security headers, the guard middleware, the
//!   voice webhook, the media WebSocket, the API, health and metrics; errors become HTTP in
//!   [`http::error`].
//! - [`guard`]: client IPs, bearer tokens, rate limits, lockouts, the audit log
//!   ([`guard::auth::AuthActor`], [`guard::rate_limit::RateLimitActor`]).
//! - [`twilio`]: request signatures, stream tokens, TwiML, and the REST client that places and
//!   changes calls ([`twilio::rest::TwilioRest`]).
//! - [`calls`]: call management: numbers, calling hours, the live feed of call events.
//! - [`store`]: SQLite/PostgreSQL persistence with sealed sensitive columns: tokens, calls with
//!   their event logs and transcripts, scheduling claims, the do-not-call list, idempotency keys,
//!   erasure and retention, the audit trail.
//! - [`jitter`]: random fractions for backoff.
//! - [`tls`]: optional in-process TLS; [`outbound`]: the client of our outbound connections
//!   (Twilio, the cloud providers).
//! - [`engines`]: engine adapters: embedded recognition and voices, the scripted agent (a
//!   `Dialogue`), the loopback set.
//! - [`wav`]: WAV reading and writing: the flite voice's output, caller audio and recordings of
//!   the client tools, test sets.
//!
//! The client tools ([`client`]), which talk to a server as Twilio would:
//!
//! - [`client::sim`]: a Twilio-faithful client (voice webhook, media socket).
//! - [`client::caller`]: one spoken conversation with a server (`phone-agent call`).
//! - [`client::loadgen`]: many simulated calls, measuring the latency the server adds.
//! - [`client::twilio_emulator`]: a local Twilio: the calls REST API, then each call's lifecycle
//!   (a sans-I/O state machine), signed callbacks and webhook, the callee on the media stream.
//!
//! The command line ([`cli`], clap): `phone-agent [serve]` ([`cli::serve`]), `call`, `loadgen`,
//! `twilio-emulator` ([`cli::twilio_emulator`]) and `token create|list|revoke|rotate`
//! ([`cli::token`]).

#![warn(missing_docs)]

pub mod calls;
pub mod config;
pub mod email;
pub mod engines;
pub mod guard;
pub mod http;
pub mod jitter;
pub mod logging;
pub mod outbound;
pub mod redact;
pub mod server;
pub mod store;
pub mod tls;
pub mod twilio;
pub mod wav;
pub mod webhooks;

pub mod client;

pub mod cli;
