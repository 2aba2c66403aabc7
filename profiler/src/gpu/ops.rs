//! Launchers for the NVRTC kernels: one function per kernel, with the argument list of its CUDA
//! signature (see `src/kernels/*.cu`) and its grid.

use cudarc::driver::sys::{CUdeviceptr, CUstream};

use super::device::{launch, Arg, GpuError, GpuResult, Kernels};
use crate::kernels::{DECODE_SPLIT_MAX_KEYS, HEAD_DIM, MAX_GQA_GROUP, PREFILL_BLOCK_ROWS};

fn grid_stride(n_vec: u64, sms: i32) -> u32 {
    (n_vec.div_ceil(256)).clamp(1, (sms.max(1) * 8) as u64) as u32
}

fn check_width(what: &str, w: u64) -> GpuResult<()> {
    if w.is_multiple_of(8) {
        Ok(())
    } else {
        Err(GpuError::Unsupported(format!(
            "{what} = {w} is not a multiple of 8; the kernels move rows in 16-byte vectors"
        )))
    }
}

/// The paged-attention problem shared by prefill and decode.
#[derive(Debug, Clone, Copy)]
pub struct PagedArgs {
    /// Output rows (`[rows, q_heads·d]`).
    pub out: CUdeviceptr,
    /// Query rows (stride `q_stride`).
    pub q: CUdeviceptr,
    /// Query row stride in elements.
    pub q_stride: i32,
    /// K cache `[blocks, 16, kv_heads, d]`.
    pub k_cache: CUdeviceptr,
    /// V cache.
    pub v_cache: CUdeviceptr,
    /// Block tables `[seqs, max_blocks]` (i32).
    pub block_tables: CUdeviceptr,
    /// Columns of the block-table matrix.
    pub max_blocks: i32,
    /// Cached lengths after the write, per sequence (i32).
    pub seq_lens: CUdeviceptr,
    /// Query heads.
    pub q_heads: i32,
    /// KV heads.
    pub kv_heads: i32,
    /// Softmax scale (1/√d).
    pub scale: f32,
}

impl Kernels {
    /// RMSNorm of `rows` rows of width `h`.
    #[allow(clippy::too_many_arguments)]
    pub fn rms_norm(
        &self,
        s: CUstream,
        out: CUdeviceptr,
        x: CUdeviceptr,
        w: CUdeviceptr,
        eps: f32,
        rows: u64,
        h: u64,
    ) -> GpuResult<()> {
        check_width("hidden size", h)?;
        launch(
            self.get("rms_norm"),
            (rows as u32, 1, 1),
            256,
            s,
            &[
                Arg::Ptr(out),
                Arg::Ptr(x),
                Arg::Ptr(w),
                Arg::F32(eps),
                Arg::I32(h as i32),
            ],
        )
    }

    /// Fused residual add + RMSNorm, in place.
    #[allow(clippy::too_many_arguments)]
    pub fn fused_add_rms_norm(
        &self,
        s: CUstream,
        x: CUdeviceptr,
        residual: CUdeviceptr,
        w: CUdeviceptr,
        eps: f32,
        rows: u64,
        h: u64,
    ) -> GpuResult<()> {
        check_width("hidden size", h)?;
        launch(
            self.get("fused_add_rms_norm"),
            (rows as u32, 1, 1),
            256,
            s,
            &[
                Arg::Ptr(x),
                Arg::Ptr(residual),
                Arg::Ptr(w),
                Arg::F32(eps),
                Arg::I32(h as i32),
            ],
        )
    }

    /// Neox rotary embedding in place on the q and k heads of the fused QKV rows.
    #[allow(clippy::too_many_arguments)]
    pub fn rotary(
        &self,
        s: CUstream,
        qkv: CUdeviceptr,
        positions: CUdeviceptr,
        cos_sin: CUdeviceptr,
        rows: u64,
        q_heads: u64,
        kv_heads: u64,
        d: u64,
        stride: u64,
    ) -> GpuResult<()> {
        launch(
            self.get("rotary_neox"),
            (rows as u32, 1, 1),
            128,
            s,
            &[
                Arg::Ptr(qkv),
                Arg::Ptr(positions),
                Arg::Ptr(cos_sin),
                Arg::I32(q_heads as i32),
                Arg::I32(kv_heads as i32),
                Arg::I32(d as i32),
                Arg::I32(stride as i32),
            ],
        )
    }

