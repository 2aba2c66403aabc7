//! Streaming time bins: per-replica means over time with a bounded number of bins.
//!
//! Values arrive in any time order; the bin width starts small and doubles (merging neighbouring bins)
//! whenever a time falls beyond the last bin, so memory stays bounded however long the run is and the
//! result is the same for the same input whatever its length.

use std::collections::BTreeMap;

/// Most bins kept per replica; after a doubling there are at least half as many.
pub(crate) const MAX_BINS: usize = 240;
/// Width of the first bin grid, in seconds.
const INITIAL_WIDTH_S: f64 = 0.001;

/// Sum and count of the values that fell into one bin.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Acc {
    /// Sum of the values.
    pub sum: f64,
    /// Number of values.
    pub count: u64,
}

/// Time-binned means of several quantities (`N` of them) for each replica, on one shared grid.
#[derive(Debug, Clone)]
pub(crate) struct TimeBins<const N: usize> {
    width_s: f64,
    replicas: BTreeMap<u32, Vec<[Acc; N]>>,
}

impl<const N: usize> Default for TimeBins<N> {
    fn default() -> Self {
        TimeBins {
            width_s: INITIAL_WIDTH_S,
            replicas: BTreeMap::new(),
        }
    }
}

impl<const N: usize> TimeBins<N> {
    /// Bins starting `width_s` wide (doubling as needed), for data sampled that often.
    pub fn with_width(width_s: f64) -> Self {
        TimeBins {
            width_s: if width_s.is_finite() && width_s > 0.0 {
                width_s
            } else {
                INITIAL_WIDTH_S
            },
            replicas: BTreeMap::new(),
        }
    }

    /// Adds one observation of every quantity for `replica` at time `time_s` (negative times count
    /// as 0).
    pub fn add(&mut self, replica: u32, time_s: f64, values: [f64; N]) {
        let t = if time_s.is_finite() {
            time_s.max(0.0)
        } else {
            0.0
        };
        let mut idx = (t / self.width_s) as usize;
        while idx >= MAX_BINS {
            self.double();
            idx = (t / self.width_s) as usize;
        }
        let bins = self.replicas.entry(replica).or_default();
        if bins.len() <= idx {
            bins.resize(idx + 1, [Acc::default(); N]);
        }
        for (acc, v) in bins[idx].iter_mut().zip(values) {
            acc.sum += v;
            acc.count += 1;
        }
    }

    fn double(&mut self) {
        self.width_s *= 2.0;
        for bins in self.replicas.values_mut() {
            let merged: Vec<[Acc; N]> = bins
                .chunks(2)
                .map(|pair| {
                    let mut out = pair[0];
                    if let Some(second) = pair.get(1) {
                        for (o, s) in out.iter_mut().zip(second) {
                            o.sum += s.sum;
                            o.count += s.count;
                        }
                    }
                    out
                })
                .collect();
            *bins = merged;
        }
    }

    /// Width of one bin, in seconds.
    pub fn width_s(&self) -> f64 {
        self.width_s
    }

    /// Replica ids seen, ascending.
    pub fn replica_ids(&self) -> Vec<u32> {
        self.replicas.keys().copied().collect()
    }

    /// `(bin centre time, mean of quantity q)` for every non-empty bin of `replica`.
    pub fn means(&self, replica: u32, q: usize) -> Vec<(f64, f64)> {
        self.map(replica, q, |acc| acc.sum / acc.count as f64)
    }

    /// `(bin centre time, f(acc))` for every non-empty bin of `replica`.
    pub fn map(&self, replica: u32, q: usize, f: impl Fn(&Acc) -> f64) -> Vec<(f64, f64)> {
        let Some(bins) = self.replicas.get(&replica) else {
            return Vec::new();
        };
        bins.iter()
            .enumerate()
            .filter(|(_, b)| b[q].count > 0)
            .map(|(i, b)| ((i as f64 + 0.5) * self.width_s, f(&b[q])))
            .collect()
    }

    /// True when nothing was added.
    pub fn is_empty(&self) -> bool {
        self.replicas.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn means_per_bin_and_bounded_bins() {
        let mut b: TimeBins<1> = TimeBins::default();
        b.add(0, 0.0001, [2.0]);
        b.add(0, 0.0002, [4.0]);
        assert_eq!(b.means(0, 0), vec![(0.0005, 3.0)]);
        // A far time forces doublings; the early values stay in the first bin.
        b.add(0, 1000.0, [10.0]);
        assert!(b.width_s() * MAX_BINS as f64 > 1000.0);
        let m = b.means(0, 0);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].1, 3.0);
        assert_eq!(m[1].1, 10.0);
        assert!(b.replicas[&0].len() <= MAX_BINS);
    }

    #[test]
    fn same_result_whatever_the_order() {
        let pts: Vec<(f64, f64)> = (0..5000)
            .map(|i| (i as f64 * 0.37, (i % 7) as f64))
            .collect();
        let mut a: TimeBins<1> = TimeBins::default();
        let mut b: TimeBins<1> = TimeBins::default();
        for &(t, v) in &pts {
            a.add(1, t, [v]);
        }
        for &(t, v) in pts.iter().rev() {
            b.add(1, t, [v]);
        }
        assert_eq!(a.width_s(), b.width_s());
        let (ma, mb) = (a.means(1, 0), b.means(1, 0));
        assert_eq!(ma.len(), mb.len());
        for (x, y) in ma.iter().zip(&mb) {
            assert_eq!(x.0, y.0);
            assert!((x.1 - y.1).abs() < 1e-9);
        }
    }
}
