//! Email: the follow-up email after a call, sent through a provider's HTTP API.
//!
//! - [`resend`]: Resend's send endpoint (`POST /emails`), with an idempotency key per email so a
//!   retry never sends twice.

pub mod resend;
