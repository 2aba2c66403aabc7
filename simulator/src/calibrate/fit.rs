//! Fitting the engine model's coefficients to measured stages: every measured experiment is
//! simulated with candidate coefficients, and an optimizer minimises a robust loss of the
//! log-ratios of simulated to measured latencies: by default Levenberg–Marquardt on those
//! log-ratios, its Jacobian taken by finite differences of whole simulations and the robust loss
//! by iteratively reweighted least squares ([`levenberg_marquardt`]); or derivative-free
//! Nelder–Mead, from `argmin` ([`fit`]).
//!
//! The loss of one stage is a pseudo-Huber penalty `δ²(√(1 + (r/δ)²) − 1)` of each log-ratio `r`,
//! weighted: mean E2E 1, E2E p90 0.5, mean TTFT 0.5, TTFT p90 0.25 (E2E is what capacity plans
//! rest on; TTFT is a few tens of milliseconds measured through a client). A weak quadratic pull
//! towards the starting point in the optimizer's coordinates keeps coefficients the data cannot
//! see at their priors. Experiments are simulated in parallel (rayon) and combined in order, so a
//! fit is deterministic whatever the thread count.

use argmin::core::{CostFunction, Error as ArgminError, Executor, State};
use argmin::solver::neldermead::NelderMead;
use predictor::exec::engine::coeffs::{coef_info, CoefInfo};
use predictor::exec::engine::EngineCoefficients;
use rayon::prelude::*;

use super::experiment::{run_config, to_config, SimResult, SimShape, OVERLOAD_TTFT_MS};
use super::measurements::{Experiment, MeasuredStage};
use super::report::Row;
use crate::config::SimConfig;

/// Scale of the pseudo-Huber loss on log-ratios (about 10 %).
const DELTA: f64 = 0.1;
/// Default weight of the pull towards the starting point, per squared coordinate.
pub const PRIOR_WEIGHT: f64 = 1e-4;
/// Loss of a stage whose simulation failed.
const FAILED: f64 = 10.0;

/// The weighted metrics of a stage's loss.
const WEIGHTS: [(&str, f64); 4] = [
    ("e2e_mean", 1.0),
    ("e2e_p90", 0.5),
    ("ttft_mean", 0.5),
    ("ttft_p90", 0.25),
];

/// An experiment ready to simulate.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The experiment.
    pub exp: Experiment,
    /// Its measured stages in order, and whether each is overloaded.
    pub stages: Vec<(MeasuredStage, bool)>,
    /// Simulate the whole stages whatever the shape's cap (set by [`shortened_stages_differ`]
    /// for the second fit of `simulator calibrate`).
    pub whole: bool,
}

impl Prepared {
    /// Prepares `e`, or says why it cannot be simulated.
    pub fn new(e: &Experiment, shape: &SimShape) -> Result<Prepared, String> {
        to_config(e, &EngineCoefficients::default(), shape)?;
        Ok(Prepared {
            exp: e.clone(),
            stages: e
                .stages()
                .into_iter()
                .map(|(_, s)| (s, s.ttft_mean > OVERLOAD_TTFT_MS))
                .collect(),
            whole: false,
        })
    }

    /// True when at least one stage is not overloaded.
    pub fn fits(&self) -> bool {
        self.stages.iter().any(|(_, over)| !over)
    }

    /// Simulates the experiment with coefficients `c`.
    pub fn simulate(&self, c: &EngineCoefficients, shape: &SimShape) -> Result<SimResult, String> {
        let cfg: SimConfig = if self.whole {
            to_config(&self.exp, c, &shape.whole())?
        } else {
            to_config(&self.exp, c, shape)?
        };
        run_config(&cfg, self.stages.len())
    }

    /// One table row per measured stage, beside the simulation `sim` of this experiment.
    pub fn rows(&self, sim: &Result<SimResult, String>) -> Vec<Row> {
        self.stages
            .iter()
            .enumerate()
            .map(|(i, (m, over))| Row {
                id: self.exp.id.clone(),
                family: self.exp.family(),
                stage: i,
                overloaded: *over,
                measured: *m,
                simulated: sim.as_ref().ok().map(|s| s.stages[i]),
                error: sim.as_ref().err().cloned(),
                kv_blocks: (
                    self.exp.kv_blocks_total_gpu,
                    sim.as_ref().ok().map(|s| s.kv_blocks),
                ),
            })
            .collect()
    }
}

