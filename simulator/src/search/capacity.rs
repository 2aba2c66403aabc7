//! The capacity of one configuration: the highest arrival rate at which every SLO holds, found by
//! a saturation probe, bracketing (doubling or halving) and bisection to a relative tolerance.
//! Every step is a deterministic function of the configuration, so results do not depend on the
//! number of threads or on which shard runs the configuration.

use std::sync::Arc;

use predictor::{Catalog, ExecutionModel};
use serde::{Deserialize, Serialize};

use super::exec_cache::ExecCache;
use super::rate::RateKnob;
use super::space::{Candidate, SearchKnobs, SloLimit, SloMetric};
use crate::config::SimConfig;
use crate::metrics::miss_watch::{BoundMetric, LatencyBound};
use crate::metrics::summary::Summary;
use crate::metrics::Stats;
use crate::run::{simulate, RunOptions};

/// Arrival rate of the saturation probe, requests/s: every request arrives at once, in effect.
pub const PROBE_QPS: f64 = 1e6;
/// The probe stops at this multiple of `min_time_limit_s`.
pub const PROBE_TIME_LIMIT_FACTOR: f64 = 10.0;
/// Most requests of the probe (enough to fill any batch many times over).
pub const PROBE_MAX_REQUESTS: u64 = 2000;
/// Halvings below the probe's throughput before the search gives up.
const MAX_HALVINGS: u32 = 10;

/// Outcome of one configuration's search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Capacity found to the tolerance.
    Ok,
    /// `max_evaluations` ran out before the tolerance was reached (the capacity is a pass).
    NotConverged,
    /// Every rate tried passed, up to `max_evaluations`: the workload is too small to load the
    /// deployment (raise `num_requests`); the capacity is the highest rate tried.
    Unbounded,
    /// Even 1/1024 of the saturated throughput misses an SLO.
    NoRateMeetsSlos,
    /// The configuration cannot run (the reason says why).
    Invalid,
    /// A simulation failed (the reason says why).
    Failed,
}

impl Status {
    /// The name used in files.
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::NotConverged => "not_converged",
            Status::Unbounded => "unbounded",
            Status::NoRateMeetsSlos => "no_rate_meets_slos",
            Status::Invalid => "invalid",
            Status::Failed => "failed",
        }
    }

    /// True when the configuration has a capacity (a rate that met every SLO and a failing rate
    /// above it); only these rows compete for the best configuration and the frontier.
    pub fn has_capacity(self) -> bool {
        matches!(self, Status::Ok | Status::NotConverged)
    }
}

/// One simulation of the search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Arrival rate, requests/s.
    pub rate_qps: f64,
    /// Every SLO met.
    pub pass: bool,
    /// The SLOs missed, as `ttft_p90 = 2.4 s > 2 s`.
    pub violations: Vec<String>,
}

/// The search's answer for one configuration.
#[derive(Debug, Clone)]
pub struct Capacity {
    /// Outcome.
    pub status: Status,
    /// Why, for `invalid`, `failed`, `no_rate_meets_slos` and `unbounded`.
    pub reason: Option<String>,
    /// Highest passing rate, requests/s.
    pub capacity_qps: Option<f64>,
    /// Lowest failing rate above it, requests/s.
    pub fail_qps: Option<f64>,
    /// Saturated throughput measured by the probe, requests/s.
    pub probe_throughput_qps: Option<f64>,
    /// Expected arrival span at the capacity, s.
    pub arrival_span_s: Option<f64>,
    /// Every simulation, in order (the probe first).
    pub evaluations: Vec<Evaluation>,
    /// The configuration at the capacity (a `simulator run --config` file) and its summary.
    pub at_capacity: Option<(SimConfig, Summary)>,
}

/// The value of `s` at `percentile` (one of [`super::space::SLO_PERCENTILES`]).
pub fn percentile_of(s: &Stats, percentile: f64) -> f64 {
    match percentile as u32 {
        50 => s.p50,
        90 => s.p90,
        95 => s.p95,
        99 => s.p99,
        _ => s.max,
    }
}

