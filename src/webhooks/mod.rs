//! Webhooks: the signatures of those we receive ([`signature`]). The route that takes them is
//! [`crate::http::webhooks`].

pub mod signature;
