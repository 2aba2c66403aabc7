//! `compare.html`: the comparison table (best values marked, changes against the baseline), the
//! settings that differ, each run's load verdict and overlaid CDFs (TTFT, TPOT, ITL, E2E), with
//! the plots also under `plots/`. Self-contained like `report.html`: inline CSS and SVG, no
//! scripts.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::{fmt_value, io, CompareError, Comparison};
use crate::metrics::load::LoadStatus;
use crate::report::html::{esc, figures_html, page_start, verdict_html, PAGE_END};
use crate::report::plots::{cdf_figures, time_unit, CdfLine, CdfSpec, Dist, Figure};
use crate::report::read::{read_itl, read_requests, RequestData};
use crate::report::{chart, ReportError};

/// The CDFs: (requests.csv column or `itl`, file stem, title, axis, what is counted).
const CDFS: [(&str, &str, &str, &str, &str); 4] = [
    (
        "ttft_s",
        "ttft_cdf",
        "Time to first token (TTFT)",
        "Time to first token",
        "requests",
    ),
    (
        "tpot_s",
        "tpot_cdf",
        "Time per output token (TPOT)",
        "Time per output token",
        "requests",
    ),
    (
        "itl",
        "itl_cdf",
        "Inter-token latency, every gap (ITL)",
        "Gap between consecutive output tokens",
        "token gaps",
    ),
    (
        "e2e_s",
        "e2e_cdf",
        "End-to-end latency (E2E)",
        "End-to-end latency",
        "requests",
    ),
];

/// What one run's files hold for the CDFs: `requests.csv` and `itl_histogram.csv`, each read once.
struct RunDists {
    requests: Option<RequestData>,
    itl: Option<Dist>,
}

impl RunDists {
    fn read(dir: &Path) -> Result<RunDists, ReportError> {
        let r = dir.join("requests.csv");
        let i = dir.join("itl_histogram.csv");
        Ok(RunDists {
            requests: r.is_file().then(|| read_requests(&r)).transpose()?,
            itl: i.is_file().then(|| read_itl(&i)).transpose()?,
        })
    }

    /// The distribution of `column` (`itl`: every gap), when the files have it.
    fn of(&self, column: &str) -> Option<Dist> {
        if column == "itl" {
            return self.itl.clone();
        }
        let per = self.requests.as_ref()?.metrics.get(column)?;
        Some(Dist::from_values(per.values().flatten().copied().collect()))
    }
}

/// The overlaid CDFs and notes on what was missing.
fn figures(c: &Comparison) -> Result<(Vec<Figure>, Vec<String>), ReportError> {
    let mut out = Vec::new();
    let mut notes = Vec::new();
    let data = c
        .runs
        .iter()
        .map(|r| RunDists::read(&r.dir))
        .collect::<Result<Vec<_>, _>>()?;
    for (column, name, title, axis, counted) in CDFS {
        let mut lines = Vec::new();
        for (i, r) in c.runs.iter().enumerate() {
            match data[i].of(column) {
                Some(d) if d.count() > 0 => lines.push(CdfLine {
                    name: r.label.clone(),
                    dist: d,
                    color: Some(i),
                    width: if i == 0 { 3 } else { 2 },
                    marks: false,
                }),
                _ => notes.push(format!(
                    "{}: no {} data ({}); left out of that plot",
                    r.label,
                    title,
                    if column == "itl" {
                        "itl_histogram.csv"
                    } else {
                        "requests.csv"
                    }
                )),
            }
        }
        if lines.is_empty() {
            continue;
        }
        // The baseline on top.
        lines.rotate_left(1);
        let spec = CdfSpec {
            name,
            title,
            axis,
            counted,
            slo_s: None,
            log: true,
        };
        let max = lines.iter().map(|l| l.dist.max()).fold(0.0, f64::max);
        let (scale, unit) = time_unit(max);
        let per_run: Vec<String> = c
            .runs
            .iter()
            .filter_map(|r| {
                let l = lines.iter().find(|l| l.name == r.label)?;
                Some(format!(
                    "{} {} / {}",
                    r.label,
                    chart::tick(l.dist.quantile(0.5) * scale),
                    chart::tick(l.dist.quantile(0.99) * scale)
                ))
            })
            .collect();
        for mut f in cdf_figures(&spec, &lines, "") {
            f.caption = format!(
                "Cumulative distribution of each run's {counted}; p50 / p99 in {unit}: {}.{}",
                per_run.join("; "),
                if f.chart.name.ends_with("_log") {
                    " Log latency axis: the tails spread out."
                } else {
                    ""
                }
            );
            out.push(f);
        }
    }
    Ok((out, notes))
}

