//! The measurement sweeps: per-token operators (`mlp.csv`, `lm_head.csv`) and attention
//! (`attention.csv`) for every point of a [`Plan`], with a progress bar and the timing rules of
//! [`super::timer`]. Weights rotate through enough copies to exceed 3× the L2 cache (each layer's
//! weights are cold in a real forward pass); attention rotates through disjoint sets of KV pages.

use cudarc::driver::sys::CUdeviceptr;
use indicatif::{ProgressBar, ProgressStyle};
use predictor::{DeviceSpec, NodeSpec};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};

use super::device::{Buffer, Gpu, GpuError, GpuResult, Kernels};
use super::gemm::Lt;
use super::timer::{time_block, TimingMode};
use crate::kernels::PAGE_TOKENS;
use crate::output::vidur_csv::{AttentionRow, MlpRow};
use crate::plan::{AttentionPoint, Ceilings, MlpOp, Plan, Reps, Work};
use crate::reference::attention::decode_splits;
use crate::shapes::RankShapes;
use crate::stats::TimeStats;

/// RMSNorm epsilon of Llama-3.
pub const RMS_EPS: f32 = 1e-5;
/// Most copies of one operand set kept for L2 rotation.
pub const MAX_ROTATION: u64 = 16;

/// Everything a sweep needs on the GPU.
pub struct Bench<'a> {
    /// The GPU.
    pub gpu: &'a Gpu,
    /// The kernels.
    pub kernels: &'a Kernels,
    /// cuBLASLt.
    pub lt: &'a Lt,
    /// Ceilings for repetition estimates.
    pub ceilings: Ceilings,
    /// Capture blocks into CUDA graphs.
    pub graphs: bool,
    /// Seed for inputs and page tables.
    pub seed: u64,
    /// Progress bar over all measurements.
    pub progress: ProgressBar,
    /// Modes used (graph or stream), for the metadata.
    pub modes: std::collections::BTreeSet<&'static str>,
}

/// A progress bar with the estimated time left.
pub fn progress_bar(total: u64) -> ProgressBar {
    let pb = ProgressBar::new(total);
    pb.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} measurements, ETA {eta} {msg}",
        )
        .expect("valid template"),
    );
    pb
}

/// How many copies of `bytes` exceed 3× L2 (at least 1, at most [`MAX_ROTATION`]).
pub fn rotation_copies(bytes: u64, l2_bytes: u64) -> u64 {
    (3 * l2_bytes).div_ceil(bytes.max(1)).clamp(1, MAX_ROTATION)
}