/// Largest relative difference of a stage's mean E2E between shortened and whole stages that
/// [`shortened_stages_differ`] lets pass.
pub const SHORT_E2E_TOLERANCE: f64 = 0.02;
/// The same for mean TTFT.
pub const SHORT_TTFT_TOLERANCE: f64 = 0.05;

/// True when the simulation `short` of `p` over shortened stages misrepresents its simulation
/// `whole` over the whole stages: a non-overloaded stage's mean E2E differs by more than
/// [`SHORT_E2E_TOLERANCE`] or its mean TTFT by more than [`SHORT_TTFT_TOLERANCE`] (a queue that
/// builds up near capacity, or a cold prefix cache whose misses weigh more in a short stage), or
/// one of the two failed.
pub fn shortened_stages_differ(
    p: &Prepared,
    short: &Result<SimResult, String>,
    whole: &Result<SimResult, String>,
) -> bool {
    let (Ok(short), Ok(whole)) = (short, whole) else {
        return short.is_ok() != whole.is_ok();
    };
    let off = |a: f64, b: f64, tol: f64| b > 0.0 && ((a / b) - 1.0).abs() > tol;
    p.stages
        .iter()
        .enumerate()
        .filter(|(_, (_, over))| !over)
        .any(|(i, _)| {
            let (s, w) = (&short.stages[i], &whole.stages[i]);
            off(s.e2e_mean, w.e2e_mean, SHORT_E2E_TOLERANCE)
                || off(s.ttft_mean, w.ttft_mean, SHORT_TTFT_TOLERANCE)
        })
}

/// The measured/simulated pairs of one stage's metrics, in [`WEIGHTS`] order (`None` where the
/// measurement lacks the metric).
pub fn pairs(m: &MeasuredStage, s: &super::experiment::SimStage) -> [Option<(f64, f64)>; 4] {
    [
        Some((m.e2e_mean, s.e2e_mean)),
        m.e2e_p90.map(|v| (v, s.e2e_p90)),
        Some((m.ttft_mean, s.ttft_mean)),
        m.ttft_p90.map(|v| (v, s.ttft_p90)),
    ]
}

/// A coefficient in the optimizer's unbounded coordinate: logit for fractions, `ln(1 + v)` for
/// the others.
fn to_x(info: &CoefInfo, v: f64) -> f64 {
    if info.unit == "fraction" {
        let u = ((v - info.min) / (info.max - info.min)).clamp(1e-6, 1.0 - 1e-6);
        (u / (1.0 - u)).ln()
    } else {
        (1.0 + v.max(0.0)).ln()
    }
}

fn from_x(info: &CoefInfo, x: f64) -> f64 {
    let v = if info.unit == "fraction" {
        info.min + (info.max - info.min) / (1.0 + (-x).exp())
    } else {
        x.exp() - 1.0
    };
    v.clamp(info.min, info.max)
}

/// The fitting problem.
pub struct Problem<'a> {
    /// The experiments.
    pub experiments: &'a [Prepared],
    /// The coefficients before fitting (the unfitted ones stay).
    pub start: EngineCoefficients,
    /// The coefficients being fitted.
    pub fitted: Vec<&'static CoefInfo>,
    /// How to simulate.
    pub shape: SimShape,
    /// Weight of the pull towards the starting point ([`PRIOR_WEIGHT`]; 0: none).
    pub prior_weight: f64,
    /// Called after each evaluation with the evaluation count.
    pub progress: &'a (dyn Fn(u64) + Sync),
    /// Evaluations so far.
    pub evaluations: std::sync::atomic::AtomicU64,
}

