//! Roofline cost primitives shared by the analytical backends: a kernel's time is the larger of its
//! FLOPs over the reachable FLOP/s and its bytes over the reachable bandwidth, never below a floor.
//!
//! The MoE primitives describe a fused expert kernel over the experts a batch actually touches:
//! with `T` tokens each routed to `k` of `E` experts (uniformly and independently, the routers'
//! load-balancing goal), the expected number of distinct experts touched is `E·(1 − (1 − k/E)^T)`.
//! Decode time therefore grows sublinearly with the batch until every expert is touched, then
//! linearly in FLOPs.

/// Reachable rates of one GPU for one kind of kernel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    /// FLOP/s reachable (peak × efficiency).
    pub flops: f64,
    /// Bytes/s reachable (peak × efficiency).
    pub bytes: f64,
    /// Shortest time of any kernel, seconds.
    pub floor_s: f64,
}

impl Rates {
    /// Time of a kernel doing `flops` and moving `bytes`, seconds.
    #[inline]
    pub fn time_s(&self, flops: f64, bytes: f64) -> f64 {
        (flops / self.flops)
            .max(bytes / self.bytes)
            .max(self.floor_s)
    }
}

/// FLOPs and bytes of a `[m × k] · [k × n]` GEMM whose weight matrix (`k × n`) has
/// `weight_bytes` bytes per element and whose activations have `act_bytes`.
#[inline]
pub fn gemm_work(m: f64, k: f64, n: f64, weight_bytes: f64, act_bytes: f64) -> (f64, f64) {
    (
        2.0 * m * k * n,
        k * n * weight_bytes + (m * k + m * n) * act_bytes,
    )
}

/// Expected distinct experts touched when `assignments` token-to-expert assignments fall
/// uniformly on `experts` experts, `per_token` distinct ones per token: `E·(1 − (1 − k/E)^T)` with
/// `T = assignments / per_token` tokens.
#[inline]
pub fn expected_touched_experts(experts: f64, per_token: f64, tokens: f64) -> f64 {
    if experts <= 0.0 || tokens <= 0.0 {
        return 0.0;
    }
    let miss = (1.0 - (per_token / experts).min(1.0)).max(0.0);
    experts * (1.0 - miss.powf(tokens))
}

/// Ring all-reduce over `n` GPUs of a `bytes`-byte message: `2(n−1)` latency steps and
/// `2(n−1)/n` of the message over each link, seconds.
#[inline]
pub fn ring_all_reduce_s(n: f64, bytes: f64, latency_s: f64, bandwidth: f64) -> f64 {
    if n <= 1.0 {
        return 0.0;
    }
    2.0 * (n - 1.0) * latency_s + 2.0 * (n - 1.0) / n * bytes / bandwidth
}

/// All-to-all over `n` GPUs in which each GPU sends `bytes` in total, `(n−1)/n` of it to others:
/// one latency and the remote share over the link, seconds.
#[inline]
pub fn all_to_all_s(n: f64, bytes: f64, latency_s: f64, bandwidth: f64) -> f64 {
    if n <= 1.0 {
        return 0.0;
    }
    latency_s + (n - 1.0) / n * bytes / bandwidth
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touched_experts_by_hand() {
        // One token, top-2 of 8: exactly 2 experts.
        assert!((expected_touched_experts(8.0, 2.0, 1.0) - 2.0).abs() < 1e-12);
        // Two tokens: 8·(1 − 0.75²) = 3.5.
        assert!((expected_touched_experts(8.0, 2.0, 2.0) - 3.5).abs() < 1e-12);
        // Many tokens saturate at E.
        assert!((expected_touched_experts(8.0, 2.0, 1000.0) - 8.0).abs() < 1e-9);
        assert_eq!(expected_touched_experts(8.0, 2.0, 0.0), 0.0);
    }

    #[test]
    fn roofline_takes_the_binding_limit_and_the_floor() {
        let r = Rates {
            flops: 1e12,
            bytes: 1e9,
            floor_s: 1e-6,
        };
        assert!((r.time_s(2e9, 1e3) - 2e-3).abs() < 1e-15);
        assert!((r.time_s(1.0, 4e6) - 4e-3).abs() < 1e-15);
        assert_eq!(r.time_s(0.0, 0.0), 1e-6);
        let (f, b) = gemm_work(4.0, 8.0, 16.0, 1.0, 2.0);
        assert_eq!((f, b), (1024.0, 128.0 + 2.0 * (32.0 + 64.0)));
        // 4 GPUs, 1 MB at 1 GB/s with 1 µs steps: 6 µs + 1.5 ms.
        let t = ring_all_reduce_s(4.0, 1e6, 1e-6, 1e9);
        assert!((t - (6e-6 + 1.5e-3)).abs() < 1e-15);
        assert!((all_to_all_s(2.0, 1e6, 1e-6, 1e9) - (1e-6 + 0.5e-3)).abs() < 1e-15);
    }
}