impl Bench<'_> {
    fn rand_buf(&self, elems: u64, scale: f32) -> GpuResult<Buffer> {
        let b = self.gpu.alloc((elems * 2) as usize)?;
        self.kernels.fill_random(
            self.gpu.stream,
            b.ptr(),
            elems,
            (self.seed as u32).wrapping_add(elems as u32),
            scale,
            self.gpu.info.sms,
        )?;
        Ok(b)
    }

    fn time(
        &mut self,
        work: Work,
        launch: &mut dyn FnMut(usize) -> GpuResult<()>,
    ) -> GpuResult<TimeStats> {
        let est = self.ceilings.estimate_s(&work, None);
        let reps = Reps::for_estimate(est);
        let (samples, mode) = time_block(self.gpu, reps, launch, self.graphs)?;
        self.modes.insert(match mode {
            TimingMode::Graph => "graph",
            TimingMode::Stream => "stream",
        });
        self.progress.inc(1);
        TimeStats::from_samples(&samples).ok_or_else(|| {
            GpuError::Unsupported(format!("timing produced no finite samples for {work:?}"))
        })
    }

    fn weights(&self, n: u64, k: u64) -> GpuResult<Vec<Buffer>> {
        let copies = rotation_copies(2 * n * k, self.gpu.info.l2_bytes as u64);
        (0..copies).map(|_| self.rand_buf(n * k, 0.05)).collect()
    }

    /// Times every `mlp.csv` operator at each of `tokens` for one rank's shapes.
    pub fn mlp(
        &mut self,
        s: &RankShapes,
        tokens: &[u64],
        max_position: u64,
    ) -> GpuResult<Vec<MlpRow>> {
        let max_m = tokens.iter().copied().max().unwrap_or(1);
        let (h, st) = (s.hidden, self.gpu.stream);
        let x = self.rand_buf(max_m * h, 1.0)?;
        let res = self.rand_buf(max_m * h, 1.0)?;
        let out = self.rand_buf(max_m * h, 1.0)?;
        let norm_w = self.rand_buf(h, 1.0)?;
        let qkv = self.rand_buf(max_m * s.qkv.n, 1.0)?;
        let attn = self.rand_buf(max_m * s.out.k, 1.0)?;
        let up = self.rand_buf(max_m * s.gate_up.n, 1.0)?;
        let act = self.rand_buf(max_m * s.intermediate, 1.0)?;
        let table = self.rand_buf(s.vocab * h, 0.05)?;
        let mut rng = StdRng::seed_from_u64(self.seed ^ s.tp as u64);
        let positions: Vec<i32> = (0..max_m)
            .map(|_| rng.random_range(0..max_position as i32))
            .collect();
        let positions = self.gpu.upload(&positions)?;
        let cos_sin = crate::reference::cos_sin_cache(
            max_position as usize,
            s.head_dim as usize,
            s.rope_theta,
        );
        let cos_sin = self.gpu.upload(&cos_sin)?;
        // ids over the whole vocabulary, as a rank of a TP group sees them
        let full_vocab = s.vocab * s.tp as u64;
        let ids: Vec<i32> = (0..max_m)
            .map(|_| rng.random_range(0..full_vocab as i32))
            .collect();
        let ids = self.gpu.upload(&ids)?;
        let w_qkv = self.weights(s.qkv.n, s.qkv.k)?;
        let w_out = self.weights(s.out.n, s.out.k)?;
        let w_up = self.weights(s.gate_up.n, s.gate_up.k)?;
        let w_down = self.weights(s.down.n, s.down.k)?;
        let mut rows = Vec::with_capacity(tokens.len());
        for &m in tokens {
            self.progress
                .set_message(format!("mlp tp{} tokens {m}", s.tp));
            let mut stats = [TimeStats::zero(); 10];
            for (i, op) in MlpOp::ALL.iter().enumerate() {
                let work = op.work(s, m);
                let k = self.kernels;
                let sms = self.gpu.info.sms;
                let lt = self.lt;
                let gemm = |w: &[Buffer],
                            xin: CUdeviceptr,
                            yout: CUdeviceptr,
                            g: crate::shapes::GemmShape|
                 -> GpuResult<(
                    super::gemm::GemmPlan,
                    Vec<CUdeviceptr>,
                    CUdeviceptr,
                    CUdeviceptr,
                )> {
                    Ok((
                        lt.plan(m, g.n, g.k)?,
                        w.iter().map(Buffer::ptr).collect(),
                        xin,
                        yout,
                    ))
                };
                let gemm_setup = match op {
                    MlpOp::AttnPreProj => Some(gemm(&w_qkv, x.ptr(), qkv.ptr(), s.qkv)?),
                    MlpOp::AttnPostProj => Some(gemm(&w_out, attn.ptr(), out.ptr(), s.out)?),
                    MlpOp::MlpUpProj => Some(gemm(&w_up, x.ptr(), up.ptr(), s.gate_up)?),
                    MlpOp::MlpDownProj => Some(gemm(&w_down, act.ptr(), out.ptr(), s.down)?),
                    _ => None,
                };
                let vocab_start = 0i32;
                let vocab_end = s.vocab as i32;
                let mut launch = |r: usize| -> GpuResult<()> {
                    if let Some((plan, ws, xin, yout)) = &gemm_setup {
                        return lt.run(plan, ws[r % ws.len()], *xin, *yout, st);
                    }
                    match op {
                        MlpOp::Emb => k.embedding(
                            st,
                            out.ptr(),
                            ids.ptr(),
                            table.ptr(),
                            m,
                            h,
                            vocab_start,
                            vocab_end,
                        ),
                        MlpOp::InputLayernorm => {
                            k.rms_norm(st, out.ptr(), x.ptr(), norm_w.ptr(), RMS_EPS, m, h)
                        }
                        MlpOp::AttnRope => k.rotary(
                            st,
                            qkv.ptr(),
                            positions.ptr(),
                            cos_sin.ptr(),
                            m,
                            s.q_heads,
                            s.kv_heads,
                            s.head_dim,
                            s.qkv.n,
                        ),
                        MlpOp::PostAttentionLayernorm => k.fused_add_rms_norm(
                            st,
                            out.ptr(),
                            res.ptr(),
                            norm_w.ptr(),
                            RMS_EPS,
                            m,
                            h,
                        ),
                        MlpOp::MlpAct => {
                            k.silu_and_mul(st, act.ptr(), up.ptr(), m, s.intermediate, sms)
                        }
                        MlpOp::Add => k.residual_add(st, out.ptr(), x.ptr(), res.ptr(), m * h, sms),
                        _ => unreachable!("GEMMs are handled above"),
                    }
                };
                stats[i] = self.time(work, &mut launch)?;
            }
            rows.push(MlpRow {
                tp: s.tp,
                num_tokens: m,
                stats,
            });
        }
        Ok(rows)
    }

    /// Times the logits GEMM over `rows` sampled rows for one rank; `(rows, stats)`.
    pub fn lm_head(&mut self, s: &RankShapes, rows: &[u64]) -> GpuResult<Vec<(u64, TimeStats)>> {
        let max_b = rows.iter().copied().max().unwrap_or(1);
        let x = self.rand_buf(max_b * s.hidden, 1.0)?;
        let y = self.gpu.alloc((max_b * s.vocab * 2) as usize)?;
        let w = self.weights(s.lm_head.n, s.lm_head.k)?;
        let mut out = Vec::new();
        for &b in rows {
            self.progress
                .set_message(format!("lm_head tp{} rows {b}", s.tp));
            let plan = self.lt.plan(b, s.lm_head.n, s.lm_head.k)?;
            let (lt, st) = (self.lt, self.gpu.stream);
            let mut launch = |r: usize| lt.run(&plan, w[r % w.len()].ptr(), x.ptr(), y.ptr(), st);
            let work = Work::Gemm {
                m: b,
                n: s.lm_head.n,
                k: s.lm_head.k,
            };
            out.push((b, self.time(work, &mut launch)?));
        }
        Ok(out)
    }

    /// Times the KV-cache write and the attention kernel for each point of one rank.
    pub fn attention(
        &mut self,
        s: &RankShapes,
        points: &[AttentionPoint],
        backend: &str,
    ) -> GpuResult<Vec<AttentionRow>> {
        if points.is_empty() {
            return Ok(Vec::new());
        }
        s.attention_supported().map_err(GpuError::Unsupported)?;
        let st = self.gpu.stream;
        let kvb = s.kv_bytes_per_token();
        let page_bytes = PAGE_TOKENS as u64 * kvb / 2; // one of K or V
        let need_pages = |p: &AttentionPoint| -> u64 {
            let len = p.kv_cache_size + p.new_tokens() / p.batch_size.max(1);
            p.batch_size * len.div_ceil(PAGE_TOKENS as u64)
        };
        let largest = points.iter().map(need_pages).max().unwrap_or(1);
        let (free, _) = cudarc::driver::result::mem_get_info().map_err(|e| GpuError::Driver {
            call: "cuMemGetInfo",
            detail: format!("{e:?}"),
        })?;
        let budget_bytes = (free as u64 / 2).min(24 << 30);
        let budget_pages = budget_bytes / (2 * page_bytes.max(1));
        let cache_pages = (largest * 4).min(budget_pages).max(largest);
        let elems = cache_pages * page_bytes / 2;
        let k_cache = self.rand_buf(elems, 1.0)?;
        let v_cache = self.rand_buf(elems, 1.0)?;
        let max_rows = points.iter().map(|p| p.new_tokens()).max().unwrap_or(1);
        let qkv = self.rand_buf(max_rows * s.qkv.n, 1.0)?;
        let out = self
            .gpu
            .alloc((max_rows * s.q_heads * s.head_dim * 2) as usize)?;
        let mut rng = StdRng::seed_from_u64(self.seed ^ 0xA77E ^ s.tp as u64);
        let mut all_pages: Vec<i32> = (0..cache_pages as i32).collect();
        let mut rows = Vec::with_capacity(points.len());
        for p in points {
            self.progress.set_message(format!(
                "attention tp{} {} b{} q{} kv{}",
                s.tp,
                if p.is_prefill { "prefill" } else { "decode" },
                p.batch_size,
                p.prefill_chunk_size,
                p.kv_cache_size
            ));
            let pages = need_pages(p);
            let point_bytes = p.batch_size * (p.kv_cache_size + 1) * kvb;
            let copies = rotation_copies(point_bytes, self.gpu.info.l2_bytes as u64)
                .min(8)
                .min(cache_pages / pages.max(1))
                .max(1);
            all_pages.shuffle(&mut rng);
            let (kv_len, blocks_per_seq) = seq_geometry(p);
            let mut tables = Vec::new();
            let mut slots = Vec::new();
            for c in 0..copies {
                let base = (c * pages) as usize;
                let (table, slot) = paged_layout(p, &all_pages[base..base + pages as usize]);
                tables.push(self.gpu.upload(&table)?);
                slots.push(self.gpu.upload(&slot)?);
            }
            let seq_lens = self
                .gpu
                .upload(&vec![kv_len as i32; p.batch_size as usize])?;
            let cu = self.gpu.upload(&[0i32, p.prefill_chunk_size as i32])?;
            let rows_new = p.new_tokens();
            let k = self.kernels;
            let elem = 2u64;
            let k_ptr = qkv.ptr() + s.q_heads * s.head_dim * elem;
            let v_ptr = k_ptr + s.kv_heads * s.head_dim * elem;
            let mut save = |r: usize| {
                k.reshape_and_cache(
                    st,
                    k_ptr,
                    v_ptr,
                    k_cache.ptr(),
                    v_cache.ptr(),
                    slots[r % slots.len()].ptr(),
                    rows_new,
                    s.kv_heads,
                    s.head_dim,
                    s.qkv.n,
                )
            };
            let kv_save = self.time(p.kv_save_work(s), &mut save)?;
            let args = |r: usize| super::ops::PagedArgs {
                out: out.ptr(),
                q: qkv.ptr(),
                q_stride: s.qkv.n as i32,
                k_cache: k_cache.ptr(),
                v_cache: v_cache.ptr(),
                block_tables: tables[r % tables.len()].ptr(),
                max_blocks: blocks_per_seq as i32,
                seq_lens: seq_lens.ptr(),
                q_heads: s.q_heads as i32,
                kv_heads: s.kv_heads as i32,
                scale: 1.0 / (s.head_dim as f32).sqrt(),
            };
            let attention = if p.is_prefill {
                let mut run = |r: usize| k.prefill(st, &args(r), cu.ptr(), 1, p.prefill_chunk_size);
                self.time(p.attention_work(s), &mut run)?
            } else {
                let (splits, keys) = decode_splits(
                    p.batch_size as usize,
                    s.kv_heads as usize,
                    kv_len as usize,
                    self.gpu.info.sms as usize,
                    crate::kernels::DECODE_SPLIT_MAX_KEYS as usize,
                );
                let parts = p.batch_size * s.q_heads * splits as u64;
                let o_part = self.gpu.alloc((parts * s.head_dim * 4) as usize)?;
                let lse = self.gpu.alloc((parts * 4) as usize)?;
                let mut run = |r: usize| {
                    k.decode(
                        st,
                        &args(r),
                        o_part.ptr(),
                        lse.ptr(),
                        p.batch_size as u32,
                        splits as u32,
                        keys as u32,
                    )
                };
                self.time(p.attention_work(s), &mut run)?
            };
            rows.push(AttentionRow {
                point: *p,
                kv_save,
                attention,
                backend: backend.to_string(),
            });
        }
        Ok(rows)
    }
}

