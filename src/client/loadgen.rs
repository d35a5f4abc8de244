//! `phone-agent loadgen`: many Twilio-faithful calls against a server, measuring what it adds.
//!
//! Each call posts the voice webhook, opens the media socket, and sends a 20 ms frame every 20 ms
//! whose first 16 bytes carry the frame's and the call's numbers. Against `ENGINES=loopback` every frame comes back
//! through the whole actor path; the time from sending frame n to receiving it is the latency the
//! server (and the loopback socket) adds. Marks are echoed on receipt. With `--idle` calls connect and
//! stay silent, for memory measurements (`--server-pid` reads the server's RSS once all are up).

use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use clap::Args;
use futures_util::future::join_all;

use crate::client::sim::{Received, TwilioAccountArgs, TwilioSim};

/// Twilio sends one 20 ms frame per 20 ms.
const FRAME_PERIOD: Duration = Duration::from_millis(20);

/// Options of `phone-agent loadgen`.
#[derive(Debug, Clone, Args)]
pub struct LoadgenArgs {
    /// Base URL of the server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// How to sign like Twilio.
    #[command(flatten)]
    pub account: TwilioAccountArgs,
    /// Concurrent calls.
    #[arg(long, default_value_t = 1)]
    pub calls: usize,
    /// How long each call streams (after the ramp).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Calls start spread over this period (their frame clocks spread over the 20 ms period).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub ramp: Duration,
    /// Client threads (each runs its share of the calls).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Connect and stay silent instead of streaming audio.
    #[arg(long)]
    pub idle: bool,
    /// Print this process's resident memory once every call is up (Linux).
    #[arg(long)]
    pub server_pid: Option<u32>,
}

/// What one call saw.
#[derive(Debug, Default)]
struct CallReport {
    failed: Option<String>,
    sent: u64,
    echoed: u64,
    latencies_us: Vec<u32>,
}

/// Runs the load and prints a report. Returns false if any call failed.
pub fn run(args: LoadgenArgs) -> bool {
    let threads = args.threads.clamp(1, args.calls.max(1));
    let (results, reports) = std::sync::mpsc::channel();
    let handles: Vec<_> = (0..threads)
        .map(|thread| {
            let args = args.clone();
            let results = results.clone();
            std::thread::spawn(move || {
                let system = actix_rt::System::new();
                let reports = system.block_on(run_thread(&args, thread, threads));
                let _ = results.send(reports);
            })
        })
        .collect();
    drop(results);
    if let Some(pid) = args.server_pid {
        std::thread::sleep(args.ramp + Duration::from_secs(2));
        match resident_kib(pid) {
            Some(kib) => say(format!("server rss with {} calls: {kib} KiB", args.calls)),
            None => say(format!("server rss: cannot read /proc/{pid}/status")),
        }
    }
    let mut all: Vec<CallReport> = reports.iter().flatten().collect();
    for handle in handles {
        let _ = handle.join();
    }
    print_report(&args, &mut all)
}

async fn run_thread(args: &LoadgenArgs, thread: usize, threads: usize) -> Vec<CallReport> {
    let sim = Rc::new(args.account.sim(&args.url));
    let calls = (thread..args.calls).step_by(threads).map(|index| {
        let sim = sim.clone();
        let stagger = start_offset(index, args.calls, args.ramp);
        let args = args.clone();
        async move {
            actix_rt::time::sleep(stagger).await;
            run_call(&sim, index, &args).await
        }
    });
    join_all(calls).await
}

/// When call `index` of `calls` starts: spread over `ramp`, and with the calls' 20 ms frame clocks
/// spread evenly over the frame period, as independent callers' are. (Naive `ramp × index / calls`
/// puts every call on the same one or two phases, and the server sees all frames at once.)
fn start_offset(index: usize, calls: usize, ramp: Duration) -> Duration {
    let calls = calls.max(1) as u32;
    let index = index as u32;
    let whole_frames = (ramp * index / calls).as_micros() / FRAME_PERIOD.as_micros();
    FRAME_PERIOD * whole_frames as u32 + FRAME_PERIOD * index / calls
}

