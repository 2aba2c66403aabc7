//! Paged attention on the CPU: a naive reference (the truth) and emulations of the GPU algorithms
//! (the FA2-style tiled online softmax of `paged_prefill`, the split-KV plus log-sum-exp merge of
//! `paged_decode_split`/`decode_merge`), with the same page-table indexing, causal offset and GQA
//! mapping. Property tests check emulation = reference, which catches indexing and masking bugs
//! without a GPU.

use half::bf16;

/// A paged KV cache `[num_blocks, page, kv_heads, d]` for K and for V.
#[derive(Debug, Clone)]
pub struct PagedKv {
    /// Keys.
    pub k: Vec<bf16>,
    /// Values.
    pub v: Vec<bf16>,
    /// KV heads.
    pub kv_heads: usize,
    /// Head dimension.
    pub d: usize,
    /// Tokens per page.
    pub page: usize,
}

impl PagedKv {
    /// Offset of `(position, kv head)` of a sequence with `block_table`.
    pub fn offset(&self, block_table: &[i32], pos: usize, kvh: usize) -> usize {
        let slot = block_table[pos / self.page] as usize * self.page + pos % self.page;
        (slot * self.kv_heads + kvh) * self.d
    }
}

/// One sequence of a batch: `q_len` new query rows attending over `kv_len` cached tokens (the new
/// tokens included: their K/V were written first), through `block_table`.
#[derive(Debug, Clone)]
pub struct Seq {
    /// New query tokens.
    pub q_len: usize,
    /// Cached tokens after the write (prefix + q_len).
    pub kv_len: usize,
    /// Page ids of the sequence.
    pub block_table: Vec<i32>,
}

/// The queries: rows of `stride` values, head `h` at `h·d`; rows of consecutive sequences follow
/// each other.
#[derive(Debug, Clone, Copy)]
pub struct Queries<'a> {
    /// Values.
    pub q: &'a [bf16],
    /// Row stride.
    pub stride: usize,
    /// Query heads.
    pub q_heads: usize,
}

fn dot(q: &[bf16], k: &[bf16]) -> f32 {
    q.iter().zip(k).map(|(a, b)| a.to_f32() * b.to_f32()).sum()
}

/// Naive causal attention (f32 softmax), output `[rows, q_heads·d]` in f32.
pub fn naive(qs: Queries, seqs: &[Seq], kv: &PagedKv, scale: f32) -> Vec<f32> {
    let d = kv.d;
    let group = qs.q_heads / kv.kv_heads;
    let rows: usize = seqs.iter().map(|s| s.q_len).sum();
    let mut out = vec![0.0f32; rows * qs.q_heads * d];
    let mut row0 = 0;
    for s in seqs {
        let prefix = s.kv_len - s.q_len;
        for i in 0..s.q_len {
            let r = row0 + i;
            for h in 0..qs.q_heads {
                let kvh = h / group;
                let q = &qs.q[r * qs.stride + h * d..r * qs.stride + (h + 1) * d];
                let n = prefix + i + 1;
                let scores: Vec<f32> = (0..n)
                    .map(|p| {
                        let o = kv.offset(&s.block_table, p, kvh);
                        dot(q, &kv.k[o..o + d]) * scale
                    })
                    .collect();
                let mx = scores.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                let w: Vec<f32> = scores.iter().map(|x| (x - mx).exp()).collect();
                let sum: f32 = w.iter().sum();
                let o = &mut out[(r * qs.q_heads + h) * d..(r * qs.q_heads + h + 1) * d];
                for (p, wp) in w.iter().enumerate() {
                    let vo = kv.offset(&s.block_table, p, kvh);
                    for (x, v) in o.iter_mut().zip(&kv.v[vo..vo + d]) {
                        *x += wp / sum * v.to_f32();
                    }
                }
            }
        }
        row0 += s.q_len;
    }
    out
}

