//! Summary statistics of timing samples, as Vidur reports them (numpy's `min`, `max`, `mean`,
//! `median` and `std` with ddof = 0).

/// Min, max, mean, median and population standard deviation of a sample, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct TimeStats {
    /// Smallest sample.
    pub min_ms: f64,
    /// Largest sample.
    pub max_ms: f64,
    /// Arithmetic mean.
    pub mean_ms: f64,
    /// Median (mean of the two middle values for an even count).
    pub median_ms: f64,
    /// Standard deviation with ddof = 0 (`np.std`).
    pub std_ms: f64,
}

impl TimeStats {
    /// Statistics of `samples_ms`; `None` when empty or when a sample is not finite.
    pub fn from_samples(samples_ms: &[f64]) -> Option<Self> {
        if samples_ms.is_empty() || samples_ms.iter().any(|x| !x.is_finite()) {
            return None;
        }
        let mut v = samples_ms.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let mean = v.iter().sum::<f64>() / n as f64;
        let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n as f64;
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Self {
            min_ms: v[0],
            max_ms: v[n - 1],
            mean_ms: mean,
            median_ms: median,
            std_ms: var.sqrt(),
        })
    }

    /// All-zero statistics, written for operators that are free views (`attn_input_reshape`) or do
    /// not apply to a row (Vidur's vintage-B convention).
    pub fn zero() -> Self {
        Self {
            min_ms: 0.0,
            max_ms: 0.0,
            mean_ms: 0.0,
            median_ms: 0.0,
            std_ms: 0.0,
        }
    }

    /// The five values in Vidur's column order (`min, max, mean, median, std`).
    pub fn columns(&self) -> [f64; 5] {
        [
            self.min_ms,
            self.max_ms,
            self.mean_ms,
            self.median_ms,
            self.std_ms,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_numpy_on_fixed_vectors() {
        // np.std([1,2,3,4]) = 1.118033988749895; np.median = 2.5
        let s = TimeStats::from_samples(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!(
            (s.min_ms, s.max_ms, s.mean_ms, s.median_ms),
            (1.0, 4.0, 2.5, 2.5)
        );
        assert!((s.std_ms - 1.118033988749895).abs() < 1e-15);
        // np.std([0.015, 0.038, 0.037]) = 0.010614455552060439 (the first row of Vidur's h100_dgx all_reduce.csv)
        let s = TimeStats::from_samples(&[0.015, 0.038, 0.037]).unwrap();
        assert_eq!(s.median_ms, 0.037);
        assert!((s.std_ms - 0.010614455552060439).abs() < 1e-15);
        assert!((s.mean_ms - 0.03).abs() < 1e-15);
    }

    #[test]
    fn empty_or_non_finite_samples_give_none() {
        assert!(TimeStats::from_samples(&[]).is_none());
        assert!(TimeStats::from_samples(&[1.0, f64::NAN]).is_none());
        assert_eq!(TimeStats::from_samples(&[7.0]).unwrap().std_ms, 0.0);
    }
}
