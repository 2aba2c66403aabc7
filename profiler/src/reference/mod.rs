//! CPU reference implementations of every GPU kernel, in plain Rust: what `profiler check` compares
//! the GPU results with, and what the unit tests pin to hand-computed values. Inputs and outputs are
//! bf16 (as `half::bf16`), arithmetic is f32, and every intermediate that the GPU kernel rounds to
//! bf16 is rounded here too, so that the comparison measures the kernel, not the rounding policy.
//!
//! Layouts are the kernels': row-major activations; the paged KV cache is
//! `[num_blocks, PAGE, kv_heads, head_dim]` (vLLM's flash layout).

pub mod attention;
#[cfg(test)]
mod warp_emulation;

use half::bf16;

/// Rounds an f32 to bf16 (round to nearest even) and back.
pub fn round_bf16(x: f32) -> f32 {
    bf16::from_f32(x).to_f32()
}

/// Converts f32 values to bf16.
pub fn to_bf16(v: &[f32]) -> Vec<bf16> {
    v.iter().map(|&x| bf16::from_f32(x)).collect()
}

/// Converts bf16 values to f32.
pub fn to_f32(v: &[bf16]) -> Vec<f32> {
    v.iter().map(|x| x.to_f32()).collect()
}

/// RMSNorm of each row of `x` (`rows × h`): `x / sqrt(mean(x²) + eps) · w`.
pub fn rms_norm(x: &[bf16], w: &[bf16], h: usize, eps: f32) -> Vec<bf16> {
    x.chunks_exact(h)
        .flat_map(|row| {
            let ss: f32 = row.iter().map(|v| v.to_f32() * v.to_f32()).sum();
            let inv = 1.0 / (ss / h as f32 + eps).sqrt();
            row.iter()
                .zip(w)
                .map(move |(v, g)| bf16::from_f32(v.to_f32() * inv * g.to_f32()))
        })
        .collect()
}

/// vLLM's fused add + RMSNorm: `residual += x` (rounded to bf16), then `x = rms_norm(residual)`.
/// Updates both in place.
pub fn fused_add_rms_norm(x: &mut [bf16], residual: &mut [bf16], w: &[bf16], h: usize, eps: f32) {
    for (r, a) in residual.iter_mut().zip(x.iter()) {
        *r = bf16::from_f32(r.to_f32() + a.to_f32());
    }
    let normed = rms_norm(residual, w, h, eps);
    x.copy_from_slice(&normed);
}

/// The neox rotary table: `[max_position, d]` f32, `cos(p·θᵢ)` in the first half and `sin(p·θᵢ)` in
/// the second, with `θᵢ = theta^(−2i/d)`.
pub fn cos_sin_cache(max_position: usize, d: usize, theta: f64) -> Vec<f32> {
    let half = d / 2;
    let mut out = vec![0.0f32; max_position * d];
    for p in 0..max_position {
        for i in 0..half {
            let inv_freq = theta.powf(-(2.0 * i as f64) / d as f64);
            let a = p as f64 * inv_freq;
            out[p * d + i] = a.cos() as f32;
            out[p * d + half + i] = a.sin() as f32;
        }
    }
    out
}

/// Neox rotary embedding in place on the q and k heads of a fused QKV buffer (`rows × stride`; q heads
/// first, then k heads, each `d` wide): pairs `(j, j + d/2)` are rotated by the position's angle.
pub fn rotary_neox(
    qkv: &mut [bf16],
    positions: &[i32],
    cos_sin: &[f32],
    heads: usize,
    d: usize,
    stride: usize,
) {
    let half = d / 2;
    for (t, &pos) in positions.iter().enumerate() {
        let cs = &cos_sin[pos as usize * d..(pos as usize + 1) * d];
        for hd in 0..heads {
            let base = t * stride + hd * d;
            for j in 0..half {
                let (c, s) = (cs[j], cs[half + j]);
                let x1 = qkv[base + j].to_f32();
                let x2 = qkv[base + j + half].to_f32();
                qkv[base + j] = bf16::from_f32(x1 * c - x2 * s);
                qkv[base + j + half] = bf16::from_f32(x2 * c + x1 * s);
            }
        }
    }
}

