//! What `loadgen` found: each round's calls, frames, latency and the server's cost, as text and
//! as JSON (`--json`) for `benches/peers/`.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::LoadgenArgs;

/// Rounds of growing load: `FROM:STEP:TO` calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ramp {
    from: usize,
    step: usize,
    to: usize,
}

impl Ramp {
    /// Each round's number of calls, in order.
    pub fn loads(&self) -> Vec<usize> {
        (self.from..=self.to).step_by(self.step).collect()
    }
}

impl FromStr for Ramp {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let numbers: Vec<usize> = text
            .split(':')
            .map(|n| n.trim().parse::<usize>())
            .collect::<Result<_, _>>()
            .map_err(|_| format!("expected FROM:STEP:TO (whole numbers), got {text:?}"))?;
        match numbers[..] {
            [from, step, to] if from > 0 && step > 0 && from <= to => Ok(Self { from, step, to }),
            _ => Err(format!(
                "expected FROM:STEP:TO with 0 < FROM <= TO and STEP > 0, got {text:?}"
            )),
        }
    }
}

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
    /// How many latencies.
    pub n: usize,
}

impl Percentiles {
    /// The percentiles of `sorted` (microseconds, ascending); all zero when empty.
    pub fn of_sorted_us(sorted: &[u32]) -> Self {
        let at = |q: f64| match sorted.len() {
            0 => 0.0,
            n => f64::from(sorted[((n - 1) as f64 * q) as usize]) / 1000.0,
        };
        Self {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: at(1.0),
            n: sorted.len(),
        }
    }
}

/// One round of load.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoundReport {
    /// Calls started.
    pub calls: usize,
    /// Calls the server refused at capacity (its voice webhook answered with a hang-up).
    #[serde(default)]
    pub refused: usize,
    /// Calls that failed (could not connect, or lost their socket).
    pub failed: usize,
    /// The first few failures' reasons.
    pub failures: Vec<String>,
    /// Frames sent, over every call.
    pub sent: u64,
    /// Frames whose marker came back.
    pub echoed: u64,
    /// Send to echo, over every frame that came back.
    pub latency_ms: Percentiles,
    /// The server's share of one core while every call streamed, in percent.
    pub cpu_percent: Option<f64>,
    /// The server's largest resident memory while every call streamed, in KiB.
    pub rss_kib: Option<u64>,
}

impl RoundReport {
    /// Frames sent that never came back.
    pub fn lost(&self) -> u64 {
        self.sent.saturating_sub(self.echoed)
    }

    /// Whether the round met real time: every call up, no frame lost, p99 under `p99_limit`.
    pub fn real_time(&self, p99_limit: Duration) -> bool {
        self.refused == 0 && self.admitted_real_time(p99_limit)
    }

    /// Whether the calls the server admitted met real time (those it refused aside).
    pub fn admitted_real_time(&self, p99_limit: Duration) -> bool {
        self.failed == 0
            && self.lost() == 0
            && self.latency_ms.p99 < p99_limit.as_secs_f64() * 1000.0
    }

    /// The round in a few lines of text; memory per call is counted above `idle_rss_kib`.
    pub fn summary(&self, idle_rss_kib: Option<u64>) -> String {
        let mut text = format!(
            "calls: {} ok, {} refused, {} failed; frames sent {}, echoed {}, lost {}",
            self.calls - self.failed - self.refused,
            self.refused,
            self.failed,
            self.sent,
            self.echoed,
            self.lost()
        );
        for failure in &self.failures {
            text += &format!("\n  failed: {failure}");
        }
        let l = &self.latency_ms;
        if l.n > 0 {
            text += &format!(
                "\nmedia->media latency (ms): p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}  (n={})",
                l.p50, l.p90, l.p99, l.max, l.n
            );
        }
        if let Some(cpu) = self.cpu_percent {
            text += &format!(
                "\nserver cpu {cpu:.1} % of a core ({:.3} % per call)",
                cpu / self.calls.max(1) as f64
            );
        }
        if let Some(rss) = self.rss_kib {
            text += &format!("\nserver rss with {} calls: {rss} KiB", self.calls);
            if let Some(idle) = idle_rss_kib {
                text += &format!(
                    " ({:.1} KiB per call above idle {idle} KiB)",
                    rss.saturating_sub(idle) as f64 / self.calls.max(1) as f64
                );
            }
        }
        text
    }
}

