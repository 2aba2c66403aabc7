//! A lane-level emulation of the `paged_prefill` kernel's tensor-core data flow, for tests: the
//! PTX fragment layouts of `mma.sync.m16n8k16` (bf16 in, f32 accumulate) and
//! `ldmatrix.x2.trans` are modelled per lane as the PTX ISA documents them, and the kernel's index
//! formulas (Q fragments, K fragments, P re-packed as the A operand, V through ldmatrix, output
//! positions, causal mask) are transcribed from `attention.cu`. A test runs it on one CTA and compares
//! with naive attention, which checks that the kernel's fragment plumbing is consistent.

// The loops index lanes, registers and tiles exactly as the CUDA code does, on purpose.
#![allow(clippy::needless_range_loop)]

use half::bf16;

/// Per-lane registers: `[lane][register]`.
type Frag<const N: usize> = [[u32; N]; 32];
/// Per-lane accumulators.
type Acc = [[f32; 4]; 32];

fn lo(x: u32) -> f32 {
    bf16::from_bits(x as u16).to_f32()
}
fn hi(x: u32) -> f32 {
    bf16::from_bits((x >> 16) as u16).to_f32()
}
fn pack2(a: f32, b: f32) -> u32 {
    bf16::from_f32(a).to_bits() as u32 | ((bf16::from_f32(b).to_bits() as u32) << 16)
}
fn load2(m: &[bf16], i: usize) -> u32 {
    m[i].to_bits() as u32 | ((m[i + 1].to_bits() as u32) << 16)
}

/// `mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32` on a warp's fragments.
pub fn mma_16816(c: &mut Acc, a: &Frag<4>, b: &Frag<2>) {
    let mut am = [[0f32; 16]; 16];
    let mut bm = [[0f32; 8]; 16];
    for lane in 0..32 {
        let (g, t) = (lane / 4, lane % 4);
        for (reg, &v) in a[lane].iter().enumerate() {
            let row = g + 8 * (reg & 1);
            let col = 2 * t + 8 * (reg >> 1);
            am[row][col] = lo(v);
            am[row][col + 1] = hi(v);
        }
        for (reg, &v) in b[lane].iter().enumerate() {
            let k = 2 * t + 8 * reg;
            bm[k][g] = lo(v);
            bm[k + 1][g] = hi(v);
        }
    }
    for lane in 0..32 {
        let (g, t) = (lane / 4, lane % 4);
        for e in 0..4 {
            let row = g + 8 * (e >> 1);
            let col = 2 * t + (e & 1);
            let dot: f32 = (0..16).map(|k| am[row][k] * bm[k][col]).sum();
            c[lane][e] += dot;
        }
    }
}

/// `ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16`: lanes 0–7 give the rows of matrix 0, lanes
/// 8–15 those of matrix 1 (as element offsets into `smem`); lane `l` receives elements
/// `(row 2(l%4) + e, column l/4)` of each matrix.
pub fn ldmatrix_x2_trans(smem: &[bf16], row_offsets: &[usize; 32]) -> Frag<2> {
    let mut out = [[0u32; 2]; 32];
    for (lane, regs) in out.iter_mut().enumerate() {
        for (m, r) in regs.iter_mut().enumerate() {
            let row0 = row_offsets[8 * m + 2 * (lane % 4)];
            let row1 = row_offsets[8 * m + 2 * (lane % 4) + 1];
            let col = lane / 4;
            *r = smem[row0 + col].to_bits() as u32 | ((smem[row1 + col].to_bits() as u32) << 16);
        }
    }
    out
}

