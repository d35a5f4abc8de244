//! mu-law and the 20 ms framer: decoding then encoding is stable, and the framer hands out every
//! byte it is given, in 160-byte frames, whatever the sizes of the chunks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phone_agent_actors::audio::frame::Framer;
use phone_agent_actors::audio::mulaw;

fuzz_target!(|input: (Vec<u8>, Vec<u8>)| {
    let (audio, cuts) = input;
    let mut samples = Vec::new();
    mulaw::decode_into(&audio, &mut samples);
    let mut codes = Vec::new();
    mulaw::encode_into(&samples, &mut codes);
    let mut again = Vec::new();
    mulaw::decode_into(&codes, &mut again);
    assert_eq!(samples, again);

    let mut framer = Framer::new();
    let (mut rest, mut frames) = (&audio[..], Vec::new());
    for &cut in &cuts {
        let (chunk, after) = rest.split_at(usize::from(cut).min(rest.len()));
        framer.push(chunk, &mut frames);
        rest = after;
    }
    framer.push(rest, &mut frames);
    let framed: Vec<u8> = frames.iter().flat_map(|f| f.payload).collect();
    assert_eq!(framed.len() + framer.pending_len(), audio.len());
    assert_eq!(framed[..], audio[..framed.len()]);
    assert!(frames.iter().zip(0..).all(|(frame, n)| frame.sequence == n));
});