impl Problem<'_> {
    /// The coefficients at point `x`.
    pub fn coefficients(&self, x: &[f64]) -> EngineCoefficients {
        let mut c = self.start;
        for (info, &xi) in self.fitted.iter().zip(x) {
            (info.set)(&mut c, from_x(info, xi));
        }
        c
    }

    /// The starting point.
    pub fn x0(&self) -> Vec<f64> {
        self.fitted
            .iter()
            .map(|i| to_x(i, (i.get)(&self.start)))
            .collect()
    }

    /// Simulates every experiment with `c`, in parallel, in order.
    pub fn simulate_all(&self, c: &EngineCoefficients) -> Vec<Result<SimResult, String>> {
        self.experiments
            .par_iter()
            .with_max_len(1)
            .map(|p| p.simulate(c, &self.shape))
            .collect()
    }

    /// The mean loss per stage of coefficients `c`.
    pub fn loss(&self, c: &EngineCoefficients) -> f64 {
        self.residuals_of(&self.simulate_all(c)).loss()
    }
}

impl CostFunction for Problem<'_> {
    type Param = Vec<f64>;
    type Output = f64;

    fn cost(&self, x: &Vec<f64>) -> Result<f64, ArgminError> {
        let res = self.residuals(&self.coefficients(x));
        Ok(self.objective(x, &res))
    }
}

/// The optimizer of a fit (`simulator calibrate --optimizer`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Optimizer {
    /// Levenberg–Marquardt on the log-ratios ([`levenberg_marquardt`]): a Jacobian of one
    /// simulation per fitted coefficient each iteration; converges in tens of iterations.
    #[default]
    Lm,
    /// Nelder–Mead with restarts ([`fit`]): one or two simulations per iteration; needs hundreds
    /// of iterations for a dozen coefficients.
    NelderMead,
}

/// The weighted log-ratios of one evaluation, in a fixed order (experiment, non-overloaded stage,
/// metric of [`WEIGHTS`]).
#[derive(Debug, Clone)]
pub struct Residuals {
    /// Log-ratio simulated/measured of each entry (0 where the metric is missing or the
    /// experiment failed).
    pub r: Vec<f64>,
    /// Weight of each entry (0 where the metric is missing or the experiment failed).
    pub w: Vec<f64>,
    /// Non-overloaded stages.
    pub stages: usize,
    /// Failed non-overloaded stages.
    pub failed_stages: usize,
}

/// Pseudo-Huber penalty of a log-ratio `r` (scale [`DELTA`]).
fn pseudo_huber(r: f64) -> f64 {
    DELTA * DELTA * ((1.0 + (r / DELTA).powi(2)).sqrt() - 1.0)
}

impl Residuals {
    /// The mean loss per stage: the weighted pseudo-Huber penalties, and [`FAILED`] per failed
    /// stage.
    pub fn loss(&self) -> f64 {
        let penalties: f64 = self
            .r
            .iter()
            .zip(&self.w)
            .map(|(r, w)| w * pseudo_huber(*r))
            .sum();
        (penalties + FAILED * self.failed_stages as f64) / self.stages.max(1) as f64
    }
}

impl Problem<'_> {
    /// The residuals of coefficients `c` (one evaluation, counted for the progress report).
    pub fn residuals(&self, c: &EngineCoefficients) -> Residuals {
        let out = self.residuals_of(&self.simulate_all(c));
        let k = self
            .evaluations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        (self.progress)(k + 1);
        out
    }

    /// The residuals of the simulations `sims` of every experiment, in order.
    fn residuals_of(&self, sims: &[Result<SimResult, String>]) -> Residuals {
        let mut out = Residuals {
            r: Vec::new(),
            w: Vec::new(),
            stages: 0,
            failed_stages: 0,
        };
        for (p, sim) in self.experiments.iter().zip(sims) {
            for (i, (m, over)) in p.stages.iter().enumerate() {
                if *over {
                    continue;
                }
                out.stages += 1;
                let Ok(sim) = sim else {
                    out.failed_stages += 1;
                    for _ in WEIGHTS {
                        out.r.push(0.0);
                        out.w.push(0.0);
                    }
                    continue;
                };
                for ((_, w), pair) in WEIGHTS.iter().zip(pairs(m, &sim.stages[i])) {
                    let (r, w) = match pair {
                        Some((meas, simv)) => {
                            (if simv > 0.0 { (simv / meas).ln() } else { 5.0 }, *w)
                        }
                        None => (0.0, 0.0),
                    };
                    out.r.push(r);
                    out.w.push(w);
                }
            }
        }
        out
    }

    /// The objective at point `x` with residuals `res`: the loss and the pull towards the start.
    fn objective(&self, x: &[f64], res: &Residuals) -> f64 {
        let prior: f64 = x.iter().zip(self.x0()).map(|(a, b)| (a - b).powi(2)).sum();
        res.loss() + self.prior_weight * prior
    }
}