/// One CTA of `paged_prefill` (`tile` = first query row of the CTA, 4 warps × 16 rows) for one
/// head over a contiguous cache (`k`, `v`: `[kv_len, d]` rows of this KV head). Returns the output
/// rows `[q_len, d]` written by this CTA (others stay NaN). `d` must be a multiple of 16.
#[allow(clippy::too_many_arguments)]
pub fn prefill_cta(
    q: &[bf16],
    k: &[bf16],
    v: &[bf16],
    q_len: usize,
    kv_len: usize,
    d: usize,
    tile: usize,
    scale_log2: f32,
) -> Vec<f32> {
    const BR: usize = 64;
    const BC: usize = 64;
    let ks_stride = d + 8;
    let prefix = kv_len - q_len;
    let mut out = vec![f32::NAN; q_len * d];
    let mut ks = vec![bf16::ZERO; BC * ks_stride];
    let mut vs = vec![bf16::ZERO; BC * ks_stride];
    let last_row = (tile + BR).min(q_len);
    let kv_end = kv_len.min(prefix + last_row);
    // per warp state
    let mut qf = vec![vec![[[0u32; 4]; 32]; d / 16]; 4];
    let mut o = vec![vec![[[0f32; 4]; 32]; d / 8]; 4];
    let mut m = vec![[[f32::NEG_INFINITY; 2]; 32]; 4];
    let mut l = vec![[[0f32; 2]; 32]; 4];
    let rows = |warp: usize, lane: usize| {
        let r0 = tile + warp * 16 + lane / 4;
        (r0, r0 + 8)
    };
    for (warp, qfw) in qf.iter_mut().enumerate() {
        for lane in 0..32 {
            let (r0, r1) = rows(warp, lane);
            let t4 = lane % 4;
            for (kb, regs) in qfw.iter_mut().enumerate() {
                for reg in 0..4 {
                    let row = if reg & 1 == 1 { r1 } else { r0 };
                    let col = kb * 16 + t4 * 2 + (reg >> 1) * 8;
                    regs[lane][reg] = if row < q_len {
                        load2(q, row * d + col)
                    } else {
                        0
                    };
                }
            }
        }
    }
    let mut k0 = 0;
    while k0 < kv_end {
        for key in 0..BC {
            for c in 0..d {
                let pos = k0 + key;
                let (kv, vv) = if pos < kv_len {
                    (k[pos * d + c], v[pos * d + c])
                } else {
                    (bf16::ZERO, bf16::ZERO)
                };
                ks[key * ks_stride + c] = kv;
                vs[key * ks_stride + c] = vv;
            }
        }
        for warp in 0..4 {
            let mut s = vec![[[0f32; 4]; 32]; BC / 8];
            for (nt, acc) in s.iter_mut().enumerate() {
                for kb in 0..d / 16 {
                    let mut b = [[0u32; 2]; 32];
                    for (lane, bl) in b.iter_mut().enumerate() {
                        let (g, t4) = (lane / 4, lane % 4);
                        let kp = (nt * 8 + g) * ks_stride + kb * 16 + t4 * 2;
                        *bl = [load2(&ks, kp), load2(&ks, kp + 8)];
                    }
                    mma_16816(acc, &qf[warp][kb], &b);
                }
            }
            for lane in 0..32 {
                let (r0, r1) = rows(warp, lane);
                let t4 = lane % 4;
                for nt in 0..BC / 8 {
                    for e in 0..4 {
                        let row = if e < 2 { r0 } else { r1 };
                        let key = k0 + nt * 8 + t4 * 2 + (e & 1);
                        let ok = row < q_len && key < kv_len && key <= prefix + row;
                        s[nt][lane][e] = if ok {
                            s[nt][lane][e] * scale_log2
                        } else {
                            f32::NEG_INFINITY
                        };
                    }
                }
            }
            // row max/sum over the 4 lanes of a group (the kernel's shfl_xor 1 and 2)
            let mut corr = [[1f32; 2]; 32];
            for g in 0..8 {
                for r in 0..2 {
                    let lanes = (4 * g)..(4 * g + 4);
                    let mx = lanes
                        .clone()
                        .flat_map(|ln| (0..BC / 8).map(move |nt| (ln, nt)))
                        .map(|(ln, nt)| s[nt][ln][2 * r].max(s[nt][ln][2 * r + 1]))
                        .fold(f32::NEG_INFINITY, f32::max);
                    for ln in lanes.clone() {
                        let mnew = m[warp][ln][r].max(mx);
                        corr[ln][r] = if mnew == f32::NEG_INFINITY {
                            1.0
                        } else {
                            (m[warp][ln][r] - mnew).exp2()
                        };
                        m[warp][ln][r] = mnew;
                    }
                    let mut rs = 0f32;
                    for ln in lanes.clone() {
                        for nt in 0..BC / 8 {
                            for e in [2 * r, 2 * r + 1] {
                                let mm = m[warp][ln][r];
                                let p = if mm == f32::NEG_INFINITY {
                                    0.0
                                } else {
                                    (s[nt][ln][e] - mm).exp2()
                                };
                                s[nt][ln][e] = p;
                                rs += p;
                            }
                        }
                    }
                    for ln in lanes {
                        l[warp][ln][r] = l[warp][ln][r] * corr[ln][r] + rs;
                    }
                }
            }
            for dt in 0..d / 8 {
                for lane in 0..32 {
                    o[warp][dt][lane][0] *= corr[lane][0];
                    o[warp][dt][lane][1] *= corr[lane][0];
                    o[warp][dt][lane][2] *= corr[lane][1];
                    o[warp][dt][lane][3] *= corr[lane][1];
                }
            }
            for kb in 0..BC / 16 {
                let mut a = [[0u32; 4]; 32];
                for (lane, al) in a.iter_mut().enumerate() {
                    let (s0, s1) = (&s[2 * kb][lane], &s[2 * kb + 1][lane]);
                    *al = [
                        pack2(s0[0], s0[1]),
                        pack2(s0[2], s0[3]),
                        pack2(s1[0], s1[1]),
                        pack2(s1[2], s1[3]),
                    ];
                }
                for dt in 0..d / 8 {
                    let mut offs = [0usize; 32];
                    for (lane, off) in offs.iter_mut().enumerate() {
                        *off = (kb * 16 + (lane & 15)) * ks_stride + dt * 8;
                    }
                    let b = ldmatrix_x2_trans(&vs, &offs);
                    mma_16816(&mut o[warp][dt], &a, &b);
                }
            }
        }
        k0 += BC;
    }
    for warp in 0..4 {
        for lane in 0..32 {
            let (r0, r1) = rows(warp, lane);
            let t4 = lane % 4;
            for (r, row) in [r0, r1].into_iter().enumerate() {
                if row >= q_len {
                    continue;
                }
                let lr = l[warp][lane][r];
                let inv = if lr > 0.0 { 1.0 / lr } else { 0.0 };
                for dt in 0..d / 8 {
                    let packed = pack2(
                        o[warp][dt][lane][2 * r] * inv,
                        o[warp][dt][lane][2 * r + 1] * inv,
                    );
                    out[row * d + dt * 8 + t4 * 2] = lo(packed);
                    out[row * d + dt * 8 + t4 * 2 + 1] = hi(packed);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::attention::{naive, PagedKv, Queries, Seq};
    use crate::reference::{rel_l2, to_bf16};
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    fn rnd(rng: &mut StdRng, n: usize) -> Vec<bf16> {
        to_bf16(
            &(0..n)
                .map(|_| rng.random_range(-1.0f32..1.0))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn mma_fragments_multiply_a_by_b() {
        // A = identity-like pattern, B = ramp: D must equal A·B exactly for small integers
        let mut a = [[0u32; 4]; 32];
        let mut b = [[0u32; 2]; 32];
        let av = |r: usize, c: usize| ((r + 2 * c) % 5) as f32;
        let bv = |k: usize, n: usize| ((3 * k + n) % 7) as f32 - 3.0;
        for lane in 0..32 {
            let (g, t) = (lane / 4, lane % 4);
            for reg in 0..4 {
                let (row, col) = (g + 8 * (reg & 1), 2 * t + 8 * (reg >> 1));
                a[lane][reg] = pack2(av(row, col), av(row, col + 1));
            }
            for reg in 0..2 {
                let k = 2 * t + 8 * reg;
                b[lane][reg] = pack2(bv(k, g), bv(k + 1, g));
            }
        }
        let mut c = [[0f32; 4]; 32];
        mma_16816(&mut c, &a, &b);
        for (lane, cl) in c.iter().enumerate() {
            let (g, t) = (lane / 4, lane % 4);
            for (e, &got) in cl.iter().enumerate() {
                let (row, col) = (g + 8 * (e >> 1), 2 * t + (e & 1));
                let want: f32 = (0..16).map(|k| av(row, k) * bv(k, col)).sum();
                assert_eq!(got, want);
            }
        }
    }

    #[test]
    fn lane_level_prefill_matches_naive_attention() {
        let mut rng = StdRng::seed_from_u64(7);
        let d = 32;
        for (q_len, prefix, tile) in [(37, 0, 0), (130, 200, 64), (20, 70, 0)] {
            let kv_len = q_len + prefix;
            let q = rnd(&mut rng, q_len * d);
            let k = rnd(&mut rng, kv_len * d);
            let v = rnd(&mut rng, kv_len * d);
            let scale = 1.0 / (d as f32).sqrt();
            let got = prefill_cta(
                &q,
                &k,
                &v,
                q_len,
                kv_len,
                d,
                tile,
                scale * std::f32::consts::LOG2_E,
            );
            let kv = PagedKv {
                k,
                v,
                kv_heads: 1,
                d,
                page: 16,
            };
            let seqs = [Seq {
                q_len,
                kv_len,
                block_table: (0..kv_len.div_ceil(16) as i32).collect(),
            }];
            let want = naive(
                Queries {
                    q: &q,
                    stride: d,
                    q_heads: 1,
                },
                &seqs,
                &kv,
                scale,
            );
            let rows = tile..(tile + 64).min(q_len);
            let g: Vec<f32> = rows
                .clone()
                .flat_map(|r| got[r * d..(r + 1) * d].to_vec())
                .collect();
            let w: Vec<f32> = rows
                .flat_map(|r| want[r * d..(r + 1) * d].to_vec())
                .collect();
            let err = rel_l2(&g, &w);
            assert!(
                err < 1e-2,
                "q {q_len} prefix {prefix} tile {tile}: rel err {err}"
            );
        }
    }
}
