//! Per-rank operator shapes of one transformer block at a tensor-parallel degree.
//!
//! The slicing follows vLLM's `QKVParallelLinear`, `MergedColumnParallelLinear` and
//! `RowParallelLinear` (the same slicing Vidur profiled): every rank holds `Hq/tp` query heads,
//! `max(1, Hkv/tp)` KV heads (KV heads are replicated when `tp > Hkv`), `I/tp` MLP columns and
//! `V/tp` vocabulary rows. Model facts come from [`predictor::ModelSpec`]; nothing is duplicated here.

use predictor::{ModelSpec, Parallelism};

/// One GEMM `y[M, N] = x[M, K] · W[N, K]ᵀ` ("TN" in cuBLAS terms); `M` is the number of tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GemmShape {
    /// Output features on this rank.
    pub n: u64,
    /// Input features on this rank.
    pub k: u64,
}

impl GemmShape {
    /// Floating-point operations of the product for `m` tokens.
    pub fn flops(&self, m: u64) -> f64 {
        2.0 * m as f64 * self.n as f64 * self.k as f64
    }

    /// Bytes read and written (bf16 operands, bf16 output) for `m` tokens.
    pub fn bytes(&self, m: u64) -> f64 {
        2.0 * (self.n * self.k + m * self.k + m * self.n) as f64
    }
}

/// Everything the profiler needs to know about one rank's slice of a block.
#[derive(Debug, Clone, PartialEq)]
pub struct RankShapes {
    /// Tensor-parallel degree.
    pub tp: u32,
    /// Hidden width `h` (not split).
    pub hidden: u64,
    /// Head dimension `d`.
    pub head_dim: u64,
    /// Query heads on this rank.
    pub q_heads: u64,
    /// KV heads on this rank (at least 1).
    pub kv_heads: u64,
    /// MLP intermediate width on this rank (`I/tp`).
    pub intermediate: u64,
    /// Vocabulary rows on this rank: the vocabulary padded to a multiple of 64, divided by `tp`
    /// (vLLM's `VocabParallelEmbedding`).
    pub vocab: u64,
    /// Whether the MLP is gated (SiLU-and-mul over a merged gate/up projection).
    pub gated_mlp: bool,
    /// Rotary base θ (for the cos/sin table).
    pub rope_theta: f64,
    /// QKV projection (`attn_pre_proj`).
    pub qkv: GemmShape,
    /// Attention output projection (`attn_post_proj`).
    pub out: GemmShape,
    /// Gate+up projection (`mlp_up_proj`).
    pub gate_up: GemmShape,
    /// Down projection (`mlp_down_proj`).
    pub down: GemmShape,
    /// Logits head over the sampled rows.
    pub lm_head: GemmShape,
}

/// Why a model cannot be sliced at a TP degree.
#[derive(Debug, thiserror::Error)]
pub enum ShapeError {
    /// The parallel layout does not fit the model.
    #[error(transparent)]
    Parallelism(#[from] predictor::ParallelismError),
}

impl RankShapes {
    /// Slices `model` for tensor-parallel degree `tp`; errors (with the valid degrees) when `tp`
    /// does not divide the heads or widths.
    pub fn new(model: &ModelSpec, tp: u32) -> Result<Self, ShapeError> {
        Parallelism::new(tp, 1).validate(model, None)?;
        let tp64 = tp as u64;
        let hidden = model.hidden_size as u64;
        let head_dim = model.head_dim() as u64;
        let q_heads = model.num_attention_heads as u64 / tp64;
        let kv_heads = (model.num_key_value_heads as u64 / tp64).max(1);
        let intermediate = model.intermediate_size as u64 / tp64;
        let vocab = (model.vocab_size as u64).div_ceil(64) * 64 / tp64;
        let up_cols = if model.gated_mlp {
            2 * intermediate
        } else {
            intermediate
        };
        Ok(Self {
            tp,
            hidden,
            head_dim,
            q_heads,
            kv_heads,
            intermediate,
            vocab,
            gated_mlp: model.gated_mlp,
            rope_theta: model.rope_theta,
            qkv: GemmShape {
                n: (q_heads + 2 * kv_heads) * head_dim,
                k: hidden,
            },
            out: GemmShape {
                n: hidden,
                k: q_heads * head_dim,
            },
            gate_up: GemmShape {
                n: up_cols,
                k: hidden,
            },
            down: GemmShape {
                n: hidden,
                k: intermediate,
            },
            lm_head: GemmShape {
                n: vocab,
                k: hidden,
            },
        })
    }

    /// Query heads per KV head on this rank.
    pub fn gqa_group(&self) -> u64 {
        self.q_heads / self.kv_heads
    }

