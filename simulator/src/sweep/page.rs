//! The files of a sweep (`sweep.csv`, `sweep.json`, `sweep.html`, `plots/`) and its terminal
//! table.

use std::fmt::Write as _;
use std::path::Path;

use super::{io, json_value, latency_columns, rate_text, Sweep, SweepError};
use crate::compare::fmt_value;
use crate::report::chart::{Body, Chart, Lines, Rule, RuleAxis, Series, KNEE_GREY, SLO_RED};
use crate::report::html::{esc, figures_html, page_start, PAGE_END};
use crate::report::plots::{Figure, Scale};

/// `sweep.json` text.
pub fn json_text(s: &Sweep) -> String {
    serde_json::to_string_pretty(&json_value(s)).expect("the sweep serializes") + "\n"
}

/// The columns of `sweep.csv` before the latency ones.
const HEAD: [&str; 11] = [
    "qps",
    "run_dir",
    "load",
    "completed",
    "failed",
    "duration_s",
    "offered_rate_per_s",
    "request_throughput",
    "request_goodput",
    "output_throughput",
    "total_token_throughput",
];

/// The columns after the latency ones.
const TAIL: [&str; 3] = [
    "kv_usage_peak",
    "preemptions",
    "usd_per_million_output_tokens",
];

fn cell(v: Option<f64>) -> String {
    v.map(|x| format!("{x}")).unwrap_or_default()
}

/// `sweep.csv` text.
pub fn csv_text(s: &Sweep) -> String {
    let lat = latency_columns(&s.percentiles);
    let mut out = HEAD.join(",");
    for c in lat.iter().map(String::as_str).chain(TAIL) {
        out.push(',');
        out.push_str(c);
    }
    out.push('\n');
    for p in &s.points {
        let b = &p.bench;
        let status = p
            .summary
            .load
            .as_ref()
            .map_or("unknown", |l| l.status.label())
            .replace(' ', "_");
        let _ = write!(
            out,
            "{},{},{status},{},{},{},{},{},{},{},{}",
            p.qps,
            p.dir,
            cell(b.f64("completed")),
            cell(b.f64("failed")),
            cell(b.f64("duration")),
            cell(
                p.summary
                    .workload
                    .as_ref()
                    .and_then(|w| w.offered_rate_per_s)
            ),
            cell(b.f64("request_throughput")),
            cell(b.f64("request_goodput")),
            cell(b.f64("output_throughput")),
            cell(b.f64("total_token_throughput")),
        );
        for c in &lat {
            let _ = write!(out, ",{}", cell(b.f64(c)));
        }
        let kv = p
            .summary
            .replicas
            .iter()
            .map(|r| r.kv_usage_max)
            .fold(0.0, f64::max);
        let _ = writeln!(
            out,
            ",{kv},{},{}",
            p.summary.preemptions.total, p.summary.cost.usd_per_million_output_tokens
        );
    }
    out
}

/// The highest percentile of the sweep (the tail column of the tables and plots).
fn tail_percentile(s: &Sweep) -> f64 {
    s.percentiles.iter().copied().fold(50.0, f64::max)
}

/// The knee sentence.
pub fn knee_text(s: &Sweep) -> String {
    let last = s.points.last().map_or(0.0, |p| p.qps);
    match (s.knee, s.first_overloaded) {
        (Some(k), Some(f)) => format!(
            "knee: {} req/s, the highest rate tried before the first overloaded one ({} req/s)",
            rate_text(s.points[k].qps),
            rate_text(s.points[f].qps)
        ),
        (None, Some(_)) => format!(
            "knee: below {} req/s, the lowest rate tried, which is already overloaded",
            rate_text(s.points[0].qps)
        ),
        _ => format!(
            "knee: not reached; the deployment kept up with every rate tried, up to {} req/s",
            rate_text(last)
        ),
    }
}

