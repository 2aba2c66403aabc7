//! Each term of the engine model against a hand computation.

use super::*;
use crate::catalog::{Catalog, MoeSpec};

/// Coefficients that make hand computation easy: full peaks, no floors, no overheads.
fn ideal() -> EngineCoefficients {
    EngineCoefficients {
        gemm_bandwidth: 1.0,
        gemm_compute: 1.0,
        gemm_overhead_us: 0.0,
        attn_proj_bandwidth: 1.0,
        moe_bandwidth_ratio: 1.0,
        moe_compute: 1.0,
        moe_expert_us: 0.0,
        attention_bandwidth: 1.0,
        attention_overhead_us: 0.0,
        attention_compute: 1.0,
        elementwise_bandwidth: 1.0,
        kernel_floor_us: 0.0,
        allreduce_latency_us: 0.0,
        allreduce_latency_per_gpu_us: 0.0,
        allreduce_bandwidth: 1.0,
        nccl_latency_us: 0.0,
        nccl_bandwidth: 1.0,
        graph_launch_us: 0.0,
        eager_launch_us: 0.0,
        step_gpu_us: 0.0,
        sampler_filter_bytes_per_logit: 0.0,
        sampler_filter_step_us: 0.0,
        cpu_step_us: 0.0,
        cpu_per_request_us: 0.0,
        cpu_overlap: 0.0,
        frontend_ms: 0.0,
        ..Default::default()
    }
}

fn model_on(name: &str, tp: u32, c: EngineCoefficients) -> (ModelSpec, EngineModel) {
    model_with(name, tp, c, false)
}

/// [`model_on`], with or without asynchronous scheduling.
fn model_with(
    name: &str,
    tp: u32,
    c: EngineCoefficients,
    async_scheduling: bool,
) -> (ModelSpec, EngineModel) {
    let cat = Catalog::builtin();
    let m = cat.model(name).unwrap();
    let em = EngineModel::new(
        &m,
        &cat.device("h100").unwrap(),
        &cat.node("h100_dgx").unwrap(),
        Parallelism::new(tp, 1),
        Precision::BF16,
        EngineSettings {
            max_num_seqs: 128,
            async_scheduling,
            ..Default::default()
        },
        c,
        "test",
    );
    (m, em)
}

fn decodes(n: u32, ctx: u64) -> BatchShape {
    let mut b = BatchShape::new();
    for _ in 0..n {
        b.add_decode(ctx);
    }
    b
}

const BW: f64 = 3.35e12;
const PEAK: f64 = 989.4e12;

#[test]
fn capture_sizes_follow_vllm_and_decodes_pad_up() {
    let s = capture_sizes(256);
    assert_eq!(&s[..5], &[1, 2, 4, 8, 16]);
    assert_eq!(s.len(), 3 + 31 + 1);
    assert_eq!(*s.last().unwrap(), 256);
    assert_eq!(&capture_sizes(300)[34..], &[256, 272, 288, 300]);
    assert!(capture_sizes(0).is_empty());
    let (_, em) = model_on("meta-llama/Llama-2-7b-hf", 1, ideal());
    assert_eq!(em.capture_limit, 256);
    assert_eq!(em.launch(&decodes(33, 10)), (Launch::FullGraph, 40.0));
    let mut mixed = decodes(3, 10);
    mixed.add_prefill(100, 0);
    assert_eq!(em.launch(&mixed), (Launch::Piecewise, 104.0));
    let mut big = BatchShape::new();
    big.add_prefill(1000, 0);
    assert_eq!(em.launch(&big), (Launch::Eager, 1000.0));
}

