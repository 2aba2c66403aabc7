//! The execution model: the time of one batch on one pipeline stage, with a per-operator breakdown.
//!
//! Every backend answers per-layer operator times ([`OperatorTimes`]); [`StageModel`] combines them
//! with Vidur's formula (docs/design.md §4.2): linear and elementwise operators and attention
//! times the layers of the stage (MLP operators times its dense layers, MoE operators times its MoE
//! layers), two tensor-parallel all-reduces per layer (each with a launch and a
//! skew overhead), one pipeline send/receive on every stage but the last, an optional CPU overhead per
//! batch, and a batching overhead on attention for grouped-query models.
//!
//! Backends: [`roofline::Roofline`] (FLOPs and bytes over the device's peaks; serves any model and
//! device), and the profiled and table backends built from measured profiles. [`engine::EngineModel`]
//! implements [`ExecutionModel`] directly: the step of vLLM V1 as it runs, with calibrated
//! coefficients.

pub mod engine;
pub mod kernels;
pub mod profiled;
pub mod roofline;
pub mod tables;
pub mod tabulated;

use serde::{Deserialize, Serialize};

use crate::batch::{ceil8, BatchShape};
use crate::catalog::ModelSpec;
use crate::ops::{Op, OpBreakdown};
use crate::parallel::Parallelism;

/// Which backend answered a prediction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// Fitted from measured profiles (dense tables).
    Profiled,
    /// Analytical: FLOPs and bytes over the device's peak throughput.
    Roofline,
    /// Prediction tables computed by another tool (Vidur's dump format).
    Tables,
    /// The engine model: vLLM V1's step as it runs (CUDA graphs, fused kernels, custom
    /// all-reduce, CPU and front-end time) from roofline terms with calibrated coefficients.
    Engine,
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BackendKind::Profiled => "profiled",
            BackendKind::Roofline => "roofline",
            BackendKind::Tables => "tables",
            BackendKind::Engine => "engine",
        })
    }
}

/// Where each operator's time comes from, for telling the user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendInfo {
    /// The main backend.
    pub kind: BackendKind,
    /// One line naming the data behind it (profile directory, device peaks, ...).
    pub source: String,
    /// Operators answered by another backend than `kind` (e.g. attention from the roofline when a
    /// profile has no attention.csv), with that backend.
    pub fallbacks: Vec<(Op, BackendKind)>,
}

/// Per-layer operator times of one TP shard, in milliseconds: what a backend provides.
pub trait OperatorTimes: Send + Sync {
    /// Time of one layer's `op` for `batch`, ms. Called for every per-layer operator of
    /// [`Op::ALL`] except `AllReduce`, `SendRecv` and `CpuOverhead`.
    fn layer_op_ms(&self, op: Op, batch: &BatchShape) -> f64;
    /// One tensor-parallel all-reduce of the activations of `tokens` tokens, ms.
    fn all_reduce_ms(&self, tokens: u64) -> f64;
    /// One pipeline send/receive of the activations of `tokens` tokens, ms.
    fn send_recv_ms(&self, tokens: u64) -> f64;
    /// Lookups that fell outside the backend's tables so far (answered by extrapolation or a fallback).
    fn out_of_grid_lookups(&self) -> u64 {
        0
    }
    /// What this backend is.
    fn info(&self) -> BackendInfo;
}

/// Knobs of the stage-time formula (defaults are Vidur's).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExecParams {
    /// Fixed CPU launch cost added to each all-reduce, ms (Vidur: 0.02).
    pub nccl_cpu_launch_overhead_ms: f64,
    /// Skew cost per all-reduce, ms × TP^1.25 (Vidur: 0).
    pub nccl_cpu_skew_overhead_per_device_ms: f64,
    /// Extra fraction of prefill attention when several prefills share a batch (GQA models only; Vidur: 0.1).
    pub attention_prefill_batching_overhead_fraction: f64,
    /// Extra fraction of decode attention when several decodes share a batch (GQA models only; Vidur: 0.1).
    pub attention_decode_batching_overhead_fraction: f64,
    /// CPU overhead per batch (scheduling, sampling, input preparation), ms (Vidur default: not modelled, 0).
    pub cpu_overhead_ms_per_batch: f64,
    /// CPU overhead per request in the batch, ms.
    pub cpu_overhead_ms_per_request: f64,
}

