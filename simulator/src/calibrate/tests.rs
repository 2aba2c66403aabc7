//! The calibration recovers coefficients from measurements the simulator itself synthesised.

use std::sync::atomic::AtomicU64;

use predictor::exec::engine::EngineCoefficients;

use super::experiment::SimShape;
use super::fit::{self, Prepared, Problem};
use super::measurements::*;

fn experiment(id: &str, tp: u32, rates: [f64; 2]) -> Experiment {
    Experiment {
        id: id.into(),
        model: "meta-llama/Llama-3.1-8B-Instruct".into(),
        gpu: "h100".into(),
        precision: "FP16".into(),
        tp,
        dp: 1,
        engine: EngineArgs {
            name: "vllm".into(),
            version: "0.15.1".into(),
            max_num_seqs: 128,
            max_num_batched_tokens: 2048,
            gpu_memory_utilization: 0.9,
            kv_cpu_offload: None,
            chunked_prefill: true,
            prefix_caching: true,
            block_size: 16,
            max_model_len: 4096,
            sampling: predictor::exec::engine::SamplingChoice::Auto,
        },
        kv_blocks_total_gpu: None,
        workload: MeasuredWorkload {
            arrivals: String::new(),
            stages: rates
                .iter()
                .map(|&rate| MeasuredStageLoad {
                    duration: 30.0,
                    rate,
                })
                .collect(),
            shared_prefix: Some(SharedPrefixLoad {
                num_unique_system_prompts: 4,
                num_users_per_system_prompt: 5,
                system_prompt_len: 100,
                question_len: 400,
                output_len: 120,
            }),
            lengths: None,
            burstiness: None,
        },
        workload_source: String::new(),
        measured_ms: Default::default(),
    }
}

#[test]
fn recovers_known_coefficients_from_synthetic_measurements() {
    recovers_with(fit::Optimizer::NelderMead);
}

#[test]
fn levenberg_marquardt_recovers_known_coefficients_from_synthetic_measurements() {
    recovers_with(fit::Optimizer::Lm);
}

/// Measurements synthesised by the simulator with known coefficients, fitted back from the priors
/// with `optimizer`: each coefficient within 2 %.
fn recovers_with(optimizer: fit::Optimizer) {
    let truth = EngineCoefficients {
        gemm_bandwidth: 0.66,
        // Large enough to be identified on these short stages: at 420 µs (3-10 % of a step) the
        // fit stops at 450 µs with a loss of 1e-5, other coefficients absorbing the rest.
        step_gpu_us: 1200.0,
        frontend_ms: 12.0,
        ..Default::default()
    };
    let shape = SimShape::default();
    let mut exps = vec![
        experiment("tp1", 1, [4.0, 16.0]),
        experiment("tp2", 2, [6.0, 24.0]),
        // A third TP degree separates the per-step GPU time (the same at every TP) from the
        // weight reads (divided by TP) more sharply than two.
        experiment("tp4", 4, [8.0, 32.0]),
    ];
    // Measure: simulate with the true coefficients.
    for e in &mut exps {
        e.measured_ms.insert("stage_0".into(), placeholder());
        e.measured_ms.insert("stage_1".into(), placeholder());
        let p = Prepared::new(e, &shape).unwrap();
        let sim = p.simulate(&truth, &shape).unwrap();
        for (i, s) in sim.stages.iter().take(2).enumerate() {
            e.measured_ms.insert(
                format!("stage_{i}"),
                MeasuredStage {
                    e2e_mean: s.e2e_mean,
                    e2e_p90: Some(s.e2e_p90),
                    e2e_p99: None,
                    ttft_mean: s.ttft_mean,
                    ttft_p90: Some(s.ttft_p90),
                    ttft_p99: None,
                    itl_mean: None,
                },
            );
        }
    }
    let prepared: Vec<Prepared> = exps
        .iter()
        .map(|e| Prepared::new(e, &shape).unwrap())
        .collect();
    let fitted = fit::parse_fitted("gemm_bandwidth,step_gpu_us,frontend_ms").unwrap();
    let progress = |_: u64| {};
    let problem = Problem {
        experiments: &prepared,
        start: EngineCoefficients::default(),
        fitted,
        shape,
        prior_weight: 0.0,
        progress: &progress,
        evaluations: AtomicU64::new(0),
    };
    let (c, loss) = match optimizer {
        fit::Optimizer::NelderMead => fit::fit(problem, 300).unwrap(),
        fit::Optimizer::Lm => fit::levenberg_marquardt(problem, 30).unwrap(),
    };
    for (name, got, want) in [
        ("gemm_bandwidth", c.gemm_bandwidth, truth.gemm_bandwidth),
        ("step_gpu_us", c.step_gpu_us, truth.step_gpu_us),
        ("frontend_ms", c.frontend_ms, truth.frontend_ms),
    ] {
        assert!(
            (got / want - 1.0).abs() < 0.02,
            "{optimizer:?}: {name}: recovered {got}, true {want} (loss {loss})"
        );
    }
}

