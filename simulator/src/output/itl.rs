//! `itl_histogram.csv`: the distribution of every gap between consecutive output tokens (vLLM's
//! inter-token latency, `tbt_s` in `summary.json`), one row per non-empty histogram bucket. The
//! gaps themselves are not kept (a run has about as many as output tokens); the buckets are within
//! 0.1 % of the values they hold, so CDFs and percentiles drawn from the file are too.

use std::fmt::Write as _;

use super::fmt_s;
use crate::metrics::LogHistogram;

/// The header row.
pub const HEADER: &str = "itl_s,gaps";

/// The file's text for the gap histogram `h` (nanoseconds).
pub fn text(h: &LogHistogram) -> String {
    let mut out = String::with_capacity(64 * 1024);
    out.push_str(HEADER);
    out.push('\n');
    for (ns, count) in h.buckets() {
        fmt_s(&mut out, ns);
        let _ = writeln!(out, ",{count}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_per_bucket_in_seconds() {
        let mut h = LogHistogram::new();
        for ns in [5_000_000u64, 5_000_000, 7_000_000] {
            h.record(ns);
        }
        let t = text(&h);
        let rows: Vec<&str> = t.lines().collect();
        assert_eq!(rows[0], HEADER);
        assert_eq!(rows.len(), 3);
        for (row, (want_s, want_n)) in rows[1..].iter().zip([(0.005, 2), (0.007, 1)]) {
            let (v, n) = row.split_once(',').unwrap();
            let v: f64 = v.parse().unwrap();
            assert!((v - want_s).abs() <= want_s / 1000.0, "{row}");
            assert_eq!(n.parse::<u64>().unwrap(), want_n);
        }
    }
}
