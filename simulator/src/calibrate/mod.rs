//! `simulator calibrate`: fits the engine model's coefficients to measured serving runs
//! (`docs/calibration.md`).
//!
//! Every measured experiment is simulated (its workload regenerated from its definition) and the
//! coefficients are fitted to the measured stage latencies ([`fit`]); KV-memory coefficients are
//! fitted first, by least squares, to the engine's own block counts where recorded. The command
//! writes the calibration file, a table of measured against simulated latencies per experiment and
//! stage, and optionally leave-one-model-family-out cross-validation.

pub mod baseline;
pub mod bench;
pub mod experiment;
pub mod fit;
pub mod measurements;
pub mod outputs;
pub mod report;

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use predictor::exec::engine::calibration::{
    Calibration, CalibrationInfo, EngineBehaviour, DEFAULT_ENGINE_VERSION,
};
use predictor::exec::engine::memory::{plan_vllm_memory, MemoryArgs};
use predictor::exec::engine::EngineCoefficients;
use predictor::{Catalog, Parallelism, Precision};

use experiment::SimShape;
use fit::{Prepared, Problem};
use measurements::{read_measurements, BenchDefaults, Experiment};
use report::Table;

const GIB: f64 = (1u64 << 30) as f64;

/// A backend to compare against the measurements (`--baseline`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Baseline {
    /// Vidur's stage formula over the roofline, default efficiencies, no front end.
    Roofline,
    /// Vidur's stage formula over published profiles of a model of the same shape.
    Profiled,
}

/// `simulator calibrate`.
#[derive(Debug, Clone, Args)]
pub struct CalibrateArgs {
    /// Measurement files: the measurements schema (docs/calibration.md) or `vllm bench serve --save-result` JSON (repeatable)
    #[arg(long, value_name = "FILE", required = true, num_args = 1..)]
    pub measurements: Vec<PathBuf>,
    /// Calibration file to write (a table of measured against simulated latencies goes beside it, as .md and .csv)
    #[arg(long, value_name = "FILE.toml")]
    pub out: PathBuf,
    /// GPU to calibrate: only its experiments are fitted [default: the GPU with the most experiments]
    #[arg(long)]
    pub device: Option<String>,
    /// Start from this calibration's coefficients [default: the model's priors]
    #[arg(long, value_name = "FILE.toml")]
    pub start: Option<PathBuf>,
    /// Coefficients to fit, comma-separated [default: every coefficient marked "fitted" in the table of docs/calibration.md]
    #[arg(long, value_name = "NAMES")]
    pub fit: Option<String>,
    /// Only the experiments whose id contains one of these comma-separated strings
    #[arg(long, value_name = "IDS")]
    pub experiments: Option<String>,
    /// Optimizer of the fits: lm (Levenberg–Marquardt, one simulation per fitted coefficient and iteration) or nelder-mead
    #[arg(long, value_enum, default_value_t = fit::Optimizer::Lm)]
    pub optimizer: fit::Optimizer,
    /// Largest number of optimizer iterations [default: 20 with lm, 150 with nelder-mead]
    #[arg(long, value_name = "N")]
    pub max_iters: Option<u64>,
    /// Simulated seconds of each load stage while fitting, at least 8 mean E2E latencies [default: 60]
    #[arg(long, value_name = "SECONDS")]
    pub fit_stage_s: Option<f64>,
    /// Iterations of a second fit, from the first one's result, in which the experiments whose shortened stages misrepresent their whole stages (mean E2E off by more than 2 %, mean TTFT by more than 5 %, at the first fit's coefficients: queues near capacity, cold caches) are simulated whole; 0: no second fit [default: 8 with lm, 60 with nelder-mead]
    #[arg(long, value_name = "N")]
    pub refine_iters: Option<u64>,
    /// Simulated seconds of each load stage in the final table [default: the whole stage]
    #[arg(long, value_name = "SECONDS")]
    pub eval_stage_s: Option<f64>,
    /// Also fit once per model family with that family held out, and report its errors
    #[arg(long)]
    pub cross_validate: bool,
    /// Fit nothing: tabulate another backend against the measurements instead (roofline: Vidur's formula over the roofline; profiled: Vidur's formula over published profiles of a model of the same shape, from --profiles)
    #[arg(long, value_enum, value_name = "KIND")]
    pub baseline: Option<Baseline>,
    /// Profile directory for --baseline profiled [default: data/vidur/profiling]
    #[arg(long, value_name = "DIR")]
    pub profiles: Option<PathBuf>,
    /// Tokens the serving stack adds to each shared-prefix prompt [default: 27]
    #[arg(long, value_name = "TOKENS")]
    pub extra_prompt_tokens: Option<u32>,
    /// Seed of the regenerated workloads [default: 42]
    #[arg(long)]
    pub seed: Option<u64>,
    /// Worker threads [default: all cores]
    #[arg(long)]
    pub threads: Option<usize>,
    /// No progress bar
    #[arg(long, short)]
    pub quiet: bool,
    /// Tensor-parallel degree of bench results that do not record one [default: 1]
    #[arg(long)]
    pub tp: Option<u32>,
    /// max_num_seqs of bench results that do not record one [default: 256]
    #[arg(long)]
    pub max_num_seqs: Option<u32>,
    /// max_num_batched_tokens of bench results that do not record one [default: 2048]
    #[arg(long)]
    pub max_num_batched_tokens: Option<u32>,
}

