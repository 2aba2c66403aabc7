//! KV-cache transfer times between a prefill and a decode replica (docs/design.md §11.3).
//!
//! A transfer of `B` bytes over a link of bandwidth `W` bytes/s and latency `λ` takes
//! `T = λ + B / W`. When it may end depends on the mode:
//!
//! - `after_prefill`: the transfer starts at `s ≥` the prefill's end and ends at `s + T`;
//! - `layerwise`: the KV of each of the model's `L` layers streams out as the prefill computes it,
//!   so the transfer may start (decode blocks allocated) when the batch that completes the prefill
//!   is formed; it ends at `max(e + λ + B / (L·W), s + T)` where `e` is the prefill's end: the
//!   last layer's share leaves only once the prefill has computed it, and the whole transfer
//!   cannot beat the link.
//!
//! With `s ≥ e` both modes give `s + T` (one layer's share is at most the whole), so a layerwise
//! transfer that had to wait for decode memory until after the prefill is an `after_prefill` one.

use serde::{Deserialize, Serialize};

/// When the KV cache of a prefilled request moves to its decode replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum TransferMode {
    /// The whole KV cache moves once the prefill has ended.
    #[default]
    #[value(name = "after_prefill")]
    AfterPrefill,
    /// The KV cache streams out layer by layer while the prefill runs.
    Layerwise,
}

impl TransferMode {
    /// The name used in configurations.
    pub fn name(self) -> &'static str {
        match self {
            TransferMode::AfterPrefill => "after_prefill",
            TransferMode::Layerwise => "layerwise",
        }
    }
}

/// The link a transfer crosses, and the shape of the transfer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TransferModel {
    /// Mode.
    pub mode: TransferMode,
    /// Bandwidth, bytes/s (every GPU of the replica pair's link together).
    pub bandwidth_bytes_per_s: f64,
    /// Latency of one transfer, ns.
    pub latency_ns: u64,
    /// KV bytes of one token (every layer, every KV head).
    pub kv_bytes_per_token: u64,
    /// Layers of the model (the streaming granularity of `layerwise`).
    pub layers: u32,
}

impl TransferModel {
    /// Bytes moved for a prompt of `tokens` tokens.
    pub fn bytes(&self, tokens: u32) -> u64 {
        u64::from(tokens) * self.kv_bytes_per_token
    }

    /// `bytes / bandwidth`, ns, rounded to the nearest ns.
    fn wire_ns(&self, bytes: f64) -> u64 {
        (bytes / self.bandwidth_bytes_per_s * 1e9).round() as u64
    }

    /// Time of a whole transfer of `bytes` bytes: latency + bytes / bandwidth, ns.
    pub fn duration_ns(&self, bytes: u64) -> u64 {
        self.latency_ns + self.wire_ns(bytes as f64)
    }

    /// What must still move once the prefill has ended: the last layer's share (layerwise,
    /// latency + bytes / (layers · bandwidth)) or everything (after_prefill), ns.
    pub fn tail_ns(&self, bytes: u64) -> u64 {
        match self.mode {
            TransferMode::AfterPrefill => self.duration_ns(bytes),
            TransferMode::Layerwise => {
                self.latency_ns + self.wire_ns(bytes as f64 / f64::from(self.layers.max(1)))
            }
        }
    }

    /// End of a transfer of `bytes` bytes that started at `start_ns` for a prefill that ended at
    /// `prefill_end_ns`: `max(prefill end + tail, start + duration)`.
    pub fn end_ns(&self, start_ns: u64, prefill_end_ns: u64, bytes: u64) -> u64 {
        (prefill_end_ns + self.tail_ns(bytes)).max(start_ns + self.duration_ns(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(mode: TransferMode) -> TransferModel {
        // 1 GB/s: a byte is a nanosecond
        TransferModel {
            mode,
            bandwidth_bytes_per_s: 1e9,
            latency_ns: 100,
            kv_bytes_per_token: 1000,
            layers: 10,
        }
    }

    #[test]
    fn after_prefill_takes_latency_plus_bytes_over_bandwidth_from_its_start() {
        let m = model(TransferMode::AfterPrefill);
        assert_eq!(m.bytes(50), 50_000);
        assert_eq!(m.duration_ns(50_000), 50_100);
        assert_eq!(m.tail_ns(50_000), 50_100);
        // started at the prefill's end, or later when decode memory was short
        assert_eq!(m.end_ns(1_000, 1_000, 50_000), 51_100);
        assert_eq!(m.end_ns(9_000, 1_000, 50_000), 59_100);
    }

    #[test]
    fn layerwise_ends_one_layer_after_the_prefill_or_when_the_link_allows() {
        let m = model(TransferMode::Layerwise);
        assert_eq!(m.tail_ns(50_000), 5_100);
        // started long before the prefill's end: one layer's share after it
        assert_eq!(m.end_ns(0, 100_000, 50_000), 105_100);
        // started shortly before: the link is the bottleneck
        assert_eq!(m.end_ns(90_000, 100_000, 50_000), 140_100);
        // started after the prefill's end: as after_prefill
        assert_eq!(m.end_ns(120_000, 100_000, 50_000), 170_100);
        assert_eq!(TransferMode::Layerwise.name(), "layerwise");
        assert_eq!(TransferMode::AfterPrefill.name(), "after_prefill");
    }
}
