//! How much work one measurement is, how long it should take (a roofline on the device's catalog
//! figures), and how many repetitions the timing harness runs for it. The GPU runner uses the same
//! [`Reps::for_estimate`] rule, so the plan's GPU-time estimate follows what the run really does.

use predictor::{DeviceSpec, NodeSpec};

/// The work of one operator call, enough to place it on a roofline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Work {
    /// A bf16 GEMM `[m, k] · [n, k]ᵀ`.
    Gemm {
        /// Tokens (rows of the activation).
        m: u64,
        /// Output features.
        n: u64,
        /// Input features.
        k: u64,
    },
    /// A memory-bound kernel moving this many bytes (read plus written).
    Memory {
        /// Bytes read plus written.
        bytes: f64,
    },
    /// Prefill attention: tensor-core FLOPs plus the bytes of Q, K, V and O.
    Prefill {
        /// FLOPs of `QKᵀ` and `PV` under the causal mask.
        flops: f64,
        /// Bytes read plus written.
        bytes: f64,
    },
    /// Decode attention: reading the KV cache dominates.
    Decode {
        /// Bytes read plus written.
        bytes: f64,
    },
    /// A collective over `workers` GPUs of a node.
    Collective {
        /// Message size in bytes.
        bytes: f64,
        /// GPUs taking part.
        workers: u32,
        /// Send/recv (one hop) rather than all-reduce.
        point_to_point: bool,
    },
}

/// Achievable rates used for estimates, derived from a device's datasheet figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ceilings {
    /// Dense bf16 GEMM rate (70 % of peak).
    pub gemm_flops_per_s: f64,
    /// Streaming rate of elementwise kernels (80 % of memory bandwidth).
    pub memory_bytes_per_s: f64,
    /// Prefill attention rate of an FA2-class kernel (35 % of peak).
    pub prefill_flops_per_s: f64,
    /// Per-kernel floor (launch plus tail), seconds.
    pub floor_s: f64,
}

impl Ceilings {
    /// Ceilings for `device` (H100: 693 TF/s GEMM, 2.68 TB/s streaming, 346 TF/s prefill).
    pub fn from_device(device: &DeviceSpec) -> Self {
        Self {
            gemm_flops_per_s: 0.7 * device.peak_bf16_flops,
            memory_bytes_per_s: 0.8 * device.memory_bandwidth_bytes_per_s,
            prefill_flops_per_s: 0.35 * device.peak_bf16_flops,
            floor_s: 5e-6,
        }
    }

    /// Estimated time of one call, seconds (`node` is needed only for collectives).
    pub fn estimate_s(&self, work: &Work, node: Option<&NodeSpec>) -> f64 {
        let t = match *work {
            Work::Gemm { m, n, k } => {
                let flops = 2.0 * (m * n * k) as f64;
                let bytes = 2.0 * (n * k + m * k + m * n) as f64;
                (flops / self.gemm_flops_per_s).max(bytes / self.memory_bytes_per_s)
            }
            Work::Memory { bytes } | Work::Decode { bytes } => bytes / self.memory_bytes_per_s,
            Work::Prefill { flops, bytes } => {
                (flops / self.prefill_flops_per_s).max(bytes / self.memory_bytes_per_s)
            }
            Work::Collective {
                bytes,
                workers,
                point_to_point,
            } => match node {
                Some(node) => {
                    let link = node.collective_link(workers);
                    let n = workers as f64;
                    if point_to_point {
                        link.latency_s + bytes / link.bandwidth_bytes_per_s
                    } else {
                        2.0 * (n - 1.0) * link.latency_s
                            + 2.0 * (n - 1.0) / n * bytes / link.bandwidth_bytes_per_s
                    }
                }
                None => bytes / self.memory_bytes_per_s,
            },
        };
        t.max(self.floor_s)
    }
}

/// Repetitions of one measurement: `warmup` untimed replays, then `samples` timed replays of a
/// block of `inner` back-to-back calls (captured in one CUDA graph); each sample is the block's
/// time divided by `inner`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reps {
    /// Untimed replays of the block.
    pub warmup: u32,
    /// Timed replays (the statistics are over these).
    pub samples: u32,
    /// Calls per block.
    pub inner: u32,
}

/// A block should last at least this long, so that event resolution (~0.5 µs) is negligible.
pub const MIN_BLOCK_S: f64 = 20e-6;
/// Timed replays should together last about this long.
pub const TARGET_TIMED_S: f64 = 5e-3;
/// Host work per measurement (capture, instantiate, upload, synchronise, read events, write CSV).
pub const HOST_OVERHEAD_S: f64 = 1.5e-3;

impl Reps {
    /// The repetitions for a call estimated at `t_s` seconds: `inner = clamp(⌈20 µs / t⌉, 1, 64)`,
    /// `samples = clamp(⌈5 ms / (inner·t)⌉, 5, 30)`, `warmup = 2`.
    pub fn for_estimate(t_s: f64) -> Self {
        let t = t_s.max(1e-7);
        let inner = ((MIN_BLOCK_S / t).ceil() as u32).clamp(1, 64);
        let samples = ((TARGET_TIMED_S / (inner as f64 * t)).ceil() as u32).clamp(5, 30);
        Self {
            warmup: 2,
            samples,
            inner,
        }
    }

    /// GPU time spent on a call of `t_s` seconds with these repetitions.
    pub fn gpu_time_s(&self, t_s: f64) -> f64 {
        (self.warmup + self.samples) as f64 * self.inner as f64 * t_s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use predictor::Catalog;

    fn h100() -> Ceilings {
        Ceilings::from_device(&Catalog::builtin().device("h100").unwrap())
    }

    #[test]
    fn gemm_estimate_is_compute_bound_for_large_m_and_memory_bound_for_one_token() {
        let c = h100();
        let big = Work::Gemm {
            m: 8192,
            n: 8192,
            k: 8192,
        };
        let want = 2.0 * 8192f64.powi(3) / (0.7 * 989.4e12);
        assert!((c.estimate_s(&big, None) - want).abs() / want < 1e-12);
        let one = Work::Gemm {
            m: 1,
            n: 28672,
            k: 4096,
        };
        let bytes = 2.0 * (28672.0 * 4096.0 + 4096.0 + 28672.0);
        let want = bytes / (0.8 * 3.35e12);
        assert!((c.estimate_s(&one, None) - want).abs() / want < 1e-12);
    }

    #[test]
    fn tiny_calls_hit_the_floor_and_get_batched_into_blocks() {
        let c = h100();
        let t = c.estimate_s(&Work::Memory { bytes: 100.0 }, None);
        assert_eq!(t, 5e-6);
        let r = Reps::for_estimate(t);
        assert_eq!(r.inner, 4);
        assert_eq!(r.samples, 30);
        let slow = Reps::for_estimate(0.01);
        assert_eq!((slow.inner, slow.samples, slow.warmup), (1, 5, 2));
        assert!((slow.gpu_time_s(0.01) - 0.07).abs() < 1e-12);
    }

    #[test]
    fn all_reduce_uses_the_ring_alpha_beta_form() {
        let cat = Catalog::builtin();
        let node = cat.node("h100_dgx").unwrap();
        let c = h100();
        let w = Work::Collective {
            bytes: 1e9,
            workers: 8,
            point_to_point: false,
        };
        let link = node.collective_link(8);
        let want = 14.0 * link.latency_s + 1.75 * 1e9 / link.bandwidth_bytes_per_s;
        assert!((c.estimate_s(&w, Some(&node)) - want).abs() < 1e-12);
    }
}
