//! A log-bucketed histogram of non-negative integers (nanoseconds): exact count, sum, sum of
//! squares (so mean and standard deviation), min and max, and quantiles within 0.1 % relative
//! error, in memory that does not grow with the number of values (at most ~57,000 counters,
//! allocated up to the largest value seen).

use serde::{Deserialize, Serialize};

/// log2 of the sub-buckets per power of two: relative bucket width ≤ 2^-10.
const SUB_BITS: u32 = 10;
const SUB: u64 = 1 << SUB_BITS;

fn index_of(v: u64) -> usize {
    if v < SUB {
        v as usize
    } else {
        let e = 63 - v.leading_zeros();
        let shift = e - SUB_BITS;
        (((shift as u64 + 1) << SUB_BITS) + ((v >> shift) - SUB)) as usize
    }
}

/// The smallest value of bucket `i` and the bucket's width.
fn bucket_bounds(i: usize) -> (u64, u64) {
    let i = i as u64;
    if i < SUB {
        (i, 1)
    } else {
        let shift = (i >> SUB_BITS) - 1;
        let m = (i & (SUB - 1)) + SUB;
        (m << shift, 1 << shift)
    }
}

/// The smallest bucket start at or above `v`: a value at or above it lies in a bucket starting at
/// or above it, so a quantile that falls in that bucket is reported as at least that much.
pub fn bucket_start_at_or_above(v: u64) -> u64 {
    let (low, width) = bucket_bounds(index_of(v));
    if low == v {
        v
    } else {
        low.saturating_add(width)
    }
}

/// Summary statistics of a histogram, in seconds when the values were nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Stats {
    /// Number of values.
    pub count: u64,
    /// Mean (0 when empty).
    pub mean: f64,
    /// Population standard deviation (numpy's `std`, 0 when empty); absent in files written
    /// before it existed, read as 0.
    #[serde(default)]
    pub std: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest value.
    pub max: f64,
}

/// The histogram.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogHistogram {
    counts: Vec<u64>,
    count: u64,
    sum: u128,
    sum_sq: u128,
    min: u64,
    max: u64,
}