    /// SiLU-and-mul over `[rows, 2·width] → [rows, width]`.
    pub fn silu_and_mul(
        &self,
        s: CUstream,
        out: CUdeviceptr,
        input: CUdeviceptr,
        rows: u64,
        width: u64,
        sms: i32,
    ) -> GpuResult<()> {
        check_width("intermediate size", width)?;
        let grid = grid_stride(rows * width / 8, sms);
        launch(
            self.get("silu_and_mul"),
            (grid, 1, 1),
            256,
            s,
            &[
                Arg::Ptr(out),
                Arg::Ptr(input),
                Arg::I64(rows as i64),
                Arg::I32(width as i32),
            ],
        )
    }

    /// `out = a + b` over `n` values.
    pub fn residual_add(
        &self,
        s: CUstream,
        out: CUdeviceptr,
        a: CUdeviceptr,
        b: CUdeviceptr,
        n: u64,
        sms: i32,
    ) -> GpuResult<()> {
        check_width("element count", n)?;
        launch(
            self.get("residual_add"),
            (grid_stride(n / 8, sms), 1, 1),
            256,
            s,
            &[Arg::Ptr(out), Arg::Ptr(a), Arg::Ptr(b), Arg::I64(n as i64)],
        )
    }

    /// Writes `rows` tokens' K and V into their slots of the paged caches.
    #[allow(clippy::too_many_arguments)]
    pub fn reshape_and_cache(
        &self,
        s: CUstream,
        k: CUdeviceptr,
        v: CUdeviceptr,
        k_cache: CUdeviceptr,
        v_cache: CUdeviceptr,
        slots: CUdeviceptr,
        rows: u64,
        kv_heads: u64,
        d: u64,
        stride: u64,
    ) -> GpuResult<()> {
        launch(
            self.get("reshape_and_cache"),
            (rows as u32, 1, 1),
            128,
            s,
            &[
                Arg::Ptr(k),
                Arg::Ptr(v),
                Arg::Ptr(k_cache),
                Arg::Ptr(v_cache),
                Arg::Ptr(slots),
                Arg::I32(kv_heads as i32),
                Arg::I32(d as i32),
                Arg::I32(stride as i32),
            ],
        )
    }

    /// Vocabulary-parallel embedding of `rows` ids.
    #[allow(clippy::too_many_arguments)]
    pub fn embedding(
        &self,
        s: CUstream,
        out: CUdeviceptr,
        ids: CUdeviceptr,
        table: CUdeviceptr,
        rows: u64,
        h: u64,
        vocab_start: i32,
        vocab_end: i32,
    ) -> GpuResult<()> {
        check_width("hidden size", h)?;
        launch(
            self.get("embedding"),
            (rows as u32, 1, 1),
            128,
            s,
            &[
                Arg::Ptr(out),
                Arg::Ptr(ids),
                Arg::Ptr(table),
                Arg::I32(h as i32),
                Arg::I32(vocab_start),
                Arg::I32(vocab_end),
            ],
        )
    }

    /// Fills a bf16 buffer with non-zero pseudo-random values in `[-scale, scale)`.
    pub fn fill_random(
        &self,
        s: CUstream,
        out: CUdeviceptr,
        n: u64,
        seed: u32,
        scale: f32,
        sms: i32,
    ) -> GpuResult<()> {
        launch(
            self.get("fill_random"),
            (grid_stride(n, sms), 1, 1),
            256,
            s,
            &[
                Arg::Ptr(out),
                Arg::I64(n as i64),
                Arg::I32(seed as i32),
                Arg::F32(scale),
            ],
        )
    }

