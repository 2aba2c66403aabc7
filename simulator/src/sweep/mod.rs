//! `simulator sweep`: latency and throughput against offered load. One simulation per rate of
//! `--qps A:B:N` (or a list), all else as `simulator run` would do it, run in parallel (rayon) and
//! written in rate order, so the outputs do not depend on the thread count. Each rate's run
//! directory (`runs/NN-qpsR/`) holds the light files of a run (`config.toml`, `summary.json`,
//! `bench.json`, `requests.csv`, `timeseries.csv`, `itl_histogram.csv`), so `simulator compare`
//! and `simulator run --config` work on any point; the sweep's own files are `sweep.csv`,
//! `sweep.json`, `sweep.html` and `plots/` (docs/sweep.md).
//!
//! The knee is the highest rate before the first overloaded run (by the verdict of
//! [`crate::metrics::load`]): the most load the deployment kept up with among the rates tried.

mod page;

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use predictor::{BackendKind, Catalog};
use rayon::prelude::*;
use serde_json::{json, Value};

use crate::bench::{percentile_key, BenchResult, METRICS};
use crate::config::SimConfig;
use crate::error::SimError;
use crate::metrics::load::LoadStatus;
use crate::output::staging::{self, OutputKind, Staging};
use crate::run::{execution_model, simulate, RunOptions};
use crate::Summary;

pub use page::{json_text, table_text};

/// Percentiles of a sweep when `--metric-percentiles` is not given (besides the median).
pub const DEFAULT_PERCENTILES: [f64; 2] = [90.0, 99.0];
/// Format tag of `sweep.json`.
pub const FORMAT: &str = "servesim-sweep/1";

/// The offered rates of a sweep, ascending.
#[derive(Debug, Clone, PartialEq)]
pub struct RateSpec(pub Vec<f64>);

fn rate_value(t: &str) -> Result<f64, String> {
    let v: f64 = t
        .trim()
        .parse()
        .map_err(|_| format!("`{}` is not a rate in req/s", t.trim()))?;
    if !(v.is_finite() && v > 0.0) {
        return Err(format!("{v} is not a positive rate in req/s"));
    }
    Ok(v)
}

impl RateSpec {
    /// Parses `A:B:N` (N rates from A to B, evenly spaced, both included), a comma-separated list
    /// `R1,R2,...`, or one rate.
    pub fn parse(text: &str) -> Result<RateSpec, String> {
        let t = text.trim();
        let mut rates: Vec<f64> = if t.contains(':') {
            let parts: Vec<&str> = t.split(':').collect();
            let [a, b, n] = parts[..] else {
                return Err(format!(
                    "`{t}`: a range is A:B:N, N rates from A to B (e.g. 1:30:30)"
                ));
            };
            let (a, b) = (rate_value(a)?, rate_value(b)?);
            let n: usize =
                n.trim().parse().ok().filter(|&n| n >= 1).ok_or_else(|| {
                    format!("`{t}`: N must be a whole number of rates, at least 1")
                })?;
            if n == 1 {
                if a != b {
                    return Err(format!(
                        "`{t}`: one rate from {a} to {b}; use A:B:N with N ≥ 2 or a single rate"
                    ));
                }
                vec![a]
            } else {
                if b <= a {
                    return Err(format!("`{t}`: B ({b}) must be above A ({a})"));
                }
                (0..n)
                    .map(|i| {
                        let r = a + (b - a) * i as f64 / (n - 1) as f64;
                        (r * 1e9).round() / 1e9
                    })
                    .collect()
            }
        } else {
            t.split(',').map(rate_value).collect::<Result<_, _>>()?
        };
        rates.sort_by(f64::total_cmp);
        if let Some(w) = rates.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!("rate {} is listed twice", w[0]));
        }
        // each rate's run directory is named by its rate to 6 decimals
        if let Some(w) = rates
            .windows(2)
            .find(|w| rate_text(w[0]) == rate_text(w[1]))
        {
            return Err(format!(
                "rates {} and {} are equal to 6 decimals; give rates that differ by at least 0.000001",
                w[0], w[1]
            ));
        }
        Ok(RateSpec(rates))
    }
}