impl LogHistogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one value.
    #[inline]
    pub fn record(&mut self, v: u64) {
        self.record_n(v, 1);
    }

    /// Adds the value `v` `n` times: the same as `n` calls of [`LogHistogram::record`].
    #[inline]
    pub fn record_n(&mut self, v: u64, n: u64) {
        if n == 0 {
            return;
        }
        let i = index_of(v);
        if i >= self.counts.len() {
            self.counts.resize(i + 1, 0);
        }
        self.counts[i] += n;
        if self.count == 0 || v < self.min {
            self.min = v;
        }
        self.max = self.max.max(v);
        self.count += n;
        self.sum += v as u128 * n as u128;
        let sq = (v as u128 * v as u128).saturating_mul(n as u128);
        self.sum_sq = self.sum_sq.saturating_add(sq);
    }

    /// Adds every value of `other`: the same histogram as recording both sets of values, in any
    /// order.
    pub fn merge(&mut self, other: &LogHistogram) {
        if other.count == 0 {
            return;
        }
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        if self.count == 0 || other.min < self.min {
            self.min = other.min;
        }
        self.max = self.max.max(other.max);
        self.count += other.count;
        self.sum += other.sum;
        self.sum_sq = self.sum_sq.saturating_add(other.sum_sq);
    }

    /// Number of values.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Exact mean (0 when empty).
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }

    /// Largest value (0 when empty).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Smallest value (0 when empty).
    pub fn min(&self) -> u64 {
        self.min
    }

    /// Population standard deviation (0 when empty): exact integer arithmetic while
    /// `count · Σv²` fits 128 bits, else in floating point.
    pub fn std(&self) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let n = self.count as u128;
        // (a saturated Σv² needs two or more values, so n · Σv² overflows and the float path
        // answers)
        let exact = n
            .checked_mul(self.sum_sq)
            .zip(self.sum.checked_mul(self.sum))
            .map(|(a, b)| a.saturating_sub(b));
        let var = match exact {
            Some(num) => num as f64 / (n as f64 * n as f64),
            None => (self.sum_sq as f64 / n as f64 - self.mean() * self.mean()).max(0.0),
        };
        var.sqrt()
    }

    /// The `rank`-th smallest value (1-based, clamped to [1, count]): exact for the first and the
    /// last rank, else the middle of its bucket (within 0.1 %). 0 when empty.
    pub fn value_at_rank(&self, rank: u64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = rank.clamp(1, self.count);
        if rank == 1 {
            return self.min;
        }
        if rank == self.count {
            return self.max;
        }
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (low, width) = bucket_bounds(i);
                return (low + (width - 1) / 2).clamp(self.min, self.max);
            }
        }
        self.max
    }

    /// The nearest-rank `q`-quantile (0 < q ≤ 1), within one bucket, clamped to [min, max].
    pub fn quantile(&self, q: f64) -> u64 {
        self.value_at_rank((q * self.count as f64).ceil() as u64)
    }

    /// numpy's `percentile(values, p)` (0 ≤ p ≤ 100; linear interpolation between the two
    /// nearest ranks), from the bucket values: within 0.1 % of the exact value. 0 when empty.
    pub fn percentile_interpolated(&self, p: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let pos = (self.count - 1) as f64 * (p / 100.0).clamp(0.0, 1.0);
        let below = pos.floor();
        let lo = self.value_at_rank(below as u64 + 1) as f64;
        let hi = self.value_at_rank(below as u64 + 2) as f64;
        lo + (pos - below) * (hi - lo)
    }

    /// Non-empty buckets in ascending order: (the value standing for the bucket, as in
    /// [`Self::value_at_rank`], and its count).
    pub fn buckets(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, &c)| c > 0)
            .map(|(i, &c)| {
                let (low, width) = bucket_bounds(i);
                ((low + (width - 1) / 2).clamp(self.min, self.max), c)
            })
    }

    /// Statistics with every value multiplied by `scale` (1e-9 turns ns into s).
    pub fn stats(&self, scale: f64) -> Stats {
        Stats {
            count: self.count,
            mean: self.mean() * scale,
            std: self.std() * scale,
            p50: self.quantile(0.50) as f64 * scale,
            p90: self.quantile(0.90) as f64 * scale,
            p95: self.quantile(0.95) as f64 * scale,
            p99: self.quantile(0.99) as f64 * scale,
            max: self.max as f64 * scale,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn buckets_are_contiguous_and_cover_their_values() {
        let mut prev_end = 0;
        for i in 0..(40 * SUB as usize) {
            let (low, w) = bucket_bounds(i);
            assert_eq!(low, prev_end, "bucket {i}");
            assert_eq!(index_of(low), i);
            assert_eq!(index_of(low + w - 1), i);
            prev_end = low + w;
        }
    }

    #[test]
    fn bucket_starts_at_or_above_a_value() {
        for v in [
            0,
            1,
            SUB - 1,
            SUB,
            SUB + 1,
            2 * SUB + 1,
            12_345_678,
            2_000_000_001,
        ] {
            let s = bucket_start_at_or_above(v);
            assert_eq!(bucket_bounds(index_of(s)).0, s, "{v}: {s} starts a bucket");
            assert!(s >= v, "{v}: {s}");
            // nothing between v and s starts a bucket
            let (low, w) = bucket_bounds(index_of(v));
            assert!(s == v || low + w == s, "{v}");
        }
        assert_eq!(bucket_start_at_or_above(2 * SUB + 1), 2 * SUB + 2);
        assert_eq!(bucket_start_at_or_above(u64::MAX), u64::MAX);
    }

    #[test]
    fn a_wide_bucket_stands_for_its_middle_value() {
        // 10,000 lies in the 8-wide bucket 10,000..10,007, whose middle is 10,003; min and max
        // are exact
        let mut h = LogHistogram::default();
        for v in [1, 10_000, 20_000] {
            h.record(v);
        }
        assert_eq!(h.value_at_rank(2), 10_003);
        let b: Vec<(u64, u64)> = h.buckets().collect();
        assert_eq!(b[1], (10_003, 1), "{b:?}");
        let s = h.stats(1e-9);
        assert_eq!(s.max, 20_000.0 * 1e-9);
        assert_eq!(s.p50, 10_003.0 * 1e-9);
        // the spread scales like the values (population std of 1, 10,000 and 20,000: 8,164.5)
        assert!(h.std() > 8_164.0 && h.std() < 8_165.0, "{}", h.std());
        assert_eq!(s.std, h.std() * 1e-9);
    }

    #[test]
    fn small_values_are_exact() {
        let mut h = LogHistogram::new();
        for v in 1..=100 {
            h.record(v);
        }
        assert_eq!(h.quantile(0.5), 50);
        assert_eq!(h.quantile(0.99), 99);
        assert_eq!(h.quantile(1.0), 100);
        assert!((h.mean() - 50.5).abs() < 1e-12);
    }

    #[test]
    fn std_is_exact_for_a_small_spread_and_right_past_128_bits() {
        // A spread of 1 ns on 1 s: integer arithmetic gives 0.5 exactly (the float formula
        // would cancel catastrophically).
        let mut h = LogHistogram::new();
        h.record(1_000_000_000);
        h.record(1_000_000_001);
        assert_eq!(h.std(), 0.5);
        // Eight values alternating 2^62 and 1.5 · 2^62: n · Σv² passes 2^128, so the float path
        // answers; the deviation is 2^60 either way, exact in f64.
        let mut h = LogHistogram::new();
        for i in 0..8 {
            h.record(if i % 2 == 0 { 1 << 62 } else { 3 << 61 });
        }
        assert_eq!(h.std(), (1u64 << 60) as f64);
    }

    #[test]
    fn std_and_interpolated_percentiles_match_numpy() {
        let mut h = LogHistogram::new();
        for v in [1u64, 2, 3, 4, 10] {
            h.record(v);
        }
        // numpy: std([1,2,3,4,10]) = 3.1622776601683795, percentile(.., 50) = 3,
        // percentile(.., 90) = 7.6, percentile(.., 0) = 1, percentile(.., 100) = 10
        assert!((h.std() - 3.1622776601683795).abs() < 1e-12, "{}", h.std());
        assert_eq!(h.percentile_interpolated(50.0), 3.0);
        assert!((h.percentile_interpolated(90.0) - 7.6).abs() < 1e-12);
        assert_eq!(h.percentile_interpolated(0.0), 1.0);
        assert_eq!(h.percentile_interpolated(100.0), 10.0);
        assert_eq!(h.count(), 5);
        assert_eq!(LogHistogram::new().count(), 0);
        assert_eq!(LogHistogram::new().std(), 0.0);
        assert_eq!(LogHistogram::new().percentile_interpolated(99.0), 0.0);
        let b: Vec<(u64, u64)> = h.buckets().collect();
        assert_eq!(b, vec![(1, 1), (2, 1), (3, 1), (4, 1), (10, 1)]);
    }

    #[test]
    fn first_and_last_ranks_are_exact() {
        let mut h = LogHistogram::new();
        for v in [123_456_789u64, 987_654_321, 555_555_555] {
            h.record(v);
        }
        assert_eq!(h.value_at_rank(1), 123_456_789);
        assert_eq!(h.value_at_rank(3), 987_654_321);
        assert_eq!(h.quantile(1.0), 987_654_321);
        assert_eq!(h.min(), 123_456_789);
    }

    #[test]
    fn stats_scale_every_field_and_quantiles_stay_at_or_above_the_minimum() {
        let mut h = LogHistogram::new();
        // 1,000,447 is the top of its 512-wide bucket: the bucket middle is below the minimum, so
        // the lowest quantile is clamped to the exact minimum
        for v in [1_000_447, 2_000_000, 3_000_000, 4_000_000] {
            h.record(v);
        }
        assert_eq!(h.quantile(0.01), 1_000_447);
        assert_eq!(h.quantile(1.0), 4_000_000);
        let s = h.stats(1e-3);
        let raw = h.stats(1.0);
        assert_eq!(s.count, 4);
        for (scaled, unscaled) in [
            (s.mean, raw.mean),
            (s.p50, raw.p50),
            (s.p90, raw.p90),
            (s.p95, raw.p95),
            (s.p99, raw.p99),
            (s.max, raw.max),
        ] {
            assert!(
                unscaled > 0.0 && (scaled - unscaled * 1e-3).abs() < 1e-9,
                "{s:?} {raw:?}"
            );
        }
        assert_eq!(raw.max, 4_000_000.0);
        assert!((raw.mean - 2_500_111.75).abs() < 1e-6);
        assert_eq!(raw.p50, h.quantile(0.5) as f64);
        assert_eq!(raw.p95, h.quantile(0.95) as f64);
        // a minimum recorded after larger values
        let mut h = LogHistogram::new();
        h.record(5_000_000);
        h.record(1_000_447);
        assert_eq!(h.quantile(0.0), 1_000_447);
    }

    proptest! {
        #[test]
        fn recording_a_value_n_times_at_once_equals_recording_it_n_times(
            before in proptest::collection::vec(0u64..100_000_000_000, 0..20),
            runs in proptest::collection::vec((0u64..100_000_000_000, 0u64..50), 1..20),
        ) {
            let mut one = LogHistogram::new();
            let mut bulk = LogHistogram::new();
            for &v in &before {
                one.record(v);
                bulk.record(v);
            }
            for &(v, n) in &runs {
                for _ in 0..n {
                    one.record(v);
                }
                bulk.record_n(v, n);
            }
            prop_assert_eq!(one, bulk);
        }

        #[test]
        fn std_is_within_float_rounding(vals in proptest::collection::vec(0u64..100_000_000_000, 1..300)) {
            let mut h = LogHistogram::new();
            for &v in &vals { h.record(v); }
            let n = vals.len() as f64;
            let mean = vals.iter().map(|&v| v as f64).sum::<f64>() / n;
            let var = vals.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
            prop_assert!((h.std() - var.sqrt()).abs() <= 1e-6 * var.sqrt().max(1.0), "{} vs {}", h.std(), var.sqrt());
        }

        #[test]
        fn interpolated_percentiles_within_a_tenth_of_a_percent(mut vals in proptest::collection::vec(1u64..10_000_000_000, 1..400), p in 0.0f64..100.0) {
            let mut h = LogHistogram::new();
            for &v in &vals { h.record(v); }
            vals.sort_unstable();
            let pos = (vals.len() - 1) as f64 * p / 100.0;
            let lo = vals[pos.floor() as usize] as f64;
            let hi = vals[(pos.floor() as usize + 1).min(vals.len() - 1)] as f64;
            let exact = lo + (pos - pos.floor()) * (hi - lo);
            let got = h.percentile_interpolated(p);
            prop_assert!((got - exact).abs() <= exact / 1000.0 + 1.0, "p {} exact {} got {}", p, exact, got);
        }

        #[test]
        fn quantiles_within_a_tenth_of_a_percent(mut vals in proptest::collection::vec(1u64..10_000_000_000, 1..400), q in 0.01f64..1.0) {
            let mut h = LogHistogram::new();
            for &v in &vals { h.record(v); }
            vals.sort_unstable();
            let rank = ((q * vals.len() as f64).ceil() as usize).clamp(1, vals.len());
            let exact = vals[rank - 1] as f64;
            let got = h.quantile(q) as f64;
            prop_assert!((got - exact).abs() <= exact / 1000.0 + 1.0, "q {} exact {} got {}", q, exact, got);
        }
    }
}