    /// Whether the attention kernels support this rank's heads (head_dim 128, at most 8 query heads
    /// per KV head); the error says why not.
    pub fn attention_supported(&self) -> Result<(), String> {
        let d = crate::kernels::HEAD_DIM as u64;
        let g = crate::kernels::MAX_GQA_GROUP as u64;
        if self.head_dim != d {
            return Err(format!(
                "the attention kernels are compiled for head_dim {d} and this model's is {}; profile its per-token operators only (`profiler mlp`)",
                self.head_dim
            ));
        }
        if self.gqa_group() > g || !self.q_heads.is_multiple_of(self.kv_heads) {
            return Err(format!(
                "the attention kernels handle at most {g} query heads per KV head and this model has {} per {} at TP {}",
                self.q_heads, self.kv_heads, self.tp
            ));
        }
        Ok(())
    }

    /// KV-cache bytes per token per layer on this rank (K and V, bf16).
    pub fn kv_bytes_per_token(&self) -> u64 {
        2 * 2 * self.kv_heads * self.head_dim
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use predictor::Catalog;

    fn table(model: &str) -> Vec<[(u64, u64); 5]> {
        let m = Catalog::builtin().model(model).unwrap();
        [1, 2, 4, 8]
            .iter()
            .map(|&tp| {
                let s = RankShapes::new(&m, tp).unwrap();
                [s.qkv, s.out, s.gate_up, s.down, s.lm_head].map(|g| (g.n, g.k))
            })
            .collect()
    }

    #[test]
    fn llama3_8b_gemm_shapes_per_tp_match_vllm_slicing() {
        let t = table("meta-llama/Meta-Llama-3-8B");
        assert_eq!(
            t[0],
            [
                (6144, 4096),
                (4096, 4096),
                (28672, 4096),
                (4096, 14336),
                (128256, 4096)
            ]
        );
        assert_eq!(
            t[1],
            [
                (3072, 4096),
                (4096, 2048),
                (14336, 4096),
                (4096, 7168),
                (64128, 4096)
            ]
        );
        assert_eq!(
            t[2],
            [
                (1536, 4096),
                (4096, 1024),
                (7168, 4096),
                (4096, 3584),
                (32064, 4096)
            ]
        );
        assert_eq!(
            t[3],
            [
                (768, 4096),
                (4096, 512),
                (3584, 4096),
                (4096, 1792),
                (16032, 4096)
            ]
        );
    }

    #[test]
    fn llama3_70b_gemm_shapes_per_tp_match_vllm_slicing() {
        let t = table("meta-llama/Meta-Llama-3-70B");
        let qkv: Vec<_> = t.iter().map(|r| r[0]).collect();
        assert_eq!(
            qkv,
            [(10240, 8192), (5120, 8192), (2560, 8192), (1280, 8192)]
        );
        let down: Vec<_> = t.iter().map(|r| r[3]).collect();
        assert_eq!(
            down,
            [(8192, 28672), (8192, 14336), (8192, 7168), (8192, 3584)]
        );
        assert_eq!(t[3][2], (7168, 8192));
        assert_eq!(t[1][1], (8192, 4096));
    }

    #[test]
    fn kv_heads_are_replicated_beyond_the_kv_head_count() {
        let mut m = Catalog::builtin()
            .model("meta-llama/Meta-Llama-3-8B")
            .unwrap();
        m.num_key_value_heads = 4;
        let s = RankShapes::new(&m, 8).unwrap();
        assert_eq!((s.q_heads, s.kv_heads), (4, 1));
        assert_eq!(s.qkv.n, (4 + 2) * 128);
        assert_eq!(s.gqa_group(), 4);
    }

    #[test]
    fn attention_support_is_checked_per_rank() {
        let c = Catalog::builtin();
        let l3 = c.model("meta-llama/Meta-Llama-3-70B").unwrap();
        for tp in [1, 2, 4, 8] {
            assert!(RankShapes::new(&l3, tp)
                .unwrap()
                .attention_supported()
                .is_ok());
        }
        let phi = c.model("microsoft/phi-2").unwrap();
        let e = RankShapes::new(&phi, 1)
            .unwrap()
            .attention_supported()
            .unwrap_err();
        assert!(e.contains("head_dim 128") && e.contains("80"), "{e}");
        let mut wide = l3.clone();
        wide.num_key_value_heads = 4;
        let e = RankShapes::new(&wide, 1)
            .unwrap()
            .attention_supported()
            .unwrap_err();
        assert!(e.contains("at most 8"), "{e}");
    }

    #[test]
    fn a_tp_that_does_not_divide_the_heads_is_an_error_naming_valid_degrees() {
        let m = Catalog::builtin()
            .model("meta-llama/Meta-Llama-3-8B")
            .unwrap();
        let e = RankShapes::new(&m, 3).unwrap_err().to_string();
        assert!(e.contains("does not divide"), "{e}");
        assert!(RankShapes::new(&m, 0).is_err());
    }
}