/// The distribution of `metric` in `summary`.
pub fn stats_of(summary: &Summary, metric: SloMetric) -> &Stats {
    let l = &summary.latency;
    match metric {
        SloMetric::Ttft => &l.ttft_s,
        SloMetric::Tbt => &l.tbt_s,
        SloMetric::Tpot => &l.tpot_s,
        SloMetric::E2e => &l.e2e_s,
        SloMetric::SchedulingDelay => &l.scheduling_delay_s,
    }
}

/// The SLOs `summary` misses (empty: it meets them all). A run stopped by its time limit, or in
/// which no request finished, misses.
pub fn violations(summary: &Summary, time_limit_s: Option<f64>, slos: &[SloLimit]) -> Vec<String> {
    let mut v = Vec::new();
    let r = &summary.requests;
    if let Some(limit) = time_limit_s {
        if summary.simulated_time_s >= limit - 1e-6 {
            v.push(format!(
                "time limit of {limit} s reached with {} of {} arrived requests unfinished (queue growing)",
                r.arrived - r.completed,
                r.arrived
            ));
        }
    }
    if r.completed == 0 {
        v.push("no request finished".into());
        return v;
    }
    for s in slos {
        let x = percentile_of(stats_of(summary, s.metric), s.percentile);
        if x > s.max_s {
            v.push(format!("{} = {x:.4} s > {} s", s.label(), s.max_s));
        }
    }
    v
}

/// The SLOs a run can stop early on: those of a per-request latency (TBT, per output token, is
/// only judged at the end).
fn latency_bounds(slos: &[SloLimit]) -> Vec<LatencyBound> {
    slos.iter()
        .filter_map(|s| {
            let metric = match s.metric {
                SloMetric::Ttft => BoundMetric::Ttft,
                SloMetric::E2e => BoundMetric::E2e,
                SloMetric::SchedulingDelay => BoundMetric::SchedulingDelay,
                SloMetric::Tpot => BoundMetric::Tpot,
                SloMetric::Tbt => return None,
            };
            Some(LatencyBound {
                metric,
                percentile: s.percentile,
                max_s: s.max_s,
                label: s.label(),
            })
        })
        .collect()
}

/// Rounds to 6 significant digits (readable rates; the search stays deterministic).
fn round_rate(x: f64) -> f64 {
    if !(x.is_finite() && x > 0.0) {
        return x;
    }
    let scale = 10f64.powi(5 - x.log10().floor() as i32);
    (x * scale).round() / scale
}

struct Ctx<'a> {
    cand: &'a Candidate,
    knob: RateKnob,
    knobs: &'a SearchKnobs,
    slos: &'a [SloLimit],
    exec: Arc<dyn ExecutionModel>,
    /// The decode pool's, when disaggregated.
    decode_exec: Option<Arc<dyn ExecutionModel>>,
    evaluations: Vec<Evaluation>,
}

type Verdict = (bool, SimConfig, Summary);

