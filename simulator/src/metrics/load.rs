//! The workload as it arrived (`summary.json` section `workload`) and whether the deployment kept
//! up with it (section `load`, the overload verdict shown first by the terminal summary, the
//! report, `simulator compare` and `simulator sweep`). docs/metrics.md gives the rules.

use serde::{Deserialize, Serialize};

use super::summary::Summary;
use crate::workload::RequestSpec;

/// What arrived, measured from the generated requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadFacts {
    /// Requests that arrived.
    pub requests: u64,
    /// First arrival, simulated seconds.
    pub first_arrival_s: f64,
    /// Last arrival, simulated seconds.
    pub last_arrival_s: f64,
    /// Offered load: arrived requests over the time of the last arrival (as `vllm bench serve`
    /// paces N requests at rate R to end at N/R); `None` when every request arrives at time 0.
    pub offered_rate_per_s: Option<f64>,
    /// Mean prompt length, tokens.
    pub prompt_tokens_mean: f64,
    /// Longest prompt, tokens.
    pub prompt_tokens_max: u32,
    /// Mean output length, tokens.
    pub output_tokens_mean: f64,
    /// Longest output, tokens.
    pub output_tokens_max: u32,
}

/// Streaming tally of the requests handed to the engine. The engine reads one request ahead, so
/// the latest one is held back until the next arrives or [`ArrivalTally::facts`] is asked for the
/// requests that arrived by the end of the run.
#[derive(Debug, Clone, Default)]
pub struct ArrivalTally {
    count: u64,
    first_ns: u64,
    last_ns: u64,
    prompt_sum: u64,
    prompt_max: u32,
    output_sum: u64,
    output_max: u32,
    pending: Option<(u64, u32, u32)>,
}

impl ArrivalTally {
    /// Records a request as the engine pulls it.
    pub fn record(&mut self, r: &RequestSpec) {
        if let Some(p) = self
            .pending
            .replace((r.arrival_ns, r.prefill_tokens, r.decode_tokens))
        {
            self.commit(p);
        }
    }

    fn commit(&mut self, (t, prompt, output): (u64, u32, u32)) {
        if self.count == 0 {
            self.first_ns = t;
        }
        self.count += 1;
        self.last_ns = t;
        self.prompt_sum += u64::from(prompt);
        self.prompt_max = self.prompt_max.max(prompt);
        self.output_sum += u64::from(output);
        self.output_max = self.output_max.max(output);
    }

    /// The facts of the requests that arrived by `end_ns` (the end of the run).
    pub fn facts(&self, end_ns: u64) -> WorkloadFacts {
        let mut t = self.clone();
        if let Some(p) = t.pending.take().filter(|p| p.0 <= end_ns) {
            t.commit(p);
        }
        let n = t.count.max(1) as f64;
        let last_s = t.last_ns as f64 * 1e-9;
        WorkloadFacts {
            requests: t.count,
            first_arrival_s: t.first_ns as f64 * 1e-9,
            last_arrival_s: last_s,
            offered_rate_per_s: (t.count > 0 && t.last_ns > 0).then(|| t.count as f64 / last_s),
            prompt_tokens_mean: t.prompt_sum as f64 / n,
            prompt_tokens_max: t.prompt_max,
            output_tokens_mean: t.output_sum as f64 / n,
            output_tokens_max: t.output_max,
        }
    }
}

/// Streaming least-squares fit of a value against time (Welford's updates, so it is stable for
/// long runs): the metrics fit each finished request's TTFT against its arrival time. A queue that
/// grows through the run makes TTFT grow with arrival time; a steady one does not.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Trend {
    n: f64,
    mean_t: f64,
    mean_y: f64,
    m2_t: f64,
    c_ty: f64,
}

impl Trend {
    /// Adds a point (`t`, `y`), seconds.
    pub fn add(&mut self, t: f64, y: f64) {
        self.n += 1.0;
        let dt = t - self.mean_t;
        self.mean_t += dt / self.n;
        self.mean_y += (y - self.mean_y) / self.n;
        self.m2_t += dt * (t - self.mean_t);
        self.c_ty += dt * (y - self.mean_y);
    }

