//! The coefficients of the engine model: efficiencies of each kind of kernel (fractions of the
//! GPU's datasheet peaks), communication, launch and CPU costs, the front end, and memory terms.
//!
//! Every coefficient has a physical meaning and a range; [`COEFFICIENTS`] lists them with their
//! units and bounds, for validation, documentation and the calibrator, which fits a subset
//! ([`CoefInfo::fitted`]) and leaves the rest at their defaults.

use serde::{Deserialize, Serialize};

/// The coefficients (section `[coefficients]` of a calibration file, `[predictor.engine]` of a
/// configuration). Defaults are the priors the calibrator starts from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineCoefficients {
    /// Fraction of peak memory bandwidth reached by dense GEMMs bound by their weights.
    pub gemm_bandwidth: f64,
    /// Fraction of peak FLOP/s reached by dense GEMMs bound by compute.
    pub gemm_compute: f64,
    /// Fixed time added to every GEMM (tail effects, split-K reduction, launch inside a graph), µs.
    pub gemm_overhead_us: f64,
    /// Fraction of peak memory bandwidth reached by the attention projections (QKV and output),
    /// narrower GEMMs than the MLP's.
    pub attn_proj_bandwidth: f64,
    /// Bandwidth of the fused MoE expert kernel relative to dense GEMMs': the kernel reaches
    /// `gemm_bandwidth × moe_bandwidth_ratio` of peak (at most all of it). Both stream weights
    /// through the same tensor cores, so the prior is 1, and it is not fitted by default: with
    /// few MoE families a fitted ratio follows the family it was fitted on rather than MoE.
    pub moe_bandwidth_ratio: f64,
    /// Fraction of peak FLOP/s reached by the fused MoE expert kernel.
    pub moe_compute: f64,
    /// Fixed time per touched expert per MoE layer (expert scheduling, tails), µs.
    pub moe_expert_us: f64,
    /// Fraction of peak memory bandwidth reached by attention reading the KV cache (decode).
    pub attention_bandwidth: f64,
    /// Fixed time of every attention kernel (split-KV reduction, tails, launch inside a graph),
    /// µs per layer and kind (prefill, decode).
    pub attention_overhead_us: f64,
    /// Fraction of peak FLOP/s reached by prefill attention (FlashAttention).
    pub attention_compute: f64,
    /// Fraction of peak memory bandwidth reached by fused elementwise kernels (add+RMSNorm,
    /// SiLU-and-mul, rotary, KV-cache writes, embedding).
    pub elementwise_bandwidth: f64,
    /// Shortest duration of any kernel, µs.
    pub kernel_floor_us: f64,
    /// Latency of the custom all-reduce (one-shot/two-shot over NVLink) between two GPUs, µs.
    pub allreduce_latency_us: f64,
    /// Extra latency of the custom all-reduce per GPU beyond two, µs.
    pub allreduce_latency_per_gpu_us: f64,
    /// Fraction of the link bandwidth the custom all-reduce reaches.
    pub allreduce_bandwidth: f64,
    /// Largest message of the custom all-reduce, bytes; larger ones use NCCL (vLLM: 8 MiB).
    pub custom_allreduce_max_bytes: f64,
    /// NCCL latency per ring step, µs.
    pub nccl_latency_us: f64,
    /// Fraction of the link bandwidth NCCL reaches.
    pub nccl_bandwidth: f64,
    /// Replay of one CUDA graph (a decode step, or each piece of a piecewise step), µs.
    pub graph_launch_us: f64,
    /// CPU launch of one kernel outside a graph, µs: the GPU waits when kernels are shorter.
    pub eager_launch_us: f64,
    /// GPU time of every step outside the layers (input and output copies, sampling kernels,
    /// the synchronisation that returns the sampled tokens), µs: paid on the last pipeline stage
    /// whatever the launch mode, and never hidden by asynchronous scheduling.
    pub step_gpu_us: f64,
    /// Memory traffic of the sampler's top-p/top-k filtering (a multi-pass sort of each sampled
    /// request's logits with their indices), bytes per logit at the GPU's peak bandwidth; paid
    /// only when the requests filter (the checkpoint's generation defaults,
    /// [`crate::catalog::GenerationDefaults`]).
    pub sampler_filter_bytes_per_logit: f64,
    /// GPU time of the sampler's top-p/top-k filtering per step, whatever the batch (the sort's
    /// passes and launches), µs; paid only when the requests filter.
    pub sampler_filter_step_us: f64,
    /// CPU time per step (scheduling, input preparation, output processing), µs.
    pub cpu_step_us: f64,
    /// CPU time per request in the step, µs.
    pub cpu_per_request_us: f64,
    /// Fraction of the step's CPU time hidden behind the GPU when the engine schedules
    /// asynchronously (vLLM's `--async-scheduling` prepares step n+1 while step n runs: prior 1);
    /// without asynchronous scheduling the CPU and GPU alternate and none is hidden.
    pub cpu_overlap: f64,
    /// Front-end time per request outside the engine (HTTP, tokenisation, detokenisation and
    /// streaming), added to TTFT and E2E, ms.
    pub frontend_ms: f64,
    /// GPU memory the engine holds outside PyTorch's allocator and other fixed reservations
    /// (CUDA context, NCCL and custom all-reduce buffers), GiB per GPU.
    pub non_torch_memory_gib: f64,
    /// Peak activation memory of the profiling step, bytes per token of
    /// `max_num_batched_tokens` and per element of the hidden size.
    pub activation_bytes_per_token_hidden: f64,
    /// Memory a multimodal model reserves per GPU beyond its weights (vLLM profiles its encoder
    /// on dummy inputs of the largest size and keeps an encoder cache), GiB.
    pub multimodal_reserve_gib: f64,
}

