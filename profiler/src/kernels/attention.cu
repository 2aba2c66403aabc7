// Paged attention over a KV cache laid out [num_blocks, PAGE, kv_heads, HEAD_DIM] (vLLM's flash
// layout), bf16 in, fp32 accumulation.
//  * paged_prefill: FlashAttention-2-style forward for chunked prefill. One CTA = 64 query rows of
//    one head (4 warps x 16 rows), K/V tiles of 64 keys staged in shared memory (rows padded by 8
//    elements: conflict-free fragment loads), QK^T and PV on tensor cores (mma.sync m16n8k16 bf16;
//    V fragments through ldmatrix.trans), online softmax in registers. Causal with an offset:
//    query i of a chunk sits at absolute position prefix + i ("bottom-right" alignment).
//    Varlen: cu_seqlens_q gives each sequence's rows, seq_lens_kv its cached length after the write.
//  * paged_decode_split + decode_merge: split-KV decode (FlashDecoding). One CTA handles all
//    query heads that share one KV head, over one range of keys; a second kernel merges the
//    splits with their log-sum-exp.
#ifndef HEAD_DIM
#define HEAD_DIM 128
#endif
#ifndef PAGE
#define PAGE 16
#endif
#define BR 64
#define BC 64
#define KS (HEAD_DIM + 8)
#define NEG_INF __int_as_float(0xff800000)

__device__ __forceinline__ void mma_bf16_16816(float* c, const unsigned* a, const unsigned* b) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// 32-bit shared-state-space address of a generic pointer into shared memory.
__device__ __forceinline__ unsigned smem_addr(const void* p) {
    unsigned a;
    asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
    return a;
}

// Two 8x8 bf16 matrices, transposed: with rows = keys and columns = dims in shared memory, thread t
// receives (keys 2(t%4), 2(t%4)+1; dim t/4) of each, i.e. the B fragment of mma.m16n8k16 for PV.
// Threads 0-7 address the rows of the first matrix, threads 8-15 those of the second.
__device__ __forceinline__ void ldmatrix_x2_trans(unsigned* r, unsigned addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1])
                 : "r"(addr)
                 : "memory");
}

__device__ __forceinline__ unsigned pack2(float lo, float hi) {
    return (unsigned)f2bf(lo) | ((unsigned)f2bf(hi) << 16);
}

extern "C" __global__ void __launch_bounds__(128)
paged_prefill(bf16_t* __restrict__ out, int out_stride, const bf16_t* __restrict__ q, int q_stride,
              const bf16_t* __restrict__ k_cache, const bf16_t* __restrict__ v_cache,
              const int* __restrict__ block_tables, int max_blocks_per_seq,
              const int* __restrict__ cu_seqlens_q, const int* __restrict__ seq_lens_kv,
              int q_heads, int kv_heads, float scale_log2) {
    __shared__ __align__(16) bf16_t ks[BC * KS];
    __shared__ __align__(16) bf16_t vs[BC * KS];
    const int seq = blockIdx.z, head = blockIdx.y;
    const int q0 = cu_seqlens_q[seq];
    const int q_len = cu_seqlens_q[seq + 1] - q0;
    const int tile = blockIdx.x * BR;
    if (tile >= q_len) return;
    const int kv_len = seq_lens_kv[seq];
    const int prefix = kv_len - q_len;
    const int kvh = head / (q_heads / kv_heads);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = lane >> 2, t4 = lane & 3;
    const int r0 = tile + warp * 16 + g, r1 = r0 + 8;

    unsigned qf[HEAD_DIM / 16][4];
#pragma unroll
    for (int kb = 0; kb < HEAD_DIM / 16; ++kb) {
#pragma unroll
        for (int reg = 0; reg < 4; ++reg) {
            const int row = (reg & 1) ? r1 : r0;
            const int col = kb * 16 + t4 * 2 + (reg >> 1) * 8;
            qf[kb][reg] = row < q_len
                ? *reinterpret_cast<const unsigned*>(q + (long)(q0 + row) * q_stride + head * HEAD_DIM + col)
                : 0u;
        }
    }
    float o[HEAD_DIM / 8][4];
#pragma unroll
    for (int dt = 0; dt < HEAD_DIM / 8; ++dt) o[dt][0] = o[dt][1] = o[dt][2] = o[dt][3] = 0.0f;
    float m[2] = {NEG_INF, NEG_INF}, l[2] = {0.0f, 0.0f};
    const int* bt = block_tables + (long)seq * max_blocks_per_seq;
    const int last_row = min(tile + BR, q_len);
    const int kv_end = min(kv_len, prefix + last_row);

    for (int k0 = 0; k0 < kv_end; k0 += BC) {
        __syncthreads();
        for (int i = threadIdx.x; i < BC * HEAD_DIM / 8; i += blockDim.x) {
            const int key = i / (HEAD_DIM / 8), c = (i % (HEAD_DIM / 8)) * 8;
            const int pos = k0 + key;
            uint4 kv4 = make_uint4(0, 0, 0, 0), vv4 = make_uint4(0, 0, 0, 0);
            if (pos < kv_len) {
                const long slot = (long)bt[pos / PAGE] * PAGE + pos % PAGE;
                const long off = (slot * kv_heads + kvh) * HEAD_DIM + c;
                kv4 = *reinterpret_cast<const uint4*>(k_cache + off);
                vv4 = *reinterpret_cast<const uint4*>(v_cache + off);
            }
            *reinterpret_cast<uint4*>(ks + key * KS + c) = kv4;
            *reinterpret_cast<uint4*>(vs + key * KS + c) = vv4;
        }
        __syncthreads();

        float s[BC / 8][4];
#pragma unroll
        for (int nt = 0; nt < BC / 8; ++nt) {
            s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
#pragma unroll
            for (int kb = 0; kb < HEAD_DIM / 16; ++kb) {
                const bf16_t* kp = ks + (nt * 8 + g) * KS + kb * 16 + t4 * 2;
                unsigned b[2];
                b[0] = *reinterpret_cast<const unsigned*>(kp);
                b[1] = *reinterpret_cast<const unsigned*>(kp + 8);
                mma_bf16_16816(s[nt], qf[kb], b);
            }
        }
        float mx[2] = {NEG_INF, NEG_INF};
#pragma unroll
        for (int nt = 0; nt < BC / 8; ++nt) {
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int row = (e < 2) ? r0 : r1;
                const int key = k0 + nt * 8 + t4 * 2 + (e & 1);
                const bool ok = row < q_len && key < kv_len && key <= prefix + row;
                s[nt][e] = ok ? s[nt][e] * scale_log2 : NEG_INF;
                mx[e >> 1] = fmaxf(mx[e >> 1], s[nt][e]);
            }
        }
        float corr[2], rs[2] = {0.0f, 0.0f};
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
            const float mnew = fmaxf(m[r], mx[r]);
            corr[r] = (mnew == NEG_INF) ? 1.0f : exp2f(m[r] - mnew);
            m[r] = mnew;
        }
