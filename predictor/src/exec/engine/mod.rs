//! The engine model: a step of a serving engine as it runs today (vLLM V1), built from roofline
//! terms of the kernels the engine really launches, each scaled by a calibrated coefficient
//! (`docs/design.md`, "the engine model").
//!
//! Per layer and GPU, a step runs: two fused add+RMSNorm kernels, the fused QKV projection,
//! rotary embedding (and q/k norms), the KV-cache write, attention (FlashAttention for prefill
//! chunks over their cached context, paged decode with grouped-query heads sharing KV reads), the
//! output projection, the MLP (fused gate/up GEMM, SiLU-and-mul, down GEMM) or the MoE block
//! (router, a fused kernel over the experts the batch touches, shared experts), and one
//! all-reduce after attention and one after the MLP when TP > 1 (vLLM's custom all-reduce over
//! NVLink below [`EngineCoefficients::custom_allreduce_max_bytes`], NCCL above). The first stage
//! adds the embedding, the last the LM head and sampling, other stages a pipeline send.
//!
//! How the kernels are launched decides the overheads:
//! - a **decode-only** step of at most the largest captured size replays one full CUDA graph at
//!   the next captured batch size (every GEMM and elementwise kernel sees the padded batch; no
//!   per-kernel launch gaps);
//! - a **mixed** step of at most that many tokens runs piecewise: graph pieces padded the same
//!   way, with attention launched eagerly between them, so a layer takes at least the CPU time
//!   of two launches;
//! - a larger step runs eagerly: a layer takes at least the CPU time of launching its kernels.
//!
//! Each step also costs CPU time (scheduling, input preparation, sampling, output processing),
//! partly hidden behind the GPU; the front end adds a fixed time to each request's TTFT and E2E,
//! reported separately by the simulator.

pub mod calibration;
pub mod coeffs;
pub mod geometry;
pub mod memory;

use serde::{Deserialize, Serialize};

pub use calibration::{Calibration, CalibrationInfo};
pub use coeffs::{EngineCoefficients, COEFFICIENTS};
pub use geometry::Geometry;

use super::kernels::{all_to_all_s, gemm_work, ring_all_reduce_s, Rates};
use super::{BackendInfo, BackendKind, ExecutionModel, StageTime};
use crate::batch::BatchShape;
use crate::catalog::{DeviceSpec, Link, ModelSpec, NodeSpec};
use crate::ops::{Op, OpBreakdown};
use crate::parallel::Parallelism;
use crate::precision::Precision;

/// Engine settings that shape the step but are not fitted (vLLM's engine arguments).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EngineSettings {
    /// `max_num_seqs`: bounds the CUDA-graph capture sizes.
    pub max_num_seqs: u32,
    /// CUDA graphs are captured (vLLM's default; false: `--enforce-eager`).
    pub cuda_graphs: bool,
    /// Largest captured batch size; `None`: vLLM's default `min(2 · max_num_seqs, 512)`.
    pub max_capture_size: Option<u32>,
    /// The engine schedules asynchronously (vLLM's `--async-scheduling`): the CPU prepares the
    /// next step while the GPU runs this one, hiding [`EngineCoefficients::cpu_overlap`] of its
    /// CPU time; otherwise none is hidden.
    pub async_scheduling: bool,
    /// What the sampler does with the requests' logits.
    pub sampling: SamplingChoice,
}

/// How the requests are sampled, which decides whether the sampler sorts their logits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum SamplingChoice {
    /// As vLLM does for requests that set no sampling parameters: the checkpoint's
    /// `generation_config.json` defaults (the catalog's `[generation]`); filtering when they set
    /// top-p or top-k.
    #[default]
    Auto,
    /// No top-p/top-k filtering (greedy or temperature-only requests, or vLLM started with
    /// `--generation-config vllm`).
    Plain,
    /// Every request sets top-p or top-k.
    Filtered,
}

