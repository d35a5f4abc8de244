//! Turns the JSON reports of `benches/peers/run.sh` (one `phone-agent loadgen --json` per server)
//! into the comparison table for `docs/benchmarks.md` and an SVG plot of latency against calls.
//! Usage: `cargo run --release --example peers-report -- OUT.md OUT.svg REPORT.json...`; each
//! report whose server is named `phone-agent…` is compared with each of the others.

use std::path::Path;

use phone_agent::client::loadgen::report::{LoadReport, RoundReport};
use plotters::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [markdown, svg, inputs @ ..] = args.as_slice() else {
        return Err("usage: peers-report OUT.md OUT.svg REPORT.json...".into());
    };
    let reports = inputs
        .iter()
        .map(|path| Ok(serde_json::from_slice(&std::fs::read(path)?)?))
        .collect::<Result<Vec<LoadReport>, Box<dyn std::error::Error>>>()?;
    std::fs::write(markdown, table(&reports))?;
    plot(&reports, Path::new(svg))?;
    Ok(())
}

/// What one server achieved: its largest real-time round and what that round cost.
struct Summary<'a> {
    report: &'a LoadReport,
    best: Option<&'a RoundReport>,
}

impl<'a> Summary<'a> {
    fn of(report: &'a LoadReport) -> Self {
        let best = report
            .max_real_time_calls
            .and_then(|calls| report.rounds.iter().find(|r| r.calls == calls));
        Self { report, best }
    }

    fn max_calls(&self) -> Option<f64> {
        self.best.map(|r| r.calls as f64)
    }

    /// Percent of a core per call at the largest real-time load.
    fn cpu_per_call(&self) -> Option<f64> {
        let best = self.best?;
        Some(best.cpu_percent? / best.calls as f64)
    }

    /// KiB per call above idle at the largest real-time load.
    fn rss_per_call(&self) -> Option<f64> {
        let best = self.best?;
        let above = best.rss_kib?.saturating_sub(self.report.idle_rss_kib?);
        Some(above as f64 / best.calls as f64)
    }

    fn latency_at(&self, calls: usize) -> String {
        match self.report.rounds.iter().find(|r| r.calls == calls) {
            Some(r) if r.failed == 0 => {
                format!("{:.2} / {:.2}", r.latency_ms.p50, r.latency_ms.p99)
            }
            Some(r) => format!("{} of {calls} failed", r.failed),
            None => "—".to_owned(),
        }
    }
}

fn or_dash(value: Option<f64>, digits: usize) -> String {
    value.map_or_else(|| "—".to_owned(), |v| format!("{v:.digits$}"))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "—".to_owned(),
    }
}

fn table(reports: &[LoadReport]) -> String {
    let summaries: Vec<Summary> = reports.iter().map(Summary::of).collect();
    let Some(first) = reports.first() else {
        return String::new();
    };
    let m = &first.machine;
    let fixed = [50, 100, 200];
    let mut out = format!(
        "Measured by `benches/peers/run.sh` on {} ({} logical cores, Linux {}): each server in turn \
         on core 1, `phone-agent loadgen` on core 0, {:.0} s calls per round; real time = every call \
         connected, no frame lost, p99 < {:.0} ms.\n\n",
        m.cpu, m.cores, m.kernel, first.duration_s, first.p99_limit_ms
    );
    out += "| server | max real-time calls / core | CPU per call (% of a core) | RSS per call (KiB) | idle RSS (MiB) |";
    for calls in fixed {
        out += &format!(" p50 / p99 ms at {calls} calls |");
    }
    out += "\n|---|---|---|---|---|";
    out += &"---|".repeat(fixed.len());
    out += "\n";
    for s in &summaries {
        out += &format!(
            "| {} | {} | {} | {} | {} |",
            s.report.server,
            s.max_calls()
                .map_or_else(|| "none".to_owned(), |c| format!("{c:.0}")),
            or_dash(s.cpu_per_call(), 3),
            or_dash(s.rss_per_call(), 0),
            or_dash(s.report.idle_rss_kib.map(|k| k as f64 / 1024.0), 1),
        );
        for calls in fixed {
            out += &format!(" {} |", s.latency_at(calls));
        }
        out += "\n";
    }
    let (ours, others): (Vec<&Summary>, Vec<&Summary>) = summaries
        .iter()
        .partition(|s| s.report.server.starts_with("phone-agent"));
    out += "\n| ratio | real-time calls | CPU per call | RSS per call |\n|---|---|---|---|\n";
    for ours in &ours {
        for other in &others {
            out += &format!(
                "| {} ÷ {} | {} | {} | {} |\n",
                ours.report.server,
                other.report.server,
                ratio(ours.max_calls(), other.max_calls()),
                ratio(ours.cpu_per_call(), other.cpu_per_call()),
                ratio(ours.rss_per_call(), other.rss_per_call()),
            );
        }
    }
    out
}

fn plot(reports: &[LoadReport], path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let max_calls = reports
        .iter()
        .flat_map(|r| r.rounds.iter().map(|round| round.calls))
        .max()
        .unwrap_or(1) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "media→media p99 (solid) and p50 (dashed) against concurrent calls",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..max_calls * 1.05, (0.01_f64..10_000.0).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("concurrent calls (server on one core)")
        .y_desc("latency, ms (log)")
        .draw()?;
    let colours = [RED, BLUE, GREEN, MAGENTA];
    for (report, colour) in reports.iter().zip(colours) {
        let answered: Vec<&RoundReport> = report
            .rounds
            .iter()
            .filter(|r| r.latency_ms.n > 0)
            .collect();
        let p99: Vec<(f64, f64)> = answered
            .iter()
            .map(|r| (r.calls as f64, r.latency_ms.p99.max(0.01)))
            .collect();
        let p50: Vec<(f64, f64)> = answered
            .iter()
            .map(|r| (r.calls as f64, r.latency_ms.p50.max(0.01)))
            .collect();
        chart
            .draw_series(LineSeries::new(p99.clone(), colour.stroke_width(2)))?
            .label(report.server.clone())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2)));
        chart.draw_series(p99.iter().map(|&at| Circle::new(at, 3, colour.filled())))?;
        chart.draw_series(DashedLineSeries::new(p50, 4, 4, colour.stroke_width(1)))?;
    }
    let limit = reports.first().map_or(50.0, |r| r.p99_limit_ms);
    chart.draw_series(DashedLineSeries::new(
        [(0.0, limit), (max_calls * 1.05, limit)],
        6,
        3,
        BLACK.stroke_width(1),
    ))?;
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    root.present()?;
    Ok(())
}