#[test]
fn decode_step_terms_by_hand() {
    // Llama-2-7b, TP1, one decode at context 1000, ideal coefficients; the batch pads to 1.
    let (_, em) = model_on("meta-llama/Llama-2-7b-hf", 1, ideal());
    let t = em.stage_time(&decodes(1, 1000), 0).ops_ms;
    let e = 4096.0;
    // QKV: 4096 × 12288 weights (2 B) + (4096 + 12288) activations (2 B), memory bound.
    let qkv = (e * 3.0 * e * 2.0 + (e + 3.0 * e) * 2.0) / BW * 1e3;
    assert!((t.get(Op::AttnPreProj) - 32.0 * qkv).abs() < 1e-9 * qkv);
    // Gate/up: 4096 × 22016; down: 11008 × 4096.
    let up = (e * 22016.0 * 2.0 + (e + 22016.0) * 2.0) / BW * 1e3;
    assert!((t.get(Op::MlpUpProj) - 32.0 * up).abs() < 1e-9 * up);
    // Decode attention reads 1000 tokens × 32 heads × 128 × (K, V) × 2 B.
    let kv = 1000.0 * 32.0 * 128.0 * 2.0 * 2.0;
    let attn = (kv + 2.0 * 32.0 * 128.0 * 2.0) / BW * 1e3;
    assert!((t.get(Op::AttnDecode) - 32.0 * attn).abs() < 1e-9 * attn);
    // Fused add+RMSNorm: 4 · 4096 elements of 2 B, twice per layer.
    let norm = 4.0 * e * 2.0 / BW * 1e3;
    assert!((t.get(Op::InputLayernorm) - 32.0 * norm).abs() < 1e-12);
    assert!((t.get(Op::PostAttentionLayernorm) - 32.0 * norm).abs() < 1e-12);
    // No TP, no launch or CPU costs, no prefill, no MoE.
    for op in [
        Op::AllReduce,
        Op::AttnPrefill,
        Op::MoeExperts,
        Op::LaunchOverhead,
        Op::CpuOverhead,
        Op::SendRecv,
    ] {
        assert_eq!(t.get(op), 0.0, "{op}");
    }
    // LM head: embedding gather, final norm, 32000 × 4096 weights, logits, sampling.
    let head =
        (2.0 * e * 2.0 + 2.0 * e * 2.0 + e * 32000.0 * 2.0 + 32000.0 * 4.0 + 3.0 * 32000.0 * 4.0)
            / BW
            * 1e3;
    assert!(
        (t.get(Op::LmHead) - head).abs() < 1e-6 * head,
        "{} {head}",
        t.get(Op::LmHead)
    );
    assert_eq!(em.frontend_ns(), 0);
}

#[test]
fn prefill_attention_is_causal_flash_attention() {
    let (_, em) = model_on("meta-llama/Llama-2-7b-hf", 1, ideal());
    let mut b = BatchShape::new();
    b.add_prefill(2048, 0);
    let t = em.stage_time(&b, 0).ops_ms;
    // 4 · 32 heads · 128 · (2048 · 2049 / 2) FLOPs, compute bound at the BF16 peak.
    let flops = 4.0 * 32.0 * 128.0 * 2048.0 * 2049.0 / 2.0;
    let expect = 32.0 * flops / PEAK * 1e3;
    assert!((t.get(Op::AttnPrefill) - expect).abs() < 1e-9 * expect);
    // A compute-bound GEMM: 2 · 2048 · 4096 · 12288 FLOPs at the peak.
    let qkv = 2.0 * 2048.0 * 4096.0 * 12288.0 / PEAK * 1e3;
    assert!((t.get(Op::AttnPreProj) - 32.0 * qkv).abs() < 1e-9 * qkv);
}

