//! The report's plots, built from the aggregates the readers produce.

use std::collections::BTreeMap;

use super::chart::{Body, Chart, Series};
use super::read::{BatchData, RequestData, TimeseriesData, OP_NAMES, REQUEST_METRICS};

/// Most replicas drawn as separate lines (or bars); beyond this the plot says how many are left out.
pub const MAX_REPLICA_LINES: usize = 8;
/// Most points of one CDF line.
const CDF_POINTS: usize = 400;
/// Bars of the batch-token histogram.
const HISTOGRAM_BINS: u64 = 40;

/// A chart with the caption the HTML report shows under it.
#[derive(Debug, Clone)]
pub struct Figure {
    /// The chart.
    pub chart: Chart,
    /// One or two sentences saying what the plot shows.
    pub caption: String,
}

/// Every plot the data allows, in report order: CDFs, time series, histogram, operator breakdown.
pub fn figures(
    requests: Option<&RequestData>,
    batches: Option<&BatchData>,
    timeseries: Option<&TimeseriesData>,
) -> Vec<Figure> {
    let mut out = Vec::new();
    if let Some(r) = requests {
        for (column, title, short) in REQUEST_METRICS {
            if let Some(per_replica) = r.metrics.get(column) {
                out.extend(cdf(per_replica, title, short));
            }
        }
    }
    if let Some(b) = batches {
        let width = b.bins.width_s();
        let series = |q: usize| per_replica_lines(&b.bins.replica_ids(), |r| b.bins.means(r, q));
        if !b.bins.is_empty() {
            let (s, note) = series(0);
            out.push(timeseries_figure(
                "batch_size_timeseries",
                format!("Batch size over time{note}"),
                "Requests per batch",
                s,
                format!(
                    "Mean number of requests per batch (first pipeline stage), in {} bins of simulated time.",
                    secs(width)
                ),
            ));
            let (s, note) = series(1);
            out.push(timeseries_figure(
                "batch_tokens_timeseries",
                format!("Tokens per batch over time{note}"),
                "Tokens per batch (tokens)",
                s,
                format!(
                    "Mean tokens (prefill + decode) per batch, in {} bins of simulated time.",
                    secs(width)
                ),
            ));
        }
        if let Some(f) = token_histogram(b) {
            out.push(f);
        }
        if let Some(f) = op_breakdown(b) {
            out.push(f);
        }
    }
    if let Some(t) = timeseries {
        let width = t.bins.width_s();
        let specs = [
            (
                2,
                "kv_usage_timeseries",
                "KV-cache utilisation over time",
                "KV blocks in use (%)",
                "Share of the replica's KV-cache blocks allocated",
            ),
            (
                0,
                "queue_length_timeseries",
                "Queue length over time",
                "Queued requests (requests)",
                "Requests waiting for admission on the replica",
            ),
            (
                3,
                "throughput_timeseries",
                "Completed-request throughput over time",
                "Completed requests per second (req/s)",
                "Requests finished per second of simulated time",
            ),
        ];
        for (q, name, title, y, what) in specs {
            if !t.present[q] || t.bins.is_empty() {
                continue;
            }
            let (s, note) = per_replica_lines(&t.bins.replica_ids(), |r| t.bins.means(r, q));
            out.push(timeseries_figure(
                name,
                format!("{title}{note}"),
                y,
                s,
                format!(
                    "{what}, from timeseries.csv (means over {} bins of simulated time).",
                    secs(width)
                ),
            ));
        }
    }
    out
}

fn secs(width_s: f64) -> String {
    if width_s < 1.0 {
        format!("{} ms", super::chart::tick(width_s * 1e3))
    } else {
        format!("{} s", super::chart::tick(width_s))
    }
}

/// One line per replica (at most [`MAX_REPLICA_LINES`]) and a title suffix naming any left out.
fn per_replica_lines(
    replicas: &[u32],
    points: impl Fn(u32) -> Vec<(f64, f64)>,
) -> (Vec<Series>, String) {
    let shown = &replicas[..replicas.len().min(MAX_REPLICA_LINES)];
    let series = shown
        .iter()
        .enumerate()
        .map(|(i, &r)| Series {
            name: format!("replica {r}"),
            points: points(r),
            color: Some(i),
            width: 2,
        })
        .collect();
    let note = if shown.len() < replicas.len() {
        format!(" (first {} of {} replicas)", shown.len(), replicas.len())
    } else {
        String::new()
    };
    (series, note)
}

