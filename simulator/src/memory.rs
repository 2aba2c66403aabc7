//! The memory planners: how many KV blocks a replica's GPUs hold after the weights, at its layout
//! and precision.
//!
//! [`plan`] (docs/design.md §6.2, for the roofline, profiled and table backends): per GPU of stage
//! s, usable memory = device memory × (1 − margin); weights = the stage's layers (at TP/EP and the
//! weights' precision) plus, unlike Vidur, the input embedding on the first stage and the LM head
//! on the last (vocabulary-parallel over TP); the rest holds KV blocks of the stage's layers. The
//! stage with the fewest blocks decides the replica's count. Activations and workspace are covered
//! by the margin only.
//!
//! [`plan_vllm`] (the engine model): vLLM's own plan, `gpu_memory_utilization` × the total the
//! driver reports, less the weights, the profiling step's activations and the memory outside
//! PyTorch (calibrated), in KV blocks.

use predictor::exec::engine::memory::{plan_vllm_memory, MemoryArgs};
use predictor::exec::engine::EngineCoefficients;
use predictor::{DeviceSpec, ModelSpec, Parallelism, Precision};

/// Bytes in a GiB.
const GIB: f64 = (1u64 << 30) as f64;

/// The planner's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryPlan {
    /// KV blocks per replica (every stage holds this many blocks of its layers).
    pub num_blocks: u64,
    /// Tokens per block.
    pub block_size: u32,
    /// Usable memory per GPU, bytes.
    pub usable_bytes: u64,
    /// Weights on the GPU of the heaviest stage, bytes.
    pub weight_bytes: u64,
    /// KV bytes of one block on one GPU.
    pub kv_bytes_per_block: u64,
}

/// Why a model does not fit.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    /// The weights alone exceed the usable memory.
    #[error("{model} does not fit on {device} at TP{tp} × PP{pp}: the weights need {need_gib:.1} GiB per GPU but only {avail_gib:.1} GiB is usable ({total_gib:.1} GiB × (1 − {margin} margin)); use a higher tensor-parallel degree (--tp) or more pipeline stages (--pp), or a GPU with more memory")]
    WeightsTooLarge {
        /// Model name.
        model: String,
        /// Device name.
        device: String,
        /// TP.
        tp: u32,
        /// PP.
        pp: u32,
        /// Weights per GPU, GiB.
        need_gib: f64,
        /// Usable memory per GPU, GiB.
        avail_gib: f64,
        /// Device memory, GiB.
        total_gib: f64,
        /// Memory margin fraction.
        margin: f64,
    },
    /// `--num-blocks` is below one request of the longest length, or above what the memory holds.
    #[error("--num-blocks {given} (scheduler.num_blocks) is out of range: the longest request ({max_tokens} tokens) needs {need_blocks} blocks of {block_size} tokens, and the {free_gib:.2} GiB per GPU left after the weights hold {fit_blocks}; give a count in [{need_blocks}, {fit_blocks}], or leave it unset to plan from memory")]
    BadOverride {
        /// The count given.
        given: u64,
        /// Blocks the longest request needs.
        need_blocks: u64,
        /// Blocks the memory holds.
        fit_blocks: u64,
        /// Tokens per block.
        block_size: u32,
        /// Longest request, tokens.
        max_tokens: u32,
        /// Memory left for KV per GPU, GiB.
        free_gib: f64,
    },
    /// The KV cache left cannot hold one request of the longest length.
    #[error("{model} on {device} at TP{tp} × PP{pp} leaves room for {blocks} KV blocks ({free_gib:.2} GiB per GPU after {weights_gib:.1} GiB of weights), but the longest request ({max_tokens} tokens) needs {need_blocks}; use a higher --tp or --pp, a GPU with more memory, or shorter requests")]
    NoRoomForOneRequest {
        /// Model name.
        model: String,
        /// Device name.
        device: String,
        /// TP.
        tp: u32,
        /// PP.
        pp: u32,
        /// Blocks that fit.
        blocks: u64,
        /// Blocks the longest request needs.
        need_blocks: u64,
        /// Longest request, tokens.
        max_tokens: u32,
        /// Memory left for KV per GPU, GiB.
        free_gib: f64,
        /// Weights per GPU, GiB.
        weights_gib: f64,
    },
}

/// Weight bytes on one GPU of pipeline stage `stage` at precision `prec`.
pub fn stage_weight_bytes(
    model: &ModelSpec,
    par: Parallelism,
    stage: u32,
    prec: &Precision,
) -> u64 {
    model.stage_weight_bytes(par, stage, prec)
}