#[test]
fn all_reduce_uses_the_custom_kernel_below_its_limit_and_nccl_above() {
    let c = EngineCoefficients {
        allreduce_latency_us: 3.0,
        allreduce_latency_per_gpu_us: 1.0,
        nccl_latency_us: 7.0,
        custom_allreduce_max_bytes: 1e6,
        ..ideal()
    };
    let (_, em) = model_on("meta-llama/Llama-2-7b-hf", 4, c);
    let link = 450e9;
    // 32 tokens × 4096 × 2 B = 262,144 B: custom, 3 µs + 2 × 1 µs + 2·(3/4)·bytes / link.
    let small = 32.0 * 4096.0 * 2.0;
    let custom = 5e-6 + 1.5 * small / link;
    assert!((em.all_reduce_s(small) - custom).abs() < 1e-15);
    // 2 MB: NCCL ring, 6 steps of (4 µs link + 7 µs) + 1.5 · bytes / link.
    let big = 2e6;
    let nccl = 6.0 * (4e-6 + 7e-6) + 1.5 * big / link;
    assert!((em.all_reduce_s(big) - nccl).abs() < 1e-15);
    // Two all-reduces per layer in the step.
    let t = em.stage_time(&decodes(32, 100), 0).ops_ms;
    assert!((t.get(Op::AllReduce) - 32.0 * 2.0 * custom * 1e3).abs() < 1e-9);
}

#[test]
fn launch_modes_and_cpu_time() {
    let c = EngineCoefficients {
        graph_launch_us: 30.0,
        eager_launch_us: 1000.0,
        cpu_step_us: 500.0,
        cpu_per_request_us: 10.0,
        frontend_ms: 12.5,
        ..ideal()
    };
    let (_, em) = model_on("meta-llama/Llama-2-7b-hf", 1, c);
    // Full graph: one replay, no per-layer gaps.
    let d = em.stage_time(&decodes(8, 100), 0).ops_ms;
    assert!((d.get(Op::LaunchOverhead) - 0.030).abs() < 1e-12);
    // CPU: 500 µs + 8 × 10 µs, not overlapped.
    assert!((d.get(Op::CpuOverhead) - 0.58).abs() < 1e-12);
    // Piecewise: two eager launches (2 ms) per layer dwarf a small layer's GPU time.
    let mut mixed = decodes(7, 100);
    mixed.add_prefill(8, 0);
    let p = em.stage_time(&mixed, 0).ops_ms;
    let gpu_layer =
        (p.total_ms() - p.get(Op::LaunchOverhead) - p.get(Op::CpuOverhead) - p.get(Op::LmHead))
            / 32.0;
    let expect = 0.030 + 32.0 * (2.0 - gpu_layer);
    assert!(
        (p.get(Op::LaunchOverhead) - expect).abs() < 1e-9,
        "{} vs {expect}",
        p.get(Op::LaunchOverhead)
    );
    assert_eq!(em.frontend_ns(), 12_500_000);
    // Full overlap hides the CPU behind a long enough step, with asynchronous scheduling only.
    let full = EngineCoefficients {
        cpu_overlap: 1.0,
        ..c
    };
    let (_, over) = model_with("meta-llama/Llama-2-7b-hf", 1, full, true);
    assert_eq!(
        over.stage_time(&decodes(8, 100), 0)
            .ops_ms
            .get(Op::CpuOverhead),
        0.0
    );
    let (_, sync) = model_on("meta-llama/Llama-2-7b-hf", 1, full);
    let s = sync.stage_time(&decodes(8, 100), 0).ops_ms;
    assert!((s.get(Op::CpuOverhead) - 0.58).abs() < 1e-12);
    // Half overlap hides half the GPU time: a 0.58 ms CPU step behind a step of g ms shows
    // max(0, 0.58 − g/2).
    let (_, half) = model_with(
        "meta-llama/Llama-2-7b-hf",
        1,
        EngineCoefficients {
            cpu_overlap: 0.5,
            ..c
        },
        true,
    );
    let h = half.stage_time(&decodes(8, 100), 0).ops_ms;
    let gpu = h.total_ms() - h.get(Op::CpuOverhead);
    assert!((h.get(Op::CpuOverhead) - (0.58 - 0.5 * gpu).max(0.0)).abs() < 1e-12);
}

