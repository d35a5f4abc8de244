//! Call management: placing, scheduling and following calls, and keeping their records.
//!
//! - [`number`]: E.164 phone numbers, masked when printed.
//! - [`hours`]: calling hours in the callee's time zone.
//! - [`feed`]: the live feed of call events for subscribers.
//! - [`records`]: the store and the feed every logged event is published on.
//! - [`journal`]: each call's story, from the CallActor to its record.
//! - [`ownership`]: which instance carries each call, claimed once and leased.
//! - [`relay`]: other instances' events and commands, heard through PostgreSQL.
//! - [`placing`]: outbound calls: checks, records, Twilio's create-call; hang-ups and transfers.
//! - [`scheduler`]: scheduled calls placed when due, once across servers.
//! - [`retention`]: old transcripts, extractions and metadata erased.
//! - [`periodic`]: those passes at a period, until the server stops them.
//! - [`control`]: the agent's transfers, through Twilio's REST API.

pub mod control;
pub mod feed;
pub mod hours;
pub mod journal;
pub mod number;
pub mod ownership;
pub mod periodic;
pub mod placing;
pub mod records;
pub mod relay;
pub mod retention;
pub mod scheduler;