/// A rate as written in directory names and tables: `2`, `2.5`.
pub fn rate_text(r: f64) -> String {
    let rounded = (r * 1e6).round() / 1e6;
    if rounded == 0.0 && r != 0.0 {
        format!("{r:e}") // a rate below 1e-6 keeps its digits (and its own directory name)
    } else {
        format!("{rounded}")
    }
}

/// Why a sweep failed.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// One rate's simulation failed.
    #[error("at --qps {}: {source}", rate_text(*.qps))]
    Sim {
        /// The rate.
        qps: f64,
        /// The cause.
        source: SimError,
    },
    /// A file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A plot could not be drawn.
    #[error("drawing {0}")]
    Plot(String),
    /// `--threads` could not be honoured.
    #[error("--threads: {0}")]
    Threads(String),
    /// The output directory was refused or could not be staged or committed.
    #[error(transparent)]
    Output(SimError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SweepError + '_ {
    move |source| SweepError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One rate of the sweep.
#[derive(Debug, Clone)]
pub struct Point {
    /// The offered rate asked for, req/s.
    pub qps: f64,
    /// Its run directory, relative to the sweep's (`runs/01-qps1`).
    pub dir: String,
    /// Its `summary.json`.
    pub summary: Summary,
    /// Its `bench.json`.
    pub bench: BenchResult,
}

impl Point {
    /// True when the verdict is overloaded.
    pub fn overloaded(&self) -> bool {
        self.summary
            .load
            .as_ref()
            .is_some_and(|l| l.status == LoadStatus::Overloaded)
    }
}

/// A finished sweep.
#[derive(Debug, Clone)]
pub struct Sweep {
    /// The rates, ascending.
    pub points: Vec<Point>,
    /// Index of the knee: the last rate before the first overloaded one (`None` when the first
    /// rate is already overloaded, or no rate is).
    pub knee: Option<usize>,
    /// Index of the first overloaded rate.
    pub first_overloaded: Option<usize>,
    /// The percentiles of the latency columns (besides the median).
    pub percentiles: Vec<f64>,
    /// Wall-clock time of the whole sweep, s (not written to files).
    pub wall_s: f64,
    /// Worker threads used.
    pub threads: usize,
    /// What was swept, in words: the deployment and the workload besides its rate.
    pub description: String,
}

/// `(knee, first overloaded)` of points in rate order.
pub fn knee(points: &[Point]) -> (Option<usize>, Option<usize>) {
    let first = points.iter().position(Point::overloaded);
    (first.and_then(|f| f.checked_sub(1)), first)
}

/// Runs one simulation per `(rate, configuration)` on `threads` threads (0: one per core), each
/// written to `out/runs/NN-qpsR/`.
pub fn run(
    configs: &[(f64, SimConfig)],
    out: &Path,
    threads: usize,
    progress: bool,
) -> Result<Sweep, SweepError> {
    let start = Instant::now();
    let Some((q0, first)) = configs.first() else {
        return Ok(Sweep {
            points: Vec::new(),
            knee: None,
            first_overloaded: None,
            percentiles: DEFAULT_PERCENTILES.to_vec(),
            wall_s: 0.0,
            threads,
            description: String::new(),
        });
    };
    let sim = |qps: f64| move |source| SweepError::Sim { qps, source };
    let resolved = first.resolve(&Catalog::builtin()).map_err(sim(*q0))?;
    // Every rate has the same replica layout: one execution model serves them all, unless its
    // backend counts out-of-grid lookups (profiled, tables), which must not mix between runs.
    let exec = execution_model(first, &resolved).map_err(sim(*q0))?;
    let shared = (exec.info().kind == BackendKind::Roofline).then_some(exec);
    let width = configs.len().to_string().len().max(2);
    let dirs: Vec<String> = configs
        .iter()
        .enumerate()
        .map(|(i, (q, _))| format!("runs/{:0width$}-qps{}", i + 1, rate_text(*q)))
        .collect();
    std::fs::create_dir_all(out.join("runs")).map_err(io(out))?;
    let bar =
        ProgressBar::with_draw_target(Some(configs.len() as u64), ProgressDrawTarget::hidden());
    if progress && std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:30} {pos}/{len} rates simulated ({percent}%), {elapsed} elapsed, ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| SweepError::Threads(e.to_string()))?;
    let used = pool.current_num_threads();
    let results: Vec<Result<Point, SweepError>> = pool.install(|| {
        configs
            .par_iter()
            .zip(&dirs)
            .with_max_len(1)
            .map(|((qps, cfg), dir)| {
                let opts = RunOptions {
                    out_dir: Some(out.join(dir)),
                    quiet: true,
                    exec_model: shared.clone(),
                    decode_exec_model: None,
                    stop_at_certain_miss: Vec::new(),
                    step_by_step: false,
                    threads: 1,
                };
                let r = simulate(cfg, &opts).map_err(sim(*qps)).map(|o| Point {
                    qps: *qps,
                    dir: dir.clone(),
                    summary: o.summary,
                    bench: o.bench,
                });
                bar.inc(1);
                r
            })
            .collect()
    });
    bar.finish_and_clear();
    let points = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    let (k, f) = knee(&points);
    let description = match points[0].summary.workload.as_ref() {
        Some(w) => format!(
            "{}. Workload at each rate: {} requests, prompts {:.0} and outputs {:.0} tokens on average",
            crate::describe::headline(first),
            w.requests,
            w.prompt_tokens_mean,
            w.output_tokens_mean
        ),
        None => crate::describe::headline(first),
    };
    Ok(Sweep {
        knee: k,
        first_overloaded: f,
        percentiles: first.output.metric_percentiles.clone(),
        points,
        wall_s: start.elapsed().as_secs_f64(),
        threads: used,
        description,
    })
}

