//! `phone-agent loadgen`: many Twilio-faithful calls against a server, measuring what it adds.
//!
//! Each call posts the voice webhook, opens the media socket, and sends a 20 ms frame every 20 ms
//! carrying an in-band marker with the frame's number ([`marker`]). Against `ENGINES=loopback` every
//! frame comes back through the whole actor path; the time from sending frame n to finding its
//! marker in the audio that comes back is the latency the server (and the loopback socket) adds.
//! Marks are echoed on receipt. `--ws-url` skips the voice webhook and opens the media socket of
//! any server speaking Twilio Media Streams (the peers of `benches/peers/run.sh`).
//!
//! `--server-pid` samples the server's CPU time and resident memory from `/proc` ([`probe`]) while
//! every call streams; `--ramp FROM:STEP:TO` runs rounds of growing load until one misses real
//! time (a call refused or failed, a frame lost, or p99 over `--p99-limit`), and reports the
//! largest that met it; a single round passes if every call the server admitted met real time
//! (calls it refused at capacity, answering with a hang-up, are counted apart); `--json` writes every round ([`report`]). With `--idle` calls connect and stay silent, for
//! memory measurements.

pub mod echoes;
pub mod marker;
pub mod probe;
pub mod report;

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use futures_util::future::join_all;

use crate::client::sim::{
    random_sid, MediaConnection, Received, SimError, StreamStart, TwilioAccountArgs, TwilioSim,
};
use echoes::{Echo, Echoes};
use marker::MarkerScanner;
use probe::ServerProbe;
use report::{LoadReport, Ramp, RoundReport};

/// Twilio sends one 20 ms frame per 20 ms.
const FRAME_PERIOD: Duration = Duration::from_millis(20);

/// How long a call waits, once it stops sending, for the frames still in flight.
const DRAIN: Duration = Duration::from_secs(1);