impl Ctx<'_> {
    /// Simulates `rate`; with `stop_early`, a run that certainly misses an SLO stops there (the
    /// probe runs to the end: its throughput is used).
    fn run(
        &mut self,
        rate: f64,
        limit_s: f64,
        max_requests: u64,
        stop_early: bool,
    ) -> Result<Verdict, String> {
        let mut cfg = self.cand.config.clone();
        cfg.workload = self.knob.apply(&cfg.workload, rate);
        let n = cfg
            .workload
            .num_requests
            .unwrap_or(u64::MAX)
            .min(max_requests);
        if n != u64::MAX {
            cfg.workload.num_requests = Some(n);
        }
        cfg.time_limit_s = Some(limit_s);
        let opts = RunOptions {
            out_dir: None,
            quiet: true,
            exec_model: Some(self.exec.clone()),
            decode_exec_model: self.decode_exec.clone(),
            stop_at_certain_miss: if stop_early {
                latency_bounds(self.slos)
            } else {
                Vec::new()
            },
            step_by_step: false,
            threads: 1,
        };
        let out = simulate(&cfg, &opts).map_err(|e| e.to_string())?;
        let v = match &out.certain_miss {
            Some(why) => vec![why.clone()],
            None => violations(&out.summary, Some(limit_s), self.slos),
        };
        self.evaluations.push(Evaluation {
            rate_qps: rate,
            pass: v.is_empty(),
            violations: v.clone(),
        });
        Ok((v.is_empty(), cfg, out.summary))
    }

    fn evaluate(&mut self, rate: f64) -> Result<Verdict, String> {
        let span = self
            .knob
            .span_s(&self.cand.config.workload, rate, self.knobs.max_requests);
        let limit = (self.knobs.time_limit_factor * span).max(self.knobs.min_time_limit_s);
        self.run(
            rate,
            (limit * 1000.0).ceil() / 1000.0,
            self.knobs.max_requests,
            true,
        )
    }

    fn budget_left(&self) -> bool {
        (self.evaluations.len() as u32) < self.knobs.max_evaluations
    }
}

fn result(status: Status, reason: Option<String>, evaluations: Vec<Evaluation>) -> Capacity {
    Capacity {
        status,
        reason,
        capacity_qps: None,
        fail_qps: None,
        probe_throughput_qps: None,
        arrival_span_s: None,
        evaluations,
        at_capacity: None,
    }
}

/// Searches the capacity of `cand`.
pub fn search(
    cand: &Candidate,
    knob: RateKnob,
    knobs: &SearchKnobs,
    slos: &[SloLimit],
    cache: &ExecCache,
) -> Capacity {
    if let Some(why) = &cand.invalid {
        return result(Status::Invalid, Some(why.clone()), Vec::new());
    }
    let (exec, decode_exec) = match exec_models(&cand.config, cache) {
        Ok(e) => e,
        Err(e) => return result(Status::Invalid, Some(e), Vec::new()),
    };
    let mut ctx = Ctx {
        cand,
        knob,
        knobs,
        slos,
        exec,
        decode_exec,
        evaluations: Vec::new(),
    };
    match bracket_and_bisect(&mut ctx) {
        Ok(mut c) => {
            c.evaluations = ctx.evaluations;
            c.arrival_span_s = c
                .capacity_qps
                .map(|r| knob.span_s(&cand.config.workload, r, knobs.max_requests));
            c
        }
        Err(e) => result(Status::Failed, Some(e), ctx.evaluations),
    }
}

type ExecPair = (Arc<dyn ExecutionModel>, Option<Arc<dyn ExecutionModel>>);

/// The execution models of `cfg` from the cache: its replicas', or its prefill and decode
/// pools' when disaggregated.
fn exec_models(cfg: &SimConfig, cache: &ExecCache) -> Result<ExecPair, String> {
    match cfg.disaggregated().map_err(|e| e.to_string())? {
        Some(d) => Ok((
            cache.get(&d.prefill.config, &d.prefill.resolved)?,
            Some(cache.get(&d.decode.config, &d.decode.resolved)?),
        )),
        None => {
            let r = cfg
                .resolve(&Catalog::builtin())
                .map_err(|e| e.to_string())?;
            Ok((cache.get(cfg, &r)?, None))
        }
    }
}