fn timeseries_figure(
    name: &str,
    title: String,
    y_label: &str,
    series: Vec<Series>,
    caption: String,
) -> Figure {
    // A percentage of capacity is drawn on its whole scale, so headroom shows.
    let y_range = y_label.ends_with("(%)").then_some((0.0, 100.0));
    Figure {
        chart: Chart {
            name: name.to_string(),
            title,
            x_label: "Simulated time (s)".to_string(),
            y_label: y_label.to_string(),
            body: Body::Lines { series, y_range },
        },
        caption,
    }
}

/// Sorted values to at most [`CDF_POINTS`] + 1 points `(value·scale, cumulative fraction)`.
pub fn cdf_points(sorted: &[f64], scale: f64) -> Vec<(f64, f64)> {
    let n = sorted.len();
    if n == 0 {
        return Vec::new();
    }
    let m = (n - 1).clamp(1, CDF_POINTS);
    let mut pts = vec![(sorted[0] * scale, 0.0)];
    let mut last = usize::MAX;
    for k in 0..=m {
        let idx = k * (n - 1) / m;
        if idx != last {
            pts.push((sorted[idx] * scale, (idx + 1) as f64 / n as f64));
            last = idx;
        }
    }
    pts
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

fn cdf(per_replica: &BTreeMap<u32, Vec<f64>>, title: &str, short: &str) -> Option<Figure> {
    let all = sorted(per_replica.values().flatten().copied().collect());
    let max = *all.last()?;
    let (scale, unit) = if max < 1.0 { (1e3, "ms") } else { (1.0, "s") };
    let several = per_replica.len() > 1;
    // Per-replica lines first, so the all-requests line is drawn on top of them.
    let mut series = Vec::new();
    let mut note = String::new();
    if several {
        let ids: Vec<u32> = per_replica.keys().copied().collect();
        let (lines, n) = per_replica_lines(&ids, |r| {
            cdf_points(&sorted(per_replica[&r].clone()), scale)
        });
        series.extend(lines);
        note = n;
    }
    series.push(Series {
        name: if several {
            format!("all replicas ({} requests)", all.len())
        } else {
            format!("all requests ({})", all.len())
        },
        points: cdf_points(&all, scale),
        color: None,
        width: 3,
    });
    let p = |q: f64| all[((all.len() - 1) as f64 * q).round() as usize] * scale;
    Some(Figure {
        chart: Chart {
            name: format!("{short}_cdf"),
            title: format!("{title}: CDF{note}"),
            x_label: format!("{} ({unit})", title.split(" (").next().unwrap_or(title)),
            y_label: "Fraction of requests".to_string(),
            body: Body::Lines {
                series,
                y_range: None,
            },
        },
        caption: format!(
            "Cumulative distribution over {} requests: p50 {} {unit}, p90 {} {unit}, p99 {} {unit}, max {} {unit}.",
            all.len(),
            super::chart::tick(p(0.5)),
            super::chart::tick(p(0.9)),
            super::chart::tick(p(0.99)),
            super::chart::tick(max * scale),
        ),
    })
}

fn token_histogram(b: &BatchData) -> Option<Figure> {
    let (&lo, _) = b.token_histogram.first_key_value()?;
    let (&hi, _) = b.token_histogram.last_key_value()?;
    let width = nice_width((hi - lo + 1).div_ceil(HISTOGRAM_BINS));
    let lo = lo - lo % width;
    let mut counts = vec![0u64; ((hi - lo) / width + 1) as usize];
    for (&t, &c) in &b.token_histogram {
        counts[((t - lo) / width) as usize] += c;
    }
    let bins = counts
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let x0 = (lo + i as u64 * width) as f64;
            (x0, x0 + width as f64, c as f64)
        })
        .collect();
    Some(Figure {
        chart: Chart {
            name: "batch_tokens_histogram".to_string(),
            title: format!("Tokens per batch ({} batches)", b.batches),
            x_label: "Tokens in the batch (tokens)".to_string(),
            y_label: "Batches (log scale)".to_string(),
            body: Body::Histogram(bins),
        },
        caption: format!(
            "How many batches processed how many tokens (prefill + decode, first pipeline stage), in bins of {width} token{}.",
            if width == 1 { "" } else { "s" }
        ),
    })
}

