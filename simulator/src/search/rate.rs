//! Scaling a workload's arrival rate: Poisson and gamma processes take the rate as `qps`; trace
//! arrivals and trace replays are compressed or stretched through their `time_scale_factor`.

use super::error::SearchError;
use crate::workload::{generate, ArrivalConfig, WorkloadConfig, IMPLICIT_NUM_REQUESTS};

/// How the search sets a workload's rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RateKnob {
    /// `[workload.arrival] qps` (Poisson or gamma).
    Qps {
        /// Requests generated: the `num_requests` bound, the implicit 1,000 when neither it nor
        /// `duration_s` is set, else none (`duration_s` bounds the workload).
        requests: Option<u64>,
    },
    /// A trace's `time_scale_factor`: `factor(rate) = base_factor × base_qps / rate`.
    TimeScale {
        /// The factor in the space file.
        base_factor: f64,
        /// The trace's rate at that factor: (requests − 1) / (last − first arrival).
        base_qps: f64,
        /// Requests in the trace (after `num_requests`).
        requests: u64,
    },
}

impl RateKnob {
    /// The knob of `w`, or an error when its rate cannot be scaled.
    pub fn of(w: &WorkloadConfig, seed: u64) -> Result<RateKnob, SearchError> {
        let base_factor = match (&w.trace, &w.arrival) {
            (Some(t), _) => t.time_scale_factor,
            (
                None,
                ArrivalConfig::Trace {
                    time_scale_factor, ..
                },
            ) => *time_scale_factor,
            (None, ArrivalConfig::Poisson { .. } | ArrivalConfig::Gamma { .. }) => {
                return Ok(RateKnob::Qps {
                    requests: w
                        .num_requests
                        .or(w.duration_s.is_none().then_some(IMPLICIT_NUM_REQUESTS)),
                })
            }
            (None, ArrivalConfig::Static) => {
                return Err(SearchError::Space {
                    field: "workload.arrival.kind".into(),
                    why: "\"static\" has no rate to scale; use poisson, gamma or a trace".into(),
                })
            }
            (None, ArrivalConfig::Stages { .. }) => {
                return Err(SearchError::Space {
                    field: "workload.arrival.kind".into(),
                    why: "\"stages\" sets its own rates; the search scales one rate: use poisson, gamma or a trace".into(),
                })
            }
        };
        let bad = |why: String| SearchError::Space {
            field: "workload".into(),
            why,
        };
        let mut n = 0u64;
        let (mut first, mut last) = (0u64, 0u64);
        for r in generate(w, seed).map_err(|e| bad(e.to_string()))? {
            if n == 0 {
                first = r.arrival_ns;
            }
            last = r.arrival_ns;
            n += 1;
        }
        if n < 2 || last <= first {
            return Err(bad(format!(
                "the trace has {n} request(s) spanning {} s: at least 2 requests at different times are needed to scale its rate",
                (last - first) as f64 * 1e-9
            )));
        }
        Ok(RateKnob::TimeScale {
            base_factor,
            base_qps: (n - 1) as f64 / ((last - first) as f64 * 1e-9),
            requests: n,
        })
    }

    /// `w` with its arrival rate set to `rate_qps` requests per second.
    pub fn apply(&self, w: &WorkloadConfig, rate_qps: f64) -> WorkloadConfig {
        let mut w = w.clone();
        match *self {
            RateKnob::Qps { .. } => match &mut w.arrival {
                ArrivalConfig::Poisson { qps } | ArrivalConfig::Gamma { qps, .. } => {
                    *qps = rate_qps
                }
                _ => {}
            },
            RateKnob::TimeScale {
                base_factor,
                base_qps,
                ..
            } => {
                let f = base_factor * base_qps / rate_qps;
                match (&mut w.trace, &mut w.arrival) {
                    (Some(t), _) => t.time_scale_factor = f,
                    (
                        None,
                        ArrivalConfig::Trace {
                            time_scale_factor, ..
                        },
                    ) => *time_scale_factor = f,
                    _ => {}
                }
            }
        }
        w
    }

    /// Expected time from the first to the last arrival at `rate_qps`, seconds, with at most
    /// `max_requests` requests (the search's cap).
    pub fn span_s(&self, w: &WorkloadConfig, rate_qps: f64, max_requests: u64) -> f64 {
        let n = match *self {
            RateKnob::Qps { requests } => Some(requests.unwrap_or(u64::MAX).min(max_requests)),
            RateKnob::TimeScale { requests, .. } => Some(requests.min(max_requests)),
        };
        match (n, w.duration_s) {
            (Some(n), Some(d)) => (n as f64 / rate_qps).min(d),
            (Some(n), None) => n as f64 / rate_qps,
            (None, Some(d)) => d,
            (None, None) => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_rate_is_qps() {
        let w = WorkloadConfig::default();
        let k = RateKnob::of(&w, 1).unwrap();
        let w2 = k.apply(&w, 12.5);
        assert_eq!(w2.arrival, ArrivalConfig::Poisson { qps: 12.5 });
        assert!((k.span_s(&w, 10.0, u64::MAX) - 100.0).abs() < 1e-9);
        assert!((k.span_s(&w, 10.0, 500) - 50.0).abs() < 1e-9);
        let timed = WorkloadConfig {
            num_requests: None,
            duration_s: Some(30.0),
            ..WorkloadConfig::default()
        };
        let k = RateKnob::of(&timed, 1).unwrap();
        assert_eq!(k, RateKnob::Qps { requests: None });
        assert_eq!(k.span_s(&timed, 10.0, u64::MAX), 30.0);
        assert_eq!(k.span_s(&timed, 10.0, 100), 10.0);
    }

    #[test]
    fn static_arrivals_cannot_be_scaled() {
        let w = WorkloadConfig {
            arrival: ArrivalConfig::Static,
            ..WorkloadConfig::default()
        };
        let e = RateKnob::of(&w, 1).unwrap_err().to_string();
        assert!(e.contains("static") && e.contains("poisson"), "{e}");
    }

    #[test]
    fn trace_rate_scales_the_time_factor() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        // 5 requests over 2 s: 2 req/s.
        std::fs::write(
            &p,
            "arrived_at,num_prefill_tokens,num_decode_tokens\n0,10,5\n0.5,10,5\n1,10,5\n1.5,10,5\n2,10,5\n",
        )
        .unwrap();
        let w = WorkloadConfig {
            trace: Some(crate::workload::TraceConfig::new(&p)),
            num_requests: None,
            ..WorkloadConfig::default()
        };
        let k = RateKnob::of(&w, 1).unwrap();
        let RateKnob::TimeScale { base_qps, .. } = k else {
            panic!("{k:?}")
        };
        assert!((base_qps - 2.0).abs() < 1e-9);
        let w8 = k.apply(&w, 8.0);
        assert!((w8.trace.unwrap().time_scale_factor - 0.25).abs() < 1e-12);
    }
}
