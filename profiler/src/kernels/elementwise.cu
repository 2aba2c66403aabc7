// Per-token kernels of a Llama block: RMSNorm, fused add + RMSNorm, neox rotary embedding,
// SiLU-and-mul, residual add, KV-cache write and vocabulary-parallel embedding.
// Widths are multiples of 8 (checked on the host), so rows move in 16-byte vectors.

// out[r] = x[r] / rms(x[r]) * w; one block per row.
extern "C" __global__ void rms_norm(bf16_t* __restrict__ out, const bf16_t* __restrict__ x,
                                    const bf16_t* __restrict__ w, float eps, int h) {
    const long row = blockIdx.x;
    const uint4* xv = reinterpret_cast<const uint4*>(x + row * h);
    const uint4* wv = reinterpret_cast<const uint4*>(w);
    uint4* ov = reinterpret_cast<uint4*>(out + row * h);
    const int nv = h / 8;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < nv; i += blockDim.x) {
        float f[8];
        unpack8(xv[i], f);
#pragma unroll
        for (int j = 0; j < 8; ++j) ss += f[j] * f[j];
    }
    const float inv = rsqrtf(block_sum(ss) / (float)h + eps);
    for (int i = threadIdx.x; i < nv; i += blockDim.x) {
        float f[8], g[8];
        unpack8(xv[i], f);
        unpack8(wv[i], g);
#pragma unroll
        for (int j = 0; j < 8; ++j) f[j] = f[j] * inv * g[j];
        ov[i] = pack8(f);
    }
}

// vLLM's fused_add_rms_norm: residual += x (rounded to bf16); x = rms_norm(residual) * w.
extern "C" __global__ void fused_add_rms_norm(bf16_t* __restrict__ x, bf16_t* __restrict__ residual,
                                              const bf16_t* __restrict__ w, float eps, int h) {
    const long row = blockIdx.x;
    uint4* xv = reinterpret_cast<uint4*>(x + row * h);
    uint4* rv = reinterpret_cast<uint4*>(residual + row * h);
    const uint4* wv = reinterpret_cast<const uint4*>(w);
    const int nv = h / 8;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < nv; i += blockDim.x) {
        float a[8], r[8];
        unpack8(xv[i], a);
        unpack8(rv[i], r);
#pragma unroll
        for (int j = 0; j < 8; ++j) r[j] = bf2f(f2bf(a[j] + r[j]));
        const uint4 packed = pack8(r);
        rv[i] = packed;
#pragma unroll
        for (int j = 0; j < 8; ++j) ss += r[j] * r[j];
    }
    const float inv = rsqrtf(block_sum(ss) / (float)h + eps);
    for (int i = threadIdx.x; i < nv; i += blockDim.x) {
        float r[8], g[8];
        unpack8(rv[i], r);
        unpack8(wv[i], g);
#pragma unroll
        for (int j = 0; j < 8; ++j) r[j] = r[j] * inv * g[j];
        xv[i] = pack8(r);
    }
}

// Neox-style rotary embedding, in place on q and k inside the fused QKV output.
// q of token t, head hd: qkv[t * stride + hd * d]; k heads follow the q heads.
// cos_sin: [max_position, d] fp32, cos in [0, d/2), sin in [d/2, d).
extern "C" __global__ void rotary_neox(bf16_t* __restrict__ qkv, const int* __restrict__ positions,
                                       const float* __restrict__ cos_sin, int q_heads, int kv_heads,
                                       int d, int stride) {
    const long t = blockIdx.x;
    const int half = d / 2;
    const float* cs = cos_sin + (long)positions[t] * d;
    const int heads = q_heads + kv_heads;
    bf16_t* base = qkv + t * stride;
    for (int i = threadIdx.x; i < heads * half; i += blockDim.x) {
        const int hd = i / half, j = i % half;
        bf16_t* p = base + hd * d;
        const float c = cs[j], s = cs[half + j];
        const float x1 = bf2f(p[j]), x2 = bf2f(p[j + half]);
        p[j] = f2bf(x1 * c - x2 * s);
        p[j + half] = f2bf(x2 * c + x1 * s);
    }
}

// out[t, i] = silu(in[t, i]) * in[t, width + i] (gate first, then up, as vLLM merges them).
extern "C" __global__ void silu_and_mul(bf16_t* __restrict__ out, const bf16_t* __restrict__ in,
                                        long rows, int width) {
    const long nv = rows * (width / 8);
    const int wv = width / 8;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < nv; i += (long)gridDim.x * blockDim.x) {
        const long r = i / wv, c = i % wv;
        const uint4* row = reinterpret_cast<const uint4*>(in + r * 2L * width);
        float g[8], u[8];
        unpack8(row[c], g);
        unpack8(row[wv + c], u);
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            const float sg = bf2f(f2bf(g[j] / (1.0f + __expf(-g[j]))));
            g[j] = sg * u[j];
        }
        reinterpret_cast<uint4*>(out + r * (long)width)[c] = pack8(g);
    }
}

