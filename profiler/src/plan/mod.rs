//! The sweep plan: which operators are timed at which shapes, per TP degree, and the GPU time that
//! should take. `profiler plan` prints it; the GPU runner walks the same points.

pub mod budget;
pub mod grid;
pub mod sparse;

use std::collections::BTreeSet;

use predictor::{DeviceSpec, ModelSpec, NodeSpec};

pub use budget::{Ceilings, Reps, Work, HOST_OVERHEAD_S};
pub use grid::GridKind;
pub use sparse::{SparseOp, SparsePoint};

use crate::shapes::{RankShapes, ShapeError};

/// Operators of Vidur's `mlp.csv`, in its column order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MlpOp {
    /// Vocabulary-parallel embedding gather.
    Emb,
    /// RMSNorm before attention.
    InputLayernorm,
    /// QKV projection GEMM.
    AttnPreProj,
    /// Rotary embedding on q and k (in place).
    AttnRope,
    /// Attention output projection GEMM.
    AttnPostProj,
    /// Fused residual add + RMSNorm before the MLP.
    PostAttentionLayernorm,
    /// Gate+up projection GEMM.
    MlpUpProj,
    /// SiLU-and-mul.
    MlpAct,
    /// Down projection GEMM.
    MlpDownProj,
    /// Residual add.
    Add,
}

impl MlpOp {
    /// All ten, in `mlp.csv` column order.
    pub const ALL: [MlpOp; 10] = [
        MlpOp::Emb,
        MlpOp::InputLayernorm,
        MlpOp::AttnPreProj,
        MlpOp::AttnRope,
        MlpOp::AttnPostProj,
        MlpOp::PostAttentionLayernorm,
        MlpOp::MlpUpProj,
        MlpOp::MlpAct,
        MlpOp::MlpDownProj,
        MlpOp::Add,
    ];

    /// Vidur's column name.
    pub fn vidur_name(self) -> &'static str {
        match self {
            MlpOp::Emb => "emb",
            MlpOp::InputLayernorm => "input_layernorm",
            MlpOp::AttnPreProj => "attn_pre_proj",
            MlpOp::AttnRope => "attn_rope",
            MlpOp::AttnPostProj => "attn_post_proj",
            MlpOp::PostAttentionLayernorm => "post_attention_layernorm",
            MlpOp::MlpUpProj => "mlp_up_proj",
            MlpOp::MlpAct => "mlp_act",
            MlpOp::MlpDownProj => "mlp_down_proj",
            MlpOp::Add => "add",
        }
    }

    /// The work of this operator for `m` tokens on a rank.
    pub fn work(self, s: &RankShapes, m: u64) -> Work {
        let gemm = |g: crate::shapes::GemmShape| Work::Gemm { m, n: g.n, k: g.k };
        let h = s.hidden as f64;
        let mf = m as f64;
        let mem = |bytes: f64| Work::Memory { bytes };
        match self {
            MlpOp::Emb => mem(4.0 * h * mf + 4.0 * mf),
            MlpOp::InputLayernorm => mem(4.0 * h * mf),
            MlpOp::AttnPreProj => gemm(s.qkv),
            MlpOp::AttnRope => {
                mem(4.0 * ((s.q_heads + s.kv_heads) * s.head_dim) as f64 * mf + 4.0 * mf * 128.0)
            }
            MlpOp::AttnPostProj => gemm(s.out),
            MlpOp::PostAttentionLayernorm => mem(8.0 * h * mf),
            MlpOp::MlpUpProj => gemm(s.gate_up),
            MlpOp::MlpAct => mem(2.0 * (s.gate_up.n + s.intermediate) as f64 * mf),
            MlpOp::MlpDownProj => gemm(s.down),
            MlpOp::Add => mem(6.0 * h * mf),
        }
    }
}

/// One row of `attention.csv`: a prefill chunk (batch 1) or a decode batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct AttentionPoint {
    /// Tensor-parallel degree.
    pub tp: u32,
    /// True for a prefill row.
    pub is_prefill: bool,
    /// Sequences in the batch (1 for prefill).
    pub batch_size: u64,
    /// New tokens of the prefill chunk (0 for decode).
    pub prefill_chunk_size: u64,
    /// Cached tokens each sequence attends over (the prefix for prefill).
    pub kv_cache_size: u64,
}

impl AttentionPoint {
    /// New query tokens in the batch.
    pub fn new_tokens(&self) -> u64 {
        if self.is_prefill {
            self.prefill_chunk_size
        } else {
            self.batch_size
        }
    }