impl SamplingChoice {
    /// Whether the sampler filters (sorts) the logits of `model`'s requests.
    pub fn filters_logits(self, model: &ModelSpec) -> bool {
        match self {
            SamplingChoice::Auto => model
                .generation
                .as_ref()
                .is_some_and(|g| g.filters_logits(model.vocab_size)),
            SamplingChoice::Plain => false,
            SamplingChoice::Filtered => true,
        }
    }
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            max_num_seqs: 256,
            cuda_graphs: true,
            max_capture_size: None,
            async_scheduling: false,
            sampling: SamplingChoice::Auto,
        }
    }
}

impl EngineSettings {
    /// The largest captured batch size.
    pub fn capture_limit(&self) -> u32 {
        if !self.cuda_graphs {
            return 0;
        }
        self.max_capture_size
            .unwrap_or_else(|| (2 * self.max_num_seqs).min(512))
    }
}

/// vLLM's CUDA-graph capture sizes up to `max`: 1, 2, 4, then every multiple of 8 below 256,
/// then every multiple of 16 up to `max` (and `max` itself).
pub fn capture_sizes(max: u32) -> Vec<u32> {
    let mut v: Vec<u32> = [1, 2, 4]
        .into_iter()
        .chain((8..256).step_by(8))
        .chain((256..=max.max(256)).step_by(16))
        .filter(|&s| s <= max)
        .collect();
    if max > 0 && v.last() != Some(&max) {
        v.push(max);
    }
    v
}

/// How a step's kernels are launched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Launch {
    FullGraph,
    Piecewise,
    Eager,
}

/// The operators every layer runs, whatever its MLP and attention kind.
const COMMON_OPS: [Op; 6] = [
    Op::AttnPreProj,
    Op::AttnPostProj,
    Op::InputLayernorm,
    Op::PostAttentionLayernorm,
    Op::AttnRope,
    Op::AttnKvCacheSave,
];

/// Adds `s` seconds to `op` in `out` (which holds ms).
fn add(out: &mut OpBreakdown, op: Op, s: f64) {
    out.set(op, out.get(op) + s * 1e3);
}

/// The per-layer work of one step on one GPU, before launch overheads.
#[derive(Debug, Clone, Copy, Default)]
struct LayerTimes {
    /// Projection and elementwise times common to every layer, s, in [`COMMON_OPS`] order.
    common: [f64; 6],
    /// Dense MLP, s: (up, act, down).
    dense: [f64; 3],
    /// MoE: (gate, experts, shared).
    moe: [f64; 3],
    /// Attention on a global layer, s: (prefill, decode).
    global_attn: [f64; 2],
    /// Attention on a local layer, s.
    local_attn: [f64; 2],
    /// All-reduce after attention, s.
    attn_ar: f64,
    /// Communication after the MLP of a dense layer, s.
    dense_comm: f64,
    /// Communication of an MoE layer (all-reduce, all-to-all), s.
    moe_comm: (f64, f64),
}

/// The engine model of one replica layout.
pub struct EngineModel {
    geo: Geometry,
    c: EngineCoefficients,
    gemm: Rates,
    /// GEMMs of the attention projections (BF16 peak when they stay unquantized).
    attn_gemm: Rates,
    /// Fixed time added to each GEMM, s.
    gemm_overhead_s: f64,
    /// The GPU's peak memory bandwidth, bytes/s.
    bandwidth: f64,
    /// Fixed time of every attention kernel, s.
    attention_overhead_s: f64,
    moe: Rates,
    attn: Rates,
    elem: Rates,
    sizes: Vec<u32>,
    capture_limit: u32,
    tp_link: Link,
    ep_link: Link,
    pp_link: Link,
    /// Fraction of the CPU time hidden behind the GPU (0 without asynchronous scheduling).
    cpu_overlap: f64,
    /// The sampler sorts every sampled request's logits (top-p/top-k filtering).
    filtered_sampling: bool,
    info: BackendInfo,
}

