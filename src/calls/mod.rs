//! Call management: placing, scheduling and following calls, and keeping their records.
//!
//! - [`number`]: E.164 phone numbers, masked when printed.
//! - [`hours`]: calling hours in the callee's time zone.
//! - [`feed`]: the live feed of call events for subscribers.
//! - [`control`]: the agent's transfers, through Twilio's REST API.

pub mod control;
pub mod feed;
pub mod hours;
pub mod number;