    /// The fitted slope (seconds of `y` per second of `t`; 0 with fewer than two distinct times).
    pub fn slope(&self) -> f64 {
        if self.m2_t > 0.0 {
            self.c_ty / self.m2_t
        } else {
            0.0
        }
    }
}

/// The verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadStatus {
    /// The deployment kept up with the offered load.
    Ok,
    /// It did not: the queue grew through the run (see the reasons).
    Overloaded,
    /// The run cannot tell: every request arrived at time 0, nothing finished, or requests
    /// arrived over too short a time to tell a growing queue from a steady one.
    NotJudged,
}

impl LoadStatus {
    /// `ok`, `overloaded` or `not judged`.
    pub fn label(self) -> &'static str {
        match self {
            LoadStatus::Ok => "ok",
            LoadStatus::Overloaded => "overloaded",
            LoadStatus::NotJudged => "not judged",
        }
    }
}

/// Whether the run kept up with its load, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadVerdict {
    /// The verdict.
    pub status: LoadStatus,
    /// Completed requests per second over offered requests per second (`None` without an
    /// offered rate).
    pub served_fraction: Option<f64>,
    /// Simulated time from the last arrival to the end of the run, s.
    pub drain_s: f64,
    /// Slope of the least-squares fit of TTFT against arrival time: seconds of extra TTFT per
    /// second of the run (0 for a steady queue, `1 − served/offered` for an overloaded one).
    #[serde(default)]
    pub ttft_growth: f64,
    /// The rules that fired, each with its numbers (empty when `ok`).
    pub reasons: Vec<String>,
    /// Facts worth a look that are not overload (a full KV cache with preemptions, a short run).
    pub notes: Vec<String>,
}

/// TTFT growing faster than this (seconds per second of arrivals) means the queue grows.
pub const TTFT_GROWTH: f64 = 0.02;
/// ... by more than this many seconds over the arrival span.
pub const TTFT_GROWTH_MIN_S: f64 = 1.0;
/// Unfinished requests above this share of the arrived ones mean the time limit cut a backlog.
pub const UNFINISHED_SHARE: f64 = 0.05;
/// Median queueing delay above this share of the arrival span means the queue grew through it.
pub const QUEUE_SHARE_OF_SPAN: f64 = 0.10;
/// Served fraction below which a long drain counts as a backlog.
pub const SERVED_FRACTION: f64 = 0.90;
/// A drain longer than this many median service times (E2E minus queueing) is a backlog.
pub const DRAIN_SERVICE_TIMES: f64 = 4.0;

fn pct(x: f64) -> String {
    format!("{:.0} %", x * 100.0)
}