impl Default for EngineCoefficients {
    fn default() -> Self {
        EngineCoefficients {
            gemm_bandwidth: 0.80,
            gemm_compute: 0.70,
            gemm_overhead_us: 2.0,
            attn_proj_bandwidth: 0.80,
            moe_bandwidth_ratio: 1.0,
            moe_compute: 0.55,
            moe_expert_us: 2.0,
            attention_bandwidth: 0.85,
            attention_overhead_us: 3.0,
            attention_compute: 0.55,
            elementwise_bandwidth: 0.60,
            kernel_floor_us: 2.0,
            allreduce_latency_us: 8.0,
            allreduce_latency_per_gpu_us: 1.0,
            allreduce_bandwidth: 0.60,
            custom_allreduce_max_bytes: 8.0 * 1024.0 * 1024.0,
            nccl_latency_us: 10.0,
            nccl_bandwidth: 0.80,
            graph_launch_us: 20.0,
            eager_launch_us: 5.0,
            step_gpu_us: 300.0,
            sampler_filter_bytes_per_logit: 300.0,
            sampler_filter_step_us: 100.0,
            cpu_step_us: 600.0,
            cpu_per_request_us: 10.0,
            cpu_overlap: 1.0,
            frontend_ms: 10.0,
            non_torch_memory_gib: 1.5,
            activation_bytes_per_token_hidden: 4.0,
            multimodal_reserve_gib: 0.0,
        }
    }
}

/// One coefficient's metadata.
pub struct CoefInfo {
    /// The TOML key.
    pub name: &'static str,
    /// Unit, for tables.
    pub unit: &'static str,
    /// Smallest allowed value.
    pub min: f64,
    /// Largest allowed value.
    pub max: f64,
    /// Fitted by `simulator calibrate` by default.
    pub fitted: bool,
    /// Reads it.
    pub get: fn(&EngineCoefficients) -> f64,
    /// Writes it.
    pub set: fn(&mut EngineCoefficients, f64),
}

macro_rules! coef {
    ($name:ident, $unit:expr, $min:expr, $max:expr, $fitted:expr) => {
        CoefInfo {
            name: stringify!($name),
            unit: $unit,
            min: $min,
            max: $max,
            fitted: $fitted,
            get: |c| c.$name,
            set: |c, v| c.$name = v,
        }
    };
}