#[test]
fn step_gpu_time_is_paid_once_per_step_on_the_last_stage_in_every_launch_mode() {
    let c = EngineCoefficients {
        step_gpu_us: 250.0,
        cpu_overlap: 1.0,
        ..ideal()
    };
    let (_, base) = model_with("meta-llama/Llama-2-7b-hf", 1, ideal(), true);
    let (_, em) = model_with("meta-llama/Llama-2-7b-hf", 1, c, true);
    // A full-graph decode step, a piecewise mixed step and an eager prefill of 4096 tokens.
    let mut mixed = decodes(7, 100);
    mixed.add_prefill(8, 0);
    let mut eager = BatchShape::new();
    eager.add_prefill(4096, 0);
    for b in [decodes(8, 100), mixed, eager] {
        let with = em.stage_time(&b, 0).ops_ms;
        let without = base.stage_time(&b, 0).ops_ms;
        assert!((with.get(Op::LmHead) - without.get(Op::LmHead) - 0.25).abs() < 1e-12);
        assert!((with.total_ms() - without.total_ms() - 0.25).abs() < 1e-9);
    }
    // With two pipeline stages, only the last pays it.
    let cat = Catalog::builtin();
    let m = cat.model("meta-llama/Llama-2-7b-hf").unwrap();
    let pp = |c| {
        EngineModel::new(
            &m,
            &cat.device("h100").unwrap(),
            &cat.node("h100_dgx").unwrap(),
            Parallelism::new(1, 2),
            Precision::BF16,
            EngineSettings::default(),
            c,
            "test",
        )
    };
    let (with, without) = (pp(c), pp(ideal()));
    let b = decodes(8, 100);
    assert_eq!(
        with.stage_time(&b, 0).ops_ms.total_ms(),
        without.stage_time(&b, 0).ops_ms.total_ms()
    );
    let last =
        with.stage_time(&b, 1).ops_ms.total_ms() - without.stage_time(&b, 1).ops_ms.total_ms();
    assert!((last - 0.25).abs() < 1e-9);
}

#[test]
fn moe_decode_grows_sublinearly_until_every_expert_is_touched() {
    let cat = Catalog::builtin();
    let mut m = cat.model("meta-llama/Llama-2-7b-hf").unwrap();
    m.moe = Some(MoeSpec {
        num_experts: 8,
        experts_per_token: 2,
        expert_intermediate_size: 11008,
        num_shared_experts: 0,
        shared_expert_intermediate_size: 0,
        first_dense_layers: 0,
        layer_step: 1,
    });
    let em = EngineModel::new(
        &m,
        &cat.device("h100").unwrap(),
        &cat.node("h100_dgx").unwrap(),
        Parallelism::new(1, 1),
        Precision::BF16,
        EngineSettings::default(),
        ideal(),
        "test",
    );
    let experts = |n: u32| {
        em.stage_time(&decodes(n, 100), 0)
            .ops_ms
            .get(Op::MoeExperts)
    };
    // One token touches 2 of 8 experts: 2 experts' weights, 2 · 3 · 4096 · 11008 · 2 B.
    let one = 2.0 * 3.0 * 4096.0 * 11008.0 * 2.0 / BW * 1e3 * 32.0;
    let act = 2.0 * (2.0 * 4096.0 + 3.0 * 11008.0) * 2.0 / BW * 1e3 * 32.0;
    assert!((experts(1) - (one + act)).abs() < 1e-9 * one);
    // Sublinear: 16 tokens cost far less than 16 × one token; saturates at 4 × one (all 8).
    assert!(experts(16) < 5.0 * experts(1));
    assert!(experts(64) < 4.2 * one + 64.0 * act);
    let mut last = 0.0;
    for n in [1, 2, 4, 8, 16, 32, 64, 128, 256] {
        let x = experts(n);
        assert!(x >= last, "{n}");
        last = x;
    }
    // Dense MLP ops are absent on MoE layers.
    assert_eq!(
        em.stage_time(&decodes(4, 100), 0).ops_ms.get(Op::MlpUpProj),
        0.0
    );
}