/// Step of the finite differences of [`levenberg_marquardt`]'s Jacobian in the optimizer's
/// coordinates: about 2 % of a fraction near 0.8, 10 % of a time (large enough that the step's
/// effect on the latencies stands above the jitter of a discrete-event simulation).
pub const JACOBIAN_STEP: f64 = 0.1;
/// Largest move of one coordinate in one step of [`levenberg_marquardt`] (a trust region: the
/// simulated latencies are far from linear over larger moves).
pub const MAX_STEP: f64 = 1.0;

/// Levenberg–Marquardt from the problem's start, for at most `max_iters` iterations.
///
/// Each iteration simulates once per fitted coefficient, moved by [`JACOBIAN_STEP`], for a
/// forward-difference Jacobian of the log-ratios; the pseudo-Huber loss enters by iteratively
/// reweighted least squares (weight `w / √(1 + (r/δ)²)` on each log-ratio `r`), and the pull
/// towards the start as a ridge. The damped normal equations give a step (each coordinate capped
/// at [`MAX_STEP`]); a step that lowers the objective is taken and the damping divided by 3,
/// otherwise the damping is multiplied by 4 and the step recomputed (up to 12 times). It stops
/// when an iteration lowers the objective by less than 0.01 %, or no step lowers it.
pub fn levenberg_marquardt(
    problem: Problem<'_>,
    max_iters: u64,
) -> Result<(EngineCoefficients, f64), String> {
    let mut x = problem.x0();
    let k = x.len();
    let mut res = problem.residuals(&problem.coefficients(&x));
    let mut f = problem.objective(&x, &res);
    if k == 0 {
        return Ok((problem.start, f));
    }
    let x0 = problem.x0();
    let p = problem.prior_weight;
    let mut damping = 1e-3;
    for _ in 0..max_iters {
        // Forward differences, one simulation per coordinate.
        let columns: Vec<Residuals> = (0..k)
            .map(|j| {
                let mut xj = x.clone();
                xj[j] += JACOBIAN_STEP;
                problem.residuals(&problem.coefficients(&xj))
            })
            .collect();
        let n = res.stages.max(1) as f64;
        let mut grad = vec![0.0; k];
        let mut hess = vec![vec![0.0; k]; k];
        let mut row = vec![0.0; k];
        for i in 0..res.r.len() {
            if res.w[i] == 0.0 {
                continue;
            }
            let omega = res.w[i] / (1.0 + (res.r[i] / DELTA).powi(2)).sqrt() / n;
            // An entry weighed here has weight 0 in a column only where that simulation failed.
            for (j, col) in columns.iter().enumerate() {
                row[j] = if col.w[i] == 0.0 {
                    0.0
                } else {
                    (col.r[i] - res.r[i]) / JACOBIAN_STEP
                };
            }
            for a in 0..k {
                grad[a] += omega * res.r[i] * row[a];
                for b in 0..k {
                    hess[a][b] += omega * row[a] * row[b];
                }
            }
        }
        for a in 0..k {
            grad[a] += 2.0 * p * (x[a] - x0[a]);
            hess[a][a] += 2.0 * p;
        }
        let mut stepped = None;
        for _ in 0..12 {
            let mut m = hess.clone();
            for (a, row) in m.iter_mut().enumerate() {
                row[a] += damping * hess[a][a].max(1e-12);
            }
            let rhs: Vec<f64> = grad.iter().map(|g| -g).collect();
            let Some(delta) = solve(m, rhs) else {
                damping *= 4.0;
                continue;
            };
            let xn: Vec<f64> = x
                .iter()
                .zip(&delta)
                .map(|(xi, d)| xi + d.clamp(-MAX_STEP, MAX_STEP))
                .collect();
            let rn = problem.residuals(&problem.coefficients(&xn));
            let fnew = problem.objective(&xn, &rn);
            if fnew < f {
                damping = (damping / 3.0).max(1e-9);
                stepped = Some((xn, rn, fnew));
                break;
            }
            damping *= 4.0;
        }
        let Some((xn, rn, fnew)) = stepped else {
            break;
        };
        let gain = (f - fnew) / f.max(f64::MIN_POSITIVE);
        x = xn;
        res = rn;
        f = fnew;
        if gain < 1e-4 {
            break;
        }
    }
    Ok((problem.coefficients(&x), f))
}

