//! The shapes one GPU of a replica works on: per-GPU head counts and widths, MoE shards, the
//! bytes of weights, activations and cached elements, and the layers of each pipeline stage.

use crate::catalog::{ModelSpec, NodeSpec};
use crate::parallel::Parallelism;
use crate::precision::Precision;

/// Multi-head latent attention shapes (per GPU).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MlaGeometry {
    /// Query compression rank (0: queries projected directly).
    pub q_lora: f64,
    /// Latent rank.
    pub kv_lora: f64,
    /// Non-rotary query/key head dimension.
    pub nope: f64,
    /// Rotary query/key head dimension.
    pub rope: f64,
    /// Value head dimension.
    pub v: f64,
}

/// Mixture-of-experts shapes (per GPU).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MoeGeometry {
    /// Routed experts of the whole model (`E`).
    pub experts: f64,
    /// Experts per token (`k`).
    pub top_k: f64,
    /// Routed experts held by this GPU.
    pub local_experts: f64,
    /// Elements of one routed expert's shard on this GPU.
    pub params_per_expert: f64,
    /// Width of one routed expert's shard (`F_e / (tp/ep)`).
    pub expert_width: f64,
    /// Total width of the shared experts on this GPU.
    pub shared_width: f64,
    /// Expert-parallel degree.
    pub ep: f64,
}

impl MoeGeometry {
    /// The MoE shapes of `model` split as `par`; `None` for a dense model.
    pub fn new(model: &ModelSpec, par: Parallelism) -> Option<Self> {
        model.moe.as_ref().map(|m| {
            let shard = model.moe_shard(par);
            MoeGeometry {
                experts: f64::from(m.num_experts),
                top_k: f64::from(m.experts_per_token),
                local_experts: f64::from(shard.local_experts),
                params_per_expert: shard.params_per_expert as f64,
                expert_width: f64::from(m.expert_intermediate_size / par.expert_tp()),
                shared_width: f64::from(m.num_shared_experts)
                    * f64::from(m.shared_expert_intermediate_size / par.tp),
                ep: f64::from(par.ep),
            }
        })
    }
}

/// The layers of one pipeline stage, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StageLayers {
    /// Every layer of the stage.
    pub all: f64,
    /// Layers with a dense MLP.
    pub dense: f64,
    /// Layers with an MoE MLP.
    pub moe: f64,
    /// Layers with local (windowed) attention.
    pub local: f64,
    /// Layers with global attention.
    pub global: f64,
}

/// Everything the engine model needs about the model on one GPU.
#[derive(Debug, Clone, PartialEq)]
pub struct Geometry {
    /// Hidden size `E`.
    pub hidden: f64,
    /// Head dimension `d` (standard attention).
    pub head_dim: f64,
    /// Query heads per GPU.
    pub q_heads: f64,
    /// KV heads per GPU.
    pub kv_heads: f64,
    /// Dense MLP width per GPU.
    pub mlp_width: f64,
    /// Matrices of a (dense or expert) MLP: 3 gated, 2 plain.
    pub mlp_mats: f64,
    /// Vocabulary rows per GPU.
    pub vocab_per_gpu: f64,
    /// Whole vocabulary.
    pub vocab: f64,
    /// Query and key heads get an RMSNorm.
    pub qk_norm: bool,
    /// MLA shapes.
    pub mla: Option<MlaGeometry>,
    /// MoE shapes.
    pub moe: Option<MoeGeometry>,
    /// Window of local attention layers, tokens.
    pub window: f64,
    /// Bytes per linear weight.
    pub weight_bytes: f64,
    /// Bytes per weight of the attention projections (16-bit when a quantized checkpoint keeps
    /// attention unquantized).
    pub attn_weight_bytes: f64,
    /// Bytes per activation element.
    pub act_bytes: f64,
    /// Bytes per cached KV element.
    pub kv_bytes: f64,
    /// Tensor-parallel degree.
    pub tp: f64,
    /// Pipeline stages.
    pub pp: u32,
    /// Layers of each stage.
    pub stages: Vec<StageLayers>,
    /// The collectives of the TP group run within one node with NVLink (custom all-reduce
    /// possible).
    pub nvlink_tp: bool,
}

impl Geometry {
    /// The geometry of `model` split as `par` at precision `prec` on `node`.
    pub fn new(model: &ModelSpec, par: Parallelism, prec: &Precision, node: &NodeSpec) -> Self {
        let tp = par.tp;
        let mla = model.mla.as_ref().map(|m| MlaGeometry {
            q_lora: m.q_lora_rank.map_or(0.0, f64::from),
            kv_lora: f64::from(m.kv_lora_rank),
            nope: f64::from(m.qk_nope_head_dim),
            rope: f64::from(m.qk_rope_head_dim),
            v: f64::from(m.v_head_dim),
        });
        let moe = MoeGeometry::new(model, par);
        let stages = (0..par.pp)
            .map(|s| {
                let range = model.stage_layers(par, s);
                let all = f64::from(range.end - range.start);
                let moe = f64::from(model.moe_layers_in(range.clone()));
                let local = f64::from(model.local_layers_in(range));
                StageLayers {
                    all,
                    dense: all - moe,
                    moe,
                    local,
                    global: all - local,
                }
            })
            .collect();
        Geometry {
            hidden: f64::from(model.hidden_size),
            head_dim: f64::from(model.head_dim()),
            q_heads: f64::from(model.q_heads_per_gpu(tp)),
            kv_heads: f64::from(model.kv_heads_per_gpu(tp)),
            mlp_width: f64::from(model.intermediate_size / tp),
            mlp_mats: model.mlp_matrices() as f64,
            vocab_per_gpu: model.vocab_matrix_params_per_gpu(tp) as f64
                / f64::from(model.hidden_size),
            vocab: f64::from(model.vocab_size),
            qk_norm: model.qk_norm,
            mla,
            moe,
            window: model
                .local_attention
                .as_ref()
                .map_or(f64::INFINITY, |l| f64::from(l.window_tokens)),
            weight_bytes: prec.linear_weight_bytes as f64,
            attn_weight_bytes: if model.unquantized_attention {
                prec.other_weight_bytes as f64
            } else {
                prec.linear_weight_bytes as f64
            },
            act_bytes: prec.activation_bytes as f64,
            kv_bytes: prec.kv_bytes as f64,
            tp: f64::from(tp),
            pp: par.pp,
            stages,
            nvlink_tp: tp <= node.devices_per_node && node.has_nvlink(),
        }
    }

    /// Columns of the fused QKV projection per GPU (standard attention).
    pub fn qkv_cols(&self) -> f64 {
        (self.q_heads + 2.0 * self.kv_heads) * self.head_dim
    }

    /// KV-cache bytes per token of one layer on this GPU.
    pub fn kv_bytes_per_token(&self) -> f64 {
        match &self.mla {
            Some(m) => (m.kv_lora + m.rope) * self.kv_bytes,
            None => 2.0 * self.kv_heads * self.head_dim * self.kv_bytes,
        }
    }
}
