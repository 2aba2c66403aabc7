//! Simulating one measured experiment: its deployment and workload as a [`SimConfig`], run with
//! given engine coefficients, and the simulated latencies of each load stage.

use predictor::exec::engine::EngineCoefficients;
use predictor::precision::Quantization;
use predictor::{BackendChoice, Catalog};

use super::measurements::Experiment;
use crate::config::SimConfig;
use crate::router::RouterKind;
use crate::run::{simulate, RunOptions};
use crate::workload::{ArrivalConfig, LengthConfig, RateStage, SharedPrefixConfig};

/// A measured stage whose mean TTFT exceeds this is overloaded (queueing dominates): reported
/// separately and left out of the fit.
pub const OVERLOAD_TTFT_MS: f64 = 1000.0;

/// How experiments are simulated.
#[derive(Debug, Clone, PartialEq)]
pub struct SimShape {
    /// Simulate at most this many seconds of each load stage, but never fewer than 8 of the
    /// experiment's longest mean E2E latencies (steady state comes within a few; shorter stages
    /// make fitting faster); `None`: the whole stage.
    pub max_stage_s: Option<f64>,
    /// Tokens the serving stack adds to each shared-prefix prompt (template, BOS).
    pub extra_prompt_tokens: u32,
    /// Workload seed.
    pub seed: u64,
    /// The calibration whose engine behaviour applies (name or file).
    pub calibration: String,
}

impl Default for SimShape {
    fn default() -> Self {
        SimShape {
            max_stage_s: None,
            extra_prompt_tokens: 27,
            seed: 42,
            calibration: predictor::exec::engine::calibration::DEFAULT_ENGINE_VERSION.into(),
        }
    }
}

impl SimShape {
    /// This shape over whole stages (no cap).
    pub fn whole(&self) -> SimShape {
        SimShape {
            max_stage_s: None,
            ..self.clone()
        }
    }
}

/// Simulated latencies of one stage, ms.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SimStage {
    /// Mean TTFT.
    pub ttft_mean: f64,
    /// 90th-percentile TTFT.
    pub ttft_p90: f64,
    /// Mean E2E.
    pub e2e_mean: f64,
    /// 90th-percentile E2E.
    pub e2e_p90: f64,
    /// Requests of the stage that finished.
    pub completed: u64,
}

/// The simulation of one experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct SimResult {
    /// Per measured stage, in order.
    pub stages: Vec<SimStage>,
    /// KV blocks per replica the memory plan gave.
    pub kv_blocks: u64,
}