async fn run_call(sim: &TwilioSim, index: usize, args: &LoadgenArgs) -> CallReport {
    let mut report = CallReport::default();
    let call_sid = format!("CA{:016x}{:016x}", std::process::id(), index);
    let answer = match sim.place_call(&call_sid).await {
        Ok(answer) => answer,
        Err(error) => return failed(report, error.to_string()),
    };
    let mut media = match sim.connect(&answer).await {
        Ok(media) => media,
        Err(error) => return failed(report, error.to_string()),
    };
    let mut sent_at: HashMap<u64, Instant> = HashMap::new();
    let mut ticker = actix_rt::time::interval(FRAME_PERIOD);
    let end = actix_rt::time::sleep(args.duration);
    tokio::pin!(end);
    let mut closed = None;
    loop {
        tokio::select! {
            _ = &mut end => break,
            _ = ticker.tick(), if !args.idle => {
                let number = report.sent;
                let mut frame = [0xFFu8; 160];
                frame[..8].copy_from_slice(&number.to_le_bytes());
                frame[8..16].copy_from_slice(&(index as u64).to_le_bytes());
                sent_at.insert(number, Instant::now());
                if let Err(error) = media.send_media(&frame).await {
                    return failed(report, error.to_string());
                }
                report.sent += 1;
            }
            received = media.recv() => match received {
                Some(Received::Media(audio)) if audio.len() >= 8 => {
                    let number = u64::from_le_bytes(audio[..8].try_into().expect("8 bytes"));
                    if let Some(at) = sent_at.remove(&number) {
                        report.echoed += 1;
                        report.latencies_us.push(at.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    }
                }
                Some(Received::Mark(name)) => {
                    if let Err(error) = media.send_mark(&name).await {
                        return failed(report, error.to_string());
                    }
                }
                Some(Received::Close { code, reason }) => {
                    closed = Some(format!("closed by server: {code:?} {reason}"));
                    break;
                }
                None => {
                    closed = Some("socket lost".to_owned());
                    break;
                }
                Some(_) => {}
            }
        }
    }
    if let Some(reason) = closed {
        return failed(report, reason);
    }
    let _ = media.send_stop().await;
    // Drain what is still in flight until the server closes.
    let _ = actix_rt::time::timeout(Duration::from_secs(2), async {
        while let Some(message) = media.recv().await {
            if matches!(message, Received::Close { .. }) {
                break;
            }
        }
    })
    .await;
    report
}

fn failed(mut report: CallReport, reason: String) -> CallReport {
    report.failed = Some(reason);
    report
}

fn print_report(args: &LoadgenArgs, reports: &mut [CallReport]) -> bool {
    let mut latencies: Vec<u32> = reports
        .iter_mut()
        .flat_map(|r| std::mem::take(&mut r.latencies_us))
        .collect();
    latencies.sort_unstable();
    let failures: Vec<&str> = reports.iter().filter_map(|r| r.failed.as_deref()).collect();
    let sent: u64 = reports.iter().map(|r| r.sent).sum();
    let echoed: u64 = reports.iter().map(|r| r.echoed).sum();
    say(format!(
        "calls: {} ok, {} failed; frames sent {sent}, echoed {echoed}",
        reports.len() - failures.len(),
        failures.len()
    ));
    for failure in failures.iter().take(5) {
        say(format!("  failed: {failure}"));
    }
    if !args.idle && !latencies.is_empty() {
        let at =
            |q: f64| f64::from(latencies[((latencies.len() - 1) as f64 * q) as usize]) / 1000.0;
        say(format!(
            "media->media latency (ms): p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}  (n={})",
            at(0.50),
            at(0.90),
            at(0.99),
            at(1.0),
            latencies.len()
        ));
    }
    failures.is_empty()
}

/// Prints a report line; a reader that went away (`| head`) is not an error worth a panic.
fn say(line: String) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout(), "{line}");
}

fn resident_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_phases_are_spread_over_the_period() {
        let ramp = Duration::from_secs(2);
        let mut phases: Vec<u128> = (0..100)
            .map(|i| start_offset(i, 100, ramp).as_micros() % FRAME_PERIOD.as_micros())
            .collect();
        phases.sort_unstable();
        phases.dedup();
        assert_eq!(phases.len(), 100);
        assert!(start_offset(99, 100, ramp) <= ramp);
    }
}
