//! Length laws: prompt and output lengths of synthetic requests.

use rand::prelude::*;

use super::config::LengthConfig;
use super::error::WorkloadError;
use super::trace_csv;
use super::zipf::YcsbZipf;

/// A seeded Fisher–Yates shuffle that draws `u64` indices, so the order is the same on every
/// platform (no `usize`-width dependence).
pub(crate) fn shuffle<T, R: Rng + ?Sized>(items: &mut [T], rng: &mut R) {
    for i in (1..items.len()).rev() {
        let j = rng.random_range(0..=i as u64) as usize;
        items.swap(i, j);
    }
}

/// Keeps both lengths ≥ 1 and their sum ≤ `cap` (`cap ≥ 2`), taking any excess from the longer.
fn fit(prefill: u64, decode: u64, cap: u32) -> (u32, u32) {
    let cap = u64::from(cap);
    let (mut p, mut d) = (prefill.max(1), decode.max(1));
    if p + d > cap {
        let excess = p + d - cap;
        if p >= d {
            p -= excess.min(p - 1);
        } else {
            d -= excess.min(d - 1);
        }
    }
    (p as u32, d as u32)
}

/// Draws `(prefill_tokens, decode_tokens)` pairs.
pub(crate) enum LengthSampler {
    /// The same pair every time.
    Fixed { prefill: u32, decode: u32 },
    /// Total uniform on `[min, max]`.
    Uniform {
        rng: StdRng,
        min: f64,
        max: f64,
        ratio: f64,
        cap: u32,
    },
    /// Total from the YCSB Zipf law; `permutation` scrambles ranks.
    Zipf {
        rng: StdRng,
        law: YcsbZipf,
        min: u32,
        ratio: f64,
        cap: u32,
        permutation: Option<Vec<u32>>,
    },
    /// Rows of a trace in a shuffled order, reshuffled when exhausted.
    Trace {
        rng: StdRng,
        rows: Vec<(u32, u32)>,
        next: usize,
    },
}

impl LengthSampler {
    /// The sampler of `cfg` (already validated) with upper bound `cap` tokens (prompt plus
    /// output), drawing from `rng`.
    pub(crate) fn new(
        cfg: &LengthConfig,
        cap: u32,
        mut rng: StdRng,
    ) -> Result<Self, WorkloadError> {
        Ok(match cfg {
            LengthConfig::Fixed {
                prefill_tokens,
                decode_tokens,
            } => LengthSampler::Fixed {
                prefill: *prefill_tokens,
                decode: *decode_tokens,
            },
            LengthConfig::Uniform {
                min_tokens,
                max_tokens,
                pd_ratio,
            } => {
                let cap = max_tokens.map_or(cap, |m| m.min(cap));
                LengthSampler::Uniform {
                    rng,
                    min: f64::from(*min_tokens),
                    max: f64::from(cap),
                    ratio: *pd_ratio,
                    cap,
                }
            }
            LengthConfig::Zipf {
                min_tokens,
                max_tokens,
                pd_ratio,
                theta,
                scramble,
            } => {
                let cap = max_tokens.map_or(cap, |m| m.min(cap));
                let n = cap - min_tokens + 1;
                let permutation = scramble.then(|| {
                    let mut p: Vec<u32> = (0..n).collect();
                    shuffle(&mut p, &mut rng);
                    p
                });
                LengthSampler::Zipf {
                    rng,
                    law: YcsbZipf::new(u64::from(n), *theta),
                    min: *min_tokens,
                    ratio: *pd_ratio,
                    cap,
                    permutation,
                }
            }
            LengthConfig::Trace {
                trace_file,
                prefill_scale_factor,
                decode_scale_factor,
            } => {
                let mut rows = trace_csv::read_lengths(
                    trace_file,
                    *prefill_scale_factor,
                    *decode_scale_factor,
                    cap,
                )?;
                shuffle(&mut rows, &mut rng);
                LengthSampler::Trace { rng, rows, next: 0 }
            }
        })
    }

