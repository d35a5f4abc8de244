//! What the cloud providers send: Deepgram's JSON messages, Cartesia's answers, and the
//! OpenAI-compatible server-sent events, which decode alike however the stream is cut.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phone_agent::engines::cartesia::protocol::Answer;
use phone_agent::engines::deepgram::protocol;
use phone_agent::engines::openai::sse::SseDecoder;

fuzz_target!(|input: (&[u8], usize)| {
    let (bytes, cut) = input;
    let _ = protocol::parse(bytes);
    let _ = serde_json::from_slice::<Answer>(bytes);

    let whole = SseDecoder::default().push(bytes);
    let mut decoder = SseDecoder::default();
    let (head, tail) = bytes.split_at(cut % (bytes.len() + 1));
    let cut_apart = decoder.push(head).and_then(|mut events| {
        events.extend(decoder.push(tail)?);
        Ok(events)
    });
    if let (Ok(whole), Ok(cut_apart)) = (&whole, &cut_apart) {
        assert_eq!(whole, cut_apart);
    }
    assert_eq!(whole.is_ok(), cut_apart.is_ok());
});
