//! Added latency of the actor path at real-time load: percentiles, not means.
//!
//! `cargo bench --bench realtime_path -- [CALLS] [SECONDS]` (defaults 100 and 5) starts CALLS call
//! actor trees on the loopback engines in one thread, as on one server worker, and feeds each a
//! `media` frame every 20 ms, the calls' frame clocks spread evenly over the period as independent
//! callers' are. Each frame's time from entering the MediaStream to its echo leaving it is recorded;
//! p50/p99/max are printed. No sockets and no client: this is what our code adds.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use phone_agent::twilio::stream_token::StreamTokens;
use support::{settings, start_call};

fn main() {
    // `cargo bench` passes `--bench`; the numbers are the positional arguments.
    let numbers: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let calls = numbers.first().copied().unwrap_or(100) as u32;
    let seconds = numbers.get(1).copied().unwrap_or(5) as u32;
    let system = actix_rt::System::new();
    system.block_on(async {
        let tokens = Arc::new(StreamTokens::new(Duration::from_secs(600)));
        let settings = settings(tokens.clone());
        let mut active = Vec::new();
        for n in 0..calls {
            active.push(start_call(&settings, &tokens, n).await);
        }
        let period = Duration::from_millis(20);
        let slot = period / calls.max(1);
        let mut latencies_us = Vec::with_capacity((calls * seconds * 50) as usize);
        let origin = Instant::now();
        for tick in 0..seconds * 50 {
            for (index, call) in active.iter_mut().enumerate() {
                let due = origin + period * tick + slot * index as u32;
                actix_rt::time::sleep_until(due.into()).await;
                let sent = Instant::now();
                call.send().await;
                call.echoed().await;
                latencies_us.push(sent.elapsed().as_micros() as u64);
            }
        }
        latencies_us.sort_unstable();
        let at = |q: f64| latencies_us[((latencies_us.len() - 1) as f64 * q) as usize];
        println!(
            "realtime_path: {calls} calls, {} frames: added latency p50 {} us, p99 {} us, max {} us",
            latencies_us.len(),
            at(0.5),
            at(0.99),
            at(1.0)
        );
    });
}
