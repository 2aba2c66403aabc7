//! The roofline backend: each operator's FLOPs and bytes over the device's peak throughput, scaled
//! by efficiency factors, plus a fixed kernel overhead; collectives by an alpha-beta model of the
//! node's links. It answers for any catalog model on any catalog device, with no profile.
//!
//! The default efficiencies were calibrated once against Vidur's published A100 and H100 profiles of
//! Llama-2-7B (see `docs/concepts.md`): large GEMMs reach about 70% of peak FLOP/s, weight-bound
//! GEMMs about 76% of peak bandwidth, elementwise kernels about 50%.

use serde::{Deserialize, Serialize};

use super::engine::geometry::MoeGeometry;
use super::kernels::{all_to_all_s, expected_touched_experts};
use super::{BackendInfo, BackendKind, OperatorTimes};
use crate::batch::BatchShape;
use crate::catalog::{DeviceSpec, Link, ModelSpec, NodeSpec, BYTES_PER_ELEMENT};
use crate::ops::Op;
use crate::parallel::Parallelism;
use crate::precision::Precision;

/// Fractions of the device's peaks that each kind of kernel reaches, and fixed costs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RooflineEfficiency {
    /// Fraction of peak FLOP/s reached by GEMMs.
    pub gemm_compute: f64,
    /// Fraction of peak bandwidth reached by GEMMs when bound by weight/activation traffic.
    pub gemm_memory: f64,
    /// Fraction of peak FLOP/s reached by prefill attention.
    pub attention_compute: f64,
    /// Fraction of peak bandwidth reached by attention reading the KV cache.
    pub attention_memory: f64,
    /// Fraction of peak bandwidth reached by elementwise kernels (norms, rotary, activation, add).
    pub elementwise_memory: f64,
    /// Fixed cost per kernel, seconds.
    pub kernel_overhead_s: f64,
    /// Fraction of link bandwidth reached by collectives.
    pub link: f64,
}

impl Default for RooflineEfficiency {
    fn default() -> Self {
        RooflineEfficiency {
            gemm_compute: 0.70,
            gemm_memory: 0.76,
            attention_compute: 0.50,
            attention_memory: 0.70,
            elementwise_memory: 0.50,
            kernel_overhead_s: 3e-6,
            link: 0.80,
        }
    }
}

impl RooflineEfficiency {
    /// Checks every value: the efficiencies are fractions of a peak in (0, 1], the kernel overhead
    /// a finite number of seconds ≥ 0. On failure returns the offending key (as written under
    /// `[predictor.roofline]`) and why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        for (key, v) in [
            ("gemm_compute", self.gemm_compute),
            ("gemm_memory", self.gemm_memory),
            ("attention_compute", self.attention_compute),
            ("attention_memory", self.attention_memory),
            ("elementwise_memory", self.elementwise_memory),
            ("link", self.link),
        ] {
            if !(v > 0.0 && v <= 1.0) {
                return Err((
                    key,
                    format!("is {v}, but must be a fraction of the peak in (0, 1]"),
                ));
            }
        }
        let o = self.kernel_overhead_s;
        if !(o.is_finite() && o >= 0.0) {
            return Err((
                "kernel_overhead_s",
                format!("is {o}, but must be a finite number of seconds ≥ 0"),
            ));
        }
        Ok(())
    }
}

/// Analytical per-operator times for one model, device, node and layout.
#[derive(Debug, Clone)]
pub struct Roofline {
    device: DeviceSpec,
    eff: RooflineEfficiency,
    tp: u32,
    e: f64,
    d: f64,
    q_heads: f64,
    kv_heads: f64,
    f: f64,
    gated: bool,
    tp_link: Link,
    pp_link: Link,
    ep_link: Link,
    moe: Option<MoeGeometry>,
    weight_bytes: f64,
    linear_flops: f64,
}

impl Roofline {
    /// The roofline of `model` on `device`, placed on `node`, split as `par`.
    pub fn new(
        model: &ModelSpec,
        device: &DeviceSpec,
        node: &NodeSpec,
        par: Parallelism,
        eff: RooflineEfficiency,
    ) -> Self {
        Roofline {
            device: device.clone(),
            eff,
            tp: par.tp,
            e: model.hidden_size as f64,
            d: model.head_dim() as f64,
            q_heads: (model.num_attention_heads / par.tp) as f64,
            kv_heads: model.num_key_value_heads.div_ceil(par.tp) as f64,
            f: (model.intermediate_size / par.tp) as f64,
            gated: model.gated_mlp,
            tp_link: node.collective_link(par.tp),
            pp_link: node.pipeline_link(par.world_size()),
            ep_link: node.collective_link(par.ep),
            moe: MoeGeometry::new(model, par),
            weight_bytes: BYTES_PER_ELEMENT as f64,
            linear_flops: device.peak_bf16_flops,
        }
    }

