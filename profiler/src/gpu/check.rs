//! `profiler check`: every kernel against its CPU reference on random inputs (outputs poisoned
//! first; relative L2 error ≤ 1e-2 for bf16 results, exact equality for the KV-cache write). The
//! ceilings and achieved rates are in [`super::ceilings`].

use half::bf16;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};

use super::device::{Gpu, GpuResult, Kernels};
use super::gemm::Lt;
use super::ops::PagedArgs;
use crate::reference::{self as cpu, attention as att, rel_l2, to_bf16, to_f32};

/// Largest relative L2 error accepted for bf16 outputs.
pub const TOLERANCE: f64 = 1e-2;
const POISON: u16 = 0x7fc0; // bf16 NaN

/// One correctness result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KernelCheck {
    /// What was checked.
    pub name: String,
    /// Relative L2 error against the CPU reference (0 = exact).
    pub rel_l2_error: f64,
    /// Within tolerance, no NaN, every element written.
    pub pass: bool,
}

/// One achieved-rate line.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rate {
    /// Operator and shape.
    pub name: String,
    /// Median time, ms.
    pub median_ms: f64,
    /// Achieved TFLOP/s (compute-bound operators).
    pub tflops: Option<f64>,
    /// Achieved GB/s (memory-bound operators).
    pub gb_per_s: Option<f64>,
    /// Fraction of the measured ceiling.
    pub fraction_of_ceiling: f64,
}

/// Everything `profiler check` measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckReport {
    /// Correctness results.
    pub kernels: Vec<KernelCheck>,
    /// Device-to-device copy rate (bytes read + written), GB/s.
    pub copy_gb_per_s: f64,
    /// 8192³ bf16 cuBLASLt GEMM, TFLOP/s.
    pub gemm_tflops: f64,
    /// Achieved rates of Llama-3-8B operators (TP 1).
    pub rates: Vec<Rate>,
}

impl CheckReport {
    /// True when every correctness check passed.
    pub fn all_pass(&self) -> bool {
        self.kernels.iter().all(|k| k.pass)
    }
}

fn rnd(rng: &mut StdRng, n: usize, lo: f32, hi: f32) -> Vec<bf16> {
    to_bf16(&(0..n).map(|_| rng.random_range(lo..hi)).collect::<Vec<_>>())
}

fn verdict(name: &str, got: &[bf16], want: &[f32]) -> KernelCheck {
    let err = rel_l2(&to_f32(got), want);
    KernelCheck {
        name: name.into(),
        rel_l2_error: err,
        pass: err <= TOLERANCE,
    }
}

fn poisoned(gpu: &Gpu, elems: usize) -> GpuResult<super::Buffer> {
    let b = gpu.alloc(elems * 2)?;
    gpu.fill_u16(&b, POISON)?;
    Ok(b)
}

