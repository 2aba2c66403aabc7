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
    /// Peak dense BF16/FP16 tensor throughput in FLOP/s.
    pub peak_bf16_flops: f64,
    /// Peak memory bandwidth in bytes/s.
    pub memory_bandwidth_bytes_per_s: f64,
    /// Default price of one GPU-hour in US dollars.
    pub price_per_gpu_hour_usd: f64,
    /// Where the hardware numbers come from.
    pub spec_source: String,
    /// Where the price comes from.
    pub price_source: String,
}