/// Emulation of `paged_prefill`: tiles of `br` query rows and `bc` keys, online softmax in the
/// log2 domain, P rounded to bf16 before the PV product, keys past the causal limit masked.
pub fn flash_prefill(
    qs: Queries,
    seqs: &[Seq],
    kv: &PagedKv,
    scale: f32,
    br: usize,
    bc: usize,
) -> Vec<f32> {
    let d = kv.d;
    let group = qs.q_heads / kv.kv_heads;
    let scale_log2 = scale * std::f32::consts::LOG2_E;
    let rows: usize = seqs.iter().map(|s| s.q_len).sum();
    let mut out = vec![0.0f32; rows * qs.q_heads * d];
    let mut row0 = 0;
    for s in seqs {
        let prefix = s.kv_len - s.q_len;
        for h in 0..qs.q_heads {
            let kvh = h / group;
            for tile in (0..s.q_len).step_by(br) {
                let last = (tile + br).min(s.q_len);
                let kv_end = s.kv_len.min(prefix + last);
                let mut m = vec![f32::NEG_INFINITY; last - tile];
                let mut l = vec![0.0f32; last - tile];
                let mut acc = vec![0.0f32; (last - tile) * d];
                for k0 in (0..kv_end).step_by(bc) {
                    for (ri, i) in (tile..last).enumerate() {
                        let r = row0 + i;
                        let q = &qs.q[r * qs.stride + h * d..r * qs.stride + (h + 1) * d];
                        let sc: Vec<f32> = (k0..k0 + bc)
                            .map(|key| {
                                if key < s.kv_len && key <= prefix + i {
                                    let o = kv.offset(&s.block_table, key, kvh);
                                    dot(q, &kv.k[o..o + d]) * scale_log2
                                } else {
                                    f32::NEG_INFINITY
                                }
                            })
                            .collect();
                        let mx = sc.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                        let mnew = m[ri].max(mx);
                        let corr = if mnew == f32::NEG_INFINITY {
                            1.0
                        } else {
                            (m[ri] - mnew).exp2()
                        };
                        m[ri] = mnew;
                        let p: Vec<f32> = sc
                            .iter()
                            .map(|x| {
                                if mnew == f32::NEG_INFINITY {
                                    0.0
                                } else {
                                    (x - mnew).exp2()
                                }
                            })
                            .collect();
                        l[ri] = l[ri] * corr + p.iter().sum::<f32>();
                        let a = &mut acc[ri * d..(ri + 1) * d];
                        a.iter_mut().for_each(|x| *x *= corr);
                        for (j, pj) in p.iter().enumerate() {
                            let key = k0 + j;
                            if *pj == 0.0 || key >= s.kv_len {
                                continue;
                            }
                            let pj = super::round_bf16(*pj);
                            let vo = kv.offset(&s.block_table, key, kvh);
                            for (x, v) in a.iter_mut().zip(&kv.v[vo..vo + d]) {
                                *x += pj * v.to_f32();
                            }
                        }
                    }
                }
                for (ri, i) in (tile..last).enumerate() {
                    let r = row0 + i;
                    let inv = if l[ri] > 0.0 { 1.0 / l[ri] } else { 0.0 };
                    let o = &mut out[(r * qs.q_heads + h) * d..(r * qs.q_heads + h + 1) * d];
                    for (x, a) in o.iter_mut().zip(&acc[ri * d..(ri + 1) * d]) {
                        *x = a * inv;
                    }
                }
            }
        }
        row0 += s.q_len;
    }
    out
}

/// Splits for a decode batch, as the GPU runner chooses them: enough CTAs to fill `2·sms`, at most
/// `max_keys` keys per split, at least 16 keys per split. Returns `(splits, keys_per_split)`.
pub fn decode_splits(
    batch: usize,
    kv_heads: usize,
    max_kv_len: usize,
    sms: usize,
    max_keys: usize,
) -> (usize, usize) {
    let by_len = max_kv_len.div_ceil(max_keys);
    let by_occupancy = (2 * sms).div_ceil((batch * kv_heads).max(1));
    let splits = by_len.max(by_occupancy).min(max_kv_len.div_ceil(16)).max(1);
    let keys = max_kv_len.div_ceil(splits).div_ceil(16) * 16;
    let keys = keys.min(max_keys);
    (max_kv_len.div_ceil(keys), keys)
}

/// Emulation of `paged_decode_split` + `decode_merge` (one query row per sequence).
pub fn split_kv_decode(
    qs: Queries,
    seqs: &[Seq],
    kv: &PagedKv,
    scale: f32,
    keys_per_split: usize,
    splits: usize,
) -> Vec<f32> {
    let d = kv.d;
    let group = qs.q_heads / kv.kv_heads;
    let scale_log2 = scale * std::f32::consts::LOG2_E;
    let mut out = vec![0.0f32; seqs.len() * qs.q_heads * d];
    for (b, s) in seqs.iter().enumerate() {
        for h in 0..qs.q_heads {
            let kvh = h / group;
            let q = &qs.q[b * qs.stride + h * d..b * qs.stride + (h + 1) * d];
            let mut parts: Vec<(f32, Vec<f32>)> = Vec::new();
            for sp in 0..splits {
                let start = sp * keys_per_split;
                let end = s.kv_len.min(start + keys_per_split);
                if end <= start {
                    parts.push((f32::NEG_INFINITY, vec![0.0; d]));
                    continue;
                }
                let sc: Vec<f32> = (start..end)
                    .map(|p| {
                        let o = kv.offset(&s.block_table, p, kvh);
                        dot(q, &kv.k[o..o + d]) * scale_log2
                    })
                    .collect();
                let mx = sc.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                let p: Vec<f32> = sc.iter().map(|x| (x - mx).exp2()).collect();
                let sum: f32 = p.iter().sum();
                let mut o = vec![0.0f32; d];
                for (j, pj) in p.iter().enumerate() {
                    let vo = kv.offset(&s.block_table, start + j, kvh);
                    for (x, v) in o.iter_mut().zip(&kv.v[vo..vo + d]) {
                        *x += pj * v.to_f32();
                    }
                }
                o.iter_mut().for_each(|x| *x /= sum);
                parts.push((mx + sum.log2(), o));
            }
            let mx = parts.iter().map(|p| p.0).fold(f32::NEG_INFINITY, f32::max);
            let dst = &mut out[(b * qs.q_heads + h) * d..(b * qs.q_heads + h + 1) * d];
            let mut den = 0.0f32;
            for (lse, o) in &parts {
                let w = if *lse == f32::NEG_INFINITY {
                    0.0
                } else {
                    (lse - mx).exp2()
                };
                den += w;
                for (x, v) in dst.iter_mut().zip(o) {
                    *x += w * v;
                }
            }
            dst.iter_mut()
                .for_each(|x| *x = if den > 0.0 { *x / den } else { 0.0 });
        }
    }
    out
}

#[cfg(test)]
#[path = "attention_tests.rs"]
mod tests;
