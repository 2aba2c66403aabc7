//! The operators of a transformer forward pass that the execution model times.

use serde::{Deserialize, Serialize};

/// One timed operator. The names are Vidur's (`time_stats.<name>.*` in its CSVs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// QKV projection (column-parallel GEMM).
    AttnPreProj,
    /// Attention output projection (row-parallel GEMM).
    AttnPostProj,
    /// Rotary embedding of queries and keys.
    AttnRope,
    /// Writing the new keys and values into the paged KV cache.
    AttnKvCacheSave,
    /// Attention over prefill chunks.
    AttnPrefill,
    /// Attention for decodes (one query token per request).
    AttnDecode,
    /// Norm before attention.
    InputLayernorm,
    /// Norm between attention and MLP.
    PostAttentionLayernorm,
    /// MLP gate+up projection (column-parallel GEMM).
    MlpUpProj,
    /// MLP activation (SiLU-and-mul or GELU).
    MlpAct,
    /// MLP down projection (row-parallel GEMM).
    MlpDownProj,
    /// Residual add.
    Add,
    /// MoE router: the gate GEMM and top-k selection.
    MoeGate,
    /// MoE routed experts: the grouped expert GEMMs and their activation, over the experts the
    /// batch touches.
    MoeExperts,
    /// MoE shared experts (applied to every token).
    MoeSharedExperts,
    /// Tensor-parallel all-reduce (two per layer).
    AllReduce,
    /// Expert-parallel all-to-all dispatch and combine of MoE layers.
    AllToAll,
    /// Pipeline send/receive between stages.
    SendRecv,
    /// LM head and sampling of the tokens that produce an output (last stage).
    LmHead,
    /// Kernel-launch and CUDA-graph replay time not hidden behind GPU work.
    LaunchOverhead,
    /// CPU-side overhead per batch (scheduling, sampling, input preparation).
    CpuOverhead,
}

impl Op {
    /// Number of operators.
    pub const COUNT: usize = 21;

    /// Every operator, in breakdown order.
    pub const ALL: [Op; Op::COUNT] = [
        Op::AttnPreProj,
        Op::AttnPostProj,
        Op::AttnRope,
        Op::AttnKvCacheSave,
        Op::AttnPrefill,
        Op::AttnDecode,
        Op::InputLayernorm,
        Op::PostAttentionLayernorm,
        Op::MlpUpProj,
        Op::MlpAct,
        Op::MlpDownProj,
        Op::Add,
        Op::MoeGate,
        Op::MoeExperts,
        Op::MoeSharedExperts,
        Op::AllReduce,
        Op::AllToAll,
        Op::SendRecv,
        Op::LmHead,
        Op::LaunchOverhead,
        Op::CpuOverhead,
    ];

    /// The operators profiled in `mlp.csv` whose time depends only on the token count.
    pub const TOKEN_OPS: [Op; 9] = [
        Op::AttnPreProj,
        Op::AttnPostProj,
        Op::AttnRope,
        Op::MlpUpProj,
        Op::MlpDownProj,
        Op::MlpAct,
        Op::InputLayernorm,
        Op::PostAttentionLayernorm,
        Op::Add,
    ];

    /// Vidur's name of the operator.
    pub fn name(self) -> &'static str {
        match self {
            Op::AttnPreProj => "attn_pre_proj",
            Op::AttnPostProj => "attn_post_proj",
            Op::AttnRope => "attn_rope",
            Op::AttnKvCacheSave => "attn_kv_cache_save",
            Op::AttnPrefill => "attn_prefill",
            Op::AttnDecode => "attn_decode",
            Op::InputLayernorm => "input_layernorm",
            Op::PostAttentionLayernorm => "post_attention_layernorm",
            Op::MlpUpProj => "mlp_up_proj",
            Op::MlpAct => "mlp_act",
            Op::MlpDownProj => "mlp_down_proj",
            Op::Add => "add",
            Op::MoeGate => "moe_gate",
            Op::MoeExperts => "moe_experts",
            Op::MoeSharedExperts => "moe_shared_experts",
            Op::AllReduce => "all_reduce",
            Op::AllToAll => "all_to_all",
            Op::SendRecv => "send_recv",
            Op::LmHead => "lm_head",
            Op::LaunchOverhead => "launch_overhead",
            Op::CpuOverhead => "cpu_overhead",
        }
    }

    /// The operator with Vidur name `name`.
    pub fn from_name(name: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.name() == name)
    }

    /// Position in [`Op::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Time per operator for one batch on one pipeline stage, in milliseconds (all layers of the stage).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct OpBreakdown(pub [f64; Op::COUNT]);

impl OpBreakdown {
    /// Time of `op`, ms.
    pub fn get(&self, op: Op) -> f64 {
        self.0[op.index()]
    }

    /// Sets the time of `op`, ms.
    pub fn set(&mut self, op: Op, ms: f64) {
        self.0[op.index()] = ms;
    }

    /// Sum over operators, ms.
    pub fn total_ms(&self) -> f64 {
        self.0.iter().sum()
    }

    /// (operator, ms) pairs in [`Op::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (Op, f64)> + '_ {
        Op::ALL.into_iter().map(move |op| (op, self.get(op)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_indices_are_positions() {
        for (i, op) in Op::ALL.into_iter().enumerate() {
            assert_eq!(op.index(), i);
            assert_eq!(Op::from_name(op.name()), Some(op));
        }
        assert_eq!(Op::from_name("nope"), None);
    }
}