/// Writes `compare.html` and `plots/` into `out`; returns the page's path.
pub fn write(out: &Path, c: &Comparison) -> Result<PathBuf, CompareError> {
    std::fs::create_dir_all(out.join("plots")).map_err(io(out))?;
    // A comparison written over an earlier one: its plots go first, so plots/ holds this one's.
    for (_, name, _, _, _) in CDFS {
        for stem in [name.to_string(), format!("{name}_log")] {
            for ext in ["svg", "png"] {
                let p = out.join("plots").join(format!("{stem}.{ext}"));
                if p.is_file() {
                    std::fs::remove_file(&p).map_err(io(&p))?;
                }
            }
        }
    }
    let (figs, notes) = figures(c)?;
    let mut rendered = Vec::new();
    for f in figs {
        let svg = f
            .chart
            .to_svg()
            .map_err(|message| ReportError::Plot { message })?;
        let svg_path = out.join("plots").join(format!("{}.svg", f.chart.name));
        std::fs::write(&svg_path, &svg).map_err(io(&svg_path))?;
        let png = out.join("plots").join(format!("{}.png", f.chart.name));
        f.chart
            .to_png(&png)
            .map_err(|message| ReportError::Plot { message })?;
        rendered.push((f, svg));
    }
    let mut h = page_start(
        &format!("servesim comparison of {} runs", c.runs.len()),
        &format!(
            "Baseline: {}. Changes are against the baseline; the best value of each row is in bold on green. From each run directory's summary.json, config.toml, requests.csv and itl_histogram.csv.",
            c.runs[0].label
        ),
    );
    h.push_str("<nav><a href=\"#summary\">Table</a><a href=\"#differences\">Settings that differ</a><a href=\"#load\">Load</a><a href=\"#plots\">CDFs</a></nav>\n");
    if !notes.is_empty() {
        h.push_str("<div class=\"notes\"><h3>Notes</h3><ul>\n");
        for n in &notes {
            let _ = writeln!(h, "<li>{}</li>", esc(n));
        }
        h.push_str("</ul></div>\n");
    }
    h.push_str("<h2 id=\"summary\">Side by side</h2>\n<table><thead><tr><th class=\"k\">metric</th><th>unit</th>");
    for r in &c.runs {
        let _ = write!(h, "<th>{}</th>", esc(&r.label));
    }
    h.push_str("</tr></thead><tbody>\n");
    for row in &c.rows {
        let best = row.best();
        let _ = write!(
            h,
            "<tr><td class=\"k\">{}</td><td>{}</td>",
            esc(row.label),
            esc(row.unit)
        );
        for (i, v) in row.values.iter().enumerate() {
            let mut cell = v.map_or_else(|| "–".to_string(), fmt_value);
            if i > 0 {
                if let Some(p) = row.change_pct(i).filter(|p| p.abs() >= 0.05) {
                    let _ = write!(cell, " <small>({p:+.1} %)</small>");
                }
            }
            let class = if best == Some(i) {
                " class=\"best\""
            } else {
                ""
            };
            let _ = write!(h, "<td{class}>{cell}</td>");
        }
        h.push_str("</tr>\n");
    }
    h.push_str("<tr><td class=\"k\">load</td><td></td>");
    for r in &c.runs {
        let _ = write!(h, "<td>{}</td>", super::load_label(&r.summary));
    }
    h.push_str("</tr>\n</tbody></table>\n");
    h.push_str("<h2 id=\"differences\">Configuration settings that differ</h2>\n");
    if c.differences.is_empty() {
        h.push_str("<p>None: the runs' config.toml files agree (or are missing).</p>\n");
    } else {
        h.push_str("<table><thead><tr><th class=\"k\">setting</th>");
        for r in &c.runs {
            let _ = write!(h, "<th>{}</th>", esc(&r.label));
        }
        h.push_str("</tr></thead><tbody>\n");
        for (k, vals) in &c.differences {
            let _ = write!(h, "<tr><td class=\"k\">{}</td>", esc(k));
            for v in vals {
                let _ = write!(h, "<td>{}</td>", esc(v));
            }
            h.push_str("</tr>\n");
        }
        h.push_str("</tbody></table>\n");
    }
    h.push_str("<h2 id=\"load\">Load</h2>\n");
    let plain: Vec<&str> = c
        .runs
        .iter()
        .filter(|r| {
            r.summary
                .load
                .as_ref()
                .is_some_and(|l| l.status == LoadStatus::Ok && l.notes.is_empty())
        })
        .map(|r| r.label.as_str())
        .collect();
    if !plain.is_empty() {
        let _ = writeln!(
            h,
            "<p class=\"what\">Kept up with the offered load, nothing to note: {}.</p>",
            esc(&plain.join(", "))
        );
    }
    for r in c.runs.iter().filter(|r| !plain.contains(&r.label.as_str())) {
        let _ = writeln!(h, "<h3>{}</h3>", esc(&r.label));
        match &r.summary.load {
            Some(l) => {
                let v = serde_json::to_value(l).expect("verdicts serialize");
                let offered = r
                    .summary
                    .workload
                    .as_ref()
                    .and_then(|w| w.offered_rate_per_s);
                verdict_html(
                    &mut h,
                    &v,
                    Some((r.summary.throughput.requests_per_s, offered)),
                );
            }
            None => h.push_str(
                "<p>No verdict in its summary.json (written before verdicts existed).</p>\n",
            ),
        }
    }
    h.push_str("<h2 id=\"plots\">CDFs</h2>\n");
    if rendered.is_empty() {
        h.push_str("<p>No per-request data to plot.</p>\n");
    }
    figures_html(&mut h, &rendered);
    h.push_str(PAGE_END);
    let path = out.join("compare.html");
    std::fs::write(&path, h).map_err(io(&path))?;
    Ok(path)
}