/// Checks every kernel and the GEMM against the CPU references.
pub fn correctness(gpu: &Gpu, k: &Kernels, lt: &Lt, seed: u64) -> GpuResult<Vec<KernelCheck>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let s = gpu.stream;
    let sms = gpu.info.sms;
    let mut out = Vec::new();
    let (rows, h) = (37usize, 4096usize);

    let x = rnd(&mut rng, rows * h, -2.0, 2.0);
    let w = rnd(&mut rng, h, 0.5, 1.5);
    let (dx, dw) = (gpu.upload(&x)?, gpu.upload(&w)?);
    let dout = poisoned(gpu, rows * h)?;
    k.rms_norm(
        s,
        dout.ptr(),
        dx.ptr(),
        dw.ptr(),
        1e-5,
        rows as u64,
        h as u64,
    )?;
    let want = to_f32(&cpu::rms_norm(&x, &w, h, 1e-5));
    out.push(verdict("rms_norm", &gpu.download(&dout, rows * h)?, &want));

    let res = rnd(&mut rng, rows * h, -2.0, 2.0);
    let (dxx, dres) = (gpu.upload(&x)?, gpu.upload(&res)?);
    k.fused_add_rms_norm(
        s,
        dxx.ptr(),
        dres.ptr(),
        dw.ptr(),
        1e-5,
        rows as u64,
        h as u64,
    )?;
    let (mut cx, mut cres) = (x.clone(), res.clone());
    cpu::fused_add_rms_norm(&mut cx, &mut cres, &w, h, 1e-5);
    out.push(verdict(
        "fused_add_rms_norm (x)",
        &gpu.download(&dxx, rows * h)?,
        &to_f32(&cx),
    ));
    out.push(verdict(
        "fused_add_rms_norm (residual)",
        &gpu.download(&dres, rows * h)?,
        &to_f32(&cres),
    ));

    let (qh, kvh, d) = (8usize, 2usize, 128usize);
    let stride = (qh + 2 * kvh) * d;
    let qkv = rnd(&mut rng, rows * stride, -1.0, 1.0);
    let pos: Vec<i32> = (0..rows).map(|_| rng.random_range(0..4096)).collect();
    let cs = cpu::cos_sin_cache(4096, d, 500000.0);
    let (dqkv, dpos, dcs) = (gpu.upload(&qkv)?, gpu.upload(&pos)?, gpu.upload(&cs)?);
    k.rotary(
        s,
        dqkv.ptr(),
        dpos.ptr(),
        dcs.ptr(),
        rows as u64,
        qh as u64,
        kvh as u64,
        d as u64,
        stride as u64,
    )?;
    let mut cq = qkv.clone();
    cpu::rotary_neox(&mut cq, &pos, &cs, qh + kvh, d, stride);
    let gq: Vec<bf16> = gpu.download(&dqkv, rows * stride)?;
    out.push(verdict("rotary_neox", &gq, &to_f32(&cq)));

    let width = 1792usize;
    let gu = rnd(&mut rng, rows * 2 * width, -4.0, 4.0);
    let dgu = gpu.upload(&gu)?;
    let dact = poisoned(gpu, rows * width)?;
    k.silu_and_mul(s, dact.ptr(), dgu.ptr(), rows as u64, width as u64, sms)?;
    out.push(verdict(
        "silu_and_mul",
        &gpu.download(&dact, rows * width)?,
        &to_f32(&cpu::silu_and_mul(&gu, width)),
    ));

    let dsum = poisoned(gpu, rows * h)?;
    let dres_in = gpu.upload(&res)?;
    k.residual_add(
        s,
        dsum.ptr(),
        dx.ptr(),
        dres_in.ptr(),
        (rows * h) as u64,
        sms,
    )?;
    out.push(verdict(
        "residual_add",
        &gpu.download(&dsum, rows * h)?,
        &to_f32(&cpu::residual_add(&x, &res)),
    ));

    // KV write: exact, and untouched slots keep their sentinel
    let pages = 64usize;
    let kv_width = kvh * d;
    let sentinel = bf16::from_f32(-3.5);
    let cache_elems = pages * 16 * kv_width;
    let mut slots: Vec<i64> = (0..(pages * 16) as i64).collect();
    slots.shuffle(&mut rng);
    slots.truncate(rows);
    let (dkc, dvc) = (
        gpu.upload(&vec![sentinel; cache_elems])?,
        gpu.upload(&vec![sentinel; cache_elems])?,
    );
    let dslots = gpu.upload(&slots)?;
    let kp = dqkv.ptr() + (qh * d * 2) as u64;
    let vp = kp + (kvh * d * 2) as u64;
    k.reshape_and_cache(
        s,
        kp,
        vp,
        dkc.ptr(),
        dvc.ptr(),
        dslots.ptr(),
        rows as u64,
        kvh as u64,
        d as u64,
        stride as u64,
    )?;
    let (mut ckc, mut cvc) = (vec![sentinel; cache_elems], vec![sentinel; cache_elems]);
    cpu::reshape_and_cache(
        &gq[qh * d..],
        &gq[(qh + kvh) * d..],
        &mut ckc,
        &mut cvc,
        &slots,
        kv_width,
        stride,
    );
    let gk: Vec<bf16> = gpu.download(&dkc, cache_elems)?;
    let gv: Vec<bf16> = gpu.download(&dvc, cache_elems)?;
    let exact = gk == ckc && gv == cvc;
    out.push(KernelCheck {
        name: "reshape_and_cache (exact)".into(),
        rel_l2_error: if exact {
            0.0
        } else {
            rel_l2(&to_f32(&gk), &to_f32(&ckc)).max(1.0)
        },
        pass: exact,
    });

    let (vocab_rank, eh) = (1000usize, 512usize);
    let table = rnd(&mut rng, vocab_rank * eh, -1.0, 1.0);
    let ids: Vec<i32> = (0..rows)
        .map(|_| rng.random_range(0..2 * vocab_rank as i32))
        .collect();
    let demb = poisoned(gpu, rows * eh)?;
    let (dids, dtable) = (gpu.upload(&ids)?, gpu.upload(&table)?);
    k.embedding(
        s,
        demb.ptr(),
        dids.ptr(),
        dtable.ptr(),
        rows as u64,
        eh as u64,
        vocab_rank as i32,
        2 * vocab_rank as i32,
    )?;
    let want = cpu::embedding(&ids, &table, eh, vocab_rank as i32, 2 * vocab_rank as i32);
    out.push(verdict(
        "embedding",
        &gpu.download(&demb, rows * eh)?,
        &to_f32(&want),
    ));

    out.extend(attention(gpu, k, &mut rng)?);
    out.extend(super::ceilings::timer(gpu, k)?);

    let (m, n, kk) = (37u64, 256u64, 512u64);
    let xa = rnd(&mut rng, (m * kk) as usize, -1.0, 1.0);
    let wa = rnd(&mut rng, (n * kk) as usize, -1.0, 1.0);
    let dy = poisoned(gpu, (m * n) as usize)?;
    let plan = lt.plan(m, n, kk)?;
    let (dwa, dxa) = (gpu.upload(&wa)?, gpu.upload(&xa)?);
    lt.run(&plan, dwa.ptr(), dxa.ptr(), dy.ptr(), s)?;
    let want = cpu::gemm_tn(&xa, &wa, m as usize, n as usize, kk as usize);
    out.push(verdict(
        "cublaslt gemm 37x256x512",
        &gpu.download(&dy, (m * n) as usize)?,
        &want,
    ));
    Ok(out)
}