    /// The attention kernel's work on a rank.
    pub fn attention_work(&self, s: &RankShapes) -> Work {
        let d = s.head_dim as f64;
        let hq = s.q_heads as f64;
        let kvb = s.kv_bytes_per_token() as f64;
        if self.is_prefill {
            let q = self.prefill_chunk_size as f64;
            let p = self.kv_cache_size as f64;
            let pairs = q * p + q * (q + 1.0) / 2.0;
            Work::Prefill {
                flops: 4.0 * hq * d * pairs,
                bytes: 4.0 * hq * d * q + kvb * (p + q),
            }
        } else {
            let b = self.batch_size as f64;
            let kv = self.kv_cache_size as f64;
            Work::Decode {
                bytes: b * (kv + 1.0) * kvb + 4.0 * b * hq * d,
            }
        }
    }

    /// The KV-cache write of the new tokens on a rank.
    pub fn kv_save_work(&self, s: &RankShapes) -> Work {
        Work::Memory {
            bytes: 2.0 * self.new_tokens() as f64 * s.kv_bytes_per_token() as f64,
        }
    }
}

/// A collective over `num_workers` GPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct CollectivePoint {
    /// True for send/recv between two GPUs, false for all-reduce.
    pub send_recv: bool,
    /// GPUs taking part.
    pub num_workers: u32,
    /// Message size in bytes (bf16 elements × 2).
    pub size_bytes: u64,
}

/// Which measurement groups a run includes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Suite {
    /// Per-token operators (`mlp.csv`, plus `lm_head.csv`).
    Mlp,
    /// Attention and KV-cache writes (`attention.csv`).
    Attention,
    /// NCCL collectives (`all_reduce.csv`, `send_recv.csv`).
    Collectives,
}

/// What to plan.
#[derive(Debug, Clone)]
pub struct PlanConfig {
    /// The model.
    pub model: ModelSpec,
    /// Tensor-parallel degrees.
    pub tps: Vec<u32>,
    /// Full or quick grid.
    pub grid: GridKind,
    /// Cap on `num_tokens` (vLLM's `max_num_batched_tokens`).
    pub max_tokens: u64,
    /// Longest sequence (prompt plus cache) to profile.
    pub max_model_len: u64,
    /// Cap on a decode batch's KV cache over all layers on one rank, bytes.
    pub kv_budget_bytes: u64,
    /// GPUs available for collectives (1 = none can be measured).
    pub gpus: u32,
    /// Groups to include.
    pub suites: BTreeSet<Suite>,
}

/// The points of a sweep.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `(tp, shapes)` per TP degree, ascending.
    pub ranks: Vec<RankShapes>,
    /// `(tp, num_tokens)` rows of `mlp.csv`.
    pub mlp: Vec<(u32, u64)>,
    /// `(tp, sampled rows)` of `lm_head.csv`.
    pub lm_head: Vec<(u32, u64)>,
    /// Rows of `attention.csv`.
    pub attention: Vec<AttentionPoint>,
    /// Rows of `all_reduce.csv` and `send_recv.csv`.
    pub collectives: Vec<CollectivePoint>,
    /// MoE and MLA operators ([`sparse`]): planned and estimated, not yet timed by the sweeps,
    /// so not part of [`Plan::measurements`].
    pub sparse: Vec<SparsePoint>,
}

impl Plan {
    /// Builds the plan; errors when a TP degree does not fit the model.
    pub fn new(cfg: &PlanConfig) -> Result<Self, ShapeError> {
        let mut tps = cfg.tps.clone();
        tps.sort_unstable();
        tps.dedup();
        let ranks = tps
            .iter()
            .map(|&tp| RankShapes::new(&cfg.model, tp))
            .collect::<Result<Vec<_>, _>>()?;
        let has = |s| cfg.suites.contains(&s);
        let mut plan = Plan {
            ranks,
            mlp: Vec::new(),
            lm_head: Vec::new(),
            attention: Vec::new(),
            collectives: Vec::new(),
            sparse: Vec::new(),
        };
        if has(Suite::Mlp) {
            plan.sparse =
                sparse::sparse_points(&cfg.model, &tps, cfg.grid, cfg.max_tokens, cfg.gpus);
        }
        let tokens = grid::num_tokens(cfg.grid, cfg.max_tokens);
        for s in &plan.ranks {
            if has(Suite::Mlp) {
                plan.mlp.extend(tokens.iter().map(|&m| (s.tp, m)));
                plan.lm_head.extend(
                    grid::decode_batches(cfg.grid)
                        .into_iter()
                        .map(|b| (s.tp, b)),
                );
            }
            if has(Suite::Attention) {
                plan.attention.extend(attention_points(cfg, s));
            }
        }
        if has(Suite::Collectives) {
            for n in [2u32, 4, 8].into_iter().filter(|&n| n <= cfg.gpus) {
                for &size in &grid::collective_sizes_bytes(cfg.grid) {
                    plan.collectives.push(CollectivePoint {
                        send_recv: false,
                        num_workers: n,
                        size_bytes: size,
                    });
                    if n == 2 {
                        plan.collectives.push(CollectivePoint {
                            send_recv: true,
                            num_workers: 2,
                            size_bytes: size,
                        });
                    }
                }
            }
            plan.collectives.sort();
        }
        Ok(plan)
    }