// out = a + b over n elements (n a multiple of 8).
extern "C" __global__ void residual_add(bf16_t* __restrict__ out, const bf16_t* __restrict__ a,
                                        const bf16_t* __restrict__ b, long n) {
    const long nv = n / 8;
    const uint4* av = reinterpret_cast<const uint4*>(a);
    const uint4* bv = reinterpret_cast<const uint4*>(b);
    uint4* ov = reinterpret_cast<uint4*>(out);
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < nv; i += (long)gridDim.x * blockDim.x) {
        float x[8], y[8];
        unpack8(av[i], x);
        unpack8(bv[i], y);
#pragma unroll
        for (int j = 0; j < 8; ++j) x[j] += y[j];
        ov[i] = pack8(x);
    }
}

// vLLM's reshape_and_cache_flash: the K and V of token t go to slot s = slot_mapping[t] of the
// paged caches [num_blocks, PAGE, kv_heads, d] (page = s / PAGE, row = s % PAGE).
// k and v rows sit inside the fused QKV output (row stride `stride`); one block per token.
extern "C" __global__ void reshape_and_cache(const bf16_t* __restrict__ k, const bf16_t* __restrict__ v,
                                             bf16_t* __restrict__ k_cache, bf16_t* __restrict__ v_cache,
                                             const long* __restrict__ slot_mapping, int kv_heads, int d,
                                             int stride) {
    const long t = blockIdx.x;
    const long slot = slot_mapping[t];
    if (slot < 0) return;
    const int nv = kv_heads * d / 8;
    const uint4* kv_ = reinterpret_cast<const uint4*>(k + t * stride);
    const uint4* vv = reinterpret_cast<const uint4*>(v + t * stride);
    uint4* kc = reinterpret_cast<uint4*>(k_cache + slot * kv_heads * d);
    uint4* vc = reinterpret_cast<uint4*>(v_cache + slot * kv_heads * d);
    for (int i = threadIdx.x; i < nv; i += blockDim.x) {
        kc[i] = kv_[i];
        vc[i] = vv[i];
    }
}

// Vocabulary-parallel embedding: out[t] = table[ids[t] - vocab_start] when the id falls in this
// rank's shard [vocab_start, vocab_end), else zeros. One block per token.
extern "C" __global__ void embedding(bf16_t* __restrict__ out, const int* __restrict__ ids,
                                     const bf16_t* __restrict__ table, int h, int vocab_start,
                                     int vocab_end) {
    const long t = blockIdx.x;
    const int id = ids[t];
    const bool mine = id >= vocab_start && id < vocab_end;
    const uint4* src = reinterpret_cast<const uint4*>(table + (long)(id - vocab_start) * h);
    uint4* dst = reinterpret_cast<uint4*>(out + t * (long)h);
    for (int i = threadIdx.x; i < h / 8; i += blockDim.x) {
        dst[i] = mine ? src[i] : make_uint4(0, 0, 0, 0);
    }
}

// Fills n bf16 values with a hash of (index, seed) mapped to [-scale, scale), never exactly zero
// (timing on zeros is optimistic). Used to initialise weights, activations and KV caches on the GPU.
extern "C" __global__ void fill_random(bf16_t* __restrict__ out, long n, unsigned seed, float scale) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        unsigned x = (unsigned)i * 0x9E3779B9u ^ (unsigned)(i >> 32) * 0x85EBCA6Bu ^ seed * 0xC2B2AE35u;
        x ^= x >> 16;
        x *= 0x7FEB352Du;
        x ^= x >> 15;
        x *= 0x846CA68Bu;
        x ^= x >> 16;
        const float u = ((x >> 8) + 0.5f) * (1.0f / 16777216.0f);  // (0, 1)
        out[i] = f2bf((2.0f * u - 1.0f) * scale + (u < 0.5f ? -1e-3f : 1e-3f) * scale);
    }
}

// Spins one thread for `ns` nanoseconds of the GPU's global timer: a known duration that checks
// the timing harness (`profiler check`).
extern "C" __global__ void spin_wait(long ns) {
    unsigned long long start, now;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
    do {
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
    } while ((long)(now - start) < ns);
}