/// Solves `m · v = rhs` by Gaussian elimination with partial pivoting (the normal equations of a
/// few dozen coefficients); `None` when `m` is singular.
fn solve(mut m: Vec<Vec<f64>>, mut rhs: Vec<f64>) -> Option<Vec<f64>> {
    let n = rhs.len();
    for c in 0..n {
        let pivot = (c..n).max_by(|&a, &b| m[a][c].abs().total_cmp(&m[b][c].abs()))?;
        if m[pivot][c].abs() < 1e-300 || !m[pivot][c].is_finite() {
            return None;
        }
        m.swap(c, pivot);
        rhs.swap(c, pivot);
        let (top, below) = m.split_at_mut(c + 1);
        let pivot_row = &top[c];
        for (k, row) in below.iter_mut().enumerate() {
            let f = row[c] / pivot_row[c];
            if f != 0.0 {
                for (x, p) in row[c..].iter_mut().zip(&pivot_row[c..]) {
                    *x -= f * p;
                }
                rhs[c + 1 + k] -= f * rhs[c];
            }
        }
    }
    let mut v = vec![0.0; n];
    for c in (0..n).rev() {
        let s: f64 = (c + 1..n).map(|j| m[c][j] * v[j]).sum();
        v[c] = (rhs[c] - s) / m[c][c];
    }
    v.iter().all(|x| x.is_finite()).then_some(v)
}

/// Names of the coefficients fitted by default.
pub fn default_fitted() -> Vec<&'static CoefInfo> {
    predictor::exec::engine::COEFFICIENTS
        .iter()
        .filter(|c| c.fitted)
        .collect()
}

