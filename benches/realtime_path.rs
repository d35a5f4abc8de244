//! Added latency of the actor path at real-time load: percentiles, not means.
//!
//! `cargo bench --bench realtime_path -- [CALLS] [SECONDS]` (defaults 100 and 5) starts CALLS call
//! actor trees on the loopback engines in one thread, as on one server worker, and feeds each a
//! `media` frame every 20 ms, the calls' frame clocks spread evenly over the period as independent
//! callers' are. Each frame's time from entering the MediaStream to its echo leaving it is recorded;
//! p50/p99/max are printed. No sockets and no client: this is what our code adds. The load runs
//! twice in one process: without a journal, then with every call's story written to SQLite by
//! the server's journal (before/after figures on one machine in one run).

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use phone_agent::calls::feed::CallFeed;
use phone_agent::calls::journal::StoreJournal;
use phone_agent::calls::records::CallRecords;
use phone_agent::store::calls::{Direction, NewCall};
use phone_agent::store::crypto::DataKey;
use phone_agent::store::status::CallStatus;
use phone_agent::store::Store;
use phone_agent::twilio::stream_token::StreamTokens;
use phone_agent_actors::call::CallSettings;
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
        let plain = settings(tokens.clone());
        let latencies = run(&plain, &tokens, calls, seconds, 0).await;
        report("no journal", calls, &latencies);

        // The same load with every call's story written to SQLite (the loopback engines make a
        // caller and an agent turn of every frame: 100 turns a second per call).
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite://{}/bench.db", dir.path().display());
        let key = DataKey::from_base64("q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=").unwrap();
        let store = Store::open(&url, key).await.expect("store opens");
        let records = CallRecords::new(store.clone(), Arc::new(CallFeed::default()));
        let journal = Arc::new(StoreJournal::start(records));
        let mut journaled = settings(tokens.clone());
        journaled.journal = Some(journal.clone());
        for n in calls..2 * calls {
            let (sid, from, to) = (format!("CA{n:032x}"), "+14155550100", "+14155550199");
            let call = NewCall::from_twilio(&sid, Direction::Inbound, from, to, CallStatus::Ringing);
            store.insert_call(&call, 0).await.expect("call recorded");
        }
        let latencies = run(&journaled, &tokens, calls, seconds, calls).await;
        report("journal to SQLite", calls, &latencies);
        let started = Instant::now();
        journal.flushed().await;
        let mut turns = 0;
        for n in calls..2 * calls {
            turns += store.transcript(&format!("CA{n:032x}")).await.unwrap().len();
        }
        println!(
            "  journal: {turns} turns stored ({:.0} per second of load), flushed {} ms after the load",
            turns as f64 / f64::from(seconds),
            started.elapsed().as_millis()
        );
    });
}

/// `calls` calls numbered from `first`, fed a frame every 20 ms for `seconds`: each frame's
/// latency in microseconds.
async fn run(
    settings: &CallSettings,
    tokens: &StreamTokens,
    calls: u32,
    seconds: u32,
    first: u32,
) -> Vec<u64> {
    let mut active = Vec::new();
    for n in first..first + calls {
        active.push(start_call(settings, tokens, n).await);
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
    latencies_us
}

fn report(what: &str, calls: u32, latencies_us: &[u64]) {
    let at = |q: f64| latencies_us[((latencies_us.len() - 1) as f64 * q) as usize];
    println!(
        "realtime_path ({what}): {calls} calls, {} frames: added latency p50 {} us, p99 {} us, max {} us",
        latencies_us.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
}