/// The smallest of 1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, … that is at least `w`.
fn nice_width(w: u64) -> u64 {
    let mut scale = 1u64;
    loop {
        for tenths in [10, 20, 25, 50] {
            let v = tenths * scale;
            if v.is_multiple_of(10) && v / 10 >= w {
                return v / 10;
            }
        }
        scale *= 10;
    }
}

fn op_breakdown(b: &BatchData) -> Option<Figure> {
    let totals: Vec<f64> = (0..OP_NAMES.len())
        .map(|k| b.op_ms.values().map(|v| v[k]).sum())
        .collect();
    let ops: Vec<usize> = (0..OP_NAMES.len()).filter(|&k| totals[k] > 0.0).collect();
    if ops.is_empty() {
        return None;
    }
    let (categories, columns): (Vec<String>, Vec<[f64; 15]>) =
        if b.op_ms.len() <= 2 * MAX_REPLICA_LINES {
            b.op_ms
                .iter()
                .map(|(r, v)| (format!("replica {r}"), *v))
                .unzip()
        } else {
            let mut sum = [0.0; 15];
            for (k, s) in sum.iter_mut().enumerate() {
                *s = totals[k];
            }
            (vec![format!("all {} replicas", b.op_ms.len())], vec![sum])
        };
    let layers = ops
        .iter()
        .map(|&k| {
            (
                OP_NAMES[k].to_string(),
                columns.iter().map(|c| c[k] / 1e3).collect(),
            )
        })
        .collect();
    Some(Figure {
        chart: Chart {
            name: "operator_breakdown".to_string(),
            title: "Where the GPU time goes".to_string(),
            x_label: "Replica".to_string(),
            y_label: "Operator time, summed over stages (s)".to_string(),
            body: Body::Stacked { categories, layers },
        },
        caption: "Execution time of each operator, summed over every batch and pipeline stage of the replica (batches.csv `<op>_ms` columns); the key gives each operator's share of the total.".to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdf_points_are_bounded_monotone_and_end_at_one() {
        let v: Vec<f64> = (0..10_000).map(|i| i as f64).collect();
        let p = cdf_points(&v, 1.0);
        assert!(p.len() <= CDF_POINTS + 2);
        assert_eq!(p.first(), Some(&(0.0, 0.0)));
        assert_eq!(p.last(), Some(&(9999.0, 1.0)));
        assert!(p.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
        assert_eq!(cdf_points(&[2.0], 1e3), vec![(2000.0, 0.0), (2000.0, 1.0)]);
    }

    #[test]
    fn cdf_per_replica_when_several() {
        let data = BTreeMap::from([(0, vec![0.1, 0.2]), (1, vec![0.3])]);
        let f = cdf(&data, "Time to first token (TTFT)", "ttft").unwrap();
        assert_eq!(f.chart.x_label, "Time to first token (ms)");
        let Body::Lines { series, .. } = &f.chart.body else {
            panic!("lines expected")
        };
        let names: Vec<&str> = series.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            ["replica 0", "replica 1", "all replicas (3 requests)"]
        );
        let one = BTreeMap::from([(0, vec![1.5, 2.5])]);
        let f = cdf(&one, "End-to-end latency (E2E)", "e2e").unwrap();
        assert_eq!(f.chart.x_label, "End-to-end latency (s)");
        let Body::Lines { series, .. } = &f.chart.body else {
            panic!("lines expected")
        };
        assert_eq!(series.len(), 1);
    }

    #[test]
    fn histogram_widths_are_round() {
        let got: Vec<u64> = [0, 1, 2, 3, 6, 13, 21, 26, 60, 130, 240]
            .iter()
            .map(|&w| nice_width(w))
            .collect();
        assert_eq!(got, [1, 1, 2, 5, 10, 20, 25, 50, 100, 200, 250]);
    }

    #[test]
    fn histogram_bins_cover_every_batch() {
        let mut b = BatchData::default();
        for t in 1..=1000u64 {
            *b.token_histogram.entry(t).or_default() += t % 3;
        }
        b.batches = b.token_histogram.values().sum();
        let f = token_histogram(&b).unwrap();
        let Body::Histogram(bins) = &f.chart.body else {
            panic!("histogram expected")
        };
        // Round widths and an aligned start may add one bin.
        assert!(bins.len() as u64 <= HISTOGRAM_BINS + 1);
        assert_eq!(bins.iter().map(|b| b.2).sum::<f64>(), b.batches as f64);
    }
}
