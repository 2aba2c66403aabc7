//! What a model weighs and caches: which layers are MoE or local, parameters per GPU for a layout,
//! weight bytes per pipeline stage at a precision, and KV-cache bytes per token.
//!
//! Counts cover the matrices that dominate (projections, MLPs, experts, routers, embeddings);
//! norms and biases add well under 0.1% and are included where cheap to count.

use std::ops::Range;

use super::ModelSpec;
use crate::parallel::Parallelism;
use crate::precision::Precision;

/// Parameters of one MoE layer held by one GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MoeShard {
    /// Routed experts on this GPU (`num_experts / ep`).
    pub local_experts: u32,
    /// Parameters of one routed expert's shard on this GPU (`3 · E · F_e / (tp/ep)`).
    pub params_per_expert: u64,
    /// Shared-expert parameters on this GPU.
    pub shared_params: u64,
    /// Router parameters (replicated).
    pub router_params: u64,
}

impl MoeShard {
    /// Every MoE parameter of the layer on this GPU.
    pub fn total(&self) -> u64 {
        u64::from(self.local_experts) * self.params_per_expert
            + self.shared_params
            + self.router_params
    }
}

impl ModelSpec {
    /// True when layer `layer` (0-based) has an MoE MLP.
    pub fn is_moe_layer(&self, layer: u32) -> bool {
        match &self.moe {
            None => false,
            Some(m) => {
                layer >= m.first_dense_layers
                    && (layer + 1 - m.first_dense_layers).is_multiple_of(m.layer_step.max(1))
            }
        }
    }

    /// True when layer `layer` (0-based) attends through a window or chunk.
    pub fn is_local_attention_layer(&self, layer: u32) -> bool {
        match &self.local_attention {
            None => false,
            Some(l) => l.global_every == 0 || !(layer + 1).is_multiple_of(l.global_every),
        }
    }

    /// Layers of `range` with an MoE MLP.
    pub fn moe_layers_in(&self, range: Range<u32>) -> u32 {
        range.filter(|&l| self.is_moe_layer(l)).count() as u32
    }

    /// Layers of `range` with local attention.
    pub fn local_layers_in(&self, range: Range<u32>) -> u32 {
        range.filter(|&l| self.is_local_attention_layer(l)).count() as u32
    }

    /// Layers with a dense MLP of `intermediate_size`.
    pub fn num_dense_mlp_layers(&self) -> u32 {
        self.num_hidden_layers - self.moe_layers_in(0..self.num_hidden_layers)
    }

    /// The layers of pipeline stage `stage` (stages hold equal consecutive runs of layers).
    pub fn stage_layers(&self, par: Parallelism, stage: u32) -> Range<u32> {
        let per = par.layers_per_stage(self);
        stage * per..(stage + 1) * per
    }

    /// Query heads on one GPU at tensor-parallel degree `tp`.
    pub fn q_heads_per_gpu(&self, tp: u32) -> u32 {
        self.num_attention_heads / tp
    }

    /// Key/value heads on one GPU (replicated when `tp` exceeds the KV heads).
    pub fn kv_heads_per_gpu(&self, tp: u32) -> u32 {
        self.num_key_value_heads.div_ceil(tp)
    }

    /// Attention projection parameters of one layer on one GPU at tensor-parallel degree `tp`.
    ///
    /// Standard attention: Q, K, V (K and V replicated when `tp` > KV heads) and the output
    /// projection. MLA: the replicated down-projections (`q_a`, `kv_a` with the rotary key) and the
    /// head-split up-projections (`q_b`, `kv_b`) and output projection.
    pub fn attention_params_per_gpu(&self, tp: u32) -> u64 {
        let e = u64::from(self.hidden_size);
        let q = u64::from(self.q_heads_per_gpu(tp));
        match &self.mla {
            None => {
                let d = u64::from(self.head_dim());
                let kv = u64::from(self.kv_heads_per_gpu(tp));
                let bias = if self.qkv_bias || self.attention_bias {
                    d * (q + 2 * kv)
                } else {
                    0
                };
                e * d * (q + 2 * kv) + e * d * q + bias
            }
            Some(m) => {
                let qk = u64::from(m.qk_nope_head_dim + m.qk_rope_head_dim);
                let v = u64::from(m.v_head_dim);
                let kv_lora = u64::from(m.kv_lora_rank);
                let rope = u64::from(m.qk_rope_head_dim);
                let q_proj = match m.q_lora_rank {
                    Some(r) => e * u64::from(r) + u64::from(r) * q * qk,
                    None => e * q * qk,
                };
                let kv_a = e * (kv_lora + rope);
                let kv_b = kv_lora * q * (u64::from(m.qk_nope_head_dim) + v);
                q_proj + kv_a + kv_b + q * v * e
            }
        }
    }