/// The measured experiments usable for `device`, and the skipped ones with their reason.
pub struct Loaded {
    /// Simulable experiments of the device.
    pub prepared: Vec<Prepared>,
    /// (id, reason) of the experiments left out.
    pub skipped: Vec<(String, String)>,
}

/// Reads every file and prepares the experiments on `device` (all devices when `None`).
pub fn load(
    files: &[PathBuf],
    defaults: &BenchDefaults,
    device: Option<&str>,
    only: Option<&str>,
    shape: &SimShape,
) -> Result<Loaded> {
    let mut all: Vec<Experiment> = Vec::new();
    for f in files {
        all.extend(read_measurements(f, defaults)?);
    }
    let mut prepared = Vec::new();
    let mut skipped = Vec::new();
    for e in all {
        if let Some(filter) = only {
            if !filter
                .split(',')
                .any(|s| !s.is_empty() && e.id.contains(s.trim()))
            {
                continue;
            }
        }
        if device.is_some_and(|d| !e.gpu.eq_ignore_ascii_case(d)) {
            continue;
        }
        match Prepared::new(&e, shape) {
            Ok(p) if p.fits() => prepared.push(p),
            Ok(_) => skipped.push((e.id.clone(), "every stage is overloaded".into())),
            Err(why) => skipped.push((e.id.clone(), why)),
        }
    }
    Ok(Loaded { prepared, skipped })
}