    /// The same roofline with the linear layers at precision `prec` on `device` (FP8 weights
    /// halve the bytes; W8A8 doubles the reachable FLOP/s on GPUs with FP8 tensor cores).
    pub fn with_precision(mut self, prec: &Precision) -> Self {
        self.weight_bytes = prec.linear_weight_bytes as f64;
        self.linear_flops = prec.linear_peak_flops(&self.device);
        self
    }

    fn peak_flops(&self) -> f64 {
        self.device.peak_bf16_flops
    }

    fn bw(&self) -> f64 {
        self.device.memory_bandwidth_bytes_per_s
    }

    /// A `[t × k] · [k × n]` GEMM, seconds.
    fn gemm_s(&self, t: f64, k: f64, n: f64) -> f64 {
        let b = BYTES_PER_ELEMENT as f64;
        let flops = 2.0 * t * k * n;
        let bytes = self.weight_bytes * k * n + b * (t * k + t * n);
        (flops / (self.linear_flops * self.eff.gemm_compute))
            .max(bytes / (self.bw() * self.eff.gemm_memory))
            + self.eff.kernel_overhead_s
    }

    /// The MoE operators of one MoE layer for `t` tokens, seconds: (gate, experts, shared).
    fn moe_s(&self, m: &MoeGeometry, t: f64) -> (f64, f64, f64) {
        let e = self.e;
        let b = BYTES_PER_ELEMENT as f64;
        let gate = (2.0 * t * e * m.experts / (self.peak_flops() * self.eff.gemm_compute))
            .max(b * (e * m.experts + t * e) / (self.bw() * self.eff.gemm_memory))
            + 2.0 * self.eff.kernel_overhead_s;
        let touched = expected_touched_experts(m.experts, m.top_k, t) * m.local_experts / m.experts;
        let assignments = t * m.top_k * m.local_experts / m.experts;
        let flops = 2.0 * assignments * m.params_per_expert;
        let bytes = touched * m.params_per_expert * self.weight_bytes
            + assignments * (2.0 * e + 3.0 * m.expert_width) * b;
        let experts = (flops / (self.linear_flops * self.eff.gemm_compute))
            .max(bytes / (self.bw() * self.eff.gemm_memory))
            + self.eff.kernel_overhead_s;
        let shared = if m.shared_width > 0.0 {
            let w = m.shared_width;
            self.gemm_s(t, e, if self.gated { 2.0 * w } else { w })
                + self.elementwise_s(3.0 * t * w)
                + self.gemm_s(t, w, e)
        } else {
            0.0
        };
        (gate, experts, shared)
    }

    /// An elementwise kernel moving `elements` bf16 values, seconds.
    fn elementwise_s(&self, elements: f64) -> f64 {
        elements * BYTES_PER_ELEMENT as f64 / (self.bw() * self.eff.elementwise_memory)
            + self.eff.kernel_overhead_s
    }

    fn attention_s(&self, flops: f64, bytes: f64) -> f64 {
        (flops / (self.peak_flops() * self.eff.attention_compute))
            .max(bytes / (self.bw() * self.eff.attention_memory))
            + self.eff.kernel_overhead_s
    }

    /// Alpha-beta time of moving `bytes` over `link` in `steps` latency-bound steps, seconds.
    fn transfer_s(&self, link: Link, bytes: f64, steps: f64) -> f64 {
        steps * link.latency_s + bytes / (link.bandwidth_bytes_per_s * self.eff.link)
    }
}