    /// Dense MLP parameters of one layer on one GPU.
    pub fn dense_mlp_params_per_gpu(&self, tp: u32) -> u64 {
        self.mlp_matrices() * u64::from(self.hidden_size) * u64::from(self.intermediate_size / tp)
    }

    /// MoE parameters of one MoE layer on one GPU of layout `par` (zero for a dense model).
    pub fn moe_shard(&self, par: Parallelism) -> MoeShard {
        let Some(m) = &self.moe else {
            return MoeShard::default();
        };
        let e = u64::from(self.hidden_size);
        let mats = self.mlp_matrices();
        MoeShard {
            local_experts: m.num_experts / par.ep.max(1),
            params_per_expert: mats * e * u64::from(m.expert_intermediate_size / par.expert_tp()),
            shared_params: u64::from(m.num_shared_experts)
                * mats
                * e
                * u64::from(m.shared_expert_intermediate_size / par.tp),
            router_params: e * u64::from(m.num_experts),
        }
    }

    /// Parameters of the embedding or of the LM head on one GPU (vocabulary-parallel over `tp`).
    pub fn vocab_matrix_params_per_gpu(&self, tp: u32) -> u64 {
        u64::from(self.vocab_size).div_ceil(u64::from(tp)) * u64::from(self.hidden_size)
    }

    /// Total parameters, as a model card counts them (every expert, embeddings, the LM head unless
    /// tied, and `extra_params`).
    pub fn total_params(&self) -> u64 {
        let one = Parallelism::new(1, 1);
        let layers: u64 = (0..self.num_hidden_layers)
            .map(|l| self.layer_params(l, one, 1, 1))
            .sum();
        let vocab = self.vocab_matrix_params_per_gpu(1);
        let head = if self.tie_word_embeddings { 0 } else { vocab };
        layers + vocab + head + u64::from(self.hidden_size) + self.extra_params
    }

    /// Parameters a token passes through (routed experts: only its top-k), embeddings excluded:
    /// the basis of FLOPs per token.
    pub fn active_params_per_token(&self) -> u64 {
        let e = u64::from(self.hidden_size);
        (0..self.num_hidden_layers)
            .map(|l| {
                let attn = self.attention_params_per_gpu(1);
                let mlp = match (&self.moe, self.is_moe_layer(l)) {
                    (Some(m), true) => {
                        self.mlp_matrices()
                            * e
                            * (u64::from(m.experts_per_token)
                                * u64::from(m.expert_intermediate_size)
                                + u64::from(m.num_shared_experts)
                                    * u64::from(m.shared_expert_intermediate_size))
                            + e * u64::from(m.num_experts)
                    }
                    _ => self.dense_mlp_params_per_gpu(1),
                };
                attn + mlp
            })
            .sum()
    }

    /// Weight bytes of layer `layer` on one GPU of `par`, with linear weights of
    /// `linear_bytes` bytes and router/norm weights (and attention, where the checkpoint leaves it
    /// unquantized) of `other_bytes` bytes.
    fn layer_params(
        &self,
        layer: u32,
        par: Parallelism,
        linear_bytes: u64,
        other_bytes: u64,
    ) -> u64 {
        let norms = 2 * u64::from(self.hidden_size) * other_bytes;
        // A checkpoint that leaves attention unquantized keeps it 16-bit like the embeddings.
        let attn_bytes = if self.unquantized_attention {
            other_bytes
        } else {
            linear_bytes
        };
        let attn = self.attention_params_per_gpu(par.tp) * attn_bytes;
        let mlp = if self.is_moe_layer(layer) {
            let s = self.moe_shard(par);
            (u64::from(s.local_experts) * s.params_per_expert + s.shared_params) * linear_bytes
                + s.router_params * other_bytes
        } else {
            self.dense_mlp_params_per_gpu(par.tp) * linear_bytes
        };
        attn + mlp + norms
    }