impl EngineModel {
    /// The engine model of `model` on `device` in `node`, split as `par`, at precision `prec`,
    /// with `settings` and coefficients `coeffs` (from `calibration`, named in [`BackendInfo`]).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        model: &ModelSpec,
        device: &DeviceSpec,
        node: &NodeSpec,
        par: Parallelism,
        prec: Precision,
        settings: EngineSettings,
        coeffs: EngineCoefficients,
        calibration: &str,
    ) -> Self {
        let geo = Geometry::new(model, par, &prec, node);
        let c = coeffs;
        let bw = device.memory_bandwidth_bytes_per_s;
        let floor_s = c.kernel_floor_us * 1e-6;
        let lin = prec.linear_peak_flops(device);
        let limit = settings.capture_limit();
        let attn_lin = if model.unquantized_attention {
            device.peak_bf16_flops
        } else {
            lin
        };
        EngineModel {
            gemm: Rates {
                flops: lin * c.gemm_compute,
                bytes: bw * c.gemm_bandwidth,
                floor_s,
            },
            gemm_overhead_s: c.gemm_overhead_us * 1e-6,
            attention_overhead_s: c.attention_overhead_us * 1e-6,
            bandwidth: bw,
            attn_gemm: Rates {
                flops: attn_lin * c.gemm_compute,
                bytes: bw * c.attn_proj_bandwidth,
                floor_s,
            },
            moe: Rates {
                flops: lin * c.moe_compute,
                bytes: bw * (c.gemm_bandwidth * c.moe_bandwidth_ratio).min(1.0),
                floor_s,
            },
            attn: Rates {
                flops: device.peak_bf16_flops * c.attention_compute,
                bytes: bw * c.attention_bandwidth,
                floor_s,
            },
            elem: Rates {
                flops: f64::INFINITY,
                bytes: bw * c.elementwise_bandwidth,
                floor_s,
            },
            sizes: capture_sizes(limit),
            capture_limit: limit,
            tp_link: node.collective_link(par.tp),
            ep_link: node.collective_link(par.ep),
            pp_link: node.pipeline_link(par.world_size()),
            cpu_overlap: if settings.async_scheduling {
                c.cpu_overlap
            } else {
                0.0
            },
            filtered_sampling: settings.sampling.filters_logits(model),
            info: BackendInfo {
                kind: BackendKind::Engine,
                source: format!(
                    "engine model of vLLM V1 on {} ({}; {})",
                    device.name,
                    prec.label(),
                    calibration
                ),
                fallbacks: vec![],
            },
            geo,
            c,
        }
    }

    /// The coefficients in use.
    pub fn coefficients(&self) -> &EngineCoefficients {
        &self.c
    }

    /// The launch mode and the padded token count of a step of `tokens` tokens.
    fn launch(&self, batch: &BatchShape) -> (Launch, f64) {
        let t = batch.total_tokens();
        if t as u32 as u64 == t && (t as u32) <= self.capture_limit {
            let i = self.sizes.partition_point(|&s| u64::from(s) < t);
            let padded = f64::from(self.sizes[i.min(self.sizes.len() - 1)]);
            if batch.num_prefills == 0 {
                (Launch::FullGraph, padded)
            } else {
                (Launch::Piecewise, padded)
            }
        } else {
            (Launch::Eager, t as f64)
        }
    }

    fn gemm_s(&self, m: f64, k: f64, n: f64) -> f64 {
        let (f, b) = gemm_work(m, k, n, self.geo.weight_bytes, self.geo.act_bytes);
        self.gemm.time_s(f, b) + self.gemm_overhead_s
    }

    /// A GEMM of the attention projections.
    fn attn_gemm_s(&self, m: f64, k: f64, n: f64) -> f64 {
        let (f, b) = gemm_work(m, k, n, self.geo.attn_weight_bytes, self.geo.act_bytes);
        self.attn_gemm.time_s(f, b) + self.gemm_overhead_s
    }

    /// One attention kernel: its roofline time and the fixed time of every attention kernel.
    fn attn_kernel_s(&self, flops: f64, bytes: f64) -> f64 {
        self.attn.time_s(flops, bytes) + self.attention_overhead_s
    }

    fn elem_s(&self, elements: f64) -> f64 {
        self.elem.time_s(0.0, elements * self.geo.act_bytes)
    }

    /// One all-reduce of `bytes` over the TP group, s.
    fn all_reduce_s(&self, bytes: f64) -> f64 {
        let n = self.geo.tp;
        if n <= 1.0 {
            return 0.0;
        }
        let link = self.tp_link.bandwidth_bytes_per_s;
        if self.geo.nvlink_tp && bytes <= self.c.custom_allreduce_max_bytes {
            (self.c.allreduce_latency_us + self.c.allreduce_latency_per_gpu_us * (n - 2.0)) * 1e-6
                + 2.0 * (n - 1.0) / n * bytes / (link * self.c.allreduce_bandwidth)
        } else {
            ring_all_reduce_s(
                n,
                bytes,
                self.tp_link.latency_s + self.c.nccl_latency_us * 1e-6,
                link * self.c.nccl_bandwidth,
            )
        }
    }

    /// Attention of one layer, s: (prefill, decode). `window` limits the context (local layers).
    fn attention_s(&self, b: &BatchShape, window: f64) -> [f64; 2] {
        let g = &self.geo;
        let mut out = [0.0; 2];
        if b.num_prefills > 0 {
            let c = b.prefill_tokens as f64;
            let pairs = (b.prefill_chunk_kv_sum as f64 + (b.prefill_chunk_sq_sum as f64 + c) / 2.0)
                .min(c * window);
            let ctx = (b.prefill_kv_sum as f64 + c).min(f64::from(b.num_prefills) * window + c);
            out[0] = match &g.mla {
                None => {
                    let flops = 4.0 * g.q_heads * g.head_dim * pairs;
                    let bytes = ctx * g.kv_heads * g.head_dim * 2.0 * g.kv_bytes
                        + 2.0 * c * g.q_heads * g.head_dim * g.act_bytes;
                    self.attn_kernel_s(flops, bytes)
                }
                Some(m) => {
                    // Prefill expands the latent of every context token to per-head keys and
                    // values (the kv_b projection), then runs attention over them.
                    let expand = self.gemm_s(ctx, m.kv_lora, g.q_heads * (m.nope + m.v));
                    let flops = 2.0 * g.q_heads * (m.nope + m.rope + m.v) * pairs;
                    let bytes = ctx * g.q_heads * (m.nope + m.rope + m.v) * g.act_bytes;
                    expand + self.attn_kernel_s(flops, bytes)
                }
            };
        }
        if b.num_decodes > 0 {
            let n = f64::from(b.num_decodes);
            let kv = (b.decode_kv_sum as f64).min(n * window);
            out[1] = match &g.mla {
                None => {
                    let flops = 4.0 * g.q_heads * g.head_dim * kv;
                    let bytes = kv * g.kv_heads * g.head_dim * 2.0 * g.kv_bytes
                        + 2.0 * n * g.q_heads * g.head_dim * g.act_bytes;
                    self.attn_kernel_s(flops, bytes)
                }
                Some(m) => {
                    // Absorbed: queries move into the latent space, attention reads the latent
                    // cache once for all heads, outputs move back.
                    let absorb = self.gemm_s(n, m.nope, g.q_heads * m.kv_lora)
                        + self.gemm_s(n, m.kv_lora, g.q_heads * m.v);
                    let flops = 2.0 * g.q_heads * (2.0 * m.kv_lora + m.rope) * kv;
                    let bytes = kv * (m.kv_lora + m.rope) * g.kv_bytes;
                    absorb + self.attn_kernel_s(flops, bytes)
                }
            };
        }
        out
    }

    /// The per-layer times of a step with `t` (padded) tokens.
    fn layer_times(&self, b: &BatchShape, t: f64) -> LayerTimes {
        let g = &self.geo;
        let e = g.hidden;
        let mut lt = LayerTimes::default();
        let qk = match &g.mla {
            None => (g.q_heads + g.kv_heads) * g.head_dim,
            Some(m) => (g.q_heads + 1.0) * m.rope,
        };
        let proj = match &g.mla {
            None => (
                self.attn_gemm_s(t, e, g.qkv_cols()),
                self.attn_gemm_s(t, g.q_heads * g.head_dim, e),
            ),
            Some(m) => {
                let q = if m.q_lora > 0.0 {
                    self.gemm_s(t, e, m.q_lora)
                        + self.gemm_s(t, m.q_lora, g.q_heads * (m.nope + m.rope))
                } else {
                    self.gemm_s(t, e, g.q_heads * (m.nope + m.rope))
                };
                (
                    q + self.gemm_s(t, e, m.kv_lora + m.rope),
                    self.gemm_s(t, g.q_heads * m.v, e),
                )
            }
        };
        let norm = self.elem_s(4.0 * t * e);
        let rope = self.elem_s(2.0 * t * qk * if g.qk_norm { 2.0 } else { 1.0 });
        let cache_write = self.elem.time_s(
            0.0,
            t * self.geo.kv_bytes_per_token() * (1.0 + g.act_bytes / g.kv_bytes),
        );
        lt.common = [proj.0, proj.1, norm, norm, rope, cache_write];
        lt.dense = [
            self.gemm_s(t, e, (g.mlp_mats - 1.0) * g.mlp_width),
            self.elem_s(3.0 * t * g.mlp_width),
            self.gemm_s(t, g.mlp_width, e),
        ];
        let hidden_bytes = t * e * g.act_bytes;
        lt.attn_ar = self.all_reduce_s(hidden_bytes);
        lt.dense_comm = lt.attn_ar;
        if let Some(m) = &g.moe {
            let gate = self
                .gemm
                .time_s(2.0 * t * e * m.experts, (e * m.experts + t * e) * 2.0)
                + self.elem.floor_s;
            // Tokens routed to this GPU's experts and the experts they touch.
            let share = m.local_experts / m.experts;
            let assignments = t * m.top_k * share;
            let miss = (1.0 - (m.top_k / m.experts).min(1.0)).max(0.0);
            let touched = m.local_experts * (1.0 - miss.powf(t));
            let flops = 2.0 * assignments * m.params_per_expert;
            let bytes = touched * m.params_per_expert * g.weight_bytes
                + assignments * (2.0 * e + 3.0 * m.expert_width) * g.act_bytes;
            let experts = self.moe.time_s(flops, bytes) + touched * self.c.moe_expert_us * 1e-6;
            let shared = if m.shared_width > 0.0 {
                self.gemm_s(t, e, (g.mlp_mats - 1.0) * m.shared_width)
                    + self.elem_s(3.0 * t * m.shared_width)
                    + self.gemm_s(t, m.shared_width, e)
            } else {
                0.0
            };
            lt.moe = [gate, experts, shared];
            lt.moe_comm = if m.ep > 1.0 {
                // Dispatch and combine of the routed tokens over the EP group; experts still
                // split by TP inside the group add an all-reduce.
                let a2a = 2.0
                    * all_to_all_s(
                        m.ep,
                        t / m.ep * m.top_k * e * g.act_bytes,
                        self.ep_link.latency_s + self.c.nccl_latency_us * 1e-6,
                        self.ep_link.bandwidth_bytes_per_s * self.c.nccl_bandwidth,
                    );
                let ar = if m.ep < g.tp || m.shared_width > 0.0 {
                    lt.attn_ar
                } else {
                    0.0
                };
                (ar, a2a)
            } else {
                (lt.attn_ar, 0.0)
            };
        }
        lt.global_attn = self.attention_s(b, f64::INFINITY);
        lt.local_attn = if self.geo.window.is_finite() {
            self.attention_s(b, self.geo.window)
        } else {
            lt.global_attn
        };
        lt
    }

    /// Kernels a layer launches eagerly (for the eager launch bound).
    fn kernels_per_layer(&self, moe: bool) -> f64 {
        let comm = if self.geo.tp > 1.0 { 2.0 } else { 0.0 };
        let mlp = if moe { 6.0 } else { 3.0 };
        7.0 + mlp + comm
    }
}