#pragma unroll
        for (int nt = 0; nt < BC / 8; ++nt) {
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const float mm = m[e >> 1];
                const float p = (mm == NEG_INF) ? 0.0f : exp2f(s[nt][e] - mm);
                s[nt][e] = p;
                rs[e >> 1] += p;
            }
        }
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            rs[r] += __shfl_xor_sync(0xffffffffu, rs[r], 1);
            rs[r] += __shfl_xor_sync(0xffffffffu, rs[r], 2);
            l[r] = l[r] * corr[r] + rs[r];
        }
#pragma unroll
        for (int dt = 0; dt < HEAD_DIM / 8; ++dt) {
            o[dt][0] *= corr[0];
            o[dt][1] *= corr[0];
            o[dt][2] *= corr[1];
            o[dt][3] *= corr[1];
        }
#pragma unroll
        for (int kb = 0; kb < BC / 16; ++kb) {
            unsigned a[4];
            a[0] = pack2(s[2 * kb][0], s[2 * kb][1]);
            a[1] = pack2(s[2 * kb][2], s[2 * kb][3]);
            a[2] = pack2(s[2 * kb + 1][0], s[2 * kb + 1][1]);
            a[3] = pack2(s[2 * kb + 1][2], s[2 * kb + 1][3]);
            const unsigned vrow = smem_addr(vs + (kb * 16 + (lane & 15)) * KS);
#pragma unroll
            for (int dt = 0; dt < HEAD_DIM / 8; ++dt) {
                unsigned b[2];
                ldmatrix_x2_trans(b, vrow + dt * 8 * (unsigned)sizeof(bf16_t));
                mma_bf16_16816(o[dt], a, b);
            }
        }
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        const int row = r ? r1 : r0;
        if (row >= q_len) continue;
        const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
        bf16_t* op = out + (long)(q0 + row) * out_stride + head * HEAD_DIM;
#pragma unroll
        for (int dt = 0; dt < HEAD_DIM / 8; ++dt) {
            *reinterpret_cast<unsigned*>(op + dt * 8 + t4 * 2) = pack2(o[dt][2 * r] * inv, o[dt][2 * r + 1] * inv);
        }
    }
}

#define MAX_GROUP 8
#define SPLIT_MAX 512