impl OperatorTimes for Roofline {
    fn layer_op_ms(&self, op: Op, batch: &BatchShape) -> f64 {
        let t = batch.total_tokens() as f64;
        let (e, d, hq, hkv, f) = (self.e, self.d, self.q_heads, self.kv_heads, self.f);
        let b = BYTES_PER_ELEMENT as f64;
        let s = match op {
            Op::AttnPreProj => self.gemm_s(t, e, (hq + 2.0 * hkv) * d),
            Op::AttnPostProj => self.gemm_s(t, hq * d, e),
            Op::MlpUpProj => self.gemm_s(t, e, if self.gated { 2.0 * f } else { f }),
            Op::MlpDownProj => self.gemm_s(t, f, e),
            // read + write of [T, E]
            Op::InputLayernorm | Op::PostAttentionLayernorm => self.elementwise_s(2.0 * t * e),
            // read + write of q and k
            Op::AttnRope => self.elementwise_s(2.0 * t * (hq + hkv) * d),
            Op::MlpAct => self.elementwise_s(t * if self.gated { 3.0 * f } else { 2.0 * f }),
            // two reads, one write of [T, E]
            Op::Add => self.elementwise_s(3.0 * t * e),
            // read + write of the new K and V
            Op::AttnKvCacheSave => self.elementwise_s(2.0 * 2.0 * t * hkv * d),
            Op::AttnPrefill => {
                let c = batch.prefill_tokens as f64;
                // causal pairs: Σ c·kv + Σ c(c+1)/2
                let pairs = batch.prefill_chunk_kv_sum as f64
                    + (batch.prefill_chunk_sq_sum as f64 + c) / 2.0;
                let flops = 4.0 * d * hq * pairs;
                let kv_tokens = batch.prefill_kv_sum as f64 + c;
                let bytes = b * (2.0 * hkv * d * kv_tokens + 2.0 * hq * d * c);
                self.attention_s(flops, bytes)
            }
            Op::AttnDecode => {
                let kv = batch.decode_kv_sum as f64;
                let n = batch.num_decodes as f64;
                let flops = 4.0 * d * hq * kv;
                let bytes = b * (2.0 * hkv * d * kv + 2.0 * hq * d * n);
                self.attention_s(flops, bytes)
            }
            Op::MoeGate | Op::MoeExperts | Op::MoeSharedExperts => match &self.moe {
                Some(m) => {
                    let (g, x, sh) = self.moe_s(m, t);
                    match op {
                        Op::MoeGate => g,
                        Op::MoeExperts => x,
                        _ => sh,
                    }
                }
                None => 0.0,
            },
            Op::AllToAll => match &self.moe {
                // dispatch and combine of the routed tokens over the EP group
                Some(m) if m.ep > 1.0 => {
                    2.0 * all_to_all_s(
                        m.ep,
                        t / m.ep * m.top_k * self.e * b,
                        self.ep_link.latency_s,
                        self.ep_link.bandwidth_bytes_per_s * self.eff.link,
                    )
                }
                _ => 0.0,
            },
            Op::AllReduce | Op::SendRecv | Op::CpuOverhead | Op::LmHead | Op::LaunchOverhead => 0.0,
        };
        s * 1e3
    }

    fn all_reduce_ms(&self, tokens: u64) -> f64 {
        if self.tp <= 1 {
            return 0.0;
        }
        // Ring all-reduce: 2(n-1) steps, each moving 1/n of the message.
        let n = self.tp as f64;
        let bytes = tokens as f64 * self.e * BYTES_PER_ELEMENT as f64;
        self.transfer_s(self.tp_link, 2.0 * (n - 1.0) / n * bytes, 2.0 * (n - 1.0)) * 1e3
    }

    fn send_recv_ms(&self, tokens: u64) -> f64 {
        let bytes = tokens as f64 * self.e * BYTES_PER_ELEMENT as f64;
        self.transfer_s(self.pp_link, bytes, 1.0) * 1e3
    }