    /// The next `(prefill_tokens, decode_tokens)`, each ≥ 1, summing to at most the cap.
    pub(crate) fn next_pair(&mut self) -> (u32, u32) {
        match self {
            LengthSampler::Fixed { prefill, decode } => (*prefill, *decode),
            LengthSampler::Uniform {
                rng,
                min,
                max,
                ratio,
                cap,
            } => {
                // Vidur: total ~ U(min, max) as a float, D = ⌈total/(1+r)⌉, P = total − D, truncated.
                let total = *min + (*max - *min) * rng.random::<f64>();
                let decode = (total / (1.0 + *ratio)).ceil();
                let prefill = (total - decode).trunc();
                fit(prefill as u64, decode as u64, *cap)
            }
            LengthSampler::Zipf {
                rng,
                law,
                min,
                ratio,
                cap,
                permutation,
            } => {
                let rank = law.sample(rng) as u32;
                let offset = permutation.as_ref().map_or(rank, |p| p[rank as usize]);
                // Vidur: D = total/(1+r), P = total − D as floats, both truncated.
                let total = f64::from(*min + offset);
                let decode = total / (1.0 + *ratio);
                let prefill = total - decode;
                fit(prefill as u64, decode as u64, *cap)
            }
            LengthSampler::Trace { rng, rows, next } => {
                if *next == rows.len() {
                    shuffle(rows, rng);
                    *next = 0;
                }
                let pair = rows[*next];
                *next += 1;
                pair
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn draws(cfg: &LengthConfig, cap: u32, n: usize) -> Vec<(u32, u32)> {
        let mut s = LengthSampler::new(cfg, cap, StdRng::seed_from_u64(9)).unwrap();
        (0..n).map(|_| s.next_pair()).collect()
    }

    #[test]
    fn uniform_follows_vidur_split_and_range() {
        let cfg = LengthConfig::Uniform {
            min_tokens: 1024,
            max_tokens: None,
            pd_ratio: 20.0,
        };
        let xs = draws(&cfg, 4096, 50_000);
        for &(p, d) in &xs {
            let total = p + d;
            assert!((1023..=4096).contains(&total), "{p}+{d}");
            // D = ⌈total/21⌉ for the float total; with the truncated P the ratio stays near 20.
            assert!(p >= 1 && d >= 1 && (p as f64 / d as f64) > 15.0, "{p} {d}");
        }
        let mean = xs.iter().map(|&(p, d)| f64::from(p + d)).sum::<f64>() / xs.len() as f64;
        assert!((mean - 2560.0).abs() < 20.0, "mean total {mean}");
    }

    #[test]
    fn zipf_prefers_short_totals_and_scramble_spreads_them() {
        let cfg = LengthConfig::Zipf {
            min_tokens: 100,
            max_tokens: None,
            pd_ratio: 3.0,
            theta: 0.9,
            scramble: false,
        };
        let xs = draws(&cfg, 1100, 20_000);
        let at_min = xs.iter().filter(|&&(p, d)| p + d <= 100).count();
        assert!(at_min > 2_000, "{at_min} draws at the minimum");
        assert!(xs.iter().all(|&(p, d)| p >= 1 && d >= 1 && p + d <= 1100));
        let scrambled = LengthConfig::Zipf {
            min_tokens: 100,
            max_tokens: None,
            pd_ratio: 3.0,
            theta: 0.9,
            scramble: true,
        };
        let ys = draws(&scrambled, 1100, 20_000);
        let at_min = ys.iter().filter(|&&(p, d)| p + d <= 100).count();
        assert!(at_min < 500, "{at_min} scrambled draws at the minimum");
        // The most frequent length (rank 0, probability 1/ζ(1001, 0.9) ≈ 9.5 %) is as frequent
        // as before, but has moved away from the minimum.
        let mut counts = std::collections::BTreeMap::new();
        for &(p, d) in &ys {
            *counts.entry(p + d).or_insert(0u32) += 1;
        }
        let (&top_total, &top_count) = counts.iter().max_by_key(|(_, &c)| c).unwrap();
        assert!(
            (1_600..2_200).contains(&top_count),
            "{top_count} draws of the top length"
        );
        assert!(top_total > 110, "top scrambled length {top_total}");
    }

    #[test]
    fn trace_lengths_cycle_through_reshuffled_rows_instead_of_failing() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "num_prefill_tokens,num_decode_tokens").unwrap();
        for i in 1..=5 {
            writeln!(f, "{},{}", i * 100, i).unwrap();
        }
        writeln!(f, "9000,1000").unwrap();
        let cfg = LengthConfig::Trace {
            trace_file: f.path().to_path_buf(),
            prefill_scale_factor: 1.0,
            decode_scale_factor: 1.0,
        };
        let xs = draws(&cfg, 4096, 18);
        // Three passes, each a permutation of the six rows; the long row is clipped (Vidur's rule).
        let mut expected = vec![
            (100, 1),
            (200, 2),
            (300, 3),
            (400, 4),
            (500, 5),
            (3686, 409),
        ];
        expected.sort();
        for pass in xs.chunks(6) {
            let mut pass = pass.to_vec();
            pass.sort();
            assert_eq!(pass, expected);
        }
        assert_ne!(xs[0..6], xs[6..12], "each pass is reshuffled");
    }
}