fn placeholder() -> MeasuredStage {
    MeasuredStage {
        e2e_mean: 1.0,
        e2e_p90: None,
        e2e_p99: None,
        ttft_mean: 1.0,
        ttft_p90: None,
        ttft_p99: None,
        itl_mean: None,
    }
}

fn sim_stage(e2e: f64, ttft: f64) -> super::experiment::SimStage {
    super::experiment::SimStage {
        ttft_mean: ttft,
        ttft_p90: ttft,
        e2e_mean: e2e,
        e2e_p90: e2e,
        completed: 10,
    }
}

fn sim(stages: &[(f64, f64)]) -> Result<super::experiment::SimResult, String> {
    Ok(super::experiment::SimResult {
        stages: stages.iter().map(|&(e, t)| sim_stage(e, t)).collect(),
        kv_blocks: 1,
    })
}

#[test]
fn shortened_stages_differ_beyond_the_tolerances_of_non_overloaded_stages() {
    let mut e = experiment("x", 1, [4.0, 16.0]);
    e.measured_ms.insert("stage_0".into(), placeholder());
    e.measured_ms.insert("stage_1".into(), placeholder());
    let mut p = Prepared::new(&e, &SimShape::default()).unwrap();
    let whole = sim(&[(1000.0, 50.0), (2000.0, 60.0)]);
    let differ = |p: &Prepared, short| fit::shortened_stages_differ(p, &short, &whole);
    // Within 2 % (E2E) and 5 % (TTFT): the shortened stages stand for the whole ones.
    assert!(!differ(&p, sim(&[(1019.0, 52.4), (1961.0, 57.1)])));
    // Mean E2E of one stage 3 % off, or mean TTFT 6 % off (either way round).
    assert!(differ(&p, sim(&[(1030.0, 50.0), (2000.0, 60.0)])));
    assert!(differ(&p, sim(&[(1000.0, 50.0), (1940.0, 60.0)])));
    assert!(differ(&p, sim(&[(1000.0, 53.0), (2000.0, 60.0)])));
    assert!(differ(&p, sim(&[(1000.0, 50.0), (2000.0, 56.0)])));
    // An overloaded stage is not fitted, so its difference does not count.
    p.stages[1].1 = true;
    assert!(!differ(&p, sim(&[(1000.0, 50.0), (3000.0, 600.0)])));
    // A simulation that fails one way only differs; failing both ways does not.
    assert!(differ(&p, Err("no".into())));
    assert!(!fit::shortened_stages_differ(
        &p,
        &Err("no".into()),
        &Err("no".into())
    ));
}

#[test]
fn a_prepared_experiment_marked_whole_ignores_the_stage_cap() {
    let mut e = experiment("x", 1, [4.0, 8.0]);
    e.measured_ms.insert("stage_0".into(), placeholder());
    e.measured_ms.insert("stage_1".into(), placeholder());
    let c = EngineCoefficients::default();
    // 10-s stages (the placeholders' 1-ms latencies do not raise the cap) against the whole 30 s.
    let short = SimShape {
        max_stage_s: Some(10.0),
        ..SimShape::default()
    };
    let whole = SimShape::default();
    let mut p = Prepared::new(&e, &short).unwrap();
    let capped = p.simulate(&c, &short).unwrap();
    let full = p.simulate(&c, &whole).unwrap();
    assert!(
        capped.stages[1].completed * 2 < full.stages[1].completed,
        "{capped:?} against {full:?}"
    );
    p.whole = true;
    assert_eq!(p.simulate(&c, &short).unwrap(), full);
}

/// The cross-validation report lists each fold's fitted coefficients, one row per held-out
/// family, one column per fitted coefficient, with four significant digits (integers as such).
#[test]
fn folds_table_has_a_row_per_family_and_a_column_per_fitted_coefficient() {
    let fitted = fit::parse_fitted("gemm_bandwidth,frontend_ms,step_gpu_us").unwrap();
    let a = EngineCoefficients {
        gemm_bandwidth: 0.812345,
        frontend_ms: 9.87654,
        step_gpu_us: 238.78,
        ..Default::default()
    };
    let b = EngineCoefficients {
        step_gpu_us: 0.0,
        ..a
    };
    let md = super::folds_markdown(&vec![("mixtral".into(), a), ("qwen3".into(), b)], &fitted);
    let lines: Vec<&str> = md.lines().filter(|l| l.starts_with('|')).collect();
    assert_eq!(lines.len(), 4, "{md}");
    assert_eq!(
        lines[0],
        "| held out | `gemm_bandwidth` (fraction) | `frontend_ms` (ms) | `step_gpu_us` (µs) |"
    );
    assert_eq!(lines[1], "|---|---|---|---|");
    assert_eq!(lines[2], "| mixtral | 0.8123 | 9.877 | 238.8 |");
    assert_eq!(lines[3], "| qwen3 | 0.8123 | 9.877 | 0 |");
}