impl Default for ExecParams {
    fn default() -> Self {
        ExecParams {
            nccl_cpu_launch_overhead_ms: 0.02,
            nccl_cpu_skew_overhead_per_device_ms: 0.0,
            attention_prefill_batching_overhead_fraction: 0.1,
            attention_decode_batching_overhead_fraction: 0.1,
            cpu_overhead_ms_per_batch: 0.0,
            cpu_overhead_ms_per_request: 0.0,
        }
    }
}

impl ExecParams {
    /// Checks every knob: each is a finite number ≥ 0. On failure returns the offending key (as
    /// written under `[predictor.params]`) and why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        for (key, v) in [
            (
                "nccl_cpu_launch_overhead_ms",
                self.nccl_cpu_launch_overhead_ms,
            ),
            (
                "nccl_cpu_skew_overhead_per_device_ms",
                self.nccl_cpu_skew_overhead_per_device_ms,
            ),
            (
                "attention_prefill_batching_overhead_fraction",
                self.attention_prefill_batching_overhead_fraction,
            ),
            (
                "attention_decode_batching_overhead_fraction",
                self.attention_decode_batching_overhead_fraction,
            ),
            ("cpu_overhead_ms_per_batch", self.cpu_overhead_ms_per_batch),
            (
                "cpu_overhead_ms_per_request",
                self.cpu_overhead_ms_per_request,
            ),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err((key, format!("is {v}, but must be a finite number ≥ 0")));
            }
        }
        Ok(())
    }
}

/// Time of one batch on one pipeline stage.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StageTime {
    /// Per-operator time over all layers of the stage, ms.
    pub ops_ms: OpBreakdown,
}

impl StageTime {
    /// Total stage time, ms.
    pub fn total_ms(&self) -> f64 {
        self.ops_ms.total_ms()
    }

    /// Total stage time in integer nanoseconds (rounded; at least 1 ns for a non-empty batch).
    pub fn total_ns(&self) -> u64 {
        ((self.total_ms() * 1e6).round() as u64).max(1)
    }

    /// GPU time of the model (everything but the CPU overhead), ms.
    pub fn model_ms(&self) -> f64 {
        self.total_ms() - self.ops_ms.get(Op::CpuOverhead)
    }
}

/// The contract between the predictor and the simulator: the time of a batch on a stage.
pub trait ExecutionModel: Send + Sync {
    /// Time of `batch` on pipeline stage `stage` (0-based).
    fn stage_time(&self, batch: &BatchShape, stage: u32) -> StageTime;
    /// Which backend answers, and from what data.
    fn info(&self) -> BackendInfo;
    /// Lookups outside the prediction tables so far.
    fn out_of_grid_lookups(&self) -> u64;
    /// Time each request spends in the serving front end outside the engine (HTTP,
    /// tokenisation, streaming), added to its TTFT and E2E, ns. Only the engine model has one.
    fn frontend_ns(&self) -> u64 {
        0
    }
}

/// Vidur's stage formula over any [`OperatorTimes`] backend.
pub struct StageModel<B> {
    backend: B,
    params: ExecParams,
    layers_per_stage: f64,
    /// Per stage: (layers with a dense MLP, layers with an MoE MLP).
    mlp_layers: Vec<(f64, f64)>,
    num_stages: u32,
    tp: u32,
    gqa: bool,
    post_attn_norm: bool,
}

impl<B: OperatorTimes> StageModel<B> {
    /// Combines `backend` for `model` split as `par` (validated by the caller).
    pub fn new(backend: B, model: &ModelSpec, par: Parallelism, params: ExecParams) -> Self {
        StageModel {
            backend,
            params,
            layers_per_stage: par.layers_per_stage(model) as f64,
            mlp_layers: (0..par.pp)
                .map(|s| {
                    let range = model.stage_layers(par, s);
                    let all = f64::from(range.end - range.start);
                    let moe = f64::from(model.moe_layers_in(range));
                    (all - moe, moe)
                })
                .collect(),
            num_stages: par.pp,
            tp: par.tp,
            gqa: model.is_gqa(),
            post_attn_norm: model.post_attn_norm,
        }
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }
}