/// Fits the memory coefficients to the engine's recorded KV-block counts: for each distinct
/// deployment, the memory left after the weights and the recorded KV cache is
/// `non_torch + activation · max_num_batched_tokens · hidden (+ multimodal reserve)`; the first two
/// by least squares over the text-only models, the reserve as the mean residual of multimodal ones.
/// Coefficients the data cannot determine keep their values in `start`.
pub fn fit_memory(exps: &[Prepared], start: &EngineCoefficients) -> EngineCoefficients {
    let cat = Catalog::builtin();
    let mut out = *start;
    // (deployment key) -> (x = mnbt × hidden, rest bytes, multimodal)
    let mut pts: std::collections::BTreeMap<String, (f64, f64, bool)> = Default::default();
    for p in exps {
        let e = &p.exp;
        let Some(blocks) = e.kv_blocks_total_gpu else {
            continue;
        };
        let Ok(cfg) = experiment::to_config(e, start, &SimShape::default()) else {
            continue;
        };
        let Ok(r) = cfg.resolve(&cat) else {
            continue;
        };
        let args = MemoryArgs {
            gpu_memory_utilization: e.engine.gpu_memory_utilization,
            max_num_batched_tokens: e.engine.max_num_batched_tokens,
            block_size: e.engine.block_size,
        };
        let zero = EngineCoefficients {
            non_torch_memory_gib: 0.0,
            activation_bytes_per_token_hidden: 0.0,
            multimodal_reserve_gib: 0.0,
            ..*start
        };
        let plan = plan_vllm_memory(
            &r.model,
            &r.device,
            r.parallelism,
            &r.precision,
            &zero,
            args,
        );
        let rest = plan.budget_bytes as f64
            - plan.weight_bytes as f64
            - blocks as f64 * plan.kv_bytes_per_block as f64;
        let key = format!(
            "{}|{}|{}|{}|{}",
            e.model, e.gpu, e.tp, e.engine.gpu_memory_utilization, e.engine.max_num_batched_tokens
        );
        pts.insert(
            key,
            (
                f64::from(e.engine.max_num_batched_tokens) * f64::from(r.model.hidden_size),
                rest,
                r.model.extra_params > 0,
            ),
        );
    }
    let text: Vec<(f64, f64)> = pts.values().filter(|p| !p.2).map(|p| (p.0, p.1)).collect();
    if text.len() >= 2 {
        let n = text.len() as f64;
        let mx = text.iter().map(|p| p.0).sum::<f64>() / n;
        let my = text.iter().map(|p| p.1).sum::<f64>() / n;
        let sxx: f64 = text.iter().map(|p| (p.0 - mx).powi(2)).sum();
        let sxy: f64 = text.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
        let slope = if sxx > 0.0 { (sxy / sxx).max(0.0) } else { 0.0 };
        out.activation_bytes_per_token_hidden = slope;
        out.non_torch_memory_gib = (my - slope * mx).max(0.0) / GIB;
    }
    let mm: Vec<f64> = pts
        .values()
        .filter(|p| p.2)
        .map(|p| p.1 - out.non_torch_memory_gib * GIB - out.activation_bytes_per_token_hidden * p.0)
        .collect();
    if !mm.is_empty() {
        out.multimodal_reserve_gib = (mm.iter().sum::<f64>() / mm.len() as f64).max(0.0) / GIB;
    }
    out
}

/// Simulates every experiment with `c` at the evaluation length and tabulates the results.
pub fn evaluate(exps: &[Prepared], c: &EngineCoefficients, shape: &SimShape) -> Table {
    use rayon::prelude::*;
    let sims: Vec<_> = exps
        .par_iter()
        .with_max_len(1)
        .map(|p| p.simulate(c, shape))
        .collect();
    let mut rows = Vec::new();
    for (p, sim) in exps.iter().zip(sims) {
        rows.extend(p.rows(&sim));
    }
    Table { rows }
}

/// The GPU with the most experiments (ties: name order).
fn busiest_gpu(files: &[PathBuf], defaults: &BenchDefaults) -> Result<String> {
    let mut counts = std::collections::BTreeMap::new();
    for f in files {
        for e in read_measurements(f, defaults)? {
            *counts.entry(e.gpu.to_ascii_lowercase()).or_insert(0u32) += 1;
        }
    }
    counts
        .into_iter()
        .max_by_key(|&(_, n)| n)
        .map(|(g, _)| g)
        .context("no experiments")
}

