//! Webhooks, both ways.
//!
//! - In: the signatures of those we receive ([`signature`]); the route that takes them is
//!   [`crate::http::webhooks`].
//! - Out: call events to the clients' endpoints, signed per Standard Webhooks
//!   ([`signature::sign_standard`]), from the outbox ([`crate::store::outbox`]) by the
//!   [`dispatch`]er, retried with [`backoff`]; where they may go, the guard against SSRF:
//!   [`target`]; the follow-up email a completed call may send: [`follow_up`].

pub mod backoff;
pub mod dispatch;
pub mod follow_up;
pub mod signature;
pub mod target;
