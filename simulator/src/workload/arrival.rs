//! Arrival processes: when synthetic requests (or sessions) arrive.

use rand::prelude::*;
use rand_distr::{Exp, Gamma};

use super::config::ArrivalConfig;
use super::error::WorkloadError;
use super::trace_csv;

/// Seconds of simulated time to integer nanoseconds (rounded; monotone, so ordered times stay
/// ordered).
pub(crate) fn seconds_to_ns(t_s: f64) -> u64 {
    (t_s * 1e9).round() as u64
}

/// A stream of arrival times, seconds, non-decreasing.
pub(crate) enum ArrivalProcess {
    /// A renewal process: the first arrival is one interval after 0 (as Vidur's), then each
    /// arrival one more interval later.
    Exponential {
        rng: StdRng,
        law: Exp<f64>,
        t_s: f64,
    },
    /// Gamma-distributed intervals.
    Gamma {
        rng: StdRng,
        law: Gamma<f64>,
        t_s: f64,
    },
    /// Everything at 0.
    Static,
    /// Poisson arrivals at a rate that changes at stage boundaries; ends after the last stage.
    Staged {
        rng: StdRng,
        /// (end of stage s, rate).
        stages: Vec<(f64, f64)>,
        stage: usize,
        t_s: f64,
    },
    /// Recorded times (sorted, shifted to start at 0, scaled); ends with the file.
    Recorded { times_s: Vec<f64>, next: usize },
}

impl ArrivalProcess {
    /// The process of `cfg` (already validated), drawing from `rng`.
    pub(crate) fn new(cfg: &ArrivalConfig, rng: StdRng) -> Result<Self, WorkloadError> {
        Ok(match cfg {
            ArrivalConfig::Poisson { qps } => ArrivalProcess::Exponential {
                rng,
                law: Exp::new(*qps).map_err(|e| invalid_rate("workload.arrival.qps", e))?,
                t_s: 0.0,
            },
            ArrivalConfig::Gamma { qps, cv } => {
                let shape = 1.0 / (cv * cv);
                let scale = 1.0 / (qps * shape);
                ArrivalProcess::Gamma {
                    rng,
                    law: Gamma::new(shape, scale)
                        .map_err(|e| invalid_rate("workload.arrival.cv", e))?,
                    t_s: 0.0,
                }
            }
            ArrivalConfig::Static => ArrivalProcess::Static,
            ArrivalConfig::Stages { .. } => ArrivalProcess::Staged {
                rng,
                stages: cfg
                    .stage_bounds()
                    .into_iter()
                    .map(|(_, end, qps)| (end, qps))
                    .collect(),
                stage: 0,
                t_s: 0.0,
            },
            ArrivalConfig::Trace {
                trace_file,
                column,
                time_scale_factor,
            } => {
                let mut times_s = trace_csv::read_arrival_times(trace_file, column)?;
                let first = times_s[0];
                for t in &mut times_s {
                    *t = (*t - first) * time_scale_factor;
                }
                ArrivalProcess::Recorded { times_s, next: 0 }
            }
        })
    }

    /// The next arrival time, seconds; `None` when a recorded trace is exhausted.
    pub(crate) fn next_s(&mut self) -> Option<f64> {
        match self {
            ArrivalProcess::Exponential { rng, law, t_s } => {
                *t_s += law.sample(rng);
                Some(*t_s)
            }
            ArrivalProcess::Gamma { rng, law, t_s } => {
                *t_s += law.sample(rng);
                Some(*t_s)
            }
            ArrivalProcess::Static => Some(0.0),
            ArrivalProcess::Staged {
                rng,
                stages,
                stage,
                t_s,
            } => loop {
                // Memoryless: an interval crossing a stage's end restarts at that end with the
                // next stage's rate, which keeps each stage exactly Poisson.
                let &(end, qps) = stages.get(*stage)?;
                let next = *t_s + Exp::new(qps).map_or(f64::INFINITY, |law| law.sample(rng));
                if next < end {
                    *t_s = next;
                    return Some(next);
                }
                *t_s = end;
                *stage += 1;
            },
            ArrivalProcess::Recorded { times_s, next } => {
                let t = times_s.get(*next).copied();
                *next += 1;
                t
            }
        }
    }
}

fn invalid_rate(field: &'static str, e: impl std::fmt::Display) -> WorkloadError {
    WorkloadError::field(
        field,
        format!("gives an invalid distribution ({e})"),
        "give a finite number > 0",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intervals(cfg: &ArrivalConfig, seed: u64, n: usize) -> Vec<f64> {
        let mut p = ArrivalProcess::new(cfg, StdRng::seed_from_u64(seed)).unwrap();
        let mut prev = 0.0;
        (0..n)
            .map(|_| {
                let t = p.next_s().unwrap();
                let d = t - prev;
                prev = t;
                d
            })
            .collect()
    }

    fn mean_var(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (mean, var)
    }

    #[test]
    fn poisson_intervals_are_exponential_and_untruncated() {
        let qps = 4.0;
        let xs = intervals(&ArrivalConfig::Poisson { qps }, 11, 100_000);
        let (mean, var) = mean_var(&xs);
        // Exponential: mean 1/qps, variance 1/qps². Vidur's 3/qps clipping gives variance ≈ 0.80/qps².
        assert!((mean * qps - 1.0).abs() < 0.02, "mean {mean}");
        assert!((var * qps * qps - 1.0).abs() < 0.04, "variance {var}");
        // About e^−3 ≈ 5 % of intervals exceed 3/qps; Vidur would have none.
        let long = xs.iter().filter(|&&x| x > 3.0 / qps).count() as f64 / xs.len() as f64;
        assert!(
            (long - (-3f64).exp()).abs() < 0.005,
            "share above 3/qps: {long}"
        );
        assert!(xs.iter().all(|&x| x >= 0.0));
    }

    #[test]
    fn gamma_intervals_have_the_requested_mean_and_cv() {
        for cv in [0.5, 2.0] {
            let qps = 2.0;
            let xs = intervals(&ArrivalConfig::Gamma { qps, cv }, 5, 200_000);
            let (mean, var) = mean_var(&xs);
            let measured_cv = var.sqrt() / mean;
            assert!((mean * qps - 1.0).abs() < 0.03, "cv {cv}: mean {mean}");
            assert!(
                (measured_cv / cv - 1.0).abs() < 0.05,
                "cv {cv}: measured {measured_cv}"
            );
        }
    }

    #[test]
    fn static_arrivals_are_all_at_zero() {
        let mut p = ArrivalProcess::new(&ArrivalConfig::Static, StdRng::seed_from_u64(1)).unwrap();
        assert!((0..10).all(|_| p.next_s() == Some(0.0)));
    }

    #[test]
    fn seconds_convert_to_rounded_nanoseconds() {
        assert_eq!(seconds_to_ns(0.0), 0);
        assert_eq!(seconds_to_ns(1.5), 1_500_000_000);
        assert_eq!(seconds_to_ns(4.314579), 4_314_579_000);
    }
}
