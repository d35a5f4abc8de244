//! Process-wide call metrics: per-turn latency histograms and counters of barge-ins, call ends,
//! engine faults and webhooks, rendered in the Prometheus text format for the server's `/metrics`.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::latency::TurnClock;

/// One label of a metric family.
type Label = [(&'static str, &'static str); 1];

/// An engine fault's labels: the engine and the kind of fault.
type EngineLabel = [(&'static str, &'static str); 2];

/// Latency buckets, in seconds: 5 ms to 10 s.
const LATENCY_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0, 10.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// What a barge-in did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BargeInOutcome {
    /// Soft stage: playback paused.
    Paused,
    /// The soft stage was not confirmed: playback resumed.
    Resumed,
    /// Hard stage: the agent's reply was cleared and cancelled.
    Interrupted,
}

impl BargeInOutcome {
    /// `paused`, `resumed` or `interrupted`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Paused => "paused",
            Self::Resumed => "resumed",
            Self::Interrupted => "interrupted",
        }
    }
}

/// The metrics every call reports to; shared by the process.
pub struct CallMetrics {
    registry: Registry,
    turn_latency: Family<Label, Histogram, fn() -> Histogram>,
    barge_ins: Family<Label, Counter>,
    calls_ended: Family<Label, Counter>,
    engine_faults: Family<EngineLabel, Counter>,
    webhooks: Family<EngineLabel, Counter>,
}

impl Default for CallMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("phone_agent");
        let turn_latency =
            Family::<Label, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        registry.register(
            "turn_latency_seconds",
            "Time from the end of the caller's speech to each stage of the agent's answer",
            turn_latency.clone(),
        );
        let barge_ins = Family::<Label, Counter>::default();
        registry.register(
            "barge_ins",
            "Caller speech over the agent, by outcome",
            barge_ins.clone(),
        );
        let calls_ended = Family::<Label, Counter>::default();
        registry.register("calls_ended", "Calls ended, by reason", calls_ended.clone());
        let engine_faults = Family::<EngineLabel, Counter>::default();
        registry.register(
            "engine_faults",
            "Faults of engine providers (connect, auth, rate_limited, server_error, stall, lost, \
             malformed), by engine and kind",
            engine_faults.clone(),
        );
        let webhooks = Family::<EngineLabel, Counter>::default();
        registry.register(
            "webhooks",
            "Webhooks received (accepted, duplicate, refused) and delivery attempts of those sent \
             (delivered, failed, dead, skipped), by direction and outcome",
            webhooks.clone(),
        );
        Self {
            registry,
            turn_latency,
            barge_ins,
            calls_ended,
            engine_faults,
            webhooks,
        }
    }
}

impl CallMetrics {
    /// Records the stages a turn's answer reached.
    pub fn turn(&self, clock: &TurnClock) {
        for (stage, latency) in clock.latencies() {
            self.turn_latency
                .get_or_create(&[("stage", stage.as_str())])
                .observe(latency.as_secs_f64());
        }
    }

    /// Counts a barge-in stage.
    pub fn barge_in(&self, outcome: BargeInOutcome) {
        self.barge_ins
            .get_or_create(&[("outcome", outcome.as_str())])
            .inc();
    }

    /// Counts a call's end; returns how many calls have ended for `reason`.
    pub fn call_ended(&self, reason: &'static str) -> u64 {
        self.calls_ended.get_or_create(&[("reason", reason)]).inc() + 1
    }

    /// Counts a fault of an engine's provider (`engine`: `openai`, `deepgram`, …; `kind`: what
    /// went wrong, a fixed name).
    pub fn engine_fault(&self, engine: &'static str, kind: &'static str) {
        self.engine_faults
            .get_or_create(&[("engine", engine), ("kind", kind)])
            .inc();
    }

    /// Counts a webhook received (`direction` `in`) or a delivery attempt of one sent (`out`),
    /// by `outcome`, a fixed name.
    pub fn webhook(&self, direction: &'static str, outcome: &'static str) {
        self.webhooks
            .get_or_create(&[("direction", direction), ("outcome", outcome)])
            .inc();
    }

    /// The metrics in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::ids::UtteranceId;
    use crate::runtime::latency::Stage;

    #[test]
    fn renders_histograms_and_counters() {
        let metrics = CallMetrics::default();
        let end = Instant::now();
        let mut clock = TurnClock::new(UtteranceId(1), end, None, end + Duration::from_millis(600));
        clock.reached(
            UtteranceId(1),
            Stage::FirstHeard,
            end + Duration::from_millis(900),
        );
        metrics.turn(&clock);
        metrics.barge_in(BargeInOutcome::Interrupted);
        metrics.call_ended("agent_ended");
        metrics.webhook("in", "refused");
        let text = metrics.render();
        assert!(
            text.contains("phone_agent_webhooks_total{direction=\"in\",outcome=\"refused\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("phone_agent_turn_latency_seconds_count{stage=\"first_heard\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "phone_agent_turn_latency_seconds_bucket{le=\"0.75\",stage=\"end_of_turn\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("phone_agent_barge_ins_total{outcome=\"interrupted\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("phone_agent_calls_ended_total{reason=\"agent_ended\"} 1"),
            "{text}"
        );
    }
}
