//! Inbound `media` → outbound `media` through a call's whole actor path, in process, no sockets.
//!
//! A Twilio `media` text frame goes into the MediaStream exactly as the socket reader hands it over;
//! the clock stops when the echoed `media` text frame comes out of the MediaStream's socket queue,
//! having crossed the CallActor, Transcriber, Responder and Synthesizer with the loopback engines.
//! That is the latency our code adds to a frame, without the network and without the client.
//!
//! The benchmark sends frames back to back, faster than real time, and pacing would hold them to
//! real time on purpose. So each iteration starts, untimed, with a `ClearAudio` that empties the
//! modelled playout buffer, as at real-time input (one frame per 20 ms per call), where the pacer
//! sends at once. `pacer/*` in `media.rs` measures the pacer's own cost.
//!
//! `call_path/one_call`: one frame of one call. `call_path/burst_100_calls`: one frame for each of
//! 100 calls arriving at the same instant on one thread, until all 100 are echoed: the worst case
//! of 100 calls on one worker, and an upper bound for the last call's added latency.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use phone_agent::twilio::stream_token::StreamTokens;
use support::{settings, start_call, BenchCall};

fn call_path(c: &mut Criterion) {
    let system = actix_rt::System::new();
    let tokens = Arc::new(StreamTokens::new(Duration::from_secs(600)));
    let settings = settings(tokens.clone());
    let mut one = system.block_on(start_call(&settings, &tokens, 0));
    let mut hundred: Vec<BenchCall> = system.block_on(async {
        let mut calls = Vec::new();
        for n in 1..=100 {
            calls.push(start_call(&settings, &tokens, n).await);
        }
        calls
    });

    let mut group = c.benchmark_group("call_path");
    group.bench_function("one_call", |b| {
        b.iter_custom(|iters| {
            system.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    one.reset_playout().await;
                    let start = Instant::now();
                    one.send().await;
                    one.echoed().await;
                    total += start.elapsed();
                }
                total
            })
        })
    });
    group.bench_function("burst_100_calls", |b| {
        b.iter_custom(|iters| {
            system.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    for call in &mut hundred {
                        call.reset_playout().await;
                    }
                    let start = Instant::now();
                    for call in &hundred {
                        call.send().await;
                    }
                    for call in &mut hundred {
                        call.echoed().await;
                    }
                    total += start.elapsed();
                }
                total
            })
        })
    });
    group.finish();
}

criterion_group!(benches, call_path);
criterion_main!(benches);