/// `out[t, i] = silu(gate[t, i]) · up[t, i]` over rows `[gate (width) | up (width)]`.
pub fn silu_and_mul(input: &[bf16], width: usize) -> Vec<bf16> {
    input
        .chunks_exact(2 * width)
        .flat_map(|row| {
            let (g, u) = row.split_at(width);
            g.iter().zip(u).map(|(g, u)| {
                let g = g.to_f32();
                let sg = round_bf16(g / (1.0 + (-g).exp()));
                bf16::from_f32(sg * u.to_f32())
            })
        })
        .collect()
}

/// Elementwise `a + b`.
pub fn residual_add(a: &[bf16], b: &[bf16]) -> Vec<bf16> {
    a.iter()
        .zip(b)
        .map(|(x, y)| bf16::from_f32(x.to_f32() + y.to_f32()))
        .collect()
}

/// Writes token `t`'s K and V (`kv_width = kv_heads·d` values at `k[t·stride..]`, `v[t·stride..]`)
/// into slot `slot_mapping[t]` of the paged caches; negative slots are skipped.
pub fn reshape_and_cache(
    k: &[bf16],
    v: &[bf16],
    k_cache: &mut [bf16],
    v_cache: &mut [bf16],
    slot_mapping: &[i64],
    kv_width: usize,
    stride: usize,
) {
    for (t, &slot) in slot_mapping.iter().enumerate() {
        if slot < 0 {
            continue;
        }
        let dst = slot as usize * kv_width;
        let src = t * stride;
        k_cache[dst..dst + kv_width].copy_from_slice(&k[src..src + kv_width]);
        v_cache[dst..dst + kv_width].copy_from_slice(&v[src..src + kv_width]);
    }
}

/// Vocabulary-parallel embedding: row `ids[t] − vocab_start` of `table` (`h` wide) when the id is in
/// `[vocab_start, vocab_end)`, zeros otherwise.
pub fn embedding(
    ids: &[i32],
    table: &[bf16],
    h: usize,
    vocab_start: i32,
    vocab_end: i32,
) -> Vec<bf16> {
    ids.iter()
        .flat_map(|&id| {
            if id >= vocab_start && id < vocab_end {
                let r = (id - vocab_start) as usize;
                table[r * h..(r + 1) * h].to_vec()
            } else {
                vec![bf16::ZERO; h]
            }
        })
        .collect()
}

/// `y[m, n] = Σ_k x[m, k] · w[n, k]` in f32 (the "TN" GEMM of a linear layer).
pub fn gemm_tn(x: &[bf16], w: &[bf16], m: usize, n: usize, k: usize) -> Vec<f32> {
    let mut y = vec![0.0f32; m * n];
    for i in 0..m {
        let xr = &x[i * k..(i + 1) * k];
        for j in 0..n {
            let wr = &w[j * k..(j + 1) * k];
            y[i * n + j] = xr
                .iter()
                .zip(wr)
                .map(|(a, b)| a.to_f32() * b.to_f32())
                .sum();
        }
    }
    y
}

/// Relative L2 error `‖got − want‖ / ‖want‖` (0 when both are zero; infinite if `got` has a NaN).
pub fn rel_l2(got: &[f32], want: &[f32]) -> f64 {
    let mut num = 0.0f64;
    let mut den = 0.0f64;
    for (g, w) in got.iter().zip(want) {
        if !g.is_finite() {
            return f64::INFINITY;
        }
        num += ((g - w) as f64).powi(2);
        den += (*w as f64).powi(2);
    }
    if den == 0.0 {
        if num == 0.0 {
            0.0
        } else {
            f64::INFINITY
        }
    } else {
        (num / den).sqrt()
    }
}

#[cfg(test)]
mod tests;