/// Options of `phone-agent loadgen`.
#[derive(Debug, Clone, Args)]
pub struct LoadgenArgs {
    /// Base URL of the server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Open this media socket directly (`ws://host:port/path`), without the voice webhook: for
    /// servers other than phone-agent that speak Twilio Media Streams.
    #[arg(long)]
    pub ws_url: Option<String>,
    /// How to sign like Twilio.
    #[command(flatten)]
    pub account: TwilioAccountArgs,
    /// Concurrent calls (of the single round; `--ramp` sets each round's).
    #[arg(long, default_value_t = 1)]
    pub calls: usize,
    /// Rounds of growing load, `FROM:STEP:TO` calls, until one misses real time.
    #[arg(long)]
    pub ramp: Option<Ramp>,
    /// How long each call streams.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Calls start spread over this period (their frame clocks spread over the 20 ms period).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub spread: Duration,
    /// Frames per turn of the server's loopback engines (its `LOOPBACK_TURN_FRAMES`): latency is
    /// then measured from a turn's last frame sent to its first frame back.
    #[arg(long, default_value_t = 1, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=500))]
    pub turn_frames: usize,
    /// The p99 latency a round must stay under to count as real time.
    #[arg(long, default_value = "50ms", value_parser = humantime::parse_duration)]
    pub p99_limit: Duration,
    /// Pause between rounds, for the server to close the last round's calls.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub settle: Duration,
    /// Client threads (each runs its share of the calls).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Connect and stay silent instead of streaming audio.
    #[arg(long)]
    pub idle: bool,
    /// The server's process id: its CPU and resident memory are sampled while the calls stream.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// The server's name in the report.
    #[arg(long, default_value = "phone-agent")]
    pub label: String,
    /// Write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// What one call saw.
#[derive(Debug, Default)]
struct CallReport {
    /// The voice webhook answered with a hang-up: the server refused the call (at capacity).
    refused: bool,
    failed: Option<String>,
    sent: u64,
    echoed: u64,
    latencies_us: Vec<u32>,
}

/// Counters every call of a round adds to, for the progress bar.
#[derive(Debug, Default)]
struct Progress {
    connected: AtomicU64,
    failed: AtomicU64,
    sent: AtomicU64,
    echoed: AtomicU64,
}

/// Runs the load (one round, or the ramp) and prints a report. Returns false if a single round had
/// a failed call, or the ramp found no load that met real time.
pub fn run(args: LoadgenArgs) -> bool {
    let probe = args.server_pid.map(ServerProbe::new);
    let mut report = LoadReport::new(&args, probe.and_then(|p| p.rss_kib()));
    let loads = match &args.ramp {
        Some(ramp) => ramp.loads(),
        None => vec![args.calls],
    };
    for (index, &calls) in loads.iter().enumerate() {
        if index > 0 {
            std::thread::sleep(args.settle);
        }
        let round = run_round(&args, calls, probe);
        say(round.summary(report.idle_rss_kib));
        let met = round.real_time(args.p99_limit);
        report.rounds.push(round);
        if args.ramp.is_some() && !met {
            break;
        }
    }
    if args.ramp.is_some() {
        match report.max_real_time_calls(args.p99_limit) {
            Some(calls) => say(format!("largest load in real time: {calls} calls")),
            None => say("no load met real time".to_owned()),
        }
    }
    if let Some(path) = &args.json {
        if let Err(error) = report.write(path) {
            say(format!("cannot write {}: {error}", path.display()));
            return false;
        }
    }
    match &args.ramp {
        Some(_) => report.max_real_time_calls(args.p99_limit).is_some(),
        None => report.rounds.iter().all(|round| round.failed == 0),
    }
}

/// One round: `calls` calls at once, with the server sampled while all of them stream.
fn run_round(args: &LoadgenArgs, calls: usize, probe: Option<ServerProbe>) -> RoundReport {
    let progress = Arc::new(Progress::default());
    let started = Instant::now();
    let threads = args.threads.clamp(1, calls.max(1));
    let handles: Vec<_> = (0..threads)
        .map(|thread| {
            let args = args.clone();
            let progress = progress.clone();
            std::thread::spawn(move || {
                actix_rt::System::new()
                    .block_on(run_thread(&args, calls, thread, threads, &progress))
            })
        })
        .collect();
    let (cpu_percent, rss_kib) = sample(probe, args, started, &progress, calls);
    let mut reports: Vec<CallReport> = handles
        .into_iter()
        .flat_map(|handle| handle.join().unwrap_or_default())
        .collect();
    let mut latencies: Vec<u32> = reports
        .iter_mut()
        .flat_map(|r| std::mem::take(&mut r.latencies_us))
        .collect();
    latencies.sort_unstable();
    let failures: Vec<&str> = reports.iter().filter_map(|r| r.failed.as_deref()).collect();
    let sent: u64 = reports.iter().map(|r| r.sent).sum();
    let echoed: u64 = reports.iter().map(|r| r.echoed).sum();
    RoundReport {
        calls,
        refused: reports.iter().filter(|r| r.refused).count(),
        failed: failures.len(),
        failures: failures.iter().take(5).map(|&f| f.to_owned()).collect(),
        sent,
        echoed,
        latency_ms: report::Percentiles::of_sorted_us(&latencies),
        cpu_percent,
        rss_kib,
    }
}

/// Draws the progress bar while the calls stream and, given a probe, samples the server while
/// every call streams (from the end of the spread to the end of the first call): its share of a
/// core, and its largest resident memory.
fn sample(
    probe: Option<ServerProbe>,
    args: &LoadgenArgs,
    started: Instant,
    progress: &Progress,
    calls: usize,
) -> (Option<f64>, Option<u64>) {
    let margin = Duration::from_millis(500);
    let window = (
        started + args.spread + margin,
        started + args.duration.saturating_sub(margin),
    );
    let last_turn = FRAME_PERIOD * 2 * args.turn_frames as u32;
    let bar = progress_bar(calls, args.spread + args.duration + last_turn + DRAIN);
    let (mut first, mut last, mut rss) = (None, None, None::<u64>);
    let mut tick = Instant::now();
    while tick < window.1.max(started + args.spread + args.duration) {
        tick += Duration::from_millis(250);
        std::thread::sleep(tick.saturating_duration_since(Instant::now()));
        bar.set_position(started.elapsed().as_secs());
        bar.set_message(format!(
            "connected {} failed {} frames sent {} echoed {}",
            progress.connected.load(Ordering::Relaxed),
            progress.failed.load(Ordering::Relaxed),
            progress.sent.load(Ordering::Relaxed),
            progress.echoed.load(Ordering::Relaxed)
        ));
        let Some(probe) = probe.filter(|_| tick >= window.0 && tick <= window.1) else {
            continue;
        };
        let cpu = probe.cpu();
        first = first.or(cpu);
        last = cpu.or(last);
        rss = rss.max(probe.rss_kib());
    }
    bar.finish_and_clear();
    let cpu = match (probe, first, last) {
        (Some(probe), Some(from), Some(to)) if window.1 > window.0 => {
            Some(probe.cpu_percent(from, to))
        }
        _ => None,
    };
    (cpu, rss)
}

/// A progress bar on the terminal (hidden when stderr is not one).
fn progress_bar(calls: usize, length: Duration) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(length.as_secs());
    let style = indicatif::ProgressStyle::with_template(&format!(
        "{calls:>5} calls [{{bar:30}}] {{pos}}/{{len}} s  {{msg}}"
    ))
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

async fn run_thread(
    args: &LoadgenArgs,
    calls: usize,
    thread: usize,
    threads: usize,
    progress: &Progress,
) -> Vec<CallReport> {
    let sim = Rc::new(match &args.ws_url {
        // The sim sends a URL's path and query to its own base: the scheme and host of `--ws-url`.
        Some(url) => TwilioSim::new(origin(&url.replacen("ws", "http", 1))),
        None => args.account.sim(&args.url),
    });
    let calls = (thread..calls).step_by(threads).map(|index| {
        let sim = sim.clone();
        let stagger = start_offset(index, calls, args.spread);
        async move {
            actix_rt::time::sleep(stagger).await;
            let report = run_call(&sim, args, progress).await;
            if report.failed.is_some() {
                progress.failed.fetch_add(1, Ordering::Relaxed);
            }
            report
        }
    });
    join_all(calls).await
}

/// When call `index` of `calls` starts: spread over `spread`, and with the calls' 20 ms frame
/// clocks spread evenly over the frame period, as independent callers' are. (Naive
/// `spread × index / calls` puts every call on the same one or two phases, and the server sees all
/// frames at once.)
fn start_offset(index: usize, calls: usize, spread: Duration) -> Duration {
    let calls = calls.max(1) as u32;
    let index = index as u32;
    let whole_frames = (spread * index / calls).as_micros() / FRAME_PERIOD.as_micros();
    FRAME_PERIOD * whole_frames as u32 + FRAME_PERIOD * index / calls
}

/// The scheme and host of `url`: `http://h:1/ws?x` → `http://h:1`.
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |at| at + 3);
    match url[after_scheme..].find(['/', '?']) {
        Some(at) => &url[..after_scheme + at],
        None => url,
    }
}

