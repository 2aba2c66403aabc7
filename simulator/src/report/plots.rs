//! The report's plots, built from the aggregates the readers produce; the CDF builder is shared
//! with `simulator compare` ([`cdf_figures`]).

use std::collections::BTreeMap;

use super::chart::{Body, Chart, Lines, Mark, Rule, RuleAxis, Series, SLO_RED};
use super::read::{BatchData, RequestData, TimeseriesData, OP_NAMES, REQUEST_METRICS};

/// Most replicas drawn as separate lines (or bars); beyond this the plot says how many are left out.
pub const MAX_REPLICA_LINES: usize = 8;
/// Most points of one CDF line.
const CDF_POINTS: usize = 400;
/// Bars of the batch-token histogram.
const HISTOGRAM_BINS: u64 = 40;

/// Which axis version of a plot a figure is: CDFs come in a linear and a log-latency version, and
/// the page shows one of the two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// The only version.
    Only,
    /// The linear version of a pair.
    Linear,
    /// The log version of a pair.
    Log,
}

/// A chart with the caption the HTML report shows under it.
#[derive(Debug, Clone)]
pub struct Figure {
    /// The chart.
    pub chart: Chart,
    /// One or two sentences saying what the plot shows.
    pub caption: String,
    /// Its version.
    pub scale: Scale,
}

/// The SLOs of the run, seconds (for the dashed lines on the CDFs).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SloLines {
    /// TTFT limit.
    pub ttft_s: Option<f64>,
    /// TPOT limit.
    pub tpot_s: Option<f64>,
    /// E2E limit.
    pub e2e_s: Option<f64>,
}

/// A distribution to draw: ascending `(value, weight)` pairs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dist {
    pts: Vec<(f64, u64)>,
    total: u64,
}

impl Dist {
    /// Values of weight one each, in any order.
    pub fn from_values(mut v: Vec<f64>) -> Dist {
        v.sort_by(f64::total_cmp);
        let total = v.len() as u64;
        Dist {
            pts: v.into_iter().map(|x| (x, 1)).collect(),
            total,
        }
    }

    /// Weighted values (a histogram), in any order.
    pub fn from_weighted(mut v: Vec<(f64, u64)>) -> Dist {
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total = v.iter().map(|p| p.1).sum();
        Dist { pts: v, total }
    }

    /// Total weight (values counted).
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Largest value (0 when empty).
    pub fn max(&self) -> f64 {
        self.pts.last().map_or(0.0, |p| p.0)
    }

    /// Nearest-rank `q`-quantile (0 when empty).
    pub fn quantile(&self, q: f64) -> f64 {
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total.max(1));
        let mut seen = 0;
        for &(v, w) in &self.pts {
            seen += w;
            if seen >= rank {
                return v;
            }
        }
        self.max()
    }

    /// At most about [`CDF_POINTS`] + 2 points `(value·scale, cumulative fraction)`, starting at
    /// `(smallest, 0)` and ending at `(largest, 1)`.
    pub fn cdf_points(&self, scale: f64) -> Vec<(f64, f64)> {
        let Some(&(first, _)) = self.pts.first() else {
            return Vec::new();
        };
        let n = self.total as f64;
        let mut out = vec![(first * scale, 0.0)];
        let mut seen = 0u64;
        let mut next = 1.0 / CDF_POINTS as f64;
        for (i, &(v, w)) in self.pts.iter().enumerate() {
            seen += w;
            let f = seen as f64 / n;
            if f >= next || i + 1 == self.pts.len() {
                out.push((v * scale, f));
                next = f + 1.0 / CDF_POINTS as f64;
            }
        }
        out
    }
}

/// One line of a CDF plot.
#[derive(Debug, Clone)]
pub struct CdfLine {
    /// Legend label.
    pub name: String,
    /// The values.
    pub dist: Dist,
    /// Index into the palette, or `None` for black.
    pub color: Option<usize>,
    /// Line width, pixels.
    pub width: u32,
    /// Mark p50, p90, p99 and the maximum on this line.
    pub marks: bool,
}

