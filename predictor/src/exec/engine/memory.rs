//! KV-cache planning as vLLM does it: of the total memory the driver reports, the engine may use
//! `gpu_memory_utilization`; the weights, the peak activations of a profiling step of
//! `max_num_batched_tokens` tokens and the memory outside PyTorch's allocator come off, and the rest
//! holds KV blocks. The GPU of the heaviest pipeline stage decides the block count.

use super::coeffs::EngineCoefficients;
use crate::catalog::{DeviceSpec, ModelSpec};
use crate::parallel::Parallelism;
use crate::precision::Precision;

const GIB: f64 = (1u64 << 30) as f64;

/// The inputs of the plan that come from the engine's arguments.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemoryArgs {
    /// `gpu_memory_utilization`.
    pub gpu_memory_utilization: f64,
    /// `max_num_batched_tokens` (the profiling step's size).
    pub max_num_batched_tokens: u32,
    /// Tokens per KV block.
    pub block_size: u32,
}

/// The plan of one GPU (the one with the fewest blocks).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VllmMemoryPlan {
    /// `gpu_memory_utilization` × the reported total, bytes.
    pub budget_bytes: u64,
    /// Weights on the heaviest stage's GPU, bytes.
    pub weight_bytes: u64,
    /// Peak activations of the profiling step, bytes.
    pub activation_bytes: u64,
    /// Memory outside PyTorch's allocator, and a multimodal model's encoder reserve, bytes.
    pub non_torch_bytes: u64,
    /// KV bytes of one block on that GPU (its layers).
    pub kv_bytes_per_block: u64,
    /// KV blocks.
    pub num_blocks: u64,
}

impl VllmMemoryPlan {
    /// Bytes left for the KV cache (may be negative when nothing is left).
    pub fn kv_budget_bytes(&self) -> i128 {
        i128::from(self.budget_bytes)
            - i128::from(self.weight_bytes)
            - i128::from(self.activation_bytes)
            - i128::from(self.non_torch_bytes)
    }
}

/// Plans the KV cache of `model` on `device` split as `par` at precision `prec`.
pub fn plan_vllm_memory(
    model: &ModelSpec,
    device: &DeviceSpec,
    par: Parallelism,
    prec: &Precision,
    coeffs: &EngineCoefficients,
    args: MemoryArgs,
) -> VllmMemoryPlan {
    let budget = (device.reported_memory() as f64 * args.gpu_memory_utilization) as u64;
    let activation = (coeffs.activation_bytes_per_token_hidden
        * f64::from(args.max_num_batched_tokens)
        * f64::from(model.hidden_size)) as u64;
    let multimodal = if model.extra_params > 0 {
        coeffs.multimodal_reserve_gib
    } else {
        0.0
    };
    let non_torch = ((coeffs.non_torch_memory_gib + multimodal) * GIB) as u64;
    (0..par.pp)
        .map(|s| {
            let weights = model.stage_weight_bytes(par, s, prec);
            let layers = u64::from(par.layers_per_stage(model));
            let per_block = model.kv_bytes_per_token_per_layer(par.tp, prec.kv_bytes)
                * layers
                * u64::from(args.block_size);
            let mut plan = VllmMemoryPlan {
                budget_bytes: budget,
                weight_bytes: weights,
                activation_bytes: activation,
                non_torch_bytes: non_torch,
                kv_bytes_per_block: per_block.max(1),
                num_blocks: 0,
            };
            let left = plan.kv_budget_bytes();
            plan.num_blocks = if left > 0 {
                (left as u128 / u128::from(plan.kv_bytes_per_block)) as u64
            } else {
                0
            };
            plan
        })
        .min_by_key(|p| p.num_blocks)
        .expect("at least one pipeline stage")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    #[test]
    fn hand_computed_plan() {
        let cat = Catalog::builtin();
        let m = cat.model("meta-llama/Llama-2-7b-hf").unwrap();
        let d = cat.device("h100").unwrap();
        let c = EngineCoefficients {
            non_torch_memory_gib: 1.0,
            activation_bytes_per_token_hidden: 4.0,
            ..Default::default()
        };
        let args = MemoryArgs {
            gpu_memory_utilization: 0.9,
            max_num_batched_tokens: 2048,
            block_size: 16,
        };
        let p = plan_vllm_memory(&m, &d, Parallelism::new(1, 1), &Precision::BF16, &c, args);
        let budget = (85_520_809_984.0 * 0.9) as u64;
        assert_eq!(p.budget_bytes, budget);
        assert_eq!(p.activation_bytes, 4 * 2048 * 4096);
        assert_eq!(p.non_torch_bytes, 1 << 30);
        // 32 layers · 2 (K, V) · 32 heads · 128 · 2 bytes · 16 tokens = 8 MiB per block.
        assert_eq!(p.kv_bytes_per_block, 8 << 20);
        let left = budget - p.weight_bytes - p.activation_bytes - (1 << 30);
        assert_eq!(p.num_blocks, left / (8 << 20));
        // FP8 KV doubles the blocks (up to rounding); TP2 holds half the heads per GPU.
        let fp8 = Precision {
            kv_bytes: 1,
            ..Precision::BF16
        };
        let p8 = plan_vllm_memory(&m, &d, Parallelism::new(1, 1), &fp8, &c, args);
        assert!(p8.num_blocks >= 2 * p.num_blocks && p8.num_blocks <= 2 * p.num_blocks + 1);
        // No room: the weights exceed the budget.
        let big = cat.model("meta-llama/Llama-2-70b-hf").unwrap();
        let p = plan_vllm_memory(&big, &d, Parallelism::new(1, 1), &Precision::BF16, &c, args);
        assert_eq!(p.num_blocks, 0);
        assert!(p.kv_budget_bytes() < 0);
    }
}
