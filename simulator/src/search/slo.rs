//! Service-level objectives of a search: a percentile of a latency metric and its limit.

use serde::{Deserialize, Serialize};

/// Percentiles an SLO may name: those `summary.json` reports (100 is the maximum).
pub const SLO_PERCENTILES: [f64; 5] = [50.0, 90.0, 95.0, 99.0, 100.0];

/// A latency metric an SLO can bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SloMetric {
    /// Time to first token.
    Ttft,
    /// Time between consecutive output tokens.
    Tbt,
    /// Time per output token after the first.
    Tpot,
    /// End-to-end latency.
    E2e,
    /// Arrival to first batch.
    SchedulingDelay,
}

impl SloMetric {
    /// The name used in files.
    pub fn name(self) -> &'static str {
        match self {
            SloMetric::Ttft => "ttft",
            SloMetric::Tbt => "tbt",
            SloMetric::Tpot => "tpot",
            SloMetric::E2e => "e2e",
            SloMetric::SchedulingDelay => "scheduling_delay",
        }
    }
}

/// One `[[slo]]`: the `percentile` of `metric` must be at most `max_s`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloLimit {
    /// The metric.
    pub metric: SloMetric,
    /// The percentile, one of 50, 90, 95, 99, 100.
    pub percentile: f64,
    /// Its largest allowed value, seconds.
    pub max_s: f64,
}

impl SloLimit {
    /// `ttft_p90`.
    pub fn label(&self) -> String {
        format!("{}_p{}", self.metric.name(), self.percentile)
    }
}

/// Vidur's default SLOs.
pub fn default_slos() -> Vec<SloLimit> {
    vec![
        SloLimit {
            metric: SloMetric::Ttft,
            percentile: 90.0,
            max_s: 2.0,
        },
        SloLimit {
            metric: SloMetric::Tbt,
            percentile: 99.0,
            max_s: 0.2,
        },
        SloLimit {
            metric: SloMetric::SchedulingDelay,
            percentile: 99.0,
            max_s: 5.0,
        },
    ]
}