    fn info(&self) -> BackendInfo {
        BackendInfo {
            kind: BackendKind::Roofline,
            source: format!(
                "roofline of {} ({:.0} TFLOP/s bf16, {:.0} GB/s)",
                self.device.name,
                self.device.peak_bf16_flops / 1e12,
                self.device.memory_bandwidth_bytes_per_s / 1e9
            ),
            fallbacks: vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    fn roofline(model: &str, device: &str, node: &str, tp: u32) -> Roofline {
        let cat = Catalog::builtin();
        let m = cat.model(model).unwrap();
        Roofline::new(
            &m,
            &cat.device(device).unwrap(),
            &cat.node(node).unwrap(),
            Parallelism::new(tp, 1),
            RooflineEfficiency::default(),
        )
    }

    fn batch_of(tokens: u64) -> BatchShape {
        let mut b = BatchShape::new();
        b.add_prefill(tokens, 0);
        b
    }

    #[test]
    fn gemms_land_near_vidur_a100_profile() {
        // Vidur a100 Llama-2-7b TP1 medians: mlp_up_proj 3.3655 ms at 4096 tokens, 0.116 ms at 1.
        let r = roofline("meta-llama/Llama-2-7b-hf", "a100", "a100_dgx", 1);
        let big = r.layer_op_ms(Op::MlpUpProj, &batch_of(4096));
        assert!((big / 3.3655 - 1.0).abs() < 0.1, "{big}");
        let small = r.layer_op_ms(Op::MlpUpProj, &batch_of(1));
        assert!((small / 0.116 - 1.0).abs() < 0.2, "{small}");
    }

    fn decodes(n: u64) -> BatchShape {
        let mut b = BatchShape::new();
        for _ in 0..n {
            b.add_decode(1024);
        }
        b
    }

    /// The routed-expert time of one MoE layer, ms, with `touched_local` of this GPU's experts
    /// touched and `assignments` token-to-expert assignments on it, written out from the
    /// roofline's definition.
    fn expected_experts_ms(r: &Roofline, touched_local: f64, assignments: f64) -> f64 {
        let m = r.moe.unwrap();
        let flops = 2.0 * assignments * m.params_per_expert;
        let bytes = touched_local * m.params_per_expert * r.weight_bytes
            + assignments * (2.0 * r.e + 3.0 * m.expert_width) * 2.0;
        ((flops / (r.linear_flops * r.eff.gemm_compute)).max(bytes / (r.bw() * r.eff.gemm_memory))
            + r.eff.kernel_overhead_s)
            * 1e3
    }

    #[test]
    fn moe_experts_follow_the_expected_distinct_experts_and_saturate() {
        // Mixtral-8x7B TP2 on H100, top-2 of 8 experts: E·(1 − (1 − k/E)^T) by hand.
        let r = roofline("mistralai/Mixtral-8x7B-v0.1", "h100", "h100_dgx", 2);
        for (t, touched) in [
            (1u64, 2.0),
            (2, 3.5),
            (4, 5.46875),
            (8, 7.1990966796875),
            (16, 7.919819233939052),
            (256, 8.0),
        ] {
            let got = r.layer_op_ms(Op::MoeExperts, &decodes(t));
            let want = expected_experts_ms(&r, touched, 2.0 * t as f64);
            assert!((got / want - 1.0).abs() < 1e-9, "T={t}: {got} vs {want}");
        }
        // Sublinear: 256 decodes cost about 4× one decode (8 experts touched instead of 2), and
        // the time per token falls with every doubling of the batch.
        let one = r.layer_op_ms(Op::MoeExperts, &decodes(1));
        let big = r.layer_op_ms(Op::MoeExperts, &decodes(256));
        assert!(big / one > 3.5 && big / one < 6.0, "{}", big / one);
        let mut prev = f64::INFINITY;
        for t in [1u64, 2, 4, 8, 16, 32, 64, 128, 256] {
            let per_token = r.layer_op_ms(Op::MoeExperts, &decodes(t)) / t as f64;
            assert!(per_token < prev, "T={t}");
            prev = per_token;
        }

        // DeepSeek-V3 in FP8 with EP 8 of TP 8 on H200: 32 of the 256 experts on each GPU, top-8.
        let cat = Catalog::builtin();
        let (m, h200) = (
            cat.model("deepseek-ai/DeepSeek-V3").unwrap(),
            cat.device("h200").unwrap(),
        );
        let prec = Precision::resolve(&m, &h200, &Default::default()).unwrap();
        assert!(prec.fp8_compute);
        let r = Roofline::new(
            &m,
            &h200,
            &cat.node("h200_dgx").unwrap(),
            Parallelism::new(8, 1).with_ep(8),
            RooflineEfficiency::default(),
        )
        .with_precision(&prec);
        assert_eq!(r.weight_bytes, 1.0);
        for (t, touched) in [
            (1u64, 8.0),
            (2, 15.75),
            (8, 57.42083078599535),
            (64, 222.4424876855104),
            (256, 255.92441438744697),
        ] {
            // This GPU holds 32 of 256 experts: an eighth of the touched ones and assignments.
            let got = r.layer_op_ms(Op::MoeExperts, &decodes(t));
            let want = expected_experts_ms(&r, touched / 8.0, t as f64);
            assert!((got / want - 1.0).abs() < 1e-9, "T={t}: {got} vs {want}");
        }
        let one = r.layer_op_ms(Op::MoeExperts, &decodes(1));
        let big = r.layer_op_ms(Op::MoeExperts, &decodes(256));
        assert!(big / one < 40.0, "{}", big / one);
    }

    #[test]
    fn faster_devices_are_faster_and_collectives_grow_with_size() {
        let a = roofline("meta-llama/Llama-2-7b-hf", "a100", "a100_dgx", 2);
        let h = roofline("meta-llama/Llama-2-7b-hf", "h100", "h100_dgx", 2);
        let b = batch_of(2048);
        assert!(h.layer_op_ms(Op::MlpUpProj, &b) < a.layer_op_ms(Op::MlpUpProj, &b));
        assert!(a.all_reduce_ms(4096) > a.all_reduce_ms(8));
        let mut dec = BatchShape::new();
        dec.add_decode(1000);
        let one = a.layer_op_ms(Op::AttnDecode, &dec);
        dec.add_decode(3000);
        assert!(a.layer_op_ms(Op::AttnDecode, &dec) > 2.0 * one);
    }
}
