//! The mixture-of-experts and multi-head-latent-attention operators of the sweep plan: the router
//! GEMM, the grouped expert GEMM per touched-expert count, the shared experts, the expert-parallel
//! all-to-all, and MLA's projections and latent decode attention.
//!
//! `profiler plan` lists these points (with counts and an estimate) so that a sweep of an MoE or
//! MLA model can be sized; the GPU sweeps do not time them yet (no kernels), so they are kept
//! apart from [`super::Plan::measurements`] and the predictor answers these operators with the
//! roofline (docs/profiler.md, docs/models.md).

use predictor::{ModelSpec, NodeSpec, Parallelism};

use super::budget::Ceilings;
use super::grid::{self, GridKind};

/// A planned MoE or MLA operator. The names are those of `batches.csv` and the predictor
/// (`moe_*`, `all_to_all`) or MLA's own (`mla_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SparseOp {
    /// Router GEMM `[tokens × hidden] · [hidden × experts]` (replicated on every GPU).
    MoeGate,
    /// Grouped expert GEMMs (gate/up, activation, down) over `touched` experts with `rows`
    /// routed tokens each.
    MoeExperts,
    /// Shared experts: a dense MLP of the shared width, split by TP.
    MoeSharedExperts,
    /// Expert-parallel all-to-all (dispatch or combine) over `workers` GPUs.
    AllToAll,
    /// MLA query down-projection `[tokens × hidden] · [hidden × q_lora_rank]`.
    MlaQaProj,
    /// MLA query up-projection to this GPU's heads.
    MlaQbProj,
    /// MLA key/value down-projection to the cached latent plus the rotary key.
    MlaKvaProj,
    /// MLA decode attention over the cached latents (absorbed projections).
    MlaDecode,
}

impl SparseOp {
    /// The operator's name.
    pub fn name(self) -> &'static str {
        match self {
            SparseOp::MoeGate => "moe_gate",
            SparseOp::MoeExperts => "moe_experts",
            SparseOp::MoeSharedExperts => "moe_shared_experts",
            SparseOp::AllToAll => "all_to_all",
            SparseOp::MlaQaProj => "mla_q_a_proj",
            SparseOp::MlaQbProj => "mla_q_b_proj",
            SparseOp::MlaKvaProj => "mla_kv_a_proj",
            SparseOp::MlaDecode => "mla_decode",
        }
    }
}

/// One planned point of a sparse operator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SparsePoint {
    /// The operator.
    pub op: SparseOp,
    /// Tensor-parallel degree.
    pub tp: u32,
    /// Expert-parallel degree (1 for non-expert operators).
    pub ep: u32,
    /// Tokens (GEMM `M`), decode batch size (`mla_decode`), or rows per expert (`moe_experts`).
    pub tokens: u64,
    /// Experts touched (`moe_experts`), context length (`mla_decode`), GPUs (`all_to_all`); else 0.
    pub shape: u64,
    /// FLOPs of the call.
    pub flops: f64,
    /// Bytes read plus written (the message size for `all_to_all`).
    pub bytes: f64,
}

impl SparsePoint {
    /// Estimated time of one call, seconds.
    pub fn estimate_s(&self, c: &Ceilings, node: Option<&NodeSpec>) -> f64 {
        let t = match (self.op, node) {
            (SparseOp::AllToAll, Some(n)) => {
                let link = n.collective_link(self.shape as u32);
                let g = self.shape as f64;
                link.latency_s + (g - 1.0) / g * self.bytes / link.bandwidth_bytes_per_s
            }
            _ => (self.flops / c.gemm_flops_per_s).max(self.bytes / c.memory_bytes_per_s),
        };
        t.max(c.floor_s)
    }
}

/// FLOPs and bytes of a bf16 `[m × k] · [k × n]` GEMM.
fn gemm(m: u64, k: u64, n: u64) -> (f64, f64) {
    let (m, k, n) = (m as f64, k as f64, n as f64);
    (2.0 * m * k * n, 2.0 * (k * n + m * k + m * n))
}