/// The configuration that simulates `e` with coefficients `c`; an error says why it cannot be
/// simulated (unknown model, a layout that does not fit, ...).
pub fn to_config(
    e: &Experiment,
    c: &EngineCoefficients,
    shape: &SimShape,
) -> Result<SimConfig, String> {
    let mut cfg = SimConfig {
        seed: shape.seed,
        ..Default::default()
    };
    let model = Catalog::builtin()
        .model(&e.model)
        .map_err(|err| err.to_string())?;
    cfg.replica.model = e.model.clone();
    cfg.replica.device = e.gpu.clone();
    cfg.replica.tp = e.tp;
    let fp8 = e.precision.eq_ignore_ascii_case("fp8");
    if fp8 && model.quantization.is_none() {
        cfg.replica.quantization = Quantization::Fp8;
    }
    cfg.cluster.num_replicas = e.dp;
    cfg.cluster.router = RouterKind::Lor;
    let s = &mut cfg.scheduler;
    s.name = "vllm_v1".into();
    s.block_size = e.engine.block_size;
    s.enable_prefix_caching = Some(e.engine.prefix_caching);
    let v = &mut s.vllm_v1;
    v.max_num_seqs = e.engine.max_num_seqs;
    v.max_num_batched_tokens = Some(e.engine.max_num_batched_tokens);
    v.gpu_memory_utilization = Some(e.engine.gpu_memory_utilization);
    v.max_model_len = Some(e.engine.max_model_len);
    v.enable_chunked_prefill = e.engine.chunked_prefill;
    cfg.predictor.backend = BackendChoice::Engine;
    cfg.predictor.calibration = shape.calibration.clone();
    cfg.predictor.coefficients = Some(*c);
    cfg.predictor.sampling = e.engine.sampling;
    cfg.output.batches = false;
    cfg.output.trace = false;
    cfg.output.report = false;
    let w = &mut cfg.workload;
    w.num_requests = None;
    w.max_tokens = e.engine.max_model_len;
    // A shortened stage must still reach steady state: at least 8 mean end-to-end latencies.
    let longest_e2e_s = e
        .measured_ms
        .values()
        .map(|m| m.e2e_mean * 1e-3)
        .fold(0.0, f64::max);
    let cap = shape
        .max_stage_s
        .map_or(f64::INFINITY, |c| c.max(8.0 * longest_e2e_s));
    let stages: Vec<RateStage> = e
        .workload
        .stages
        .iter()
        .map(|st| RateStage {
            qps: st.rate,
            duration_s: st.duration.min(cap),
        })
        .collect();
    w.arrival = ArrivalConfig::Stages { stages };
    match (&e.workload.shared_prefix, &e.workload.lengths) {
        (Some(p), _) => {
            w.shared_prefix = Some(SharedPrefixConfig {
                num_groups: p.num_unique_system_prompts,
                prompts_per_group: p.num_users_per_system_prompt,
                system_prompt_tokens: p.system_prompt_len,
                question_tokens: p.question_len,
                extra_prompt_tokens: shape.extra_prompt_tokens,
                output_tokens: p.output_len,
            });
        }
        (None, Some(lengths)) => {
            let mean = |i: usize| {
                (lengths.iter().map(|l| f64::from(l[i])).sum::<f64>() / lengths.len() as f64)
                    .round()
                    .max(1.0) as u32
            };
            // Requests are regenerated with the run's mean lengths; a bench run of a fixed-length
            // dataset replays exactly.
            w.lengths = LengthConfig::Fixed {
                prefill_tokens: mean(0),
                decode_tokens: mean(1),
            };
            let longest = lengths.iter().map(|l| l[0] + l[1]).max().unwrap_or(0);
            w.max_tokens = w.max_tokens.max(longest);
            if let Some(b) = e.workload.burstiness {
                if e.workload.stages.len() == 1 {
                    w.arrival = ArrivalConfig::Gamma {
                        qps: e.workload.stages[0].rate,
                        cv: 1.0 / b.sqrt(),
                    };
                    w.duration_s = Some(e.workload.stages[0].duration.min(cap));
                }
            }
        }
        (None, None) => return Err("the workload has neither shared_prefix nor lengths".into()),
    }
    cfg.resolve(&Catalog::builtin())
        .map_err(|err| err.to_string())?;
    Ok(cfg)
}

/// Simulates `cfg` (from [`to_config`]) and reads the latencies of each of `stages` stages.
pub fn run_config(cfg: &SimConfig, stages: usize) -> Result<SimResult, String> {
    let out = simulate(
        cfg,
        &RunOptions {
            quiet: true,
            ..Default::default()
        },
    )
    .map_err(|e| e.to_string())?;
    let ms = 1e3;
    let sim_stages: Vec<SimStage> = if out.summary.stages.is_empty() {
        let l = &out.summary.latency;
        vec![SimStage {
            ttft_mean: l.ttft_s.mean * ms,
            ttft_p90: l.ttft_s.p90 * ms,
            e2e_mean: l.e2e_s.mean * ms,
            e2e_p90: l.e2e_s.p90 * ms,
            completed: l.e2e_s.count,
        }]
    } else {
        out.summary
            .stages
            .iter()
            .map(|s| SimStage {
                ttft_mean: s.ttft_s.mean * ms,
                ttft_p90: s.ttft_s.p90 * ms,
                e2e_mean: s.e2e_s.mean * ms,
                e2e_p90: s.e2e_s.p90 * ms,
                completed: s.e2e_s.count,
            })
            .collect()
    };
    if sim_stages.len() < stages {
        return Err(format!(
            "the simulation has {} stage(s) but the measurements {stages}",
            sim_stages.len()
        ));
    }
    Ok(SimResult {
        stages: sim_stages,
        kv_blocks: out.kv_blocks_per_replica,
    })
}