// Grid (kv_heads, batch, splits), 128 threads. Split `s` covers keys [s*keys_per_split, ...).
// Writes o_part[(b*q_heads + h)*splits + s][HEAD_DIM] (normalised within the split) and
// lse_part[...] = max + log2(sum) in the log2 domain (-inf for an empty split).
extern "C" __global__ void __launch_bounds__(128)
paged_decode_split(float* __restrict__ o_part, float* __restrict__ lse_part, const bf16_t* __restrict__ q,
                   int q_stride, const bf16_t* __restrict__ k_cache, const bf16_t* __restrict__ v_cache,
                   const int* __restrict__ block_tables, int max_blocks_per_seq,
                   const int* __restrict__ seq_lens_kv, int q_heads, int kv_heads, int keys_per_split,
                   float scale_log2) {
    __shared__ float qs[MAX_GROUP][HEAD_DIM];
    __shared__ float sc[MAX_GROUP][SPLIT_MAX];
    __shared__ float stat[MAX_GROUP][2];
    const int kvh = blockIdx.x, b = blockIdx.y, split = blockIdx.z, splits = gridDim.z;
    const int group = q_heads / kv_heads;
    const int kv_len = seq_lens_kv[b];
    const int start = split * keys_per_split;
    const int end = min(kv_len, start + keys_per_split);
    const int n = max(0, end - start);
    const int* bt = block_tables + (long)b * max_blocks_per_seq;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    for (int i = tid; i < group * HEAD_DIM; i += blockDim.x) {
        qs[i / HEAD_DIM][i % HEAD_DIM] = bf2f(q[(long)b * q_stride + (kvh * group) * HEAD_DIM + i]);
    }
    __syncthreads();
    for (int key = start + tid; key < end; key += blockDim.x) {
        const long slot = (long)bt[key / PAGE] * PAGE + key % PAGE;
        const uint4* kp = reinterpret_cast<const uint4*>(k_cache + (slot * kv_heads + kvh) * HEAD_DIM);
        float acc[MAX_GROUP];
#pragma unroll
        for (int gi = 0; gi < MAX_GROUP; ++gi) acc[gi] = 0.0f;
#pragma unroll 4
        for (int c = 0; c < HEAD_DIM / 8; ++c) {
            float f[8];
            unpack8(kp[c], f);
#pragma unroll
            for (int gi = 0; gi < MAX_GROUP; ++gi) {
                if (gi < group) {
#pragma unroll
                    for (int j = 0; j < 8; ++j) acc[gi] += f[j] * qs[gi][c * 8 + j];
                }
            }
        }
#pragma unroll
        for (int gi = 0; gi < MAX_GROUP; ++gi) {
            if (gi < group) sc[gi][key - start] = acc[gi] * scale_log2;
        }
    }
    __syncthreads();
    for (int gi = warp; gi < group; gi += blockDim.x / 32) {
        float mx = NEG_INF;
        for (int i = lane; i < n; i += 32) mx = fmaxf(mx, sc[gi][i]);
        mx = warp_max(mx);
        float sum = 0.0f;
        for (int i = lane; i < n; i += 32) {
            const float p = exp2f(sc[gi][i] - mx);
            sc[gi][i] = p;
            sum += p;
        }
        sum = warp_sum(sum);
        if (lane == 0) {
            stat[gi][0] = mx;
            stat[gi][1] = sum;
        }
    }
    __syncthreads();
    for (int dd = tid; dd < HEAD_DIM; dd += blockDim.x) {
        float acc[MAX_GROUP];
#pragma unroll
        for (int gi = 0; gi < MAX_GROUP; ++gi) acc[gi] = 0.0f;
        for (int key = start; key < end; ++key) {
            const long slot = (long)bt[key / PAGE] * PAGE + key % PAGE;
            const float v = bf2f(v_cache[(slot * kv_heads + kvh) * HEAD_DIM + dd]);
#pragma unroll
            for (int gi = 0; gi < MAX_GROUP; ++gi) {
                if (gi < group) acc[gi] += sc[gi][key - start] * v;
            }
        }
#pragma unroll
        for (int gi = 0; gi < MAX_GROUP; ++gi) {
            if (gi < group) {
                const long idx = ((long)b * q_heads + kvh * group + gi) * splits + split;
                o_part[idx * HEAD_DIM + dd] = n > 0 ? acc[gi] / stat[gi][1] : 0.0f;
            }
        }
    }
    if (tid < group) {
        const long idx = ((long)b * q_heads + kvh * group + tid) * splits + split;
        lse_part[idx] = n > 0 ? stat[tid][0] + log2f(stat[tid][1]) : NEG_INF;
    }
}

// Grid (q_heads, batch); merges the splits of one head of one sequence into bf16 output.
extern "C" __global__ void decode_merge(bf16_t* __restrict__ out, int out_stride,
                                        const float* __restrict__ o_part,
                                        const float* __restrict__ lse_part, int q_heads, int splits) {
    const int h = blockIdx.x, b = blockIdx.y;
    const long base = ((long)b * q_heads + h) * splits;
    float mx = NEG_INF;
    for (int s = 0; s < splits; ++s) mx = fmaxf(mx, lse_part[base + s]);
    for (int dd = threadIdx.x; dd < HEAD_DIM; dd += blockDim.x) {
        float num = 0.0f, den = 0.0f;
        for (int s = 0; s < splits; ++s) {
            const float lse = lse_part[base + s];
            const float w = (lse == NEG_INF) ? 0.0f : exp2f(lse - mx);
            num += w * o_part[(base + s) * HEAD_DIM + dd];
            den += w;
        }
        out[(long)b * out_stride + h * HEAD_DIM + dd] = f2bf(den > 0.0f ? num / den : 0.0f);
    }
}