/// What a CDF plot shows.
#[derive(Debug, Clone, Copy)]
pub struct CdfSpec<'a> {
    /// File stem (`ttft_cdf`); the log version adds `_log`.
    pub name: &'a str,
    /// Title (`Time to first token (TTFT)`).
    pub title: &'a str,
    /// Quantity on the x axis, without unit (`Time to first token`).
    pub axis: &'a str,
    /// What is counted (`requests`, `token gaps`).
    pub counted: &'a str,
    /// The SLO, seconds.
    pub slo_s: Option<f64>,
    /// Also draw a log-latency version.
    pub log: bool,
}

/// Milliseconds or seconds for values up to `max_s`: `(scale from seconds, unit)`.
pub fn time_unit(max_s: f64) -> (f64, &'static str) {
    if max_s < 1.0 {
        (1e3, "ms")
    } else {
        (1.0, "s")
    }
}

/// The CDF plot of `lines` (and its log-latency version when `spec.log`), with percentile marks
/// on the lines that ask for them, the SLO as a dashed line, and a caption giving the percentiles
/// of the last line (the one drawn on top).
pub fn cdf_figures(spec: &CdfSpec<'_>, lines: &[CdfLine], title_note: &str) -> Vec<Figure> {
    let Some(top) = lines.last().filter(|l| l.dist.count() > 0) else {
        return Vec::new();
    };
    let max = lines.iter().map(|l| l.dist.max()).fold(0.0, f64::max);
    let (scale, unit) = time_unit(max);
    let series: Vec<Series> = lines
        .iter()
        .map(|l| Series {
            name: l.name.clone(),
            points: l.dist.cdf_points(scale),
            color: l.color,
            width: l.width,
            ..Default::default()
        })
        .collect();
    let mut marks = Vec::new();
    for l in lines.iter().filter(|l| l.marks) {
        for (q, name) in [(0.5, "p50"), (0.9, "p90"), (0.99, "p99"), (1.0, "max")] {
            let v = l.dist.quantile(q) * scale;
            marks.push(Mark {
                x: v,
                y: q,
                label: format!("{name} {} {unit}", super::chart::tick(v)),
            });
        }
    }
    let rules: Vec<Rule> = spec
        .slo_s
        .map(|s| Rule {
            axis: RuleAxis::X,
            at: s * scale,
            label: format!("SLO {} {unit}", super::chart::tick(s * scale)),
            color: SLO_RED,
        })
        .into_iter()
        .collect();
    let p = |q: f64| super::chart::tick(top.dist.quantile(q) * scale);
    let mut caption = format!(
        "Cumulative distribution over {} {}: p50 {} {unit}, p90 {} {unit}, p99 {} {unit}, max {} {unit}.",
        top.dist.count(),
        spec.counted,
        p(0.5),
        p(0.9),
        p(0.99),
        p(1.0),
    );
    if let Some(s) = spec.slo_s {
        let met = top
            .dist
            .pts
            .iter()
            .filter(|x| x.0 <= s)
            .map(|x| x.1)
            .sum::<u64>();
        caption.push_str(&format!(
            " The dashed red line is the SLO ({} {unit}), met by {:.1} % of them.",
            super::chart::tick(s * scale),
            100.0 * met as f64 / top.dist.count() as f64
        ));
    }
    let base = Lines {
        series,
        marks,
        rules,
        legend_room_right: true,
        ..Default::default()
    };
    let chart = |suffix: &str, x_log: bool| Chart {
        name: format!("{}{suffix}", spec.name),
        title: format!(
            "{}: CDF{}{title_note}",
            spec.title,
            if x_log { ", log latency axis" } else { "" }
        ),
        x_label: format!(
            "{} ({unit}{})",
            spec.axis,
            if x_log { ", log scale" } else { "" }
        ),
        y_label: format!("Fraction of {}", spec.counted),
        body: Body::Lines(Lines {
            x_log,
            ..base.clone()
        }),
    };
    if !spec.log {
        return vec![Figure {
            chart: chart("", false),
            caption,
            scale: Scale::Only,
        }];
    }
    vec![
        Figure {
            chart: chart("", false),
            caption: caption.clone(),
            scale: Scale::Linear,
        },
        Figure {
            chart: chart("_log", true),
            caption: format!("{caption} Log latency axis: the tail (p99, max) spreads out."),
            scale: Scale::Log,
        },
    ]
}