    /// Weight bytes on one GPU of pipeline stage `stage` at precision `prec`: its layers, plus the
    /// input embedding on the first stage and the LM head (a copy when tied) on the last, and
    /// `extra_params` (a vision encoder) on the first stage.
    pub fn stage_weight_bytes(&self, par: Parallelism, stage: u32, prec: &Precision) -> u64 {
        let layers: u64 = self
            .stage_layers(par, stage)
            .map(|l| self.layer_params(l, par, prec.linear_weight_bytes, prec.other_weight_bytes))
            .sum();
        let vocab = self.vocab_matrix_params_per_gpu(par.tp) * prec.other_weight_bytes;
        let mut bytes = layers;
        if stage == 0 {
            bytes +=
                vocab + self.extra_params.div_ceil(u64::from(par.tp)) * prec.other_weight_bytes;
        }
        if stage + 1 == par.pp && (par.pp > 1 || !self.tie_word_embeddings) {
            bytes += vocab;
        }
        bytes
    }

    /// KV-cache bytes per token of one layer on one GPU at tensor-parallel degree `tp`, with
    /// `kv_bytes` bytes per cached element. MLA caches the latent and the rotary key once per
    /// token on every GPU; standard attention caches a key and a value per local KV head.
    pub fn kv_bytes_per_token_per_layer(&self, tp: u32, kv_bytes: u64) -> u64 {
        match &self.mla {
            Some(m) => u64::from(m.kv_lora_rank + m.qk_rope_head_dim) * kv_bytes,
            None => {
                2 * u64::from(self.head_dim()) * u64::from(self.kv_heads_per_gpu(tp)) * kv_bytes
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Catalog, MoeSpec};

    #[test]
    fn dense_counts_match_the_model_cards() {
        let cat = Catalog::builtin();
        // Llama-3.1-8B: 8.03 B parameters; Llama-2-7b: 6.74 B.
        let m = cat.model("meta-llama/Llama-3.1-8B").unwrap();
        assert!(
            (m.total_params() as f64 / 8.03e9 - 1.0).abs() < 0.005,
            "{}",
            m.total_params()
        );
        let m = cat.model("meta-llama/Llama-2-7b-hf").unwrap();
        assert!(
            (m.total_params() as f64 / 6.74e9 - 1.0).abs() < 0.005,
            "{}",
            m.total_params()
        );
        assert_eq!(m.num_dense_mlp_layers(), 32);
        // bf16 on one GPU: two bytes per parameter (norms included), no MoE layer.
        let w = m.stage_weight_bytes(Parallelism::new(1, 1), 0, &Precision::BF16);
        assert!((w as f64 / (2.0 * m.total_params() as f64) - 1.0).abs() < 1e-3);
        // KV: 2 · 32 heads · 128 · 2 bytes per layer.
        assert_eq!(m.kv_bytes_per_token_per_layer(1, 2), 16384);
        assert_eq!(m.kv_bytes_per_token_per_layer(4, 1), 2048);
    }

    #[test]
    fn moe_layers_follow_the_first_dense_and_step_rules() {
        let cat = Catalog::builtin();
        let mut m = cat.model("meta-llama/Llama-2-7b-hf").unwrap();
        m.moe = Some(MoeSpec {
            num_experts: 8,
            experts_per_token: 2,
            expert_intermediate_size: 11008,
            num_shared_experts: 1,
            shared_expert_intermediate_size: 11008,
            first_dense_layers: 2,
            layer_step: 2,
        });
        let moe: Vec<u32> = (0..8).filter(|&l| m.is_moe_layer(l)).collect();
        assert_eq!(moe, vec![3, 5, 7]);
        // Hand count of one MoE layer at TP4 EP2: 4 experts per GPU, each split 2 ways.
        let s = m.moe_shard(Parallelism::new(4, 1).with_ep(2));
        assert_eq!(s.local_experts, 4);
        assert_eq!(s.params_per_expert, 3 * 4096 * 5504);
        assert_eq!(s.shared_params, 3 * 4096 * 2752);
        assert_eq!(s.router_params, 4096 * 8);
    }
}