impl ExecutionModel for EngineModel {
    fn stage_time(&self, b: &BatchShape, stage: u32) -> StageTime {
        let mut out = OpBreakdown::default();
        if b.is_empty() {
            return StageTime { ops_ms: out };
        }
        let (launch, t) = self.launch(b);
        let lt = self.layer_times(b, t);
        let sl = self.geo.stages[stage as usize];
        let common: f64 = lt.common.iter().sum();
        for (op, s) in COMMON_OPS.into_iter().zip(lt.common) {
            add(&mut out, op, s * sl.all);
        }
        add(&mut out, Op::MlpUpProj, lt.dense[0] * sl.dense);
        add(&mut out, Op::MlpAct, lt.dense[1] * sl.dense);
        add(&mut out, Op::MlpDownProj, lt.dense[2] * sl.dense);
        add(&mut out, Op::MoeGate, lt.moe[0] * sl.moe);
        add(&mut out, Op::MoeExperts, lt.moe[1] * sl.moe);
        add(&mut out, Op::MoeSharedExperts, lt.moe[2] * sl.moe);
        add(
            &mut out,
            Op::AttnPrefill,
            lt.global_attn[0] * sl.global + lt.local_attn[0] * sl.local,
        );
        add(
            &mut out,
            Op::AttnDecode,
            lt.global_attn[1] * sl.global + lt.local_attn[1] * sl.local,
        );
        add(
            &mut out,
            Op::AllReduce,
            lt.attn_ar * sl.all + lt.dense_comm * sl.dense + lt.moe_comm.0 * sl.moe,
        );
        add(&mut out, Op::AllToAll, lt.moe_comm.1 * sl.moe);
        let g = &self.geo;
        let e = g.hidden;
        let tokens = t;
        if stage == 0 {
            // Embedding gather.
            add(&mut out, Op::LmHead, self.elem_s(2.0 * tokens * e));
        }
        if stage + 1 == g.pp {
            let sampled = f64::from(b.num_decodes + b.num_prefills);
            let head = self.elem_s(2.0 * sampled * e)
                + self.gemm.time_s(
                    2.0 * sampled * e * g.vocab_per_gpu,
                    e * g.vocab_per_gpu * 2.0 + sampled * g.vocab_per_gpu * 4.0,
                )
                + self.elem.time_s(0.0, 3.0 * sampled * g.vocab * 4.0)
                + if self.filtered_sampling {
                    sampled * g.vocab * self.c.sampler_filter_bytes_per_logit / self.bandwidth
                        + self.c.sampler_filter_step_us * 1e-6
                } else {
                    0.0
                }
                + self.c.step_gpu_us * 1e-6;
            add(&mut out, Op::LmHead, head);
        } else {
            add(
                &mut out,
                Op::SendRecv,
                self.pp_link.latency_s
                    + tokens * e * g.act_bytes / self.pp_link.bandwidth_bytes_per_s,
            );
        }
        // Launch overheads: per layer, the GPU waits for the CPU when launching takes longer.
        let dense_layer = common
            + lt.dense.iter().sum::<f64>()
            + lt.attn_ar
            + lt.dense_comm
            + lt.global_attn.iter().sum::<f64>();
        let moe_layer = common
            + lt.moe.iter().sum::<f64>()
            + lt.attn_ar
            + lt.moe_comm.0
            + lt.moe_comm.1
            + lt.global_attn.iter().sum::<f64>();
        let eager = self.c.eager_launch_us * 1e-6;
        let gap = |per_layer_cpu: f64, gpu: f64| (per_layer_cpu - gpu).max(0.0);
        let launch_s = match launch {
            Launch::FullGraph => self.c.graph_launch_us * 1e-6,
            Launch::Piecewise => {
                self.c.graph_launch_us * 1e-6
                    + sl.dense * gap(2.0 * eager, dense_layer)
                    + sl.moe * gap(2.0 * eager, moe_layer)
            }
            Launch::Eager => {
                sl.dense * gap(self.kernels_per_layer(false) * eager, dense_layer)
                    + sl.moe * gap(self.kernels_per_layer(true) * eager, moe_layer)
            }
        };
        add(&mut out, Op::LaunchOverhead, launch_s);
        if stage == 0 {
            let gpu_s = out.total_ms() * 1e-3;
            let cpu_s = (self.c.cpu_step_us
                + self.c.cpu_per_request_us * f64::from(b.num_requests()))
                * 1e-6;
            add(
                &mut out,
                Op::CpuOverhead,
                (cpu_s - self.cpu_overlap * gpu_s).max(0.0),
            );
        }
        StageTime { ops_ms: out }
    }

    fn info(&self) -> BackendInfo {
        self.info.clone()
    }

    fn out_of_grid_lookups(&self) -> u64 {
        0
    }

    fn frontend_ns(&self) -> u64 {
        (self.c.frontend_ms * 1e6).round() as u64
    }
}

#[cfg(test)]
mod tests;