/// `(kv_len, blocks per sequence)` of a point: every sequence attends over its cached tokens plus
/// its new ones.
pub fn seq_geometry(p: &AttentionPoint) -> (u64, u64) {
    let per_seq_new = if p.is_prefill {
        p.prefill_chunk_size
    } else {
        1
    };
    let kv_len = p.kv_cache_size + per_seq_new;
    (kv_len, kv_len.div_ceil(PAGE_TOKENS as u64))
}

/// The block table (`batch × blocks`, row-major) and the slot of every new token for one point,
/// given the pages to use (`batch · blocks` of them, e.g. a slice of a shuffled page list).
pub fn paged_layout(p: &AttentionPoint, pages: &[i32]) -> (Vec<i32>, Vec<i64>) {
    let (kv_len, blocks) = seq_geometry(p);
    let table = pages[..(p.batch_size * blocks) as usize].to_vec();
    let page = PAGE_TOKENS as u64;
    let mut slots = Vec::with_capacity(p.new_tokens() as usize);
    for b in 0..p.batch_size {
        for t in p.kv_cache_size..kv_len {
            let id = table[(b * blocks + t / page) as usize] as i64;
            slots.push(id * page as i64 + (t % page) as i64);
        }
    }
    (table, slots)
}

/// Ceilings for the detected GPU: the catalog device of that name, else H100 figures.
pub fn ceilings_for(device: Option<&DeviceSpec>, fallback: &DeviceSpec) -> Ceilings {
    Ceilings::from_device(device.unwrap_or(fallback))
}