    /// Rank shapes for `tp` (present for every planned TP).
    pub fn rank(&self, tp: u32) -> &RankShapes {
        self.ranks
            .iter()
            .find(|s| s.tp == tp)
            .expect("tp is one of the plan's degrees")
    }

    /// Every timed measurement of the plan with its work, in run order.
    pub fn measurements(&self) -> Vec<(u32, Work)> {
        let mut out = Vec::new();
        for &(tp, m) in &self.mlp {
            let s = self.rank(tp);
            out.extend(MlpOp::ALL.iter().map(|op| (tp, op.work(s, m))));
        }
        for &(tp, b) in &self.lm_head {
            let g = self.rank(tp).lm_head;
            out.push((
                tp,
                Work::Gemm {
                    m: b,
                    n: g.n,
                    k: g.k,
                },
            ));
        }
        for p in &self.attention {
            let s = self.rank(p.tp);
            out.push((p.tp, p.kv_save_work(s)));
            out.push((p.tp, p.attention_work(s)));
        }
        for c in &self.collectives {
            out.push((
                c.num_workers,
                Work::Collective {
                    bytes: c.size_bytes as f64,
                    workers: c.num_workers,
                    point_to_point: c.send_recv,
                },
            ));
        }
        out
    }

    /// Estimated time of the sweep on `device`.
    pub fn estimate(&self, device: &DeviceSpec, node: Option<&NodeSpec>) -> Estimate {
        let c = Ceilings::from_device(device);
        let mut e = Estimate::default();
        for (_, w) in self.measurements() {
            let t = c.estimate_s(&w, node);
            e.measurements += 1;
            e.gpu_s += Reps::for_estimate(t).gpu_time_s(t);
        }
        e.host_s = e.measurements as f64 * HOST_OVERHEAD_S;
        e
    }
}

impl Plan {
    /// Estimated GPU time of the planned MoE/MLA points on `device`, were they timed, seconds.
    pub fn sparse_estimate_s(&self, device: &DeviceSpec, node: Option<&NodeSpec>) -> f64 {
        let c = Ceilings::from_device(device);
        self.sparse
            .iter()
            .map(|p| {
                let t = p.estimate_s(&c, node);
                Reps::for_estimate(t).gpu_time_s(t)
            })
            .sum()
    }
}

/// Estimated cost of a sweep.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Estimate {
    /// Timed measurements (one operator at one shape).
    pub measurements: u64,
    /// GPU time of warm-ups and timed replays, seconds.
    pub gpu_s: f64,
    /// Host overhead per measurement, seconds.
    pub host_s: f64,
}

impl Estimate {
    /// GPU time plus host overhead, seconds (start-up and kernel compilation not included).
    pub fn total_s(&self) -> f64 {
        self.gpu_s + self.host_s
    }
}

fn attention_points(cfg: &PlanConfig, s: &RankShapes) -> Vec<AttentionPoint> {
    let mut v = Vec::new();
    for &q in &grid::prefill_chunks(cfg.grid) {
        for &p in &grid::prefill_prefixes(cfg.grid) {
            if q + p <= cfg.max_model_len && q <= cfg.max_tokens {
                v.push(AttentionPoint {
                    tp: s.tp,
                    is_prefill: true,
                    batch_size: 1,
                    prefill_chunk_size: q,
                    kv_cache_size: p,
                });
            }
        }
    }
    let layers = cfg.model.num_hidden_layers as u64;
    for &b in &grid::decode_batches(cfg.grid) {
        for &kv in &grid::decode_contexts(cfg.grid) {
            let footprint = b * (kv + 1) * s.kv_bytes_per_token() * layers;
            if kv < cfg.max_model_len && footprint <= cfg.kv_budget_bytes && b <= cfg.max_tokens {
                v.push(AttentionPoint {
                    tp: s.tp,
                    is_prefill: false,
                    batch_size: b,
                    prefill_chunk_size: 0,
                    kv_cache_size: kv,
                });
            }
        }
    }
    v
}

#[cfg(test)]
mod tests;
