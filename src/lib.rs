//! phone-agent: answers phone calls with an AI voice agent over Twilio Media Streams.
//!
//! # Layout
//!
//! The real-time core (audio, the per-call actor tree, engine traits) is the `phone-agent-actors`
//! crate in `actors/`. This crate holds the edges:
//!
//! - [`cli`]: `phone-agent serve | loadgen` (clap).
//! - [`config`]: environment/`.env` → a validated [`config::Config`].
//! - [`logging`], [`redact`]: tracing set-up and masking of phone numbers.
//! - [`server`]: binding, serving, draining shutdown.
//! - [`http`]: the actix-web app: middleware, voice webhook, media WebSocket, the API, health.
//! - [`twilio`]: request signatures, stream tokens and TwiML.
//! - [`guard`]: bearer tokens, rate limits, lockouts, the audit log ([`guard::auth::AuthActor`],
//!   [`guard::rate_limit::RateLimitActor`]).
//! - [`store`]: SQLite/PostgreSQL persistence with sealed sensitive columns.
//! - [`tls`]: optional in-process TLS.
//! - [`engines`]: engine adapters: the loopback set, and the scripted agent (a `Dialogue`).
//! - [`sim`]: a Twilio-faithful client (voice webhook, media socket), used by loadgen and tests.
//! - [`loadgen`]: many simulated calls, measuring the latency the server adds.

#![warn(missing_docs)]

pub mod caller;
pub mod cli;
pub mod config;
pub mod engines;
pub mod guard;
pub mod http;
pub mod loadgen;
pub mod logging;
pub mod redact;
pub mod server;
pub mod sim;
pub mod store;
pub mod tls;
pub mod token_cli;
pub mod twilio;
pub mod wav;