/// Plans the KV cache of one replica. `max_request_tokens` is the longest request the workload can
/// produce; `num_blocks_override` replaces the computed count (still checked against it).
#[allow(clippy::too_many_arguments)]
pub fn plan(
    model: &ModelSpec,
    device: &DeviceSpec,
    par: Parallelism,
    prec: &Precision,
    margin: f64,
    block_size: u32,
    max_request_tokens: u32,
    num_blocks_override: Option<u64>,
) -> Result<MemoryPlan, PlanError> {
    let usable = (device.memory_bytes as f64 * (1.0 - margin)) as u64;
    let weights = (0..par.pp)
        .map(|s| stage_weight_bytes(model, par, s, prec))
        .max()
        .unwrap_or(0);
    if weights >= usable {
        return Err(PlanError::WeightsTooLarge {
            model: model.name.clone(),
            device: device.name.clone(),
            tp: par.tp,
            pp: par.pp,
            need_gib: weights as f64 / GIB,
            avail_gib: usable as f64 / GIB,
            total_gib: device.memory_bytes as f64 / GIB,
            margin,
        });
    }
    let kv_per_block = model.kv_bytes_per_token_per_layer(par.tp, prec.kv_bytes)
        * u64::from(par.layers_per_stage(model))
        * u64::from(block_size);
    let fit = (usable - weights) / kv_per_block.max(1);
    let need = max_request_tokens.div_ceil(block_size) as u64;
    if let Some(given) = num_blocks_override {
        if given < need || given > fit {
            return Err(PlanError::BadOverride {
                given,
                need_blocks: need,
                fit_blocks: fit,
                block_size,
                max_tokens: max_request_tokens,
                free_gib: (usable - weights) as f64 / GIB,
            });
        }
    }
    let blocks = num_blocks_override.unwrap_or(fit);
    if blocks < need {
        return Err(PlanError::NoRoomForOneRequest {
            model: model.name.clone(),
            device: device.name.clone(),
            tp: par.tp,
            pp: par.pp,
            blocks,
            need_blocks: need,
            max_tokens: max_request_tokens,
            free_gib: (usable - weights) as f64 / GIB,
            weights_gib: weights as f64 / GIB,
        });
    }
    Ok(MemoryPlan {
        num_blocks: blocks,
        block_size,
        usable_bytes: usable,
        weight_bytes: weights,
        kv_bytes_per_block: kv_per_block,
    })
}

/// Plans the KV cache of one replica as vLLM does (the engine model's planner).
pub fn plan_vllm(
    model: &ModelSpec,
    device: &DeviceSpec,
    par: Parallelism,
    prec: &Precision,
    coeffs: &EngineCoefficients,
    args: MemoryArgs,
    max_request_tokens: u32,
) -> Result<MemoryPlan, PlanError> {
    let p = plan_vllm_memory(model, device, par, prec, coeffs, args);
    let reserved = p.activation_bytes + p.non_torch_bytes;
    let usable = p.budget_bytes.saturating_sub(reserved);
    let gib = |b: u64| b as f64 / GIB;
    if p.weight_bytes >= usable {
        return Err(PlanError::WeightsTooLarge {
            model: model.name.clone(),
            device: device.name.clone(),
            tp: par.tp,
            pp: par.pp,
            need_gib: gib(p.weight_bytes),
            avail_gib: gib(usable),
            total_gib: gib(device.reported_memory()),
            margin: 1.0 - args.gpu_memory_utilization,
        });
    }
    let need = max_request_tokens.div_ceil(args.block_size) as u64;
    if p.num_blocks < need {
        return Err(PlanError::NoRoomForOneRequest {
            model: model.name.clone(),
            device: device.name.clone(),
            tp: par.tp,
            pp: par.pp,
            blocks: p.num_blocks,
            need_blocks: need,
            max_tokens: max_request_tokens,
            free_gib: gib(usable - p.weight_bytes),
            weights_gib: gib(p.weight_bytes),
        });
    }
    Ok(MemoryPlan {
        num_blocks: p.num_blocks,
        block_size: args.block_size,
        usable_bytes: usable,
        weight_bytes: p.weight_bytes,
        kv_bytes_per_block: p.kv_bytes_per_block,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use predictor::Catalog;

    #[test]
    fn llama2_7b_on_a100_is_close_to_vidur_and_charges_embeddings() {
        let cat = Catalog::builtin();
        let m = cat.model("meta-llama/Llama-2-7b-hf").unwrap();
        let d = cat.device("a100").unwrap();
        let p = plan(
            &m,
            &d,
            Parallelism::new(1, 1),
            &Precision::BF16,
            0.1,
            16,
            4096,
            None,
        )
        .unwrap();
        // KV: 2 · 2 B · 128 · 32 heads · 32 layers = 0.5 MiB per token, 8 MiB per block.
        assert_eq!(p.kv_bytes_per_block, 8 << 20);
        // Vidur (no embeddings, whole 4096-token requests): 7424 blocks. Counting the embedding and
        // LM head (2 · 32000 · 4096 · 2 B ≈ 0.5 GB) leaves a little less than the exact fit.
        let exact = (p.usable_bytes - p.weight_bytes) / p.kv_bytes_per_block;
        assert_eq!(p.num_blocks, exact);
        assert!(
            p.num_blocks > 7424 && p.num_blocks < 7700,
            "{}",
            p.num_blocks
        );
        let no_embed = stage_weight_bytes(&m, Parallelism::new(1, 2), 0, &Precision::BF16);
        let layers_only = 16 * m.params_per_layer_per_device(1) * 2;
        assert!(no_embed > layers_only);
    }

    #[test]
    fn too_big_model_names_everything() {
        let cat = Catalog::builtin();
        let m = cat.model("meta-llama/Llama-2-70b-hf").unwrap();
        let d = cat.device("a100").unwrap();
        let e = plan(
            &m,
            &d,
            Parallelism::new(1, 1),
            &Precision::BF16,
            0.1,
            16,
            4096,
            None,
        )
        .unwrap_err()
        .to_string();
        for s in ["Llama-2-70b-hf", "a100", "TP1 × PP1", "GiB", "--tp"] {
            assert!(e.contains(s), "{e}");
        }
        assert!(plan(
            &m,
            &d,
            Parallelism::new(4, 1),
            &Precision::BF16,
            0.1,
            16,
            4096,
            None
        )
        .is_ok());
    }

    #[test]
    fn last_stage_holds_the_lm_head() {
        let cat = Catalog::builtin();
        let m = cat.model("meta-llama/Llama-2-7b-hf").unwrap();
        let par = Parallelism::new(1, 4);
        let mid = stage_weight_bytes(&m, par, 1, &Precision::BF16);
        let last = stage_weight_bytes(&m, par, 3, &Precision::BF16);
        assert_eq!(last - mid, 32000 * 4096 * 2);
    }
}
