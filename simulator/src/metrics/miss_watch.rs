//! Deciding before a run ends that it will miss a latency bound, so that a caller that only wants
//! the verdict (the capacity search) can stop it there.
//!
//! A bound is "percentile `p` of a per-request latency ≤ `max_s`", judged on the run's summary,
//! whose percentiles come from [`LogHistogram::quantile`]: the value at nearest rank
//! `r = ⌈p/100 · N⌉` of the `N` finished requests, reported as the middle of its bucket. Once more
//! than `N − r` requests have a latency at or above the first bucket start `L` whose values are all
//! reported above `max_s`, the value at rank `r` lies in such a bucket whatever the other requests
//! do, so the bound is missed. `N` is the number of requests the run will serve, known in advance;
//! a run that cannot serve them all stops at its time limit, which misses the bound too. The
//! verdict is therefore the one the whole run would give; only the summary is cut short.

use super::histogram::bucket_start_at_or_above;
use super::RequestLatencies;

/// A per-request latency a [`LatencyBound`] can limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoundMetric {
    /// Time to first token.
    Ttft,
    /// End-to-end latency.
    E2e,
    /// Arrival to first batch.
    SchedulingDelay,
    /// Time per output token (only requests of more than one output token have one).
    Tpot,
}

/// Percentile `percentile` (50, 90, 95, 99 or 100, as `summary.json` reports them) of `metric`
/// must be at most `max_s`.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyBound {
    /// The latency.
    pub metric: BoundMetric,
    /// The percentile.
    pub percentile: f64,
    /// Its largest allowed value, s.
    pub max_s: f64,
    /// The name used in the verdict, e.g. `ttft_p90`.
    pub label: String,
}

/// The quantile `summary.json` reports for `percentile` (see [`super::LogHistogram::stats`]).
fn quantile(percentile: f64) -> Option<f64> {
    match percentile as u32 {
        50 => Some(0.50),
        90 => Some(0.90),
        95 => Some(0.95),
        99 => Some(0.99),
        100 => Some(1.0),
        _ => None,
    }
}

/// The smallest latency in ns whose value in seconds (as the summary computes it) is above
/// `max_s`; `None` when there is none in range.
fn first_ns_above(max_s: f64) -> Option<u64> {
    if !(0.0..1e9).contains(&max_s) {
        return None;
    }
    let above = |t: u64| t as f64 * 1e-9 > max_s;
    let mut t = (max_s * 1e9).floor() as u64;
    while t > 0 && above(t - 1) {
        t -= 1;
    }
    while !above(t) {
        t += 1;
    }
    Some(t)
}

#[derive(Debug, Clone)]
struct Rule {
    metric: BoundMetric,
    label: String,
    max_s: f64,
    /// Latencies at or above this are reported above `max_s`, ns.
    at_least_ns: u64,
    /// Requests at or above `at_least_ns` the bound allows.
    allowed: u64,
    /// Requests at or above `at_least_ns` so far.
    over: u64,
    /// Requests this metric will have in the whole run.
    total: u64,
    /// Requests recorded so far.
    seen: u64,
}

/// Watches finished requests against latency bounds and says when one is certainly missed.
#[derive(Debug, Clone, Default)]
pub struct MissWatch {
    rules: Vec<Rule>,
}

impl MissWatch {
    /// A watch of `bounds` over a run of `requests` requests, `multi_token_requests` of which have
    /// more than one output token (the ones with a TPOT). Bounds that cannot be decided early
    /// (an unknown percentile, a limit past 10⁹ s) are left out.
    pub fn new(bounds: &[LatencyBound], requests: u64, multi_token_requests: u64) -> Self {
        let rules = bounds
            .iter()
            .filter_map(|b| {
                let q = quantile(b.percentile)?;
                let at_least_ns = bucket_start_at_or_above(first_ns_above(b.max_s)?);
                let total = match b.metric {
                    BoundMetric::Tpot => multi_token_requests,
                    _ => requests,
                };
                let rank = ((q * total as f64).ceil() as u64).clamp(1, total.max(1));
                Some(Rule {
                    metric: b.metric,
                    label: b.label.clone(),
                    max_s: b.max_s,
                    at_least_ns,
                    allowed: total.saturating_sub(rank),
                    over: 0,
                    total,
                    seen: 0,
                })
            })
            .collect();
        MissWatch { rules }
    }

