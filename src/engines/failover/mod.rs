//! A cloud engine backed by an embedded one, per call.
//!
//! - [`FailoverTts`]: when the provider fails a clause before any of its audio, the embedded voice
//!   speaks that clause at once (the caller hears no gap longer than the fault's detection); after
//!   `max_failures` failed clauses in a row the call stays with the embedded voice.
//! - [`FailoverStt`]: when the provider's session fails, the embedded recogniser hears the caller
//!   at once; the provider is tried again after a jittered backoff, taking over between two of the
//!   caller's turns; after `max_failures` failures in a row the call stays with the embedded
//!   recogniser. The Transcriber never sees the fault, so the call never ends for it.

mod stt;
mod tts;

pub use stt::FailoverStt;
pub use tts::FailoverTts;
