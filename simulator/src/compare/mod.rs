//! `simulator compare RUN_DIR...`: runs side by side. The first run is the baseline; every other
//! run's numbers get their change against it, and the best value of each row is marked. The
//! table goes to the terminal (or JSON with `--json`) and, with the configuration settings that
//! differ and overlaid CDFs, to `compare.html` (docs/compare.md).
//!
//! Only the files of the run directories are read (`summary.json`, `config.toml`,
//! `requests.csv`, `itl_histogram.csv`), so runs from other machines and older versions compare
//! too; what a directory lacks is left out and said.

mod page;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::{json, Value};

use crate::metrics::load::LoadStatus;
use crate::report::ReportError;
use crate::Summary;

/// Format tag of `compare --json`.
pub const FORMAT: &str = "servesim-compare/1";

/// `simulator compare`.
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// Run directories written by `simulator run` or `simulator sweep`; the first is the baseline
    #[arg(required = true, num_args = 2.., value_name = "RUN_DIR")]
    pub dirs: Vec<PathBuf>,
    /// Directory for compare.html and its plots [default: runs/compare_<UTC date-time>]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print the comparison as JSON on stdout instead of the table
    #[arg(long)]
    pub json: bool,
    /// Print nothing (compare.html is still written)
    #[arg(long, short)]
    pub quiet: bool,
}

/// Why a comparison failed.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// A directory has no `summary.json`.
    #[error("{path}: no summary.json; pass directories written by `simulator run` (or the runs/NN-qps… directories of a sweep)")]
    NotARun {
        /// The directory.
        path: PathBuf,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `summary.json` is not a servesim summary.
    #[error("{path}: not a servesim summary.json ({message})")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// Reading a CSV or drawing a plot failed.
    #[error(transparent)]
    Report(#[from] ReportError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CompareError + '_ {
    move |source| CompareError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Which way a row is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    /// Smaller is better (latency, cost).
    Lower,
    /// Larger is better (throughput, goodput).
    Higher,
    /// Neither (a description of the run).
    Neither,
}

/// One run.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// Column label: the directory name (with its parent when two runs share a name).
    pub label: String,
    /// The directory.
    pub dir: PathBuf,
    /// Its `summary.json`.
    pub summary: Summary,
    /// Its `config.toml`, flattened to `dotted.key = value` (empty when missing).
    pub settings: BTreeMap<String, String>,
}

/// One row of the table.
#[derive(Debug, Clone)]
pub struct Row {
    /// Key in `--json` (vLLM's names for the latency rows).
    pub key: &'static str,
    /// Label in the table.
    pub label: &'static str,
    /// Unit.
    pub unit: &'static str,
    /// Which way is better.
    pub better: Better,
    /// One value per run (`None`: the run does not have it).
    pub values: Vec<Option<f64>>,
}

impl Row {
    /// Index of the best value, when the row has a direction and the values differ.
    pub fn best(&self) -> Option<usize> {
        let vals: Vec<(usize, f64)> = self
            .values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (i, v)))
            .collect();
        let first = vals.first()?.1;
        if vals.iter().all(|&(_, v)| v == first) {
            return None;
        }
        let pick = |a: &(usize, f64), b: &(usize, f64)| a.1.total_cmp(&b.1);
        match self.better {
            Better::Lower => vals.iter().min_by(|a, b| pick(a, b)).map(|p| p.0),
            Better::Higher => vals.iter().rev().max_by(|a, b| pick(a, b)).map(|p| p.0),
            Better::Neither => None,
        }
    }

    /// Change of run `i` against the baseline, in % (`None` without both values or for a zero
    /// baseline).
    pub fn change_pct(&self, i: usize) -> Option<f64> {
        let (b, v) = (
            self.values.first()?.as_ref()?,
            self.values.get(i)?.as_ref()?,
        );
        (*b != 0.0).then(|| (v - b) / b.abs() * 100.0)
    }
}

/// A comparison of runs.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// The runs, baseline first.
    pub runs: Vec<RunInfo>,
    /// The rows of the table.
    pub rows: Vec<Row>,
    /// Configuration settings whose values differ between runs: (key, value per run, `–` when
    /// absent).
    pub differences: Vec<(String, Vec<String>)>,
}