/// Judges the run of summary `s`, workload `w` and TTFT trend `ttft` against the rules of
/// docs/metrics.md.
pub fn judge(s: &Summary, w: &WorkloadFacts, ttft: &Trend) -> LoadVerdict {
    let mut reasons = Vec::new();
    let mut notes = Vec::new();
    let r = &s.requests;
    let l = &s.latency;
    let drain_s = (s.simulated_time_s - w.last_arrival_s).max(0.0);
    let served_fraction = w
        .offered_rate_per_s
        .filter(|&o| o > 0.0)
        .map(|o| s.throughput.requests_per_s / o);
    let unfinished = r.arrived.saturating_sub(r.completed);
    if r.arrived > 0 && unfinished as f64 > UNFINISHED_SHARE * r.arrived as f64 {
        reasons.push(format!(
            "{unfinished} of {} requests ({}) were unfinished when the run stopped",
            r.arrived,
            pct(unfinished as f64 / r.arrived as f64)
        ));
    } else if unfinished > 0 {
        notes.push(format!(
            "{unfinished} requests were still in flight when the time limit stopped the run"
        ));
    }
    let span = w.last_arrival_s - w.first_arrival_s;
    let growth = ttft.slope();
    if growth > TTFT_GROWTH && growth * span > TTFT_GROWTH_MIN_S {
        reasons.push(format!(
            "time to first token grew by {:.2} s per second of arrivals ({:.1} s over the {span:.0} s over which requests arrived): the queue grew through the run",
            growth,
            growth * span
        ));
    }
    let queue = l.scheduling_delay_s.p50;
    if span > 0.0 && queue > QUEUE_SHARE_OF_SPAN * span && queue > 1.0 {
        reasons.push(format!(
            "the median request waited {queue:.1} s before its first batch, {} of the {span:.0} s over which requests arrived",
            pct(queue / span)
        ));
    }
    let service = (l.e2e_s.p50 - l.scheduling_delay_s.p50).max(1e-3);
    if let Some(f) = served_fraction {
        if f < SERVED_FRACTION && drain_s > DRAIN_SERVICE_TIMES * service {
            reasons.push(format!(
                "it served {:.2} of the {:.2} req/s offered ({}) and needed {drain_s:.0} s after the last arrival to finish, {:.0} times the median service time of {service:.1} s",
                s.throughput.requests_per_s,
                w.offered_rate_per_s.unwrap_or(0.0),
                pct(f),
                drain_s / service
            ));
        }
    }
    let kv_full = s.replicas.iter().any(|x| x.kv_usage_max >= 0.99);
    if kv_full && s.preemptions.total > 0 {
        notes.push(format!(
            "the KV cache filled up (peak {}) and requests were preempted {} times: memory-bound",
            pct(s
                .replicas
                .iter()
                .map(|x| x.kv_usage_max)
                .fold(0.0, f64::max)),
            s.preemptions.total
        ));
    }
    let too_short = span > 0.0 && span < DRAIN_SERVICE_TIMES * service;
    if too_short && reasons.is_empty() {
        notes.push(format!(
            "requests arrived over only {span:.1} s, less than {DRAIN_SERVICE_TIMES} median service times ({service:.1} s each): too short a run to tell a growing queue from a steady one; use more requests"
        ));
    }
    let status = if !reasons.is_empty() {
        LoadStatus::Overloaded
    } else if r.completed == 0 || w.offered_rate_per_s.is_none() || too_short {
        if w.offered_rate_per_s.is_none() && r.arrived > 0 {
            notes.push(
                "every request arrived at time 0 (a throughput test): there is no offered rate to keep up with"
                    .to_string(),
            );
        }
        LoadStatus::NotJudged
    } else {
        LoadStatus::Ok
    };
    LoadVerdict {
        status,
        served_fraction,
        drain_s,
        ttft_growth: growth,
        reasons,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trend_fits_the_slope() {
        let mut t = Trend::default();
        assert_eq!(t.slope(), 0.0);
        for i in 0..100 {
            let x = 1000.0 + i as f64;
            t.add(x, 0.25 * x + if i % 2 == 0 { 0.1 } else { -0.1 });
        }
        assert!((t.slope() - 0.25).abs() < 1e-3, "{}", t.slope());
    }

    #[test]
    fn tally_holds_back_the_request_read_ahead() {
        let mut t = ArrivalTally::default();
        for (i, at) in [1_000_000_000u64, 2_000_000_000, 9_000_000_000]
            .iter()
            .enumerate()
        {
            t.record(&RequestSpec::simple(*at, 100 + i as u32, 10));
        }
        let all = t.facts(10_000_000_000);
        assert_eq!(all.requests, 3);
        assert_eq!(all.prompt_tokens_max, 102);
        assert!((all.offered_rate_per_s.unwrap() - 3.0 / 9.0).abs() < 1e-12);
        let cut = t.facts(5_000_000_000);
        assert_eq!(cut.requests, 2, "the third arrives after the end");
        assert_eq!(cut.last_arrival_s, 2.0);
        let mut z = ArrivalTally::default();
        z.record(&RequestSpec::simple(0, 1, 1));
        assert_eq!(z.facts(5).offered_rate_per_s, None);
    }
}