/// The number of measurements a plan makes on this machine (collectives only with ≥ 2 GPUs).
pub fn total_measurements(plan: &Plan, _node: Option<&NodeSpec>) -> u64 {
    plan.measurements().len() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_layout_puts_each_new_token_after_its_context() {
        let p = AttentionPoint {
            tp: 1,
            is_prefill: false,
            batch_size: 2,
            prefill_chunk_size: 0,
            kv_cache_size: 17,
        };
        assert_eq!(seq_geometry(&p), (18, 2));
        let (table, slots) = paged_layout(&p, &[5, 9, 2, 7, 99]);
        assert_eq!(table, vec![5, 9, 2, 7]);
        assert_eq!(slots, vec![9 * 16 + 1, 7 * 16 + 1]);
    }

    #[test]
    fn prefill_layout_spans_page_boundaries() {
        let p = AttentionPoint {
            tp: 1,
            is_prefill: true,
            batch_size: 1,
            prefill_chunk_size: 3,
            kv_cache_size: 14,
        };
        let (table, slots) = paged_layout(&p, &[4, 8]);
        assert_eq!(table, vec![4, 8]);
        assert_eq!(slots, vec![4 * 16 + 14, 4 * 16 + 15, 8 * 16]);
    }

    #[test]
    fn rotation_exceeds_three_l2_caches_within_limits() {
        let l2 = 50 << 20;
        assert_eq!(rotation_copies(6 << 20, l2), 16);
        assert_eq!(rotation_copies(40 << 20, l2), 4);
        assert_eq!(rotation_copies(1 << 30, l2), 1);
    }
}