fn flatten(prefix: &str, v: &toml::Value, out: &mut BTreeMap<String, String>) {
    match v {
        toml::Value::Table(t) => {
            for (k, x) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, x, out);
            }
        }
        toml::Value::String(s) => {
            out.insert(prefix.to_string(), s.clone());
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// Reads one run directory.
pub fn read_run(dir: &Path) -> Result<RunInfo, CompareError> {
    let path = dir.join("summary.json");
    if !path.is_file() {
        return Err(CompareError::NotARun {
            path: dir.to_path_buf(),
        });
    }
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    let summary: Summary = serde_json::from_str(&text).map_err(|e| CompareError::Json {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let mut settings = BTreeMap::new();
    let cfg = dir.join("config.toml");
    if cfg.is_file() {
        let text = std::fs::read_to_string(&cfg).map_err(io(&cfg))?;
        if let Ok(t) = text.parse::<toml::Table>() {
            flatten("", &toml::Value::Table(t), &mut settings);
        }
    }
    Ok(RunInfo {
        label: String::new(),
        dir: dir.to_path_buf(),
        summary,
        settings,
    })
}

/// Column labels: directory names, with their parent when two runs share a name, with a number
/// when even that is not unique.
fn labels(dirs: &[PathBuf]) -> Vec<String> {
    let name = |p: &Path, parts: usize| {
        let comps: Vec<String> = p
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .filter(|c| c != "." && !c.is_empty())
            .collect();
        let n = comps.len();
        comps[n.saturating_sub(parts)..].join("/")
    };
    let short: Vec<String> = dirs.iter().map(|d| name(d, 1)).collect();
    let mut out = Vec::new();
    for (i, d) in dirs.iter().enumerate() {
        let l = if short.iter().filter(|s| **s == short[i]).count() > 1 {
            name(d, 2)
        } else {
            short[i].clone()
        };
        out.push(l);
    }
    let copy = out.clone();
    for (i, l) in out.iter_mut().enumerate() {
        if copy.iter().filter(|x| *x == l).count() > 1 {
            l.push_str(&format!(" #{}", i + 1));
        }
    }
    out
}

fn mean(v: impl Iterator<Item = f64>) -> Option<f64> {
    let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| s / n as f64)
}

/// The rows of the table for `runs`.
pub fn rows(runs: &[RunInfo]) -> Vec<Row> {
    type Get = fn(&Summary) -> Option<f64>;
    let mut specs: Vec<(&'static str, &'static str, &'static str, Better, Get)> = vec![
        (
            "completed",
            "requests completed",
            "",
            Better::Neither,
            |s| Some(s.requests.completed as f64),
        ),
        (
            "duration",
            "simulated duration",
            "s",
            Better::Neither,
            |s| Some(s.simulated_time_s),
        ),
        (
            "offered_rate",
            "offered load",
            "req/s",
            Better::Neither,
            |s| s.workload.as_ref()?.offered_rate_per_s,
        ),
        (
            "request_throughput",
            "request throughput",
            "req/s",
            Better::Higher,
            |s| Some(s.throughput.requests_per_s),
        ),
        (
            "output_throughput",
            "output throughput",
            "tok/s",
            Better::Higher,
            |s| Some(s.throughput.output_tokens_per_s),
        ),
        (
            "total_token_throughput",
            "total token throughput",
            "tok/s",
            Better::Higher,
            |s| Some(s.throughput.total_tokens_per_s),
        ),
    ];
    if runs.iter().any(|r| r.summary.slo.is_some()) {
        specs.push(
            ("request_goodput", "goodput", "req/s", Better::Higher, |s| {
                Some(s.slo.as_ref()?.goodput_requests_per_s)
            }),
        );
        specs.push((
            "slo_attainment",
            "SLO attainment",
            "%",
            Better::Higher,
            |s| Some(s.slo.as_ref()?.attainment * 100.0),
        ));
    }
    // Mean, p50, p90 and p99 of one latency metric, in ms, under vLLM's key names.
    macro_rules! lat {
        ($field:ident, $name:literal, $label:literal) => {
            lat!(@ $field, $name, $label, [mean "mean_" " mean"], [p50 "median_" " p50"],
                 [p90 "p90_" " p90"], [p99 "p99_" " p99"])
        };
        (@ $field:ident, $name:literal, $label:literal,
         $([$stat:ident $key:literal $suffix:literal]),*) => {
            [$((
                concat!($key, $name, "_ms"),
                concat!($label, $suffix),
                "ms",
                Better::Lower,
                (|s: &Summary| Some(s.latency.$field.$stat * 1e3)) as Get,
            )),*]
        };
    }
    specs.extend(lat!(ttft_s, "ttft", "TTFT"));
    specs.extend(lat!(tpot_s, "tpot", "TPOT"));
    specs.extend(lat!(tbt_s, "itl", "ITL"));
    specs.extend(lat!(e2e_s, "e2el", "E2E"));
    specs.extend([
        (
            "p99_scheduling_delay_ms",
            "scheduling delay p99",
            "ms",
            Better::Lower,
            (|s: &Summary| Some(s.latency.scheduling_delay_s.p99 * 1e3)) as Get,
        ),
        (
            "busy",
            "GPU busy, mean of replicas",
            "%",
            Better::Neither,
            |s| mean(s.replicas.iter().map(|r| r.busy_fraction * 100.0)),
        ),
        ("mfu", "MFU, mean of replicas", "%", Better::Neither, |s| {
            mean(s.replicas.iter().map(|r| r.mfu * 100.0))
        }),
        ("kv_peak", "KV cache peak", "%", Better::Neither, |s| {
            s.replicas
                .iter()
                .map(|r| r.kv_usage_max * 100.0)
                .reduce(f64::max)
        }),
        ("preemptions", "preemptions", "", Better::Lower, |s| {
            Some(s.preemptions.total as f64)
        }),
        ("gpus", "GPUs", "", Better::Neither, |s| {
            Some(f64::from(s.cost.gpus))
        }),
        ("usd_per_hour", "cost per hour", "USD", Better::Lower, |s| {
            Some(s.cost.usd_per_hour)
        }),
        (
            "usd_per_million_output_tokens",
            "cost per million output tokens",
            "USD",
            Better::Lower,
            |s| Some(s.cost.usd_per_million_output_tokens),
        ),
    ]);
    if runs.iter().any(|r| r.summary.prefix_cache.enabled) {
        specs.push((
            "prefix_token_hit_rate",
            "prefix-cache token hit rate",
            "%",
            Better::Higher,
            |s| {
                s.prefix_cache
                    .enabled
                    .then_some(s.prefix_cache.token_hit_rate * 100.0)
            },
        ));
    }
    specs
        .into_iter()
        .map(|(key, label, unit, better, get)| Row {
            key,
            label,
            unit,
            better,
            values: runs.iter().map(|r| get(&r.summary)).collect(),
        })
        .collect()
}

/// The configuration settings whose values differ between runs.
pub fn differences(runs: &[RunInfo]) -> Vec<(String, Vec<String>)> {
    let mut keys: Vec<&String> = runs.iter().flat_map(|r| r.settings.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|k| {
            let vals: Vec<String> = runs
                .iter()
                .map(|r| r.settings.get(k).cloned().unwrap_or_else(|| "–".into()))
                .collect();
            vals.iter()
                .any(|v| *v != vals[0])
                .then(|| (k.clone(), vals))
        })
        .collect()
}

/// Reads the runs and builds the comparison.
pub fn compare(dirs: &[PathBuf]) -> Result<Comparison, CompareError> {
    let mut runs = dirs
        .iter()
        .map(|d| read_run(d))
        .collect::<Result<Vec<_>, _>>()?;
    for (r, l) in runs.iter_mut().zip(labels(dirs)) {
        r.label = l;
    }
    Ok(Comparison {
        rows: rows(&runs),
        differences: differences(&runs),
        runs,
    })
}

/// The load verdict of a run, as a word.
pub fn load_label(s: &Summary) -> &'static str {
    s.load.as_ref().map_or("unknown", |l| l.status.label())
}

/// A number for the table: up to 4 significant digits.
pub fn fmt_value(v: f64) -> String {
    let a = v.abs();
    if a >= 1000.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else if a >= 10.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// The comparison as terminal text.
pub fn table_text(c: &Comparison) -> String {
    let n = c.runs.len();
    let mut cells: Vec<Vec<String>> = Vec::new();
    let mut head = vec!["".to_string()];
    head.extend(c.runs.iter().map(|r| r.label.clone()));
    cells.push(head);
    for row in &c.rows {
        let best = row.best();
        let mut line = vec![if row.unit.is_empty() {
            row.label.to_string()
        } else {
            format!("{} ({})", row.label, row.unit)
        }];
        for i in 0..n {
            let mut cell = match row.values[i] {
                Some(v) => fmt_value(v),
                None => "–".into(),
            };
            if i > 0 {
                if let Some(p) = row.change_pct(i).filter(|p| p.abs() >= 0.05) {
                    cell.push_str(&format!(" ({p:+.1}%)"));
                }
            }
            if best == Some(i) {
                cell.push_str(" *");
            }
            line.push(cell);
        }
        cells.push(line);
    }
    let mut load = vec!["load".to_string()];
    load.extend(c.runs.iter().map(|r| load_label(&r.summary).to_string()));
    cells.push(load);
    let widths: Vec<usize> = (0..=n)
        .map(|j| {
            cells
                .iter()
                .map(|l| l[j].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = format!(
        "{} runs; baseline {} (changes in % against it; * best of the row)\n",
        n, c.runs[0].label
    );
    for line in &cells {
        let mut text = format!("{:<w$}", line[0], w = widths[0]);
        for j in 1..=n {
            text.push_str(&format!("  {:>w$}", line[j], w = widths[j]));
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    if !c.differences.is_empty() {
        out.push_str("configuration settings that differ:\n");
        for (k, vals) in &c.differences {
            out.push_str(&format!("  {k}: {}\n", vals.join(" | ")));
        }
    }
    for r in &c.runs {
        if let Some(l) = r
            .summary
            .load
            .as_ref()
            .filter(|l| l.status == LoadStatus::Overloaded)
        {
            out.push_str(&format!(
                "{} is overloaded: {}\n",
                r.label,
                l.reasons.join("; ")
            ));
        }
    }
    out
}

/// The comparison as JSON (`--json`).
pub fn json_value(c: &Comparison) -> Value {
    let runs: Vec<Value> = c
        .runs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let metrics: serde_json::Map<String, Value> = c
                .rows
                .iter()
                .map(|row| (row.key.to_string(), json!(row.values[i])))
                .collect();
            json!({
                "label": r.label,
                "dir": r.dir.display().to_string(),
                "load": load_label(&r.summary),
                "metrics": metrics,
            })
        })
        .collect();
    let diffs: serde_json::Map<String, Value> = c
        .differences
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    json!({
        "format": FORMAT,
        "baseline": c.runs[0].label,
        "runs": runs,
        "differences": diffs,
    })
}

/// Runs `simulator compare`.
pub fn main(args: &CompareArgs) -> Result<(), CompareError> {
    let c = compare(&args.dirs)?;
    let out = args.out.clone().unwrap_or_else(|| {
        Path::new("runs").join(format!("compare_{}", crate::stamp::utc_date_time()))
    });
    let html = page::write(&out, &c)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json_value(&c)).expect("the comparison serializes")
        );
    } else if !args.quiet {
        print!("{}", table_text(&c));
        println!("compare.html: {}", html.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_unique() {
        let dirs: Vec<PathBuf> = ["a/run", "b/run", "c/x", "./d"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(labels(&dirs), ["a/run", "b/run", "x", "d"]);
        let same: Vec<PathBuf> = ["r", "r"].iter().map(PathBuf::from).collect();
        assert_eq!(labels(&same), ["r #1", "r #2"]);
    }

    #[test]
    fn best_and_change() {
        let r = Row {
            key: "k",
            label: "l",
            unit: "ms",
            better: Better::Lower,
            values: vec![Some(10.0), Some(5.0), None, Some(20.0)],
        };
        assert_eq!(r.best(), Some(1));
        assert_eq!(r.change_pct(1), Some(-50.0));
        assert_eq!(r.change_pct(2), None);
        let same = Row {
            values: vec![Some(1.0), Some(1.0)],
            ..r.clone()
        };
        assert_eq!(same.best(), None, "no best when all equal");
        let up = Row {
            better: Better::Higher,
            ..r
        };
        assert_eq!(up.best(), Some(3));
    }
}