/// The terminal table: one row per rate.
pub fn table_text(s: &Sweep) -> String {
    let tp = crate::bench::percentile_key(tail_percentile(s));
    let g = |p: &super::Point, k: &str| p.bench.f64(k).map_or("–".into(), fmt_value);
    let mut out = format!(
        "{}\nsweep of {} rates in {:.1} s wall ({} threads); latencies in ms\n",
        s.description,
        s.points.len(),
        s.wall_s,
        s.threads
    );
    let head = [
        "qps".to_string(),
        "served".into(),
        "tok/s".into(),
        "TTFT p50".into(),
        format!("TTFT p{tp}"),
        "TPOT p50".into(),
        format!("TPOT p{tp}"),
        format!("ITL p{tp}"),
        "E2E p50".into(),
        format!("E2E p{tp}"),
        "load".into(),
    ];
    let mut rows = vec![head.to_vec()];
    for p in &s.points {
        rows.push(vec![
            rate_text(p.qps),
            g(p, "request_throughput"),
            g(p, "output_throughput"),
            g(p, "median_ttft_ms"),
            g(p, &format!("p{tp}_ttft_ms")),
            g(p, "median_tpot_ms"),
            g(p, &format!("p{tp}_tpot_ms")),
            g(p, &format!("p{tp}_itl_ms")),
            g(p, "median_e2el_ms"),
            g(p, &format!("p{tp}_e2el_ms")),
            p.summary
                .load
                .as_ref()
                .map_or("unknown", |l| l.status.label())
                .to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..head.len())
        .map(|j| rows.iter().map(|r| r[j].chars().count()).max().unwrap_or(0))
        .collect();
    for r in &rows {
        let mut line = String::new();
        for (j, c) in r.iter().enumerate() {
            if j + 1 == r.len() {
                let _ = write!(line, "  {c}");
            } else {
                let _ = write!(
                    line,
                    "{}{:>w$}",
                    if j == 0 { "" } else { "  " },
                    c,
                    w = widths[j]
                );
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.push_str(&knee_text(s));
    out.push('\n');
    out
}

fn knee_rule(s: &Sweep) -> Vec<Rule> {
    s.knee
        .map(|k| Rule {
            axis: RuleAxis::X,
            at: s.points[k].qps,
            label: format!("knee {} req/s", rate_text(s.points[k].qps)),
            color: KNEE_GREY,
        })
        .into_iter()
        .collect()
}

fn series(name: String, color: Option<usize>, points: Vec<(f64, f64)>) -> Series {
    Series {
        name,
        points,
        color,
        width: 2,
        markers: true,
        dashed: false,
    }
}

/// The plots: throughput against offered load, then each latency metric's median and tail.
fn figures(s: &Sweep) -> Vec<Figure> {
    let col = |k: &str| -> Vec<(f64, f64)> {
        s.points
            .iter()
            .filter_map(|p| Some((p.qps, p.bench.f64(k)?)))
            .collect()
    };
    let max_q = s.points.last().map_or(1.0, |p| p.qps);
    let mut tput = vec![
        series(
            "served (completed req/s)".into(),
            Some(0),
            col("request_throughput"),
        ),
        Series {
            name: "served = offered".into(),
            points: vec![(0.0, 0.0), (max_q, max_q)],
            color: Some(7),
            width: 1,
            markers: false,
            dashed: true,
        },
    ];
    let slo = s.points.first().and_then(|p| p.summary.slo.clone());
    if slo.is_some() {
        tput.push(series(
            "goodput (req/s meeting the SLOs)".into(),
            Some(2),
            col("request_goodput"),
        ));
    }
    let mut out = vec![Figure {
        chart: Chart {
            name: "sweep_throughput".into(),
            title: "Throughput against offered load".into(),
            x_label: "Offered load (req/s)".into(),
            y_label: "Completed requests per second (req/s)".into(),
            body: Body::Lines(Lines {
                series: tput,
                rules: knee_rule(s),
                ..Default::default()
            }),
        },
        caption: format!(
            "Requests completed per second of simulated time at each offered rate; the dashed grey line is where served equals offered, which a deployment that keeps up follows. {}.",
            knee_text(s)
        ),
        scale: Scale::Only,
    }];
    let tp = tail_percentile(s);
    let tpk = crate::bench::percentile_key(tp);
    for (m, title, slo_s) in [
        (
            "ttft",
            "Time to first token (TTFT)",
            slo.as_ref().and_then(|x| x.ttft_s),
        ),
        (
            "tpot",
            "Time per output token (TPOT)",
            slo.as_ref().and_then(|x| x.tpot_s),
        ),
        ("itl", "Inter-token latency, every gap (ITL)", None),
        (
            "e2el",
            "End-to-end latency (E2E)",
            slo.as_ref().and_then(|x| x.e2e_s),
        ),
    ] {
        let mut lines = vec![series(
            "median".into(),
            Some(0),
            col(&format!("median_{m}_ms")),
        )];
        for (i, &p) in s.percentiles.iter().enumerate() {
            let k = crate::bench::percentile_key(p);
            lines.push(series(
                format!("p{k}"),
                Some(i + 1),
                col(&format!("p{k}_{m}_ms")),
            ));
        }
        let mut rules = knee_rule(s);
        if let Some(v) = slo_s {
            rules.push(Rule {
                axis: RuleAxis::Y,
                at: v * 1e3,
                label: format!("SLO {} ms", crate::report::chart::tick(v * 1e3)),
                color: SLO_RED,
            });
        }
        out.push(Figure {
            chart: Chart {
                name: format!("sweep_{m}"),
                title: format!("{title} against offered load"),
                x_label: "Offered load (req/s)".into(),
                y_label: format!("{} (ms, log scale)", title.split(" (").next().unwrap_or(title)),
                body: Body::Lines(Lines {
                    series: lines,
                    rules,
                    y_log: true,
                    ..Default::default()
                }),
            },
            caption: format!(
                "Median and p{tpk} (and any other --metric-percentiles) at each offered rate, on a log scale: past the knee queueing multiplies latency. Values from each run's bench.json."
            ),
            scale: Scale::Only,
        });
    }
    out
}

/// Writes every file of the sweep.
pub fn write(out: &Path, s: &Sweep) -> Result<(), SweepError> {
    let put = |name: &str, text: &str| {
        let p = out.join(name);
        std::fs::write(&p, text).map_err(io(&p))
    };
    put("sweep.csv", &csv_text(s))?;
    put("sweep.json", &json_text(s))?;
    let plots = out.join("plots");
    std::fs::create_dir_all(&plots).map_err(io(&plots))?;
    let mut rendered = Vec::new();
    for f in figures(s) {
        let svg = f.chart.to_svg().map_err(SweepError::Plot)?;
        let p = plots.join(format!("{}.svg", f.chart.name));
        std::fs::write(&p, &svg).map_err(io(&p))?;
        f.chart
            .to_png(&plots.join(format!("{}.png", f.chart.name)))
            .map_err(SweepError::Plot)?;
        rendered.push((f, svg));
    }
    let first = s.points.first();
    let mut h = page_start(
        "servesim sweep: latency and throughput against offered load",
        &first.map_or(String::new(), |p| {
            format!(
                "{} rates from {} to {} req/s; every other setting as in {}/config.toml. Each rate's run directory has its config.toml, summary.json and bench.json.",
                s.points.len(),
                rate_text(p.qps),
                rate_text(s.points.last().map_or(p.qps, |l| l.qps)),
                p.dir
            )
        }),
    );
    h.push_str("<nav><a href=\"#summary\">Table</a><a href=\"#plots\">Plots</a></nav>\n");
    let _ = writeln!(h, "<p class=\"what\">{}.</p>", esc(&s.description));
    let _ = writeln!(
        h,
        "<div class=\"verdict {}\"><h3>{}</h3></div>",
        if s.first_overloaded.is_some() {
            "overloaded"
        } else {
            "ok"
        },
        esc(&knee_text(s))
    );
    h.push_str("<h2 id=\"summary\">One run per rate</h2>\n");
    let tpk = crate::bench::percentile_key(tail_percentile(s));
    let _ = writeln!(
        h,
        "<table><thead><tr><th>offered (req/s)</th><th>served (req/s)</th><th>output (tok/s)</th>\
         <th>TTFT p50 (ms)</th><th>TTFT p{tpk} (ms)</th><th>TPOT p50 (ms)</th><th>TPOT p{tpk} (ms)</th>\
         <th>ITL p{tpk} (ms)</th><th>E2E p50 (ms)</th><th>E2E p{tpk} (ms)</th><th>KV peak (%)</th>\
         <th>preemptions</th><th class=\"k\">load</th><th class=\"k\">run</th></tr></thead><tbody>"
    );
    for (i, p) in s.points.iter().enumerate() {
        let g = |k: &str| p.bench.f64(k).map_or("–".into(), fmt_value);
        let status = p
            .summary
            .load
            .as_ref()
            .map_or("unknown", |l| l.status.label());
        let style = if Some(i) == s.knee {
            " class=\"best\""
        } else {
            ""
        };
        let _ = writeln!(
            h,
            "<tr><td{style}>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td><td class=\"k\">{}</td><td class=\"k\"><code>{}</code></td></tr>",
            rate_text(p.qps),
            g("request_throughput"),
            g("output_throughput"),
            g("median_ttft_ms"),
            g(&format!("p{tpk}_ttft_ms")),
            g("median_tpot_ms"),
            g(&format!("p{tpk}_tpot_ms")),
            g(&format!("p{tpk}_itl_ms")),
            g("median_e2el_ms"),
            g(&format!("p{tpk}_e2el_ms")),
            100.0 * p.summary.replicas.iter().map(|r| r.kv_usage_max).fold(0.0, f64::max),
            p.summary.preemptions.total,
            esc(status),
            esc(&p.dir)
        );
    }
    h.push_str("</tbody></table>\n<p>The knee's rate is in bold on green. sweep.csv has every column (means, medians and each --metric-percentiles value, vLLM's key names); sweep.json has each run's bench.json.</p>\n");
    h.push_str("<h2 id=\"plots\">Plots</h2>\n");
    figures_html(&mut h, &rendered);
    h.push_str(PAGE_END);
    put("sweep.html", &h)
}
