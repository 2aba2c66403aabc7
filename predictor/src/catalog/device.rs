//! GPU descriptions: memory, peak throughput, price.

use serde::{Deserialize, Serialize};

/// One GPU SKU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSpec {
    /// Short catalog name used on the command line and in profile paths (`a100`, `h100`, ...).
    pub name: String,
    /// Marketing name.
    pub display_name: String,
    /// Device memory in bytes.
    pub memory_bytes: u64,
    /// Total memory the CUDA driver reports (`nvidia-smi`, `cudaMemGetInfo`), bytes, which vLLM
    /// multiplies by `gpu_memory_utilization`; absent: `memory_bytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_memory_bytes: Option<u64>,
    /// Peak dense BF16/FP16 tensor throughput in FLOP/s.
    pub peak_bf16_flops: f64,
    /// Peak dense FP8 tensor throughput in FLOP/s; absent on GPUs without FP8 tensor cores
    /// (Ampere and older), where FP8 weights run weight-only at the BF16 peak.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_fp8_flops: Option<f64>,
    /// Peak memory bandwidth in bytes/s.
    pub memory_bandwidth_bytes_per_s: f64,
    /// Default price of one GPU-hour in US dollars.
    pub price_per_gpu_hour_usd: f64,
    /// Where the hardware numbers come from.
    pub spec_source: String,
    /// Where the price comes from.
    pub price_source: String,
}

impl DeviceSpec {
    /// The total memory the driver reports, bytes (`reported_memory_bytes`, else `memory_bytes`).
    pub fn reported_memory(&self) -> u64 {
        self.reported_memory_bytes.unwrap_or(self.memory_bytes)
    }
}