/// The sampler's filtering costs `sampler_filter_step_us` per step and
/// `sampler_filter_bytes_per_logit` of traffic per logit of every sampled request, for models whose
/// generation defaults filter (or `filtered` requests), and nothing otherwise.
#[test]
fn top_p_filtering_sorts_every_sampled_requests_logits() {
    let c = EngineCoefficients {
        sampler_filter_bytes_per_logit: 40.0,
        sampler_filter_step_us: 70.0,
        ..ideal()
    };
    let zero = ideal();
    let cat = Catalog::builtin();
    let m = cat.model("Qwen/Qwen2.5-7B-Instruct").unwrap();
    assert!(m.generation.as_ref().unwrap().filters_logits(m.vocab_size));
    let build = |m: &ModelSpec, c, sampling| {
        EngineModel::new(
            m,
            &cat.device("h100").unwrap(),
            &cat.node("h100_dgx").unwrap(),
            Parallelism::new(1, 1),
            Precision::BF16,
            EngineSettings {
                max_num_seqs: 128,
                sampling,
                ..Default::default()
            },
            c,
            "test",
        )
    };
    // 12 decodes and a prefill that completes: 13 sampled rows of 152,064 logits.
    let mut b = decodes(12, 300);
    b.add_prefill(50, 0);
    let head = |em: &EngineModel| em.stage_time(&b, 0).ops_ms.get(Op::LmHead);
    let want = (13.0 * 152_064.0 * 40.0 / BW + 70e-6) * 1e3;
    let extra =
        head(&build(&m, c, SamplingChoice::Auto)) - head(&build(&m, zero, SamplingChoice::Auto));
    assert!((extra - want).abs() < 1e-9, "{extra} vs {want}");
    // Plain sampling, or a model without filtering defaults, pays nothing; `filtered` pays.
    let plain = build(&m, c, SamplingChoice::Plain);
    assert_eq!(head(&plain), head(&build(&m, zero, SamplingChoice::Auto)));
    let mut bare = m.clone();
    bare.generation = None;
    assert_eq!(
        head(&build(&bare, c, SamplingChoice::Auto)),
        head(&build(&bare, zero, SamplingChoice::Auto))
    );
    let forced = head(&build(&bare, c, SamplingChoice::Filtered))
        - head(&build(&bare, zero, SamplingChoice::Filtered));
    assert!((forced - want).abs() < 1e-9);
    // Greedy defaults filter nothing.
    let mut greedy = m.clone();
    greedy.generation.as_mut().unwrap().temperature = Some(0.0);
    assert_eq!(
        head(&build(&greedy, c, SamplingChoice::Auto)),
        head(&build(&greedy, zero, SamplingChoice::Auto))
    );
}

/// `attention_overhead_us` is added once per attention kernel: per layer, to the decode attention
/// of a decode step and to both kinds in a mixed step.
#[test]
fn attention_overhead_is_paid_per_layer_and_kernel() {
    let c = EngineCoefficients {
        attention_overhead_us: 5.0,
        ..ideal()
    };
    let (_, base) = model_on("meta-llama/Llama-2-7b-hf", 1, ideal());
    let (_, em) = model_on("meta-llama/Llama-2-7b-hf", 1, c);
    let mut mixed = decodes(3, 500);
    mixed.add_prefill(64, 0);
    for (b, prefill) in [(decodes(8, 500), 0.0), (mixed, 1.0)] {
        let with = em.stage_time(&b, 0).ops_ms;
        let without = base.stage_time(&b, 0).ops_ms;
        let d = with.get(Op::AttnDecode) - without.get(Op::AttnDecode);
        let p = with.get(Op::AttnPrefill) - without.get(Op::AttnPrefill);
        assert!((d - 32.0 * 5e-3).abs() < 1e-12, "{d}");
        assert!((p - prefill * 32.0 * 5e-3).abs() < 1e-12, "{p}");
        let total = with.total_ms() - without.total_ms();
        assert!(
            (total - (1.0 + prefill) * 32.0 * 5e-3).abs() < 1e-9,
            "{total}"
        );
    }
}