/// The `sweep.csv` columns of the latency metrics, vLLM's names: `mean_ttft_ms`,
/// `median_ttft_ms`, `p99_ttft_ms`, ...
pub fn latency_columns(percentiles: &[f64]) -> Vec<String> {
    let mut cols = Vec::new();
    for (m, _) in METRICS {
        cols.push(format!("mean_{m}_ms"));
        cols.push(format!("median_{m}_ms"));
        for &p in percentiles {
            cols.push(format!("p{}_{m}_ms", percentile_key(p)));
        }
    }
    cols
}

/// `sweep.json`: the knee and every point with its verdict and `bench.json`.
pub fn json_value(s: &Sweep) -> Value {
    let at = |i: Option<usize>| i.map(|i| s.points[i].qps);
    let points: Vec<Value> = s
        .points
        .iter()
        .map(|p| {
            json!({
                "qps": p.qps,
                "run_dir": p.dir,
                "load": p.summary.load,
                "bench": p.bench,
            })
        })
        .collect();
    json!({
        "format": FORMAT,
        "knee_qps": at(s.knee),
        "first_overloaded_qps": at(s.first_overloaded),
        "points": points,
    })
}

/// Writes `sweep.csv`, `sweep.json`, `sweep.html` and `plots/` into `out`.
pub fn write_outputs(out: &Path, s: &Sweep) -> Result<(), SweepError> {
    page::write(out, s)
}