/// The machine a run was measured on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    /// The processor's model name.
    pub cpu: String,
    /// Logical processors.
    pub cores: usize,
    /// The kernel's release.
    pub kernel: String,
}

impl Machine {
    /// This machine, as `/proc` describes it.
    pub fn this() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|line| line.strip_prefix("model name"))
            .and_then(|rest| rest.split_once(':'))
            .map_or("unknown", |(_, name)| name.trim())
            .to_owned();
        let cores = cpuinfo
            .lines()
            .filter(|line| line.starts_with("processor"))
            .count();
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or_else(|_| "unknown".to_owned(), |k| k.trim().to_owned());
        Self { cpu, cores, kernel }
    }
}

/// Everything one `loadgen` run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadReport {
    /// The server's name (`--label`).
    pub server: String,
    /// Where it ran.
    pub machine: Machine,
    /// How long each call streamed, in seconds.
    pub duration_s: f64,
    /// The real-time bound on p99, in milliseconds.
    pub p99_limit_ms: f64,
    /// The server's resident memory before the first round, in KiB.
    pub idle_rss_kib: Option<u64>,
    /// Each round, in order.
    pub rounds: Vec<RoundReport>,
    /// The largest round that met real time.
    pub max_real_time_calls: Option<usize>,
}

impl LoadReport {
    /// An empty report for a run with `args`.
    pub fn new(args: &LoadgenArgs, idle_rss_kib: Option<u64>) -> Self {
        Self {
            server: args.label.clone(),
            machine: Machine::this(),
            duration_s: args.duration.as_secs_f64(),
            p99_limit_ms: args.p99_limit.as_secs_f64() * 1000.0,
            idle_rss_kib,
            rounds: Vec::new(),
            max_real_time_calls: None,
        }
    }

    /// The largest round that met real time.
    pub fn max_real_time_calls(&self, p99_limit: Duration) -> Option<usize> {
        self.rounds
            .iter()
            .filter(|round| round.real_time(p99_limit))
            .map(|round| round.calls)
            .max()
    }

    /// Writes the report as JSON to `path`.
    pub fn write(&mut self, path: &Path) -> std::io::Result<()> {
        self.max_real_time_calls =
            self.max_real_time_calls(Duration::from_secs_f64(self.p99_limit_ms / 1000.0));
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(path, json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ramp_is_from_step_to() {
        let ramp: Ramp = "50:50:200".parse().expect("a ramp");
        assert_eq!(ramp.loads(), [50, 100, 150, 200]);
        assert_eq!(
            "10:7:30".parse::<Ramp>().map(|r| r.loads()),
            Ok(vec![10, 17, 24])
        );
        for bad in [
            "", "50", "50:0:100", "0:10:20", "30:10:20", "a:b:c", "1:2:3:4",
        ] {
            assert!(bad.parse::<Ramp>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_round_meets_real_time_only_whole() {
        let round = RoundReport {
            calls: 10,
            refused: 0,
            failed: 0,
            failures: Vec::new(),
            sent: 100,
            echoed: 100,
            latency_ms: Percentiles::of_sorted_us(&[1000, 2000, 49_000]),
            cpu_percent: None,
            rss_kib: None,
        };
        let limit = Duration::from_millis(50);
        assert!(round.real_time(limit));
        assert!(!RoundReport {
            echoed: 99,
            ..round.clone()
        }
        .real_time(limit));
        assert!(!RoundReport {
            failed: 1,
            ..round.clone()
        }
        .real_time(limit));
        let slow = Percentiles::of_sorted_us(&[50_000]);
        assert!(!RoundReport {
            latency_ms: slow,
            ..round
        }
        .real_time(limit));
    }
}
