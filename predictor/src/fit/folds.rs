//! Shuffled k-fold splits with a fixed seed, and error statistics.
//!
//! The folds are exactly scikit-learn's `KFold(k, shuffle=True, random_state=seed)`: NumPy's legacy
//! `RandomState(seed).shuffle` (MT19937 with bit-mask rejection sampling), then consecutive slices
//! of the shuffled indices. So our held-out splits are the ones Vidur's random-forest baseline was
//! measured on (the accuracy targets of `scripts/check-accuracy.sh`), and they never change with a
//! random-number crate's version.

/// MT19937, seeded as NumPy's `RandomState(seed)`.
#[derive(Debug, Clone)]
pub struct Mt19937 {
    mt: Box<[u32; 624]>,
    i: usize,
}

impl Mt19937 {
    /// `init_genrand(seed)`.
    pub fn new(seed: u32) -> Self {
        let mut mt = Box::new([0u32; 624]);
        mt[0] = seed;
        for i in 1..624 {
            mt[i] = 1_812_433_253u32
                .wrapping_mul(mt[i - 1] ^ (mt[i - 1] >> 30))
                .wrapping_add(i as u32);
        }
        Mt19937 { mt, i: 624 }
    }

    /// The next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        if self.i >= 624 {
            for k in 0..624 {
                let y = (self.mt[k] & 0x8000_0000) | (self.mt[(k + 1) % 624] & 0x7fff_ffff);
                let mut v = self.mt[(k + 397) % 624] ^ (y >> 1);
                if y & 1 == 1 {
                    v ^= 0x9908_b0df;
                }
                self.mt[k] = v;
            }
            self.i = 0;
        }
        let mut y = self.mt[self.i];
        self.i += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// Uniform in `0..=max` (NumPy's `random_interval`, for `max < 2^32`).
    pub fn interval(&mut self, max: u32) -> u32 {
        if max == 0 {
            return 0;
        }
        let mut mask = max;
        for s in [1, 2, 4, 8, 16] {
            mask |= mask >> s;
        }
        loop {
            let v = self.next_u32() & mask;
            if v <= max {
                return v;
            }
        }
    }
}

/// The held-out row indices of each of `k` folds over `n` rows (sorted within a fold), exactly as
/// scikit-learn's `KFold(k, shuffle=True, random_state=seed)`. Every row is held out once.
pub fn kfold(n: usize, k: usize, seed: u64) -> Vec<Vec<usize>> {
    let k = k.clamp(1, n.max(1));
    let mut idx: Vec<usize> = (0..n).collect();
    let mut rng = Mt19937::new(seed as u32);
    for i in (1..n).rev() {
        let j = rng.interval(i as u32) as usize;
        idx.swap(i, j);
    }
    let mut folds = vec![Vec::new(); k];
    let (base, extra) = (n / k, n % k);
    let mut at = 0;
    for (f, fold) in folds.iter_mut().enumerate() {
        let size = base + usize::from(f < extra);
        let mut part = idx[at..at + size].to_vec();
        part.sort_unstable();
        *fold = part;
        at += size;
    }
    folds
}

/// The rows of `0..n` not in `held_out` (which is sorted).
pub fn complement(n: usize, held_out: &[usize]) -> Vec<usize> {
    let mut out = Vec::with_capacity(n - held_out.len());
    let mut j = 0;
    for i in 0..n {
        if j < held_out.len() && held_out[j] == i {
            j += 1;
        } else {
            out.push(i);
        }
    }
    out
}

/// Absolute percentage error of `pred` against `truth` (> 0), %.
pub fn ape_pct(pred: f64, truth: f64) -> f64 {
    (pred - truth).abs() / truth * 100.0
}

/// The `q`-quantile (0..=1) of `v` with linear interpolation between order statistics (NumPy's
/// default). `NaN` for an empty slice.
pub fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    quantile_sorted(&s, q)
}

/// [`quantile`] of an already sorted slice.
pub fn quantile_sorted(s: &[f64], q: f64) -> f64 {
    if s.is_empty() {
        return f64::NAN;
    }
    let pos = q.clamp(0.0, 1.0) * (s.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    s[lo] + (s[hi] - s[lo]) * (pos - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_partition_the_rows_deterministically() {
        let f = kfold(261, 5, 0);
        assert_eq!(f.len(), 5);
        let mut all: Vec<usize> = f.concat();
        all.sort_unstable();
        assert_eq!(all, (0..261).collect::<Vec<_>>());
        assert!(f.iter().all(|p| p.len() == 52 || p.len() == 53));
        assert_eq!(f, kfold(261, 5, 0));
        assert_ne!(f, kfold(261, 5, 1));
        // numpy: RandomState(0).permutation(10) == [2, 8, 4, 9, 1, 6, 7, 3, 0, 5]
        let ten = kfold(10, 5, 0);
        assert_eq!(
            ten,
            vec![vec![2, 8], vec![4, 9], vec![1, 6], vec![3, 7], vec![0, 5]]
        );
        assert_eq!(complement(5, &[1, 3]), vec![0, 2, 4]);
    }

    #[test]
    fn quantiles_match_numpy() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&v, 0.5), 2.5);
        assert!((quantile(&v, 0.95) - 3.85).abs() < 1e-12);
        assert_eq!(ape_pct(1.1, 1.0).round(), 10.0);
    }
}