/// A progress bar over optimizer evaluations.
fn bar(quiet: bool, len: u64, what: &str) -> ProgressBar {
    if quiet || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::hidden());
    }
    let b = ProgressBar::new(len);
    b.set_style(
        ProgressStyle::with_template(&format!(
            "{what} {{bar:30}} {{pos}}/{{len}} evaluations, {{elapsed}} (ETA {{eta}})"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b
}

/// One fit: memory, then latency coefficients, from `start`.
fn fit_all(
    exps: &[Prepared],
    start: EngineCoefficients,
    fitted: &[&'static predictor::exec::engine::coeffs::CoefInfo],
    shape: &SimShape,
    iters: Iterations,
    refine: bool,
    progress: &ProgressBar,
) -> Result<(EngineCoefficients, f64)> {
    let max_iters = iters.of(refine);
    let start = fit_memory(exps, &start);
    let on_eval = |k: u64| progress.set_position(k);
    let problem = Problem {
        experiments: exps,
        start,
        fitted: fitted.to_vec(),
        shape: shape.clone(),
        prior_weight: fit::PRIOR_WEIGHT,
        progress: &on_eval,
        evaluations: AtomicU64::new(0),
    };
    let found = match (iters.optimizer, refine) {
        (fit::Optimizer::Lm, _) => fit::levenberg_marquardt(problem, max_iters),
        (fit::Optimizer::NelderMead, true) => fit::refine(problem, max_iters),
        (fit::Optimizer::NelderMead, false) => fit::fit(problem, max_iters),
    };
    found.map_err(|e| anyhow::anyhow!("the fit failed: {e}"))
}

/// Optimizer iterations of the two fits of [`fit_refined`].
#[derive(Debug, Clone, Copy)]
struct Iterations {
    /// The first fit, over shortened stages.
    first: u64,
    /// The second fit (0: none).
    refine: u64,
    /// The optimizer of both.
    optimizer: fit::Optimizer,
}

impl Iterations {
    /// The iterations of the second fit (`refine`) or of the first.
    fn of(&self, refine: bool) -> u64 {
        if refine {
            self.refine
        } else {
            self.first
        }
    }

    /// Simulations of the first or second fit of `fitted` coefficients, for progress bars (an
    /// estimate: Nelder–Mead takes one or two per iteration, Levenberg–Marquardt one per
    /// coefficient and one or more for the step).
    fn evaluations(&self, refine: bool, fitted: usize) -> u64 {
        let iters = self.of(refine);
        match self.optimizer {
            fit::Optimizer::Lm => iters * (fitted as u64 + 2) + 1,
            fit::Optimizer::NelderMead => iters * 2,
        }
    }
}

/// What [`fit_refined`] found.
struct Refined {
    coefficients: EngineCoefficients,
    loss: f64,
    /// The experiments simulated over whole stages in the second fit.
    whole: Vec<String>,
}

/// Fits over shortened stages; then, when `iters.refine` > 0 and some experiments' shortened
/// stages misrepresent their whole ones at the first fit's coefficients
/// ([`fit::shortened_stages_differ`]), fits again from there with those experiments simulated
/// whole (with Nelder–Mead, [`fit::refine`]: one run from a small simplex). Whole stages cost up to 20
/// times as much, so only the experiments that need them pay.
fn fit_refined(
    exps: &[Prepared],
    start: EngineCoefficients,
    fitted: &[&'static predictor::exec::engine::coeffs::CoefInfo],
    shape: &SimShape,
    iters: Iterations,
    quiet: bool,
    what: &str,
) -> Result<Refined> {
    use rayon::prelude::*;
    let pb = bar(quiet, iters.evaluations(false, fitted.len()), what);
    let (c, loss) = fit_all(exps, start, fitted, shape, iters, false, &pb)?;
    pb.finish_and_clear();
    let mut out = Refined {
        coefficients: c,
        loss,
        whole: Vec::new(),
    };
    if iters.refine == 0 || shape.max_stage_s.is_none() || fitted.is_empty() {
        return Ok(out);
    }
    let whole_shape = shape.whole();
    let flags: Vec<bool> = exps
        .par_iter()
        .with_max_len(1)
        .map(|p| {
            let short = p.simulate(&c, shape);
            let whole = p.simulate(&c, &whole_shape);
            fit::shortened_stages_differ(p, &short, &whole)
        })
        .collect();
    if !flags.contains(&true) {
        return Ok(out);
    }
    let refined: Vec<Prepared> = exps
        .iter()
        .zip(&flags)
        .map(|(p, &w)| Prepared {
            whole: w,
            ..p.clone()
        })
        .collect();
    out.whole = refined
        .iter()
        .filter(|p| p.whole)
        .map(|p| p.exp.id.clone())
        .collect();
    let pb = bar(
        quiet,
        iters.evaluations(true, fitted.len()),
        &format!("{what} (whole stages)"),
    );
    let (c, loss) = fit_all(&refined, c, fitted, shape, iters, true, &pb)?;
    pb.finish_and_clear();
    out.coefficients = c;
    out.loss = loss;
    Ok(out)
}

/// Range checks of the numeric options, each naming its flag.
fn check_args(a: &CalibrateArgs) -> Result<()> {
    for (flag, v) in [
        ("--fit-stage-s", a.fit_stage_s),
        ("--eval-stage-s", a.eval_stage_s),
    ] {
        if let Some(v) = v {
            if !(v.is_finite() && v > 0.0) {
                bail!("{flag} {v}: give a positive number of simulated seconds");
            }
        }
    }
    if a.max_iters == Some(0) {
        bail!("--max-iters 0: give at least 1 iteration");
    }
    for (flag, v) in [
        ("--tp", a.tp),
        ("--max-num-seqs", a.max_num_seqs),
        ("--max-num-batched-tokens", a.max_num_batched_tokens),
    ] {
        if v == Some(0) {
            bail!("{flag} 0: give at least 1");
        }
    }
    Ok(())
}

/// Runs `simulator calibrate`.
pub fn main(a: &CalibrateArgs) -> Result<()> {
    check_args(a)?;
    let mut inputs: Vec<(&str, &std::path::Path)> = a
        .measurements
        .iter()
        .map(|m| ("--measurements", m.as_path()))
        .collect();
    if let Some(s) = &a.start {
        inputs.push(("--start", s.as_path()));
    }
    outputs::check(&a.out, &inputs, a.baseline.is_some())?;
    let mut files = outputs::Outputs::default();
    if let Some(n) = a.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build_global()
            .ok();
    }
    let defaults = BenchDefaults {
        gpu: a.device.clone(),
        tp: a.tp.unwrap_or(1),
        max_num_seqs: a.max_num_seqs.unwrap_or(256),
        max_num_batched_tokens: a.max_num_batched_tokens.unwrap_or(2048),
        ..Default::default()
    };
    let device = match &a.device {
        Some(d) => d.to_ascii_lowercase(),
        None => busiest_gpu(&a.measurements, &defaults)?,
    };
    Catalog::builtin().device(&device)?;
    let start_cal = match &a.start {
        Some(p) => Some(Calibration::read(p)?),
        None => None,
    };
    let start = start_cal
        .as_ref()
        .map_or_else(EngineCoefficients::default, |c| c.coefficients);
    let fitted = match &a.fit {
        Some(list) => fit::parse_fitted(list).map_err(anyhow::Error::msg)?,
        None => fit::default_fitted(),
    };
    let base = SimShape {
        max_stage_s: None,
        extra_prompt_tokens: a.extra_prompt_tokens.unwrap_or(27),
        seed: a.seed.unwrap_or(42),
        calibration: DEFAULT_ENGINE_VERSION.into(),
    };
    let fit_shape = SimShape {
        max_stage_s: Some(a.fit_stage_s.unwrap_or(60.0)),
        ..base.clone()
    };
    let eval_shape = SimShape {
        max_stage_s: a.eval_stage_s,
        ..base.clone()
    };
    let loaded = load(
        &a.measurements,
        &defaults,
        Some(&device),
        a.experiments.as_deref(),
        &fit_shape,
    )?;
    for (id, why) in &loaded.skipped {
        eprintln!("skipped {id}: {why}");
    }
    if loaded.prepared.is_empty() {
        bail!("no experiment on {device} can be simulated (see the skipped ones above)");
    }
    let exps = &loaded.prepared;
    if let Some(kind) = a.baseline {
        let profiles = a
            .profiles
            .clone()
            .unwrap_or_else(|| PathBuf::from("data/vidur/profiling"));
        let table = baseline::evaluate(exps, kind, &profiles, &eval_shape);
        let (e2e, ttft, n) = table.mean_abs_errors();
        let title = format!("Baseline {kind:?} on {device}");
        files.add(a.out.with_extension("md"), table.markdown(&title));
        files.add(a.out.with_extension("csv"), table.csv());
        files.commit(&[])?;
        eprintln!(
            "{title}: {n} stages, mean |error| E2E {:.1} %, TTFT {:.1} %; wrote {}",
            e2e * 100.0,
            ttft * 100.0,
            a.out.with_extension("md").display()
        );
        return Ok(());
    }
    let lm = a.optimizer == fit::Optimizer::Lm;
    let iters = Iterations {
        first: a.max_iters.unwrap_or(if lm { 20 } else { 150 }),
        refine: a.refine_iters.unwrap_or(if lm { 8 } else { 60 }),
        optimizer: a.optimizer,
    };
    let started = std::time::Instant::now();
    let fitted_run = fit_refined(exps, start, &fitted, &fit_shape, iters, a.quiet, "fitting")?;
    let (coeffs, loss) = (fitted_run.coefficients, fitted_run.loss);
    let fit_s = started.elapsed().as_secs_f64();
    let table = evaluate(exps, &coeffs, &eval_shape);
    let (e2e, ttft, n) = table.mean_abs_errors();
    let cal = Calibration {
        calibration: CalibrationInfo {
            engine: DEFAULT_ENGINE_VERSION.into(),
            device: device.clone(),
            fitted_on: format!(
                "{} ({} experiments, {n} stages on {device}, loss {loss:.5}{})",
                a.measurements
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                exps.len(),
                match fitted_run.whole.len() {
                    0 => String::new(),
                    k => format!("; {k} simulated over whole stages in the second fit"),
                }
            ),
            // The binary by name, not by path: the same command gives the same file in any checkout.
            command: std::iter::once("simulator".to_string())
                .chain(std::env::args().skip(1))
                .collect::<Vec<_>>()
                .join(" "),
            stages: n as u32,
            e2e_mean_abs_error: (e2e * 1e4).round() / 1e4,
            ttft_mean_abs_error: (ttft * 1e4).round() / 1e4,
        },
        engine: start_cal.map_or_else(EngineBehaviour::default, |c| c.engine),
        coefficients: coeffs,
    };
    files.add(a.out.clone(), cal.to_toml());
    let md = a.out.with_extension("md");
    let csv = a.out.with_extension("csv");
    files.add(
        md.clone(),
        table.markdown(&format!("Calibration {} on {device}", cal.name())),
    );
    files.add(csv.clone(), table.csv());
    let sens = report::sensitivities(exps, &table);
    if !sens.is_empty() {
        files.add(
            a.out.with_extension("sensitivity.md"),
            report::sensitivities_markdown(&sens),
        );
    }
    if !a.quiet {
        if !fitted_run.whole.is_empty() {
            eprintln!(
                "second fit over whole stages for {}",
                fitted_run.whole.join(", ")
            );
        }
        eprintln!(
            "fitted {} coefficients on {} experiments ({n} stages) in {fit_s:.0} s: mean |error| E2E {:.1} %, TTFT {:.1} %",
            fitted.len(),
            exps.len(),
            e2e * 100.0,
            ttft * 100.0
        );
    }
    let mut cv_note = None;
    if a.cross_validate {
        let (cv, folds) = cross_validate(
            exps,
            start,
            &fitted,
            &fit_shape,
            &eval_shape,
            iters,
            a.quiet,
        )?;
        let path = a.out.with_extension("cv.md");
        files.add(
            path.clone(),
            cv.markdown("Leave-one-family-out cross-validation") + &folds_markdown(&folds, &fitted),
        );
        files.add(a.out.with_extension("cv.csv"), cv.csv());
        let (e2e, ttft, n) = cv.mean_abs_errors();
        cv_note = Some(format!(
            "cross-validation over {n} held-out stages: mean |error| E2E {:.1} %, TTFT {:.1} %; wrote {}",
            e2e * 100.0,
            ttft * 100.0,
            path.display()
        ));
    }
    // Everything succeeded: the calibration and its tables go into place together.
    files.commit(&outputs::names(&a.out))?;
    if !a.quiet {
        eprintln!(
            "wrote {}, {} and {}",
            a.out.display(),
            md.display(),
            csv.display()
        );
        if let Some(note) = cv_note {
            eprintln!("{note}");
        }
    }
    Ok(())
}

/// The coefficients fitted in each fold of a cross-validation, by held-out family.
type Folds = Vec<(String, EngineCoefficients)>;

/// A Markdown section listing the `fitted` coefficients of each fold: how much the data of the
/// other families moves each one.
fn folds_markdown(
    folds: &Folds,
    fitted: &[&'static predictor::exec::engine::coeffs::CoefInfo],
) -> String {
    use std::fmt::Write;
    let mut s = String::from(
        "\n## Coefficients of each fold\n\nFitted without the held-out family.\n\n| held out |",
    );
    for info in fitted {
        let _ = write!(s, " `{}` ({}) |", info.name, info.unit);
    }
    s.push_str("\n|---|");
    s.push_str(&"---|".repeat(fitted.len()));
    s.push('\n');
    for (family, c) in folds {
        let _ = write!(s, "| {family} |");
        for info in fitted {
            let _ = write!(s, " {} |", crate::report::html::num((info.get)(c)));
        }
        s.push('\n');
    }
    s
}

/// Fits once per model family with that family held out, and evaluates the held-out family.
/// Returns the held-out rows and each fold's coefficients.
fn cross_validate(
    exps: &[Prepared],
    start: EngineCoefficients,
    fitted: &[&'static predictor::exec::engine::coeffs::CoefInfo],
    fit_shape: &SimShape,
    eval_shape: &SimShape,
    iters: Iterations,
    quiet: bool,
) -> Result<(Table, Folds)> {
    let families: std::collections::BTreeSet<String> =
        exps.iter().map(|p| p.exp.family()).collect();
    let mut rows = Vec::new();
    let mut folds = Vec::new();
    for fam in &families {
        let (test, train): (Vec<Prepared>, Vec<Prepared>) =
            exps.iter().cloned().partition(|p| &p.exp.family() == fam);
        if train.is_empty() {
            continue;
        }
        let run = fit_refined(
            &train,
            start,
            fitted,
            fit_shape,
            iters,
            quiet,
            &format!("held out {fam}"),
        )?;
        rows.extend(evaluate(&test, &run.coefficients, eval_shape).rows);
        folds.push((fam.clone(), run.coefficients));
    }
    Ok((Table { rows }, folds))
}

/// Weights per GPU of an experiment's layout and the model's total parameters, for reports.
pub fn weights_per_gpu_gib(e: &Experiment) -> Option<(f64, u64)> {
    let cat = Catalog::builtin();
    let model = cat.model(&e.model).ok()?;
    let device = cat.device(&e.gpu).ok()?;
    let cfg =
        experiment::to_config(e, &EngineCoefficients::default(), &SimShape::default()).ok()?;
    let prec = Precision::resolve(&model, &device, &cfg.replica.precision()).ok()?;
    let par = Parallelism::new(e.tp, 1);
    Some((
        model.stage_weight_bytes(par, 0, &prec) as f64 / GIB,
        model.total_params(),
    ))
}

#[cfg(test)]
mod tests;
