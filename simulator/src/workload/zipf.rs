//! Zipf laws: the YCSB-style generator Vidur uses for lengths (with its ζ off-by-one fixed), and an
//! exact inverse-CDF sampler for picking shared prefixes.

use rand::prelude::*;

/// `ζ(n, θ) = Σ_{i=1}^{n} i^−θ`.
///
/// Vidur's `_zeta` stops at `n − 1` (and so takes `ζ(2) = 1`); this is the sum of Gray et al.'s
/// "Quickly generating billion-record synthetic databases" (SIGMOD 1994), which YCSB follows.
pub(crate) fn zeta(n: u64, theta: f64) -> f64 {
    (1..=n).map(|i| (i as f64).powf(-theta)).sum()
}

/// The YCSB/Gray approximate Zipf generator over ranks `0..n` (rank 0 most frequent), skew
/// `0 < θ < 1`. One uniform draw per sample.
#[derive(Debug, Clone)]
pub(crate) struct YcsbZipf {
    n: u64,
    theta: f64,
    alpha: f64,
    zeta_n: f64,
    eta: f64,
}

impl YcsbZipf {
    /// A generator over `n ≥ 1` ranks with skew `theta` in (0, 1).
    pub(crate) fn new(n: u64, theta: f64) -> Self {
        let zeta_n = zeta(n, theta);
        let zeta_2 = zeta(2, theta);
        let alpha = 1.0 / (1.0 - theta);
        let eta = if n > 2 {
            (1.0 - (2.0 / n as f64).powf(1.0 - theta)) / (1.0 - zeta_2 / zeta_n)
        } else {
            0.0
        };
        YcsbZipf {
            n,
            theta,
            alpha,
            zeta_n,
            eta,
        }
    }

    /// A rank in `0..n`.
    pub(crate) fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> u64 {
        let u: f64 = rng.random();
        let uz = u * self.zeta_n;
        if uz < 1.0 || self.n == 1 {
            return 0;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) {
            return 1;
        }
        let rank = (self.n as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        rank.min(self.n - 1)
    }
}

/// An exact sampler of a finite Zipf law: index `k` in `0..n` with probability proportional to
/// `(k + 1)^−θ` (θ ≥ 0; θ = 0 is uniform), by binary search in the cumulative weights.
#[derive(Debug, Clone)]
pub(crate) struct FiniteZipf {
    cumulative: Vec<f64>,
}

impl FiniteZipf {
    /// A sampler over `n ≥ 1` items.
    pub(crate) fn new(n: u32, theta: f64) -> Self {
        let mut total = 0.0;
        let cumulative = (1..=n)
            .map(|k| {
                total += f64::from(k).powf(-theta);
                total
            })
            .collect();
        FiniteZipf { cumulative }
    }

    /// The probability of each index, in order.
    pub(crate) fn probabilities(n: u32, theta: f64) -> Vec<f64> {
        let weights: Vec<f64> = (1..=n).map(|k| f64::from(k).powf(-theta)).collect();
        let total: f64 = weights.iter().sum();
        weights.into_iter().map(|w| w / total).collect()
    }

    /// An index in `0..n`.
    pub(crate) fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> u32 {
        let total = *self.cumulative.last().expect("at least one item");
        let u = rng.random::<f64>() * total;
        let k = self.cumulative.partition_point(|&c| c <= u);
        k.min(self.cumulative.len() - 1) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeta_sums_all_n_terms() {
        assert_eq!(zeta(1, 0.6), 1.0);
        assert!((zeta(2, 0.6) - (1.0 + 2f64.powf(-0.6))).abs() < 1e-12);
        // θ = 0: ζ(n) = n (Vidur's version gives n − 1).
        assert!((zeta(10, 0.0) - 10.0).abs() < 1e-12);
    }

    #[test]
    fn ycsb_frequencies_follow_the_law() {
        let n = 100;
        let theta = 0.6;
        let z = YcsbZipf::new(n, theta);
        let mut rng = StdRng::seed_from_u64(7);
        let draws = 200_000;
        let mut counts = vec![0u64; n as usize];
        for _ in 0..draws {
            counts[z.sample(&mut rng) as usize] += 1;
        }
        let zeta_n = zeta(n, theta);
        // Ranks 0 and 1 are exact in Gray's method; check them and the monotone decay.
        for rank in 0..2u64 {
            let expected = ((rank + 1) as f64).powf(-theta) / zeta_n;
            let measured = counts[rank as usize] as f64 / draws as f64;
            assert!(
                (measured - expected).abs() < 0.01,
                "rank {rank}: {measured} vs {expected}"
            );
        }
        assert!(counts[0] > counts[10] && counts[10] > counts[90]);
        assert!(counts.iter().all(|&c| c > 0));
    }

    #[test]
    fn finite_zipf_matches_its_probabilities() {
        let (n, theta) = (8, 1.2);
        let z = FiniteZipf::new(n, theta);
        let p = FiniteZipf::probabilities(n, theta);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        let mut rng = StdRng::seed_from_u64(3);
        let draws = 100_000;
        let mut counts = vec![0u64; n as usize];
        for _ in 0..draws {
            counts[z.sample(&mut rng) as usize] += 1;
        }
        for k in 0..n as usize {
            let measured = counts[k] as f64 / draws as f64;
            assert!(
                (measured - p[k]).abs() < 0.01,
                "item {k}: {measured} vs {}",
                p[k]
            );
        }
        // θ = 0 is uniform.
        let u = FiniteZipf::probabilities(4, 0.0);
        assert!(u.iter().all(|&x| (x - 0.25).abs() < 1e-12));
    }
}