/// Powers of two from 1 up to `max`, and `max` itself.
fn pow2_to(max: u64) -> Vec<u64> {
    let mut v: Vec<u64> = std::iter::successors(Some(1u64), |x| x.checked_mul(2))
        .take_while(|&x| x <= max)
        .collect();
    if max > 0 && v.last() != Some(&max) {
        v.push(max);
    }
    v
}

/// The sparse points of `model` for the TP degrees `tps` (each already valid for the model),
/// with all-to-all over at most `gpus` GPUs. Empty for a dense model without MLA.
pub fn sparse_points(
    model: &ModelSpec,
    tps: &[u32],
    kind: GridKind,
    max_tokens: u64,
    gpus: u32,
) -> Vec<SparsePoint> {
    let mut out = Vec::new();
    let h = u64::from(model.hidden_size);
    let tokens = grid::num_tokens(kind, max_tokens);
    let mats = model.mlp_matrices();
    let point = |op, tp, ep, tokens, shape, (flops, bytes): (f64, f64)| SparsePoint {
        op,
        tp,
        ep,
        tokens,
        shape,
        flops,
        bytes,
    };
    for &tp in tps {
        if let Some(m) = &model.moe {
            let e = u64::from(m.num_experts);
            for &t in &tokens {
                out.push(point(SparseOp::MoeGate, tp, 1, t, 0, gemm(t, h, e)));
            }
            // Every EP degree the layout allows (EP divides TP and the expert count).
            for ep in (1..=tp).filter(|&ep| {
                Parallelism::new(tp, 1)
                    .with_ep(ep)
                    .validate(model, None)
                    .is_ok()
            }) {
                let local = e / u64::from(ep);
                let w = u64::from(m.expert_intermediate_size / (tp / ep));
                let params = mats * h * w;
                // Routed rows per touched expert: at most max_tokens × top-k in all.
                let routed = max_tokens * u64::from(m.experts_per_token);
                for touched in pow2_to(local) {
                    for rows in pow2_to(routed / touched) {
                        let a = (touched * rows) as f64;
                        let flops = 2.0 * a * params as f64;
                        let bytes = 2.0 * (touched * params) as f64
                            + 2.0 * a * (2 * h + (mats - 1) * w + w) as f64;
                        out.push(point(
                            SparseOp::MoeExperts,
                            tp,
                            ep,
                            rows,
                            touched,
                            (flops, bytes),
                        ));
                    }
                }
            }
            let sw =
                u64::from(m.num_shared_experts * m.shared_expert_intermediate_size) / u64::from(tp);
            if sw > 0 {
                for &t in &tokens {
                    let (f1, b1) = gemm(t, h, (mats - 1) * sw);
                    let (f2, b2) = gemm(t, sw, h);
                    out.push(point(
                        SparseOp::MoeSharedExperts,
                        tp,
                        1,
                        t,
                        0,
                        (f1 + f2, b1 + b2),
                    ));
                }
            }
        }
        if let Some(mla) = &model.mla {
            let heads = u64::from(model.num_attention_heads / tp);
            let qk = u64::from(mla.qk_nope_head_dim + mla.qk_rope_head_dim);
            let latent = u64::from(mla.kv_lora_rank + mla.qk_rope_head_dim);
            for &t in &tokens {
                let q_in = match mla.q_lora_rank {
                    Some(r) => {
                        let r = u64::from(r);
                        out.push(point(SparseOp::MlaQaProj, tp, 1, t, 0, gemm(t, h, r)));
                        r
                    }
                    None => h,
                };
                out.push(point(
                    SparseOp::MlaQbProj,
                    tp,
                    1,
                    t,
                    0,
                    gemm(t, q_in, heads * qk),
                ));
                out.push(point(SparseOp::MlaKvaProj, tp, 1, t, 0, gemm(t, h, latent)));
            }
            for &b in &grid::decode_batches(kind) {
                for &kv in &grid::decode_contexts(kind) {
                    if b > max_tokens || kv > model.max_position_embeddings as u64 {
                        continue;
                    }
                    let (bf, kvf, hf, lf) = (b as f64, kv as f64, heads as f64, latent as f64);
                    let kv_lora = f64::from(mla.kv_lora_rank);
                    out.push(point(
                        SparseOp::MlaDecode,
                        tp,
                        1,
                        b,
                        kv,
                        (
                            2.0 * bf * hf * kvf * (lf + kv_lora),
                            2.0 * bf * (kvf * lf + 2.0 * hf * lf),
                        ),
                    ));
                }
            }
        }
    }
    if model.moe.is_some() {
        let top_k = model
            .moe
            .as_ref()
            .map_or(1, |m| u64::from(m.experts_per_token));
        for g in [2u32, 4, 8].into_iter().filter(|&g| g <= gpus) {
            if Parallelism::new(g, 1)
                .with_ep(g)
                .validate(model, None)
                .is_err()
            {
                continue;
            }
            for &t in &tokens {
                // Each GPU sends its share of the tokens, top-k copies of the hidden state.
                let bytes = 2.0 * (t * top_k * h) as f64 / f64::from(g);
                out.push(point(
                    SparseOp::AllToAll,
                    g,
                    g,
                    t,
                    u64::from(g),
                    (0.0, bytes),
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use predictor::Catalog;

    fn count(p: &[SparsePoint], op: SparseOp) -> usize {
        p.iter().filter(|x| x.op == op).count()
    }

    #[test]
    fn mixtral_plans_router_grouped_experts_and_all_to_all() {
        let m = Catalog::builtin()
            .model("mistralai/Mixtral-8x7B-v0.1")
            .unwrap();
        let p = sparse_points(&m, &[2], GridKind::Quick, 16384, 8);
        // 7 quick token counts for the router.
        assert_eq!(count(&p, SparseOp::MoeGate), 7);
        // TP 2: EP 1 (8 local experts: 1, 2, 4, 8 touched) and EP 2 (4 local: 1, 2, 4).
        let touched: std::collections::BTreeSet<(u32, u64)> = p
            .iter()
            .filter(|x| x.op == SparseOp::MoeExperts)
            .map(|x| (x.ep, x.shape))
            .collect();
        assert_eq!(
            touched.into_iter().collect::<Vec<_>>(),
            vec![(1, 1), (1, 2), (1, 4), (1, 8), (2, 1), (2, 2), (2, 4)]
        );
        // One touched expert with one row reads that expert's whole shard of weights.
        let one = p
            .iter()
            .find(|x| x.op == SparseOp::MoeExperts && x.ep == 1 && x.shape == 1 && x.tokens == 1)
            .unwrap();
        let shard = 3.0 * 4096.0 * 7168.0;
        assert!(one.bytes > 2.0 * shard && one.bytes < 2.0 * shard * 1.01);
        // All-to-all over 2, 4 and 8 GPUs (8 experts divide by each).
        assert_eq!(count(&p, SparseOp::AllToAll), 3 * 7);
        assert_eq!(count(&p, SparseOp::MoeSharedExperts), 0);
        assert_eq!(count(&p, SparseOp::MlaDecode), 0);
    }

    #[test]
    fn deepseek_plans_shared_experts_and_mla_and_dense_models_plan_nothing() {
        let cat = Catalog::builtin();
        let ds = cat.model("deepseek-ai/DeepSeek-V3").unwrap();
        let p = sparse_points(&ds, &[8], GridKind::Quick, 16384, 8);
        for op in [
            SparseOp::MoeGate,
            SparseOp::MoeExperts,
            SparseOp::MoeSharedExperts,
            SparseOp::AllToAll,
            SparseOp::MlaQaProj,
            SparseOp::MlaQbProj,
            SparseOp::MlaKvaProj,
            SparseOp::MlaDecode,
        ] {
            assert!(count(&p, op) > 0, "{}", op.name());
        }
        // EP 8 of TP 8: 32 local experts, touched counts 1..32 by powers of two.
        let most = p
            .iter()
            .filter(|x| x.op == SparseOp::MoeExperts && x.ep == 8)
            .map(|x| x.shape)
            .max();
        assert_eq!(most, Some(32));
        let dense = cat.model("meta-llama/Meta-Llama-3-8B").unwrap();
        assert!(sparse_points(&dense, &[1, 2], GridKind::Full, 16384, 8).is_empty());
    }
}
