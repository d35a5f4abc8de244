//! The guards in front of the HTTP surface: who is asking ([`client_ip`]), whether they may
//! ([`auth`], with [`token`]s managed by [`admin`]), and how often ([`rate_limit`]); both lock out
//! abusive IPs with a [`penalty`] box, and record what they saw in the [`audit`] log.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod client_ip;
pub mod penalty;
pub mod rate_limit;
pub mod token;

use std::sync::Arc;

use actix::Addr;

use auth::{AuthActor, Authenticator};
use client_ip::ProxyTrust;
use rate_limit::RateLimits;

/// What the HTTP middleware consults, shared by every worker.
pub struct Guard {
    /// Bearer-token checks.
    pub authenticator: Arc<Authenticator>,
    /// The owner of the token state (token changes go through it).
    pub auth_actor: Addr<AuthActor>,
    /// Rate limits and IP blocks.
    pub rate_limits: Arc<RateLimits>,
    /// Whether a reverse proxy's forwarding headers are believed.
    pub proxy_trust: ProxyTrust,
}