/// [`run`] and [`write_outputs`] into `out`, all or nothing: every file is written to a staging
/// directory inside `out` and moved into place only when every rate and the page succeeded; a
/// failed sweep leaves `out` as it was, and a sweep over an earlier one replaces its `runs/`
/// (no stale rates) ([`crate::output::staging`]). A directory holding a run or a comparison is
/// refused, and so is an input file of a rate inside the sweep's outputs.
pub fn run_and_write(
    configs: &[(f64, SimConfig)],
    out: &Path,
    threads: usize,
    progress: bool,
) -> Result<Sweep, SweepError> {
    for (_, cfg) in configs {
        for (flag, input) in cfg.workload.input_files() {
            staging::check_not_an_output_of(out, OutputKind::Sweep, flag, input)
                .map_err(SweepError::Output)?;
        }
    }
    let stage = Staging::create_for(out, OutputKind::Sweep).map_err(SweepError::Output)?;
    let result = run(configs, stage.path(), threads, progress)
        .and_then(|s| write_outputs(stage.path(), &s).map(|()| s));
    match result {
        Ok(s) => {
            stage.commit().map_err(SweepError::Output)?;
            Ok(s)
        }
        Err(e) => {
            stage.discard();
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_specs() {
        assert_eq!(RateSpec::parse("1:30:30").unwrap().0.len(), 30);
        assert_eq!(RateSpec::parse("1:30:30").unwrap().0[..3], [1.0, 2.0, 3.0]);
        assert_eq!(
            RateSpec::parse("2:4:5").unwrap().0,
            vec![2.0, 2.5, 3.0, 3.5, 4.0]
        );
        assert_eq!(
            RateSpec::parse("8, 1,2.5").unwrap().0,
            vec![1.0, 2.5, 8.0],
            "lists are sorted"
        );
        assert_eq!(RateSpec::parse("6").unwrap().0, vec![6.0]);
        // tiny rates keep their digits; rates one directory name apart are refused
        assert_eq!(rate_text(1e-300), "1e-300");
        assert_eq!(rate_text(2.5), "2.5");
        assert!(RateSpec::parse("1.0000001,1.0000002")
            .unwrap_err()
            .contains("6 decimals"));
        assert_eq!(RateSpec::parse("3:3:1").unwrap().0, vec![3.0]);
        for bad in [
            "", "1:2", "0:5:3", "5:1:3", "1:5:0", "1:5:x", "1,1", "-2", "a,b", "1:5:1",
        ] {
            assert!(RateSpec::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(rate_text(2.5), "2.5");
        assert_eq!(rate_text(3.0), "3");
    }

    #[test]
    fn a_small_sweep_is_deterministic_whatever_the_threads_and_finds_the_knee() {
        let base = SimConfig::from_toml(
            "[workload]\nnum_requests = 150\n[output]\nbatches = false\ntrace = false\nreport = false\n",
        )
        .unwrap();
        let configs: Vec<(f64, SimConfig)> = [2.0, 40.0, 80.0]
            .iter()
            .map(|&q| {
                let mut c = base.clone();
                c.workload.arrival = crate::workload::ArrivalConfig::Poisson { qps: q };
                (q, c)
            })
            .collect();
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let one = run(&configs, a.path(), 1, false).unwrap();
        let two = run(&configs, b.path(), 2, false).unwrap();
        write_outputs(a.path(), &one).unwrap();
        write_outputs(b.path(), &two).unwrap();
        for f in [
            "sweep.csv",
            "sweep.json",
            "sweep.html",
            "runs/2-qps40/summary.json",
            "runs/3-qps80/bench.json",
        ]
        .map(|f| {
            f.replace("runs/2-", "runs/02-")
                .replace("runs/3-", "runs/03-")
        }) {
            let (x, y) = (
                std::fs::read(a.path().join(&f)).unwrap(),
                std::fs::read(b.path().join(&f)).unwrap(),
            );
            assert!(x == y, "{f} differs between 1 and 2 threads");
        }
        assert!(!one.points[0].overloaded(), "2 req/s is light load");
        assert!(one.points[2].overloaded(), "80 req/s overloads one H100");
        let k = one.knee.map(|k| one.points[k].qps);
        assert!(k == Some(2.0) || k == Some(40.0), "{k:?}");
        let csv = std::fs::read_to_string(a.path().join("sweep.csv")).unwrap();
        assert!(csv.starts_with("qps,run_dir,load,"), "{csv}");
        assert_eq!(csv.lines().count(), 4);
    }
}