impl<B: OperatorTimes> ExecutionModel for StageModel<B> {
    fn stage_time(&self, batch: &BatchShape, stage: u32) -> StageTime {
        let mut out = OpBreakdown::default();
        if batch.is_empty() {
            return StageTime { ops_ms: out };
        }
        let layers = self.layers_per_stage;
        let (dense, moe) = self.mlp_layers[stage as usize];
        let b = &self.backend;
        for op in [
            Op::AttnPreProj,
            Op::AttnPostProj,
            Op::AttnRope,
            Op::AttnKvCacheSave,
            Op::InputLayernorm,
            Op::Add,
        ] {
            out.set(op, b.layer_op_ms(op, batch) * layers);
        }
        if dense > 0.0 {
            for op in [Op::MlpUpProj, Op::MlpAct, Op::MlpDownProj] {
                out.set(op, b.layer_op_ms(op, batch) * dense);
            }
        }
        if moe > 0.0 {
            for op in [
                Op::MoeGate,
                Op::MoeExperts,
                Op::MoeSharedExperts,
                Op::AllToAll,
            ] {
                out.set(op, b.layer_op_ms(op, batch) * moe);
            }
        }
        if self.post_attn_norm {
            out.set(
                Op::PostAttentionLayernorm,
                b.layer_op_ms(Op::PostAttentionLayernorm, batch) * layers,
            );
        }
        if batch.num_prefills > 0 {
            let f = if self.gqa && batch.num_prefills > 1 {
                self.params.attention_prefill_batching_overhead_fraction
            } else {
                0.0
            };
            out.set(
                Op::AttnPrefill,
                b.layer_op_ms(Op::AttnPrefill, batch) * (1.0 + f) * layers,
            );
        }
        if batch.num_decodes > 0 {
            let f = if self.gqa && batch.num_decodes > 1 {
                self.params.attention_decode_batching_overhead_fraction
            } else {
                0.0
            };
            out.set(
                Op::AttnDecode,
                b.layer_op_ms(Op::AttnDecode, batch) * (1.0 + f) * layers,
            );
        }
        let tokens8 = ceil8(batch.total_tokens());
        if self.tp > 1 {
            let one = b.all_reduce_ms(tokens8)
                + self.params.nccl_cpu_launch_overhead_ms
                + self.params.nccl_cpu_skew_overhead_per_device_ms * (self.tp as f64).powf(1.25);
            out.set(Op::AllReduce, 2.0 * one * layers);
        }
        if self.num_stages > 1 && stage + 1 < self.num_stages {
            out.set(Op::SendRecv, b.send_recv_ms(tokens8));
        }
        out.set(
            Op::CpuOverhead,
            self.params.cpu_overhead_ms_per_batch
                + self.params.cpu_overhead_ms_per_request * batch.num_requests() as f64,
        );
        StageTime { ops_ms: out }
    }

    fn info(&self) -> BackendInfo {
        self.backend.info()
    }

    fn out_of_grid_lookups(&self) -> u64 {
        self.backend.out_of_grid_lookups()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    /// Every per-layer op costs 1 ms, collectives 10 ms.
    struct Unit;
    impl OperatorTimes for Unit {
        fn layer_op_ms(&self, _: Op, _: &BatchShape) -> f64 {
            1.0
        }
        fn all_reduce_ms(&self, _: u64) -> f64 {
            10.0
        }
        fn send_recv_ms(&self, _: u64) -> f64 {
            10.0
        }
        fn info(&self) -> BackendInfo {
            BackendInfo {
                kind: BackendKind::Roofline,
                source: "unit".into(),
                fallbacks: vec![],
            }
        }
    }

    #[test]
    fn stage_formula_matches_vidur() {
        let cat = Catalog::builtin();
        let m = cat.model("meta-llama/Llama-2-70b-hf").unwrap(); // GQA, 80 layers
        let sm = StageModel::new(Unit, &m, Parallelism::new(4, 2), ExecParams::default());
        let mut b = BatchShape::new();
        b.add_prefill(100, 0);
        b.add_prefill(50, 0);
        b.add_decode(10);
        let t0 = sm.stage_time(&b, 0);
        let layers = 40.0;
        // 10 per-layer ops at 1 ms (9 token ops + kv save), prefill ×1.1, decode ×1.0 (one decode)
        let per_layer = 10.0 + 1.1 + 1.0 + 2.0 * (10.0 + 0.02);
        assert!((t0.total_ms() - (per_layer * layers + 10.0)).abs() < 1e-9);
        // The last stage has no send/recv.
        let t1 = sm.stage_time(&b, 1);
        assert!((t0.total_ms() - t1.total_ms() - 10.0).abs() < 1e-9);
        assert_eq!(t1.ops_ms.get(Op::SendRecv), 0.0);
        assert!(sm.stage_time(&BatchShape::new(), 0).total_ms() == 0.0);
    }
}
