//! Added latency of the actor path at real-time load: percentiles, not means.
//!
//! `cargo bench --bench realtime_path -- [CALLS] [SECONDS]` (defaults 100 and 5) starts CALLS call
//! actor trees on the loopback engines in one thread, as on one server worker, and feeds each a
//! `media` frame every 20 ms, the calls' frame clocks spread evenly over the period as independent
//! callers' are. Each frame's time from entering the MediaStream to its echo leaving it is recorded;
//! p50/p99/max are printed. No sockets and no client: this is what our code adds. The load runs
//! twice in one process: without a journal, then with every call's story written to SQLite by
//! the server's journal, its writer on a thread of its own as in the server: once at the turn
//! rate of real conversations, once with every loopback frame a turn; then without a journal
//! again, so one run shows the noise beside the difference (before/after figures on one machine
//! in one run).

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
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
use phone_agent_actors::engines::CallContext;
use phone_agent_actors::runtime::journal::{CallEvent, CallJournal};
use support::{settings, start_call};

/// Loopback turns per turn of a real conversation: loopback makes a caller and an agent turn of
/// every 20 ms frame; a caller with real engines takes a turn every few seconds (2 s here).
const LOOPBACK_TURNS_PER_REAL_TURN: u32 = 100;

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

        // The same load with every call's story written to SQLite, the writer on a thread of its
        // own as in the server (the system arbiter; calls run on HTTP workers).
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite://{}/bench.db", dir.path().display());
        let key = DataKey::from_base64("q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=").unwrap();
        let store = Store::open(&url, key).await.expect("store opens");
        let records = CallRecords::new(store.clone(), Arc::new(CallFeed::default()));
        let writer = actix_rt::Arbiter::new();
        let journal = Arc::new(StoreJournal::start(records, &writer.handle()));
        let passes = [
            (
                "journal to SQLite, a real conversation's turns",
                LOOPBACK_TURNS_PER_REAL_TURN,
            ),
            ("journal to SQLite, every loopback turn", 1),
        ];
        for (pass, (what, every)) in (1..).zip(passes) {
            let first = pass * calls;
            let mut journaled = settings(tokens.clone());
            journaled.journal = Some(Arc::new(Sampled::new(journal.clone(), every)));
            for n in first..first + calls {
                let (sid, from, to) = (format!("CA{n:032x}"), "+14155550100", "+14155550199");
                let call =
                    NewCall::from_twilio(&sid, Direction::Inbound, from, to, CallStatus::Ringing);
                store.insert_call(&call, 0).await.expect("call recorded");
            }
            let latencies = run(&journaled, &tokens, calls, seconds, first).await;
            report(what, calls, &latencies);
            let started = Instant::now();
            journal.flushed().await;
            let mut turns = 0;
            for n in first..first + calls {
                turns += store
                    .transcript(&format!("CA{n:032x}"))
                    .await
                    .unwrap()
                    .len();
            }
            println!(
                "  journal: about {} turns offered, {turns} stored ({:.0} per second of load), \
                 flushed {} ms after the load",
                latencies.len() as u32 * 2 / every,
                turns as f64 / f64::from(seconds),
                started.elapsed().as_millis()
            );
        }
        // The first pass again: the spread between the two is this machine's noise.
        let latencies = run(&plain, &tokens, calls, seconds, 10 * calls).await;
        report("no journal again", calls, &latencies);
        writer.stop();
    });
}

/// A journal that passes on one turn in `every` (and each call's start and end): the load of
/// real conversations, written for real.
struct Sampled {
    journal: Arc<StoreJournal>,
    every: u32,
    seen: AtomicU32,
}

impl Sampled {
    fn new(journal: Arc<StoreJournal>, every: u32) -> Self {
        Self {
            journal,
            every,
            seen: AtomicU32::new(0),
        }
    }
}

impl CallJournal for Sampled {
    fn record(&self, call: &CallContext, event: CallEvent) {
        let kept = match event {
            CallEvent::Started | CallEvent::Ended(_) => true,
            _ => self
                .seen
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(self.every),
        };
        if kept {
            self.journal.record(call, event);
        }
    }
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
