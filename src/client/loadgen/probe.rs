//! What a server process costs, read from `/proc` (Linux): CPU time and resident memory.

use std::time::Instant;

/// Reads one process's CPU time and resident memory.
#[derive(Debug, Clone, Copy)]
pub struct ServerProbe {
    pid: u32,
    ticks_per_second: u64,
}

/// The process's CPU time used up to a moment.
#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    at: Instant,
    ticks: u64,
}

impl ServerProbe {
    /// A probe of process `pid`.
    pub fn new(pid: u32) -> Self {
        Self {
            pid,
            ticks_per_second: rustix::param::clock_ticks_per_second().max(1),
        }
    }

    /// The process's user and system CPU time so far, or `None` if it cannot be read.
    pub fn cpu(&self) -> Option<CpuSample> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).ok()?;
        Some(CpuSample {
            at: Instant::now(),
            ticks: cpu_ticks(&stat)?,
        })
    }

    /// The share of one core the process used between two samples, in percent.
    pub fn cpu_percent(&self, from: CpuSample, to: CpuSample) -> f64 {
        let wall = to.at.duration_since(from.at).as_secs_f64();
        let busy = to.ticks.saturating_sub(from.ticks) as f64 / self.ticks_per_second as f64;
        if wall > 0.0 {
            100.0 * busy / wall
        } else {
            0.0
        }
    }

    /// The process's resident memory in KiB (`VmRSS`), or `None` if it cannot be read. A file
    /// mapped twice counts twice.
    pub fn rss_kib(&self) -> Option<u64> {
        self.field_kib("status", "VmRSS:")
    }

    /// The process's proportional share of memory in KiB (`Pss` of `smaps_rollup`): pages mapped
    /// several times count once, pages shared with other processes in part.
    pub fn pss_kib(&self) -> Option<u64> {
        self.field_kib("smaps_rollup", "Pss:")
    }

    /// The value in KiB of the line starting with `field` in `/proc/PID/FILE`.
    fn field_kib(&self, file: &str, field: &str) -> Option<u64> {
        let text = std::fs::read_to_string(format!("/proc/{}/{file}", self.pid)).ok()?;
        let line = text.lines().find(|line| line.starts_with(field))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }
}

/// `utime + stime` from a `/proc/PID/stat` line. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted after its closing parenthesis.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_fields_14_and_15() {
        // As proc(5) lays the line out, with a command name that holds a space and a parenthesis.
        let stat = "4242 (my (odd) app) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                    1234 567 0 0 20 0 3 0 100 1000000 250 18446744073709551615";
        assert_eq!(cpu_ticks(stat), Some(1234 + 567));
    }

    #[test]
    fn this_process_can_be_read() {
        let probe = ServerProbe::new(std::process::id());
        assert!(probe.rss_kib().is_some_and(|kib| kib > 0));
        let from = probe.cpu().expect("cpu");
        let to = probe.cpu().expect("cpu");
        assert!(probe.cpu_percent(from, to) >= 0.0);
    }
}
