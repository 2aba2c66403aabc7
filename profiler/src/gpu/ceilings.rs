//! The measured ceilings of the device (device-to-device copy, an 8192³ bf16 GEMM), the timing
//! harness against a known duration, and the achieved rates of Llama-3-8B operators as a fraction of
//! those ceilings (part of `profiler check`).

use super::check::{KernelCheck, Rate};
use super::device::{drv, Gpu, GpuResult, Kernels};
use super::gemm::Lt;
use super::sweep::Bench;
use super::timer::time_block;
use crate::plan::{AttentionPoint, MlpOp, Reps, Work};
use crate::shapes::RankShapes;

/// Median time of `launch` in ms over 10 samples after 2 warm-ups (NaN without samples), with the
/// timing mode used.
fn median_ms(
    gpu: &Gpu,
    launch: &mut dyn FnMut(usize) -> GpuResult<()>,
    graphs: bool,
) -> GpuResult<(f64, super::timer::TimingMode)> {
    let reps = Reps {
        warmup: 2,
        samples: 10,
        inner: 1,
    };
    let (samples, mode) = time_block(gpu, reps, launch, graphs)?;
    let med = crate::stats::TimeStats::from_samples(&samples)
        .map(|t| t.median_ms)
        .unwrap_or(f64::NAN);
    Ok((med, mode))
}

/// The timing harness against a known duration: a 100 µs spin (GPU global timer), timed in graph
/// and in stream mode; the "error" is the relative deviation of the median, accepted within 10 %
/// (launch overhead adds a few µs).
pub fn timer(gpu: &Gpu, k: &Kernels) -> GpuResult<Vec<KernelCheck>> {
    let mut out = Vec::new();
    for graphs in [true, false] {
        let mut launch = |_r: usize| k.spin_wait(gpu.stream, 100_000);
        let (med, mode) = median_ms(gpu, &mut launch, graphs)?;
        let dev = (med - 0.1).abs() / 0.1;
        out.push(KernelCheck {
            name: format!(
                "timer: 100 us spin measured {:.1} us ({mode:?} mode)",
                med * 1e3
            ),
            rel_l2_error: dev,
            pass: dev <= 0.1,
        });
    }
    Ok(out)
}

fn memcpy_rate(gpu: &Gpu) -> GpuResult<f64> {
    let bytes = 512usize << 20;
    let (a, b) = (gpu.alloc(bytes)?, gpu.alloc(bytes)?);
    let s = gpu.stream;
    let mut launch = |_r: usize| {
        // SAFETY: both buffers hold `bytes`.
        drv("cuMemcpyDtoDAsync", unsafe {
            cudarc::driver::sys::cuMemcpyDtoDAsync_v2(b.ptr(), a.ptr(), bytes, s).result()
        })
    };
    let (med, _) = median_ms(gpu, &mut launch, true)?;
    Ok(2.0 * bytes as f64 / (med * 1e-3) / 1e9)
}

fn gemm_rate(gpu: &Gpu, k: &Kernels, lt: &Lt) -> GpuResult<f64> {
    let n = 8192u64;
    let mk = |seed| -> GpuResult<super::Buffer> {
        let b = gpu.alloc((n * n * 2) as usize)?;
        k.fill_random(gpu.stream, b.ptr(), n * n, seed, 0.05, gpu.info.sms)?;
        Ok(b)
    };
    let (x, w, y) = (mk(1)?, mk(2)?, mk(3)?);
    let plan = lt.plan(n, n, n)?;
    let s = gpu.stream;
    // about a second of large GEMMs first, to bring the clocks up
    for _ in 0..700 {
        lt.run(&plan, w.ptr(), x.ptr(), y.ptr(), s)?;
    }
    let mut launch = |_r: usize| lt.run(&plan, w.ptr(), x.ptr(), y.ptr(), s);
    let (med, _) = median_ms(gpu, &mut launch, true)?;
    Ok(2.0 * (n * n * n) as f64 / (med * 1e-3) / 1e12)
}

/// Measures the ceilings and the achieved rates of Llama-3-8B (TP 1) operators; `bench` provides
/// the kernels, cuBLASLt and the timing settings.
pub fn rates(bench: &mut Bench, model: &predictor::ModelSpec) -> GpuResult<(f64, f64, Vec<Rate>)> {
    let copy = memcpy_rate(bench.gpu)?;
    let gemm = gemm_rate(bench.gpu, bench.kernels, bench.lt)?;
    let s = RankShapes::new(model, 1).map_err(|e| super::GpuError::Unsupported(e.to_string()))?;
    let m = 4096u64;
    let row = bench.mlp(&s, &[m], 8192)?.remove(0);
    let mut rates = Vec::new();
    let mut push = |name: String, median_ms: f64, work: Work| {
        let secs = median_ms * 1e-3;
        let (tflops, gbs, frac) = match work {
            Work::Gemm { m, n, k } => {
                let t = 2.0 * (m * n * k) as f64 / secs / 1e12;
                (Some(t), None, t / gemm)
            }
            Work::Prefill { flops, .. } => {
                let t = flops / secs / 1e12;
                (Some(t), None, t / gemm)
            }
            Work::Memory { bytes } | Work::Decode { bytes } => {
                let g = bytes / secs / 1e9;
                (None, Some(g), g / copy)
            }
            Work::Collective { .. } => (None, None, f64::NAN),
        };
        rates.push(Rate {
            name,
            median_ms,
            tflops,
            gb_per_s: gbs,
            fraction_of_ceiling: frac,
        });
    };
    for (i, op) in MlpOp::ALL.iter().enumerate() {
        push(
            format!("{} M={m}", op.vidur_name()),
            row.stats[i].median_ms,
            op.work(&s, m),
        );
    }
    let pts = [
        AttentionPoint {
            tp: 1,
            is_prefill: true,
            batch_size: 1,
            prefill_chunk_size: 4096,
            kv_cache_size: 0,
        },
        AttentionPoint {
            tp: 1,
            is_prefill: false,
            batch_size: 64,
            prefill_chunk_size: 0,
            kv_cache_size: 4096,
        },
        AttentionPoint {
            tp: 1,
            is_prefill: false,
            batch_size: 256,
            prefill_chunk_size: 0,
            kv_cache_size: 4096,
        },
    ];
    for r in bench.attention(&s, &pts, "nvrtc_fa2")? {
        let p = r.point;
        let name = if p.is_prefill {
            format!(
                "attn_prefill q={} prefix={}",
                p.prefill_chunk_size, p.kv_cache_size
            )
        } else {
            format!("attn_decode b={} kv={}", p.batch_size, p.kv_cache_size)
        };
        push(name, r.attention.median_ms, p.attention_work(&s));
        push(
            format!("attn_kv_cache_save tokens={}", p.new_tokens()),
            r.kv_save.median_ms,
            p.kv_save_work(&s),
        );
    }
    Ok((copy, gemm, rates))
}