fn attention(gpu: &Gpu, k: &Kernels, rng: &mut StdRng) -> GpuResult<Vec<KernelCheck>> {
    let (qh, kvh, d, page) = (8usize, 2usize, 128usize, 16usize);
    let scale = 1.0 / (d as f32).sqrt();
    let s = gpu.stream;
    let run = |rng: &mut StdRng,
               q_lens: &[usize],
               prefixes: &[usize],
               prefill: bool|
     -> GpuResult<KernelCheck> {
        let kv_lens: Vec<usize> = q_lens.iter().zip(prefixes).map(|(q, p)| q + p).collect();
        let blocks: Vec<usize> = kv_lens.iter().map(|l| l.div_ceil(page)).collect();
        let total_pages = blocks.iter().sum::<usize>() + 7;
        let mut ids: Vec<i32> = (0..total_pages as i32).collect();
        ids.shuffle(rng);
        let max_blocks = *blocks.iter().max().unwrap();
        let mut table = vec![0i32; q_lens.len() * max_blocks];
        let mut seqs = Vec::new();
        let mut next = 0;
        for (i, &b) in blocks.iter().enumerate() {
            let bt = ids[next..next + b].to_vec();
            next += b;
            table[i * max_blocks..i * max_blocks + b].copy_from_slice(&bt);
            seqs.push(att::Seq {
                q_len: q_lens[i],
                kv_len: kv_lens[i],
                block_table: bt,
            });
        }
        let cache = total_pages * page * kvh * d;
        let kc = rnd(rng, cache, -1.0, 1.0);
        let vc = rnd(rng, cache, -1.0, 1.0);
        let rows: usize = q_lens.iter().sum();
        let q = rnd(rng, rows * qh * d, -1.0, 1.0);
        let kv = att::PagedKv {
            k: kc.clone(),
            v: vc.clone(),
            kv_heads: kvh,
            d,
            page,
        };
        let qs = att::Queries {
            q: &q,
            stride: qh * d,
            q_heads: qh,
        };
        let want = att::naive(qs, &seqs, &kv, scale);
        let dout = poisoned(gpu, rows * qh * d)?;
        let (dq, dk, dv) = (gpu.upload(&q)?, gpu.upload(&kc)?, gpu.upload(&vc)?);
        let dt = gpu.upload(&table)?;
        let lens: Vec<i32> = kv_lens.iter().map(|&l| l as i32).collect();
        let dl = gpu.upload(&lens)?;
        let args = PagedArgs {
            out: dout.ptr(),
            q: dq.ptr(),
            q_stride: (qh * d) as i32,
            k_cache: dk.ptr(),
            v_cache: dv.ptr(),
            block_tables: dt.ptr(),
            max_blocks: max_blocks as i32,
            seq_lens: dl.ptr(),
            q_heads: qh as i32,
            kv_heads: kvh as i32,
            scale,
        };
        let name = if prefill {
            let mut cu = vec![0i32];
            for &ql in q_lens {
                cu.push(cu.last().unwrap() + ql as i32);
            }
            let dcu = gpu.upload(&cu)?;
            k.prefill(
                s,
                &args,
                dcu.ptr(),
                q_lens.len() as u32,
                *q_lens.iter().max().unwrap() as u64,
            )?;
            format!("paged_prefill q {q_lens:?} prefix {prefixes:?}")
        } else {
            let max_len = *kv_lens.iter().max().unwrap();
            let (splits, keys) = att::decode_splits(
                q_lens.len(),
                kvh,
                max_len,
                gpu.info.sms as usize,
                crate::kernels::DECODE_SPLIT_MAX_KEYS as usize,
            );
            let parts = q_lens.len() * qh * splits;
            let op = gpu.alloc(parts * d * 4)?;
            let lse = gpu.alloc(parts * 4)?;
            k.decode(
                s,
                &args,
                op.ptr(),
                lse.ptr(),
                q_lens.len() as u32,
                splits as u32,
                keys as u32,
            )?;
            format!("paged_decode contexts {kv_lens:?} ({splits} splits)")
        };
        Ok(verdict(&name, &gpu.download(&dout, rows * qh * d)?, &want))
    };
    Ok(vec![
        run(rng, &[37, 130], &[0, 200], true)?,
        run(rng, &[1, 1, 1, 1, 1], &[0, 16, 199, 999, 2999], false)?,
    ])
}