/// Parses a comma-separated list of coefficient names.
pub fn parse_fitted(list: &str) -> Result<Vec<&'static CoefInfo>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|n| {
            coef_info(n).ok_or_else(|| {
                format!(
                    "unknown coefficient `{n}`; known: {}",
                    predictor::exec::engine::COEFFICIENTS
                        .iter()
                        .map(|c| c.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
        })
        .collect()
}

/// Runs Nelder–Mead from the problem's start for at most `max_iters` iterations, then restarts it
/// from the best point with a fresh, smaller simplex (up to [`RESTARTS`] times, while the loss
/// improves by more than 0.1 %): a simplex that collapsed early in one direction gets a second
/// look. Returns the best coefficients and their loss.
pub fn fit(problem: Problem<'_>, max_iters: u64) -> Result<(EngineCoefficients, f64), String> {
    fit_from(problem, max_iters, FIRST_STEP, RESTARTS)
}

/// Refines a fit that has converged on a cheaper problem (the second fit of `simulator
/// calibrate`): one Nelder–Mead run of at most `max_iters` iterations from a simplex of
/// [`REFINE_STEP`], without restarts.
pub fn refine(problem: Problem<'_>, max_iters: u64) -> Result<(EngineCoefficients, f64), String> {
    fit_from(problem, max_iters, REFINE_STEP, 0)
}

/// Nelder–Mead from the problem's start with a first simplex of edge `first_step` (in the
/// optimizer's coordinates), restarted up to `restarts` times with edges `first_step / 2`,
/// `first_step / 3`, ...
fn fit_from(
    problem: Problem<'_>,
    max_iters: u64,
    first_step: f64,
    restarts: u32,
) -> Result<(EngineCoefficients, f64), String> {
    let mut x = problem.x0();
    if x.is_empty() {
        let c = problem.start;
        let l = problem.loss(&c);
        return Ok((c, l));
    }
    let mut problem = problem;
    let mut best = f64::INFINITY;
    for round in 0..=restarts {
        let step = first_step / f64::from(1 + round);
        let mut simplex = vec![x.clone()];
        for i in 0..x.len() {
            let mut v = x.clone();
            v[i] += step;
            simplex.push(v);
        }
        let solver = NelderMead::new(simplex)
            .with_sd_tolerance(1e-6)
            .map_err(|e| e.to_string())?;
        let res = Executor::new(problem, solver)
            .configure(|s| s.max_iters(max_iters))
            .run()
            .map_err(|e| e.to_string())?;
        let cost = res.state().get_best_cost();
        let point = res
            .state()
            .get_best_param()
            .cloned()
            .ok_or("the optimizer returned no point")?;
        problem = res
            .problem
            .problem
            .ok_or("the optimizer dropped the problem")?;
        let improved = cost < best * 0.999;
        if cost < best {
            best = cost;
            x = point;
        }
        if !improved {
            break;
        }
    }
    Ok((problem.coefficients(&x), best))
}

/// Restarts of [`fit`] after the first Nelder–Mead run.
pub const RESTARTS: u32 = 2;
/// Edge of [`fit`]'s first simplex in the optimizer's coordinates (logits of fractions,
/// `ln(1 + v)` of the others): about ±10 % of a fraction near 0.7.
pub const FIRST_STEP: f64 = 0.4;
/// Edge of [`refine`]'s simplex: a converged point needs a smaller look around it.
pub const REFINE_STEP: f64 = 0.15;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinates_round_trip_within_bounds() {
        for info in predictor::exec::engine::COEFFICIENTS {
            let v = (info.get)(&EngineCoefficients::default());
            let back = from_x(info, to_x(info, v));
            let tol = 1e-5 * v.abs().max(info.max - info.min).min(1e3);
            assert!((back - v).abs() <= tol, "{}: {v} → {back}", info.name);
        }
        let frac = coef_info("gemm_bandwidth").unwrap();
        assert!(from_x(frac, 50.0) <= 1.0 && from_x(frac, -50.0) >= 0.05);
        assert!(parse_fitted("gemm_bandwidth, frontend_ms").unwrap().len() == 2);
        assert!(parse_fitted("nope").is_err_and(|e| e.contains("gemm_bandwidth")));
    }

    #[test]
    fn solve_solves_and_refuses_a_singular_system() {
        // 2x + y = 5, x + 3y = 10 (a pivot swap on the way: the first column's larger entry is
        // in the second row once the rows are given the other way round).
        let v = solve(vec![vec![1.0, 3.0], vec![2.0, 1.0]], vec![10.0, 5.0]).unwrap();
        assert!(
            (v[0] - 1.0).abs() < 1e-12 && (v[1] - 3.0).abs() < 1e-12,
            "{v:?}"
        );
        assert!(solve(vec![vec![1.0, 2.0], vec![2.0, 4.0]], vec![1.0, 2.0]).is_none());
    }

    #[test]
    fn residual_loss_is_the_mean_pseudo_huber_penalty_with_failures() {
        let res = Residuals {
            r: vec![0.1, -0.2, 0.0, 0.0],
            w: vec![1.0, 0.5, 0.0, 0.0],
            stages: 2,
            failed_stages: 1,
        };
        let want = (pseudo_huber(0.1) + 0.5 * pseudo_huber(-0.2) + FAILED) / 2.0;
        assert!((res.loss() - want).abs() < 1e-15);
        // δ²(√2 − 1) at r = δ.
        assert!((pseudo_huber(DELTA) - DELTA * DELTA * (2f64.sqrt() - 1.0)).abs() < 1e-15);
    }
}
