//! Hot paths of the media path: mu-law codec, framer, Twilio message parse/serialize, pacer.
//!
//! Inputs are sized like reality: one 20 ms frame (160 samples) and one second of audio.
//! Results and the machine they were measured on: `docs/benchmarks.md`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use phone_agent_actors::audio::{mulaw, Framer, FRAME_BYTES};
use phone_agent_actors::ids::{MarkName, StreamSid, UtteranceId};
use phone_agent_actors::media::pacer::Pacer;
use phone_agent_actors::media::wire;

/// One second of a 440 Hz tone at 8 kHz.
fn second_of_pcm() -> Vec<i16> {
    (0..8_000)
        .map(|i| {
            ((i as f64 * 2.0 * std::f64::consts::PI * 440.0 / 8_000.0).sin() * 12_000.0) as i16
        })
        .collect()
}

fn codec(c: &mut Criterion) {
    let pcm = second_of_pcm();
    let mut mulaw_second = Vec::new();
    mulaw::encode_into(&pcm, &mut mulaw_second);
    let mut group = c.benchmark_group("codec");
    for (name, samples) in [("frame", 160usize), ("second", 8_000)] {
        group.throughput(Throughput::Elements(samples as u64));
        group.bench_function(format!("encode/{name}"), |b| {
            let mut out = Vec::with_capacity(samples);
            b.iter(|| {
                out.clear();
                mulaw::encode_into(black_box(&pcm[..samples]), &mut out);
                black_box(&out);
            })
        });
        group.bench_function(format!("decode/{name}"), |b| {
            let mut out = Vec::with_capacity(samples);
            b.iter(|| {
                out.clear();
                mulaw::decode_into(black_box(&mulaw_second[..samples]), &mut out);
                black_box(&out);
            })
        });
    }
    group.finish();
}

fn framer(c: &mut Criterion) {
    let audio = vec![0x55u8; 8_000];
    let mut group = c.benchmark_group("framer");
    group.throughput(Throughput::Bytes(audio.len() as u64));
    // TTS engines hand over chunks of odd sizes; 317 bytes leaves a remainder every time.
    group.bench_function("push/second_in_317_byte_chunks", |b| {
        let mut frames = Vec::with_capacity(64);
        b.iter(|| {
            let mut framer = Framer::new();
            for chunk in black_box(&audio).chunks(317) {
                framer.push(chunk, &mut frames);
                frames.clear();
            }
            black_box(framer.finish());
        })
    });
    group.finish();
}

fn messages(c: &mut Criterion) {
    let payload = [0xD5u8; FRAME_BYTES];
    let sid = StreamSid::new("MZ18ad3ab5a668481ce02b83e7395059f0");
    let inbound = format!(
        r#"{{"event":"media","sequenceNumber":"4","media":{{"track":"inbound","chunk":"3","timestamp":"60","payload":"{}"}},"streamSid":"{}"}}"#,
        base64_of(&payload),
        sid
    );
    let mut group = c.benchmark_group("media");
    group.bench_function("parse/inbound_media", |b| {
        b.iter(|| black_box(wire::parse_inbound(black_box(&inbound)).expect("valid")))
    });
    group.bench_function("serialize/outbound_media", |b| {
        b.iter(|| black_box(wire::media_message(black_box(&sid), black_box(&payload))))
    });
    let mark = MarkName {
        utterance: UtteranceId(42),
        chunk: 7,
    };
    group.bench_function("serialize/mark", |b| {
        b.iter(|| black_box(wire::mark_message(black_box(&sid), black_box(mark))))
    });
    group.finish();
}

fn pacer(c: &mut Criterion) {
    let mut group = c.benchmark_group("pacer");
    // One second of audio through the pacer, polled every 20 ms as the MediaStream's timer does.
    group.bench_function("second_of_frames", |b| {
        let mut out = Vec::with_capacity(8);
        b.iter(|| {
            let start = Instant::now();
            let mut pacer = Pacer::new(Duration::from_millis(100));
            for _ in 0..50 {
                pacer.push_frame(black_box([0xFF; FRAME_BYTES]));
            }
            for tick in 0..50u32 {
                pacer.poll(start + Duration::from_millis(20) * tick, &mut out);
                out.clear();
            }
            black_box(pacer.queued_frames());
        })
    });
    group.finish();
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

criterion_group!(benches, codec, framer, messages, pacer);
criterion_main!(benches);