/// Every coefficient, in file order.
pub const COEFFICIENTS: &[CoefInfo] = &[
    coef!(gemm_bandwidth, "fraction", 0.05, 1.0, true),
    coef!(gemm_compute, "fraction", 0.05, 1.0, false),
    coef!(gemm_overhead_us, "µs", 0.0, 200.0, true),
    coef!(attn_proj_bandwidth, "fraction", 0.05, 1.0, true),
    coef!(moe_bandwidth_ratio, "ratio", 0.1, 2.0, false),
    coef!(moe_compute, "fraction", 0.05, 1.0, false),
    coef!(moe_expert_us, "µs", 0.0, 200.0, true),
    coef!(attention_bandwidth, "fraction", 0.05, 1.0, true),
    coef!(attention_overhead_us, "µs", 0.0, 200.0, true),
    coef!(attention_compute, "fraction", 0.05, 1.0, false),
    coef!(elementwise_bandwidth, "fraction", 0.05, 1.0, false),
    coef!(kernel_floor_us, "µs", 0.0, 50.0, false),
    coef!(allreduce_latency_us, "µs", 0.0, 500.0, true),
    coef!(allreduce_latency_per_gpu_us, "µs", 0.0, 100.0, true),
    coef!(allreduce_bandwidth, "fraction", 0.05, 1.0, true),
    coef!(custom_allreduce_max_bytes, "bytes", 0.0, 1e12, false),
    coef!(nccl_latency_us, "µs", 0.0, 500.0, false),
    coef!(nccl_bandwidth, "fraction", 0.05, 1.0, false),
    coef!(graph_launch_us, "µs", 0.0, 5000.0, false),
    coef!(eager_launch_us, "µs", 0.0, 200.0, false),
    coef!(step_gpu_us, "µs", 0.0, 100_000.0, true),
    coef!(sampler_filter_bytes_per_logit, "bytes", 0.0, 10_000.0, true),
    coef!(sampler_filter_step_us, "µs", 0.0, 100_000.0, true),
    coef!(cpu_step_us, "µs", 0.0, 100_000.0, false),
    coef!(cpu_per_request_us, "µs", 0.0, 1000.0, false),
    coef!(cpu_overlap, "fraction", 0.0, 1.0, false),
    coef!(frontend_ms, "ms", 0.0, 10_000.0, true),
    coef!(non_torch_memory_gib, "GiB", 0.0, 64.0, false),
    coef!(activation_bytes_per_token_hidden, "bytes", 0.0, 1e4, false),
    coef!(multimodal_reserve_gib, "GiB", 0.0, 64.0, false),
];

/// Coefficients that were replaced, each with how to convert a file that still has it.
pub const RENAMED: &[(&str, &str)] = &[(
    "moe_bandwidth",
    "`moe_bandwidth` was replaced by `moe_bandwidth_ratio` (December 2026), the MoE kernel's bandwidth as a multiple of `gemm_bandwidth`: write moe_bandwidth_ratio = moe_bandwidth / gemm_bandwidth, or 1 to let it follow gemm_bandwidth",
)];

/// How to convert a file whose parse error `message` names a replaced coefficient ([`RENAMED`]).
pub fn renamed_hint(message: &str) -> Option<&'static str> {
    RENAMED
        .iter()
        .find(|(old, _)| message.contains(&format!("unknown field `{old}`")))
        .map(|(_, hint)| *hint)
}

/// The coefficient named `name`.
pub fn coef_info(name: &str) -> Option<&'static CoefInfo> {
    COEFFICIENTS.iter().find(|c| c.name == name)
}

impl EngineCoefficients {
    /// Checks every value is finite and within its range; the error names the key and the range.
    pub fn validate(&self) -> Result<(), (String, String)> {
        for c in COEFFICIENTS {
            let v = (c.get)(self);
            if !v.is_finite() || v < c.min || v > c.max {
                return Err((
                    c.name.to_string(),
                    format!("{v} is outside [{}, {}] ({})", c.min, c.max, c.unit),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_is_listed_once_and_defaults_are_valid() {
        let c = EngineCoefficients::default();
        c.validate().unwrap();
        // Every field of the TOML form is in the table, and the table round-trips.
        let value = toml::Value::try_from(c).unwrap();
        let keys: Vec<&String> = value.as_table().unwrap().keys().collect();
        assert_eq!(keys.len(), COEFFICIENTS.len());
        for k in keys {
            assert!(coef_info(k).is_some(), "{k} is not in COEFFICIENTS");
        }
        let mut d = c;
        for info in COEFFICIENTS {
            (info.set)(&mut d, (info.get)(&c) * 0.5 + info.min * 0.5);
            assert_ne!((info.get)(&d), (info.get)(&c) + 1.0);
        }
        let mut bad = c;
        bad.gemm_bandwidth = f64::NAN;
        let (key, why) = bad.validate().unwrap_err();
        assert_eq!(key, "gemm_bandwidth");
        assert!(why.contains("NaN"), "{why}");
        bad.gemm_bandwidth = 1.5;
        assert!(bad.validate().is_err());
    }

    #[test]
    fn a_replaced_coefficient_gets_its_conversion() {
        let e = toml::from_str::<EngineCoefficients>("moe_bandwidth = 0.8\n").unwrap_err();
        let hint = renamed_hint(&e.to_string()).expect("a hint for moe_bandwidth");
        assert!(hint.contains("moe_bandwidth_ratio = moe_bandwidth / gemm_bandwidth"));
        for (old, _) in RENAMED {
            assert!(coef_info(old).is_none(), "{old} is still a coefficient");
        }
        let other = toml::from_str::<EngineCoefficients>("nope = 1\n").unwrap_err();
        assert_eq!(renamed_hint(&other.to_string()), None);
    }
}