    /// Records a finished request; returns the verdict, once, when a bound is certainly missed.
    pub fn observe(&mut self, l: &RequestLatencies) -> Option<String> {
        let mut verdict = None;
        for rule in &mut self.rules {
            let v = match rule.metric {
                BoundMetric::Ttft => Some(l.ttft_ns),
                BoundMetric::E2e => Some(l.e2e_ns),
                BoundMetric::SchedulingDelay => Some(l.scheduling_delay_ns),
                BoundMetric::Tpot => l.tpot_ns,
            };
            let Some(v) = v else { continue };
            rule.seen += 1;
            if v >= rule.at_least_ns {
                rule.over += 1;
                if rule.over == rule.allowed + 1 && verdict.is_none() {
                    verdict = Some(format!(
                        "{} > {} s: certain after {} of {} requests, {} of them at {:.4} s or more \
                         (the run stopped there)",
                        rule.label,
                        rule.max_s,
                        rule.seen,
                        rule.total,
                        rule.over,
                        rule.at_least_ns as f64 * 1e-9
                    ));
                }
            }
        }
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::histogram::LogHistogram;
    use proptest::prelude::*;

    fn bound(metric: BoundMetric, percentile: f64, max_s: f64) -> LatencyBound {
        LatencyBound {
            metric,
            percentile,
            max_s,
            label: "x".into(),
        }
    }

    fn lat(ttft_ns: u64, tpot_ns: Option<u64>) -> RequestLatencies {
        RequestLatencies {
            ttft_ns,
            e2e_ns: ttft_ns,
            scheduling_delay_ns: 0,
            tpot_ns,
        }
    }

    #[test]
    fn the_first_nanosecond_above_a_limit_is_exact() {
        for max_s in [0.0, 1e-9, 0.2, 2.0, 5.0, 0.123456789, 3.3e-3, 1234.5] {
            let t = first_ns_above(max_s).unwrap();
            assert!(t as f64 * 1e-9 > max_s, "{max_s}: {t}");
            assert!(t == 0 || (t - 1) as f64 * 1e-9 <= max_s, "{max_s}: {t}");
        }
        assert_eq!(first_ns_above(2.0), Some(2_000_000_001));
        for bad in [f64::NAN, f64::INFINITY, -1.0, 1e9] {
            assert_eq!(first_ns_above(bad), None);
        }
    }

    #[test]
    fn a_miss_is_declared_once_one_request_past_the_allowance() {
        // p90 of 20 requests is rank 18: two may be slow, the third decides; 2 s + 1 ns is the
        // first value above 2 s and starts no bucket, so the first slow value counted is the
        // next bucket's start
        let mut w = MissWatch::new(&[bound(BoundMetric::Ttft, 90.0, 2.0)], 20, 20);
        let slow = lat(bucket_start_at_or_above(2_000_000_001), None);
        let almost = lat(2_000_000_001, None);
        assert_eq!(
            w.observe(&almost),
            None,
            "in the limit's own bucket: not counted"
        );
        assert_eq!(w.observe(&lat(1, None)), None);
        assert_eq!(w.observe(&slow), None);
        assert_eq!(w.observe(&slow), None);
        let v = w.observe(&slow).expect("the third slow request decides");
        assert!(
            v.starts_with("x > 2 s: certain after 5 of 20 requests, 3 of them"),
            "{v}"
        );
        assert_eq!(w.observe(&slow), None, "declared once");
    }

    #[test]
    fn tpot_counts_only_requests_with_more_than_one_output_token() {
        // p50 of 2 TPOT values (rank 1): one fast value leaves room for one slow one
        let mut w = MissWatch::new(&[bound(BoundMetric::Tpot, 50.0, 0.01)], 10, 2);
        assert_eq!(w.observe(&lat(0, None)), None);
        assert_eq!(w.observe(&lat(0, Some(1_000_000_000))), None);
        assert!(w.observe(&lat(0, Some(1_000_000_000))).is_some());
        // percentiles the summary does not report are not watched
        let mut w = MissWatch::new(&[bound(BoundMetric::Ttft, 75.0, 0.0)], 1, 1);
        assert_eq!(w.observe(&lat(u64::MAX / 2, None)), None);
    }

    proptest! {
        /// Whenever the watch declares a miss, the whole run's summary misses the bound; when the
        /// values are all far above the limit, it declares one.
        #[test]
        fn a_declared_miss_is_a_miss_of_the_whole_run(
            values in prop::collection::vec(0u64..5_000_000, 1..300),
            p in prop::sample::select(vec![50.0, 90.0, 95.0, 99.0, 100.0]),
            max_us in 0u64..5_000,
        ) {
            let max_s = max_us as f64 * 1e-6;
            let n = values.len() as u64;
            let mut w = MissWatch::new(&[bound(BoundMetric::E2e, p, max_s)], n, n);
            let mut h = LogHistogram::default();
            let mut declared = false;
            for &v in &values {
                h.record(v);
                declared |= w.observe(&lat(v, None)).is_some();
            }
            let s = h.stats(1e-9);
            let reported = match p as u32 { 50 => s.p50, 90 => s.p90, 95 => s.p95, 99 => s.p99, _ => s.max };
            if declared {
                prop_assert!(reported > max_s, "declared but {reported} <= {max_s}");
            }
            let far = bucket_start_at_or_above(first_ns_above(max_s).unwrap());
            if values.iter().all(|&v| v >= far) {
                prop_assert!(declared);
            }
        }
    }
}
