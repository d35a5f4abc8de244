//! What the actors of every call share, below the children and above the events: how children are
//! supervised, the registry of live calls and actors, and how calls are timed and counted.
//!
//! - [`supervision`]: the restart policy and budget, and [`supervision::ChildSupervision`], which
//!   every engine child keeps across restarts; [`supervision::StopChild`] ends a child for good.
//! - [`registry`]: [`registry::LiveCalls`], the calls and actors alive in this process, held by
//!   drop guards; draining and ending every call.
//! - [`latency`]: a turn's answer, stage by stage, from the end of the caller's speech (sans-I/O).
//! - [`lateness`]: how far behind real time the calls' inbound audio is handled (the server's
//!   measured capacity, for admission).
//! - [`metrics`]: the process-wide histograms and counters calls report to, for `/metrics`.
//! - [`journal`]: the port each call's story (turns, barge-ins, latencies, extraction, the end)
//!   goes to as it happens, for the server to store and stream.

pub mod journal;
pub mod latency;
pub mod lateness;
pub mod metrics;
pub mod registry;
pub mod supervision;