    /// One thread spinning for `ns` nanoseconds (a known duration for checking the timer).
    pub fn spin_wait(&self, s: CUstream, ns: i64) -> GpuResult<()> {
        launch(self.get("spin_wait"), (1, 1, 1), 32, s, &[Arg::I64(ns)])
    }

    fn check_heads(p: &PagedArgs) -> GpuResult<()> {
        if p.q_heads % p.kv_heads != 0 || (p.q_heads / p.kv_heads) as u32 > MAX_GQA_GROUP {
            return Err(GpuError::Unsupported(format!(
                "{} query heads over {} KV heads: the attention kernels need a whole group of at most {MAX_GQA_GROUP}",
                p.q_heads, p.kv_heads
            )));
        }
        Ok(())
    }

    /// FA2-style paged prefill over `seqs` sequences whose longest chunk has `max_q` rows.
    pub fn prefill(
        &self,
        s: CUstream,
        p: &PagedArgs,
        cu_seqlens_q: CUdeviceptr,
        seqs: u32,
        max_q: u64,
    ) -> GpuResult<()> {
        Self::check_heads(p)?;
        let out_stride = p.q_heads * HEAD_DIM as i32;
        let grid = (
            max_q.div_ceil(PREFILL_BLOCK_ROWS as u64) as u32,
            p.q_heads as u32,
            seqs,
        );
        let scale_log2 = p.scale * std::f32::consts::LOG2_E;
        launch(
            self.get("paged_prefill"),
            grid,
            128,
            s,
            &[
                Arg::Ptr(p.out),
                Arg::I32(out_stride),
                Arg::Ptr(p.q),
                Arg::I32(p.q_stride),
                Arg::Ptr(p.k_cache),
                Arg::Ptr(p.v_cache),
                Arg::Ptr(p.block_tables),
                Arg::I32(p.max_blocks),
                Arg::Ptr(cu_seqlens_q),
                Arg::Ptr(p.seq_lens),
                Arg::I32(p.q_heads),
                Arg::I32(p.kv_heads),
                Arg::F32(scale_log2),
            ],
        )
    }

    /// Split-KV paged decode (one query row per sequence) and the merge of its splits; `o_part`
    /// holds `batch·q_heads·splits·d` floats and `lse_part` `batch·q_heads·splits`.
    #[allow(clippy::too_many_arguments)]
    pub fn decode(
        &self,
        s: CUstream,
        p: &PagedArgs,
        o_part: CUdeviceptr,
        lse_part: CUdeviceptr,
        batch: u32,
        splits: u32,
        keys_per_split: u32,
    ) -> GpuResult<()> {
        Self::check_heads(p)?;
        if keys_per_split > DECODE_SPLIT_MAX_KEYS {
            return Err(GpuError::Unsupported(format!(
                "{keys_per_split} keys per decode split (at most {DECODE_SPLIT_MAX_KEYS})"
            )));
        }
        let scale_log2 = p.scale * std::f32::consts::LOG2_E;
        launch(
            self.get("paged_decode_split"),
            (p.kv_heads as u32, batch, splits),
            128,
            s,
            &[
                Arg::Ptr(o_part),
                Arg::Ptr(lse_part),
                Arg::Ptr(p.q),
                Arg::I32(p.q_stride),
                Arg::Ptr(p.k_cache),
                Arg::Ptr(p.v_cache),
                Arg::Ptr(p.block_tables),
                Arg::I32(p.max_blocks),
                Arg::Ptr(p.seq_lens),
                Arg::I32(p.q_heads),
                Arg::I32(p.kv_heads),
                Arg::I32(keys_per_split as i32),
                Arg::F32(scale_log2),
            ],
        )?;
        let out_stride = p.q_heads * HEAD_DIM as i32;
        launch(
            self.get("decode_merge"),
            (p.q_heads as u32, batch, 1),
            128,
            s,
            &[
                Arg::Ptr(p.out),
                Arg::I32(out_stride),
                Arg::Ptr(o_part),
                Arg::Ptr(lse_part),
                Arg::I32(p.q_heads),
                Arg::I32(splits as i32),
            ],
        )
    }
}