/// Every plot the data allows, in report order: CDFs, time series, histogram, operator breakdown.
pub fn figures(
    requests: Option<&RequestData>,
    itl: Option<&Dist>,
    batches: Option<&BatchData>,
    timeseries: Option<&TimeseriesData>,
    slo: &SloLines,
) -> Vec<Figure> {
    let mut out = Vec::new();
    if let Some(r) = requests {
        for (column, title, short) in REQUEST_METRICS {
            if short == "e2e" {
                if let Some(d) = itl {
                    out.extend(itl_cdf(d));
                }
            }
            if let Some(per_replica) = r.metrics.get(column) {
                let slo_s = match short {
                    "ttft" => slo.ttft_s,
                    "tpot" => slo.tpot_s,
                    "e2e" => slo.e2e_s,
                    _ => None,
                };
                out.extend(request_cdf(per_replica, title, short, slo_s));
            }
        }
    } else if let Some(d) = itl {
        out.extend(itl_cdf(d));
    }
    if let Some(b) = batches {
        let width = b.bins.width_s();
        let series = |q: usize| {
            per_replica_lines(&b.bins.replica_ids(), |r| b.bins.means(r, q), Total::None)
        };
        if !b.bins.is_empty() {
            let (s, note) = series(0);
            out.push(timeseries_figure(
                "batch_size_timeseries",
                format!("Batch size over time{note}"),
                "Requests per batch",
                s,
                true,
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
                true,
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
        out.extend(timeseries_figures(t));
    }
    out
}

fn timeseries_figures(t: &TimeseriesData) -> Vec<Figure> {
    let width = t.bins.width_s();
    let sampled = if (width - t.interval_s).abs() <= 1e-9 * width.max(1.0) {
        format!("from timeseries.csv, sampled every {}", secs(t.interval_s))
    } else {
        format!(
            "from timeseries.csv: means over {} bins of samples taken every {}",
            secs(width),
            secs(t.interval_s)
        )
    };
    let specs = [
        (
            2,
            "kv_usage_timeseries",
            "KV-cache utilisation over time",
            "KV blocks in use (%)",
            "Share of the replica's KV-cache blocks allocated",
            Total::Mean,
            false,
        ),
        (
            0,
            "queue_length_timeseries",
            "Queue length over time",
            "Queued requests (requests)",
            "Requests waiting for admission on the replica",
            Total::Sum,
            true,
        ),
        (
            3,
            "throughput_timeseries",
            "Completed-request throughput over time",
            "Completed requests per second (req/s)",
            "Requests finished per second of simulated time",
            Total::Sum,
            false,
        ),
    ];
    let mut out = Vec::new();
    for (q, name, title, y, what, total, integer) in specs {
        if !t.present[q] || t.bins.is_empty() {
            continue;
        }
        let (s, note) = per_replica_lines(&t.bins.replica_ids(), |r| t.bins.means(r, q), total);
        let peak = s
            .iter()
            .flat_map(|x| x.points.iter().map(|p| p.1))
            .fold(0.0, f64::max);
        let extra = if q == 2 {
            format!(" Peak {:.1} %; the axis stops above it.", peak)
        } else {
            String::new()
        };
        let total_text = match (t.bins.replica_ids().len() > 1, total) {
            (true, Total::Sum) => " The black line is the cluster total.",
            (true, Total::Mean) => " The black line is the mean over replicas.",
            _ => "",
        };
        out.push(timeseries_figure(
            name,
            format!("{title}{note}"),
            y,
            s,
            integer,
            format!("{what}, {sampled}.{total_text}{extra}"),
        ));
    }
    out
}

/// `250 ms`, `1 s`, `4 s`.
fn secs(width_s: f64) -> String {
    if width_s < 1.0 {
        format!("{} ms", super::chart::tick(width_s * 1e3))
    } else {
        format!("{} s", super::chart::tick(width_s))
    }
}

/// How per-replica lines add up to a cluster line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Total {
    /// No cluster line.
    None,
    /// The sum over replicas (counts, rates).
    Sum,
    /// The mean over replicas (shares of capacity).
    Mean,
}

/// One line per replica (at most [`MAX_REPLICA_LINES`]), a black cluster line when there are
/// several replicas and `total` asks for it, and a title suffix naming any replicas left out.
fn per_replica_lines(
    replicas: &[u32],
    points: impl Fn(u32) -> Vec<(f64, f64)>,
    total: Total,
) -> (Vec<Series>, String) {
    let shown = &replicas[..replicas.len().min(MAX_REPLICA_LINES)];
    let mut series: Vec<Series> = shown
        .iter()
        .enumerate()
        .map(|(i, &r)| Series {
            name: format!("replica {r}"),
            points: points(r),
            color: Some(i),
            width: 2,
            ..Default::default()
        })
        .collect();
    if replicas.len() > 1 && total != Total::None {
        let mut acc: BTreeMap<u64, (f64, f64, u32)> = BTreeMap::new();
        for &r in replicas {
            for (t, v) in points(r) {
                let e = acc.entry(t.to_bits()).or_insert((t, 0.0, 0));
                e.1 += v;
                e.2 += 1;
            }
        }
        let mut pts: Vec<(f64, f64)> = acc
            .values()
            .map(|&(t, sum, n)| {
                (
                    t,
                    if total == Total::Mean {
                        sum / f64::from(n)
                    } else {
                        sum
                    },
                )
            })
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        series.push(Series {
            name: if total == Total::Mean {
                "mean of all replicas".to_string()
            } else {
                "cluster total".to_string()
            },
            points: pts,
            color: None,
            width: 3,
            ..Default::default()
        });
    }
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
    y_integer: bool,
    caption: String,
) -> Figure {
    Figure {
        chart: Chart {
            name: name.to_string(),
            title,
            x_label: "Simulated time (s)".to_string(),
            y_label: y_label.to_string(),
            body: Body::Lines(Lines {
                series,
                y_integer,
                ..Default::default()
            }),
        },
        caption,
        scale: Scale::Only,
    }
}

/// The CDF of a `requests.csv` metric, per replica and for all requests.
fn request_cdf(
    per_replica: &BTreeMap<u32, Vec<f64>>,
    title: &str,
    short: &str,
    slo_s: Option<f64>,
) -> Vec<Figure> {
    let all = Dist::from_values(per_replica.values().flatten().copied().collect());
    let several = per_replica.len() > 1;
    // Per-replica lines first, so the all-requests line is drawn on top of them.
    let mut lines = Vec::new();
    let mut note = String::new();
    if several {
        let ids: Vec<u32> = per_replica.keys().copied().collect();
        let shown = &ids[..ids.len().min(MAX_REPLICA_LINES)];
        for (i, r) in shown.iter().enumerate() {
            lines.push(CdfLine {
                name: format!("replica {r}"),
                dist: Dist::from_values(per_replica[r].clone()),
                color: Some(i),
                width: 2,
                marks: false,
            });
        }
        if shown.len() < ids.len() {
            note = format!(" (first {} of {} replicas)", shown.len(), ids.len());
        }
    }
    lines.push(CdfLine {
        name: if several {
            format!("all replicas ({} requests)", all.count())
        } else {
            format!("all requests ({})", all.count())
        },
        dist: all,
        color: None,
        width: 3,
        marks: true,
    });
    let name = format!("{short}_cdf");
    let axis = title.split(" (").next().unwrap_or(title);
    cdf_figures(
        &CdfSpec {
            name: &name,
            title,
            axis,
            counted: "requests",
            slo_s,
            log: short != "scheduling_delay",
        },
        &lines,
        &note,
    )
}

/// The CDF of every gap between consecutive output tokens (`itl_histogram.csv`).
fn itl_cdf(d: &Dist) -> Vec<Figure> {
    let mut figs = cdf_figures(
        &CdfSpec {
            name: "itl_cdf",
            title: "Inter-token latency, every gap (ITL)",
            axis: "Gap between consecutive output tokens",
            counted: "token gaps",
            slo_s: None,
            log: true,
        },
        &[CdfLine {
            name: format!("all gaps ({})", d.count()),
            dist: d.clone(),
            color: None,
            width: 3,
            marks: true,
        }],
        "",
    );
    for f in &mut figs {
        f.caption.push_str(" Every gap of every request counts (vLLM's ITL; summary.json's tbt_s), from itl_histogram.csv (values within 0.1 %).");
    }
    figs
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
        scale: Scale::Only,
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
        scale: Scale::Only,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cdf_points(sorted: &[f64], scale: f64) -> Vec<(f64, f64)> {
        Dist::from_values(sorted.to_vec()).cdf_points(scale)
    }

    #[test]
    fn cdf_points_are_bounded_monotone_and_end_at_one() {
        let v: Vec<f64> = (0..10_000).map(|i| i as f64).collect();
        let p = cdf_points(&v, 1.0);
        assert!(p.len() <= CDF_POINTS + 2, "{}", p.len());
        assert_eq!(p.first(), Some(&(0.0, 0.0)));
        assert_eq!(p.last(), Some(&(9999.0, 1.0)));
        assert!(p.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
        assert_eq!(cdf_points(&[2.0], 1e3), vec![(2000.0, 0.0), (2000.0, 1.0)]);
    }

    #[test]
    fn weighted_quantiles_count_every_value() {
        let d = Dist::from_weighted(vec![(3.0, 1), (1.0, 98), (2.0, 1)]);
        assert_eq!(d.count(), 100);
        assert_eq!(d.quantile(0.5), 1.0);
        assert_eq!(d.quantile(0.99), 2.0);
        assert_eq!(d.quantile(1.0), 3.0);
        assert_eq!(d.cdf_points(1.0).last(), Some(&(3.0, 1.0)));
    }

    #[test]
    fn cdf_per_replica_when_several_with_marks_and_slo() {
        let data = BTreeMap::from([(0, vec![0.1, 0.2]), (1, vec![0.3])]);
        let figs = request_cdf(&data, "Time to first token (TTFT)", "ttft", Some(0.25));
        assert_eq!(figs.len(), 2, "linear and log versions");
        assert_eq!(figs[1].chart.name, "ttft_cdf_log");
        assert_eq!(figs[1].scale, Scale::Log);
        let f = &figs[0];
        assert_eq!(f.chart.x_label, "Time to first token (ms)");
        assert!(f.caption.contains("met by 66.7 %"), "{}", f.caption);
        let Body::Lines(l) = &f.chart.body else {
            panic!("lines expected")
        };
        let names: Vec<&str> = l.series.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            ["replica 0", "replica 1", "all replicas (3 requests)"]
        );
        let marks: Vec<&str> = l.marks.iter().map(|m| m.label.as_str()).collect();
        assert_eq!(
            marks,
            ["p50 200 ms", "p90 300 ms", "p99 300 ms", "max 300 ms"]
        );
        assert_eq!(l.rules[0].at, 250.0);
        let one = BTreeMap::from([(0, vec![1.5, 2.5])]);
        let f = &request_cdf(&one, "End-to-end latency (E2E)", "e2e", None)[0];
        assert_eq!(f.chart.x_label, "End-to-end latency (s)");
        let Body::Lines(l) = &f.chart.body else {
            panic!("lines expected")
        };
        assert_eq!(l.series.len(), 1);
    }

    #[test]
    fn cluster_total_sums_replicas() {
        let (s, _) = per_replica_lines(
            &[0, 1],
            |r| vec![(0.5, f64::from(r) + 1.0), (1.5, 2.0)],
            Total::Sum,
        );
        assert_eq!(s.len(), 3);
        assert_eq!(s[2].name, "cluster total");
        assert_eq!(s[2].points, vec![(0.5, 3.0), (1.5, 4.0)]);
        let (s, _) = per_replica_lines(&[0], |_| vec![(0.5, 1.0)], Total::Sum);
        assert_eq!(s.len(), 1, "no total for one replica");
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