fn bracket_and_bisect(ctx: &mut Ctx) -> Result<Capacity, String> {
    let probe_limit = ctx.knobs.min_time_limit_s * PROBE_TIME_LIMIT_FACTOR;
    let probe_requests = PROBE_MAX_REQUESTS.min(ctx.knobs.max_requests);
    let (probe_ok, probe_cfg, probe) = ctx.run(PROBE_QPS, probe_limit, probe_requests, false)?;
    // The probe held the whole workload, not a cut of a larger one (a `duration_s` workload, or
    // more requests than the probe takes, has more to offer at higher rates).
    let probe_held_all = ctx
        .cand
        .config
        .workload
        .num_requests
        .is_some_and(|n| n <= probe_requests);
    let throughput = if probe.simulated_time_s > 0.0 {
        probe.requests.completed as f64 / probe.simulated_time_s
    } else {
        0.0
    };
    if probe_ok && probe_held_all {
        let mut c = finish(
            Status::Unbounded,
            Some((PROBE_QPS, probe_cfg, probe)),
            None,
            throughput,
        );
        c.reason = Some(
            "every request arriving at once still meets the SLOs: the workload is too small to load this deployment; raise workload.num_requests or use workload.duration_s".into(),
        );
        return Ok(c);
    }
    let r0 = if throughput > 0.0 {
        round_rate(throughput)
    } else {
        1.0
    };
    let mut pass: Option<(f64, SimConfig, Summary)> = None;
    let mut fail: Option<f64> = None;
    let (ok, cfg, sum) = ctx.evaluate(r0)?;
    if ok {
        pass = Some((r0, cfg, sum));
        let mut r = r0;
        while fail.is_none() {
            if !ctx.budget_left() {
                let mut c = finish(Status::Unbounded, pass, None, throughput);
                c.reason = Some(format!(
                    "every rate up to {r} req/s met the SLOs: the workload is too small to load this deployment; raise workload.num_requests"
                ));
                return Ok(c);
            }
            r = round_rate(r * 2.0);
            let (ok, cfg, sum) = ctx.evaluate(r)?;
            if ok {
                pass = Some((r, cfg, sum));
            } else {
                fail = Some(r);
            }
        }
    } else {
        fail = Some(r0);
        let mut r = r0;
        for _ in 0..MAX_HALVINGS {
            if !ctx.budget_left() {
                break;
            }
            r = round_rate(r / 2.0);
            let (ok, cfg, sum) = ctx.evaluate(r)?;
            if ok {
                pass = Some((r, cfg, sum));
                break;
            }
            fail = Some(r);
        }
        if pass.is_none() {
            let last = ctx.evaluations.last().map(|e| e.violations.join("; "));
            let mut c = finish(Status::NoRateMeetsSlos, None, fail, throughput);
            c.reason = Some(format!(
                "no rate down to {r} req/s meets the SLOs (at that rate: {})",
                last.unwrap_or_default()
            ));
            return Ok(c);
        }
    }
    loop {
        let lo = pass.as_ref().map(|p| p.0).unwrap_or(0.0);
        let hi = fail.unwrap_or(lo);
        if hi - lo <= ctx.knobs.tolerance * lo {
            return Ok(finish(Status::Ok, pass, fail, throughput));
        }
        if !ctx.budget_left() {
            let mut c = finish(Status::NotConverged, pass, fail, throughput);
            c.reason = Some(format!(
                "max_evaluations ran out with the capacity between {lo} and {hi} req/s"
            ));
            return Ok(c);
        }
        let mid = round_rate((lo + hi) / 2.0);
        if mid <= lo || mid >= hi {
            return Ok(finish(Status::Ok, pass, fail, throughput));
        }
        let (ok, cfg, sum) = ctx.evaluate(mid)?;
        if ok {
            pass = Some((mid, cfg, sum));
        } else {
            fail = Some(mid);
        }
    }
}

fn finish(
    status: Status,
    pass: Option<(f64, SimConfig, Summary)>,
    fail: Option<f64>,
    throughput: f64,
) -> Capacity {
    let (capacity_qps, at_capacity) = match pass {
        Some((r, c, s)) => (Some(r), Some((c, s))),
        None => (None, None),
    };
    Capacity {
        status,
        reason: None,
        capacity_qps,
        fail_qps: fail,
        probe_throughput_qps: Some(throughput),
        arrival_span_s: None,
        evaluations: Vec::new(),
        at_capacity,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_round_to_six_digits() {
        assert_eq!(round_rate(1.23456789), 1.23457);
        assert_eq!(round_rate(1234567.0), 1234570.0);
        assert_eq!(round_rate(0.000123456789), 0.000123457);
    }
}
