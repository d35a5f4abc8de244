//! Twilio Media Streams messages as the MediaStream reads them: any text parses to a message or
//! a protocol error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phone_agent_actors::media::wire::parse_inbound;

fuzz_target!(|text: &str| {
    let _ = parse_inbound(text);
});