/// Opens a call's media socket: through the voice webhook, or straight to `--ws-url`.
async fn open_call(sim: &TwilioSim, args: &LoadgenArgs) -> Result<MediaConnection, SimError> {
    // A new CallSid for every call, as Twilio gives: the server takes one stream per CallSid
    // (a replayed one is refused), so a round must not reuse the last round's.
    let call_sid = random_sid("CA");
    match &args.ws_url {
        Some(url) => {
            let mut media = sim.open_stream(url).await?;
            media.send_connected().await?;
            media
                .send_start_with(StreamStart {
                    account_sid: crate::client::sim::DEFAULT_ACCOUNT_SID,
                    call_sid: &call_sid,
                    custom_parameters: &[],
                })
                .await?;
            Ok(media)
        }
        None => {
            let answer = sim.place_call(&call_sid).await?;
            sim.connect(&answer).await
        }
    }
}

async fn run_call(sim: &TwilioSim, args: &LoadgenArgs, progress: &Progress) -> CallReport {
    let mut report = CallReport::default();
    let mut media = match open_call(sim, args).await {
        Ok(media) => media,
        Err(SimError::Twiml(twiml)) if twiml.contains("<Hangup") => {
            report.refused = true;
            return report;
        }
        Err(error) => return failed(report, error.to_string()),
    };
    progress.connected.fetch_add(1, Ordering::Relaxed);
    let mut echoes = Echoes::new(args.turn_frames);
    let mut scanner = MarkerScanner::default();
    let mut ticker = actix_rt::time::interval(FRAME_PERIOD);
    let stop_sending = actix_rt::time::sleep(args.duration);
    // The last turn is finished (up to a turn more of frames) and answered (a turn's worth).
    let last_turn = FRAME_PERIOD * 2 * args.turn_frames as u32;
    let hang_up = actix_rt::time::sleep(args.duration + last_turn + DRAIN);
    tokio::pin!(stop_sending, hang_up);
    let mut sending = !args.idle;
    let mut stopping = args.idle;
    let mut closed = None;
    loop {
        tokio::select! {
            _ = &mut hang_up => break,
            _ = &mut stop_sending, if !stopping => stopping = true,
            _ = ticker.tick(), if sending => {
                let frame = marker::frame(echoes.sent(Instant::now()));
                if let Err(error) = media.send_media(&frame).await {
                    return failed(report, error.to_string());
                }
                report.sent += 1;
                progress.sent.fetch_add(1, Ordering::Relaxed);
                // The last turn is sent whole, or it would never be answered.
                sending = !(stopping && echoes.whole_turns());
            }
            received = media.recv() => match received {
                Some(Received::Media(audio)) => scanner.feed(&audio, |number| {
                    if let Echo::Back(latency) = echoes.echoed(number, Instant::now()) {
                        report.echoed += 1;
                        progress.echoed.fetch_add(1, Ordering::Relaxed);
                        if let Some(latency) = latency {
                            report.latencies_us.push(latency.as_micros().min(u32::MAX as u128) as u32);
                        }
                    }
                }),
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
        if !sending && report.echoed == report.sent && !args.idle {
            break;
        }
    }
    if let Some(reason) = closed {
        return failed(report, reason);
    }
    let _ = media.send_stop().await;
    let _ = media.close().await;
    report
}

fn failed(mut report: CallReport, reason: String) -> CallReport {
    report.failed = Some(reason);
    report
}

/// Prints a report line; a reader that went away (`| head`) is not an error worth a panic.
fn say(line: String) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout(), "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_phases_are_spread_over_the_period() {
        let spread = Duration::from_secs(2);
        let mut phases: Vec<u128> = (0..100)
            .map(|i| start_offset(i, 100, spread).as_micros() % FRAME_PERIOD.as_micros())
            .collect();
        phases.sort_unstable();
        phases.dedup();
        assert_eq!(phases.len(), 100);
        assert!(start_offset(99, 100, spread) <= spread);
    }

    #[test]
    fn the_origin_is_scheme_and_host() {
        assert_eq!(origin("http://127.0.0.1:8765/ws"), "http://127.0.0.1:8765");
        assert_eq!(origin("http://h:1?x=/y"), "http://h:1");
        assert_eq!(origin("http://h:1"), "http://h:1");
    }
}
