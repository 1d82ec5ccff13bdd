/* cuda_backend.cu - the CUDA backend: SmolLM3's forward pass on one NVIDIA GPU
 * with the same semantics as engine/backend_cpu.c (the reference). Weights are
 * uploaded once in BF16 (q/k/v and gate/up fused row-wise), the residual stream
 * stays f32, matrix products go through cuBLAS (BF16 in, f32 accumulate) or, for
 * single-token decode, a BF16 GEMV kernel of ours; attention is a tiled
 * flash-attention kernel with online softmax that reads K/V through the block
 * table and splits the KV range (flash-decoding) when the queries alone do not
 * fill the GPU. The KV pool is one device allocation of blocks laid out as the
 * CPU backend's: (block, layer, K/V, slot, n_kv_head * head_dim). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_common.h"

extern "C" {
#include "cuda_backend.h"
}

typedef __nv_bfloat16 bf16;

/* ---- device helpers ---- */

__device__ __forceinline__ float to_f(bf16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_f(float v) { return v; }
template <typename T> __device__ __forceinline__ T from_f(float v);
template <> __device__ __forceinline__ bf16 from_f<bf16>(float v) { return __float2bfloat16_rn(v); }
template <> __device__ __forceinline__ float from_f<float>(float v) { return v; }

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Sum over a block of blockDim.x (a multiple of 32, <= 1024) threads; all get it. */
__device__ float block_sum(float v) {
    __shared__ float red[32];
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) red[w] = v;
    __syncthreads();
    v = lane < nw ? red[lane] : 0.0f;
    return warp_sum(v);
}

/* ---- small kernels ---- */

/* x (n, H) f32 = embed[tokens[t]] */
__global__ void k_embed(float *x, const bf16 *embed, const int *tokens, int H) {
    int t = blockIdx.x;
    const bf16 *row = embed + (size_t)tokens[t] * H;
    for (int i = threadIdx.x; i < H; i += blockDim.x) x[(size_t)t * H + i] = to_f(row[i]);
}

/* y (n, d) bf16 = w * x / sqrt(mean(x^2) + eps) */
__global__ void k_rmsnorm(bf16 *y, const float *x, const float *w, int d, float eps) {
    const float *xr = x + (size_t)blockIdx.x * d;
    float ss = 0;
    for (int i = threadIdx.x; i < d; i += blockDim.x) ss += xr[i] * xr[i];
    ss = block_sum(ss);
    float r = 1.0f / sqrtf(ss / (float)d + eps);
    for (int i = threadIdx.x; i < d; i += blockDim.x) y[(size_t)blockIdx.x * d + i] = __float2bfloat16_rn(w[i] * (xr[i] * r));
}

/* cs (n, half, 2): cos and sin at position pos0 + t, times the attention factor,
 * computed in double and cast to float as the CPU backend does. dpos, when not
 * NULL, holds pos0 on the device (the decode graph: one graph, many positions). */
__global__ void k_rope_table(float *cs, const double *inv_freq, long pos0, const long *dpos, int n, int half,
                             double factor) {
    int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= n * half) return;
    if (dpos) pos0 = *dpos;
    int t = idx / half, i = idx % half;
    double a = (double)(pos0 + t) * inv_freq[i], s, c;
    sincos(a, &s, &c);
    cs[2 * (size_t)idx] = (float)(c * factor);
    cs[2 * (size_t)idx + 1] = (float)(s * factor);
}

/* Where the KV of one layer lives: element offsets into the pool. */
struct kv_geom {
    size_t block_elems; /* one block over all layers */
    size_t layer_off;   /* l * 2 * bs * kvd */
    size_t v_off;       /* bs * kvd */
    int bs, kvd;
    /* Offset of position p's K row (V: + v_off) through the block table. */
    __host__ __device__ size_t row(const int *table, long p) const {
        return (size_t)table[p / bs] * block_elems + layer_off + (size_t)(p % bs) * kvd;
    }
};

/* From qkv (n, qd + 2 kvd) f32: q (n, qd) f32 with RoPE applied (unless NoPE);
 * K (RoPE'd) and V written into the pool at positions pos0 + t (pos0 from dpos
 * when that is not NULL). */
template <typename KT>
__global__ void k_rope_store(float *q, KT *kv, const float *qkv, const float *cs, const int *table, kv_geom g,
                             long pos0, const long *dpos, int nh, int nkv, int hd, int rope) {
    int t = blockIdx.x, half = hd / 2, qd = nh * hd, kvd = nkv * hd;
    if (dpos) pos0 = *dpos;
    const float *src = qkv + (size_t)t * (qd + 2 * kvd);
    long p = pos0 + t;
    KT *dst = kv + g.row(table, p);
    for (int idx = threadIdx.x; idx < (nh + nkv) * half; idx += blockDim.x) {
        int head = idx / half, i = idx % half;
        float a = src[head * hd + i], b = src[head * hd + i + half];
        if (rope) {
            float c = cs[((size_t)t * half + i) * 2], s = cs[((size_t)t * half + i) * 2 + 1];
            float a2 = a * c - b * s, b2 = b * c + a * s;
            a = a2;
            b = b2;
        }
        if (head < nh) {
            q[(size_t)t * qd + head * hd + i] = a;
            q[(size_t)t * qd + head * hd + i + half] = b;
        } else {
            dst[(head - nh) * hd + i] = from_f<KT>(a);
            dst[(head - nh) * hd + i + half] = from_f<KT>(b);
        }
    }
    for (int i = threadIdx.x; i < kvd; i += blockDim.x) dst[g.v_off + i] = from_f<KT>(src[qd + kvd + i]);
}

/* act (n, I) bf16 = silu(gate) * up, from gu (n, 2I) f32 = [gate | up]. */
__global__ void k_swiglu(bf16 *act, const float *gu, int n, int I) {
    size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (size_t)n * I) return;
    size_t t = idx / I, i = idx % I;
    float g = gu[t * 2 * I + i], u = gu[t * 2 * I + I + i];
    act[idx] = __float2bfloat16_rn(g / (1.0f + expf(-g)) * u);
}

/* y (rows) (+)= W (rows, cols) . x (cols), one warp per row, 16-byte loads;
 * cols % 8 == 0. The decode-time matrix-vector product. */
__global__ void __launch_bounds__(256) k_gemv(float *y, const bf16 *w, const bf16 *x, int rows, int cols, int acc) {
    int row = blockIdx.x * 8 + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= rows) return;
    const uint4 *wr = (const uint4 *)(w + (size_t)row * cols);
    const uint4 *xr = (const uint4 *)x;
    int nv = cols / 8;
    float s = 0;
#pragma unroll 4
    for (int i = lane; i < nv; i += 32) {
        uint4 a = __ldg(wr + i), b = __ldg(xr + i);
        const __nv_bfloat162 *a2 = (const __nv_bfloat162 *)&a, *b2 = (const __nv_bfloat162 *)&b;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            float2 fa = __bfloat1622float2(a2[j]), fb = __bfloat1622float2(b2[j]);
            s += fa.x * fb.x + fa.y * fb.y;
        }
    }
    s = warp_sum(s);
    if (lane == 0) y[row] = acc ? y[row] + s : s;
}

/* ---- attention ---- */

struct attn_args {
    const float *q;     /* (n, nh, HD) */
    const void *kv;     /* the pool */
    const int *table;   /* block table */
    kv_geom g;
    int n, nh, nkv, grp;
    long pos0;
    const long *dpos;   /* when not NULL: pos0 on the device, and split_len is
                           recomputed from it (the decode graph) */
    float scale;
    int split_len, splits;
    bf16 *out;          /* (n, nh, HD) when splits == 1 */
    float *part;        /* (splits, n, nh, HD) unnormalised sums when splits > 1 */
    float *ml;          /* (splits, n, nh, 2) running max and sum */
};

enum { ATT_BK = 32, ATT_NW = 4, ATT_ROWS = 16 };

/* The position of the batch's first token, and the keys [kbeg, kbeg + len) of
 * split `split`. From a.dpos (the decode graph) the split length is recomputed
 * as choose_splits does: ceil(ctx / splits), rounded up to ATT_BK. */
__device__ __forceinline__ void attn_keys(const attn_args &a, int split, long *pos0, long *kbeg, long *len) {
    *pos0 = a.pos0;
    *len = a.split_len;
    if (a.dpos) {
        *pos0 = *a.dpos;
        long ctx = *pos0 + a.n;
        *len = ((ctx + a.splits - 1) / a.splits + ATT_BK - 1) / ATT_BK * ATT_BK;
    }
    *kbeg = (long)split * *len;
}

/* One block: ATT_ROWS query rows (token t, head j of the group of KV head
 * blockIdx.y, row = t * grp + j) against the keys of split blockIdx.z, causal.
 * K/V tiles of ATT_BK positions go through shared memory as f32; each warp owns
 * ATT_ROWS / ATT_NW rows, lane k scores key k of the tile, and each lane keeps
 * HD / 32 output dimensions. Online softmax in f32. */
template <int HD, typename KT>
__global__ void __launch_bounds__(ATT_NW * 32) k_attention(attn_args a) {
    constexpr int RPW = ATT_ROWS / ATT_NW, DPL = (HD + 31) / 32, VEC = 16 / (int)sizeof(KT);
    static_assert(HD % VEC == 0, "head_dim must fill 16-byte loads");
    __shared__ float Qs[ATT_ROWS][HD];
    __shared__ float Ks[ATT_BK][HD + 1]; /* padded: lane k reads row k, conflict-free */
    __shared__ float Vs[ATT_BK][HD];
    const int g = blockIdx.y, split = blockIdx.z, r0 = blockIdx.x * ATT_ROWS;
    const int nrows = a.n * a.grp, tid = threadIdx.x, lane = tid & 31, w = tid >> 5;
    const KT *kv = (const KT *)a.kv;
    for (int e = tid; e < ATT_ROWS * HD; e += ATT_NW * 32) {
        int rr = e / HD, d = e % HD, r = r0 + rr;
        float v = 0;
        if (r < nrows) v = a.q[((size_t)(r / a.grp) * a.nh + (size_t)g * a.grp + r % a.grp) * HD + d];
        Qs[rr][d] = v;
    }
    int r_last = min(r0 + ATT_ROWS, nrows) - 1;
    long pos0, kbeg, split_len;
    attn_keys(a, split, &pos0, &kbeg, &split_len);
    long kend = min(kbeg + split_len, pos0 + r_last / a.grp + 1);
    float m[RPW], l[RPW], acc[RPW][DPL];
    long qpos[RPW];
    bool valid[RPW];
#pragma unroll
    for (int i = 0; i < RPW; i++) {
        int r = r0 + w + i * ATT_NW;
        valid[i] = r < nrows;
        qpos[i] = pos0 + r / a.grp;
        m[i] = -INFINITY;
        l[i] = 0;
#pragma unroll
        for (int j = 0; j < DPL; j++) acc[i][j] = 0;
    }
    __syncthreads();
    for (long k0 = kbeg; k0 < kend; k0 += ATT_BK) {
        for (int e = tid; e < ATT_BK * HD / VEC; e += ATT_NW * 32) {
            int kr = e / (HD / VEC), d0 = (e % (HD / VEC)) * VEC;
            long p = k0 + kr;
            if (p < kend) {
                size_t off = a.g.row(a.table, p) + (size_t)g * HD + d0;
                uint4 kb = *(const uint4 *)(kv + off), vb = *(const uint4 *)(kv + off + a.g.v_off);
                const KT *kk = (const KT *)&kb, *vv = (const KT *)&vb;
#pragma unroll
                for (int i = 0; i < VEC; i++) {
                    Ks[kr][d0 + i] = to_f(kk[i]);
                    Vs[kr][d0 + i] = to_f(vv[i]);
                }
            } else {
#pragma unroll
                for (int i = 0; i < VEC; i++) {
                    Ks[kr][d0 + i] = 0;
                    Vs[kr][d0 + i] = 0;
                }
            }
        }
        __syncthreads();
#pragma unroll
        for (int i = 0; i < RPW; i++) {
            if (!valid[i]) continue; /* uniform over the warp */
            const int rr = w + i * ATT_NW;
            long p = k0 + lane;
            float s = -INFINITY;
            if (p < kend && p <= qpos[i]) {
                float dot = 0;
#pragma unroll 8
                for (int d = 0; d < HD; d++) dot += Qs[rr][d] * Ks[lane][d];
                s = dot * a.scale;
            }
            float mn = fmaxf(m[i], warp_max(s));
            if (mn == -INFINITY) continue; /* uniform: every key of the tile masked */
            float pr = s == -INFINITY ? 0.0f : expf(s - mn);
            float corr = m[i] == -INFINITY ? 0.0f : expf(m[i] - mn);
            l[i] = l[i] * corr + warp_sum(pr);
#pragma unroll
            for (int j = 0; j < DPL; j++) acc[i][j] *= corr;
#pragma unroll 4
            for (int k = 0; k < ATT_BK; k++) {
                float pk = __shfl_sync(0xffffffffu, pr, k);
#pragma unroll
                for (int j = 0; j < DPL; j++) {
                    int d = lane + 32 * j;
                    if (d < HD) acc[i][j] += pk * Vs[k][d];
                }
            }
            m[i] = mn;
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < RPW; i++) {
        if (!valid[i]) continue;
        int r = r0 + w + i * ATT_NW, t = r / a.grp, h = g * a.grp + r % a.grp;
        if (a.splits == 1) {
            float inv = l[i] > 0 ? 1.0f / l[i] : 0.0f;
#pragma unroll
            for (int j = 0; j < DPL; j++) {
                int d = lane + 32 * j;
                if (d < HD) a.out[((size_t)t * a.nh + h) * HD + d] = __float2bfloat16_rn(acc[i][j] * inv);
            }
        } else {
            size_t pr = ((size_t)split * a.n + t) * a.nh + h;
#pragma unroll
            for (int j = 0; j < DPL; j++) {
                int d = lane + 32 * j;
                if (d < HD) a.part[pr * HD + d] = acc[i][j];
            }
            if (lane == 0) {
                a.ml[pr * 2] = m[i];
                a.ml[pr * 2 + 1] = l[i];
            }
        }
    }
}

/* ---- tensor-core flash attention (prefill) ----
 * FlashAttention-2 order on mma.sync m16n8k16 (BF16 in, f32 accumulate), for
 * BF16 KV and head_dim 64 or 128. A block of FA_NW warps owns FA_BM = 64 query
 * rows of one KV head (row = token * grp + head in the group, as k_attention)
 * and walks the keys of its split in tiles of FA_BN = 64 read through the block
 * table. Each warp keeps 16 rows: their Q fragments, the score tile S = Q K^T
 * and the output O = P V in registers, with the online softmax done on the
 * accumulators (base 2: scores are scaled by scale * log2 e). K and V go
 * through shared memory with rows padded by 16 bytes, so the 32-bit fragment
 * loads of K and the transposing ldmatrix of V are free of bank conflicts.
 * Q is rounded to BF16 (k_attention keeps it f32). Masked keys, keys past the
 * split and padding rows read zeros, so no NaN can enter. */
enum { FA_BM = 64, FA_BN = 64, FA_NW = 4 };

__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi); /* .x (lo) in the low half */
    return *(uint32_t *)&v;
}

__device__ __forceinline__ void mma_16816(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void ldsm_x4_trans(uint32_t r[4], const void *p) {
    uint32_t s = (uint32_t)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(s));
}

template <int HD>
__global__ void __launch_bounds__(FA_NW * 32) k_flash_attn(attn_args a) {
    constexpr int SROW = HD + 8;        /* padded row, in bf16 */
    constexpr int SW = SROW / 2;        /* the same in 32-bit words */
    constexpr int KS = HD / 16;         /* k-steps of Q K^T */
    constexpr int NT = FA_BN / 8;       /* n-tiles of S */
    constexpr int OT = HD / 8;          /* n-tiles of O */
    constexpr int CH = HD / 8;          /* 16-byte chunks per row */
    __shared__ __align__(16) bf16 Ks[FA_BN * SROW]; /* holds Q first */
    __shared__ __align__(16) bf16 Vs[FA_BN * SROW];
    const int g = blockIdx.y, split = blockIdx.z, r0 = blockIdx.x * FA_BM;
    const int nrows = a.n * a.grp, tid = threadIdx.x, lane = tid & 31, w = tid >> 5;
    const int gi = lane >> 2, tig = lane & 3;
    const bf16 *kv = (const bf16 *)a.kv;

    /* Q rows -> BF16 in Ks, then into registers */
    for (int e = tid; e < FA_BM * (HD / 4); e += FA_NW * 32) {
        int rr = e / (HD / 4), d = (e % (HD / 4)) * 4, r = r0 + rr;
        float4 v = make_float4(0, 0, 0, 0);
        if (r < nrows) v = *(const float4 *)(a.q + ((size_t)(r / a.grp) * a.nh + (size_t)g * a.grp + r % a.grp) * HD + d);
        uint32_t *dst = (uint32_t *)(Ks + rr * SROW + d);
        dst[0] = pack_bf16x2(v.x, v.y);
        dst[1] = pack_bf16x2(v.z, v.w);
    }
    __syncthreads();
    uint32_t qf[KS][4];
    {
        const uint32_t *Q32 = (const uint32_t *)Ks;
        const int ra = w * 16 + gi, rb = ra + 8;
#pragma unroll
        for (int kk = 0; kk < KS; kk++) {
            qf[kk][0] = Q32[ra * SW + kk * 8 + tig];
            qf[kk][1] = Q32[rb * SW + kk * 8 + tig];
            qf[kk][2] = Q32[ra * SW + kk * 8 + 4 + tig];
            qf[kk][3] = Q32[rb * SW + kk * 8 + 4 + tig];
        }
    }
    const int row_a = r0 + w * 16 + gi, row_b = row_a + 8;
    const long qpos_a = a.pos0 + row_a / a.grp, qpos_b = a.pos0 + row_b / a.grp;
    const int r_last = min(r0 + FA_BM, nrows) - 1;
    const long kbeg = (long)split * a.split_len;
    const long kend = min(kbeg + (long)a.split_len, a.pos0 + r_last / a.grp + 1);
    const float sl2 = a.scale * 1.4426950408889634f;
    float m_a = -INFINITY, m_b = -INFINITY, l_a = 0, l_b = 0;
    float o[OT][4];
#pragma unroll
    for (int j = 0; j < OT; j++) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0;

    for (long k0 = kbeg; k0 < kend; k0 += FA_BN) {
        __syncthreads(); /* Q fragments read / previous tile consumed */
        for (int e = tid; e < FA_BN * CH; e += FA_NW * 32) {
            int kr = e / CH, d0 = (e % CH) * 8;
            long p = k0 + kr;
            uint4 kb = make_uint4(0, 0, 0, 0), vb = make_uint4(0, 0, 0, 0);
            if (p < kend) {
                size_t off = a.g.row(a.table, p) + (size_t)g * HD + d0;
                kb = *(const uint4 *)(kv + off);
                vb = *(const uint4 *)(kv + off + a.g.v_off);
            }
            *(uint4 *)(Ks + kr * SROW + d0) = kb;
            *(uint4 *)(Vs + kr * SROW + d0) = vb;
        }
        __syncthreads();
        /* S = Q K^T */
        float s[NT][4];
#pragma unroll
        for (int j = 0; j < NT; j++) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0;
        const uint32_t *K32 = (const uint32_t *)Ks;
#pragma unroll
        for (int kk = 0; kk < KS; kk++)
#pragma unroll
            for (int j = 0; j < NT; j++) {
                const uint32_t *kr = K32 + (j * 8 + gi) * SW + kk * 8 + tig;
                mma_16816(s[j], qf[kk], kr[0], kr[4]);
            }
        /* mask, scale, row maxima */
        float mx_a = -INFINITY, mx_b = -INFINITY;
#pragma unroll
        for (int j = 0; j < NT; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                long key = k0 + j * 8 + 2 * tig + (e & 1);
                long qp = e < 2 ? qpos_a : qpos_b;
                float v = (key < kend && key <= qp) ? s[j][e] * sl2 : -INFINITY;
                s[j][e] = v;
                if (e < 2) mx_a = fmaxf(mx_a, v);
                else mx_b = fmaxf(mx_b, v);
            }
        mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, 1));
        mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, 2));
        mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, 1));
        mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, 2));
        float mn_a = fmaxf(m_a, mx_a), mn_b = fmaxf(m_b, mx_b);
        float mu_a = mn_a == -INFINITY ? 0.0f : mn_a, mu_b = mn_b == -INFINITY ? 0.0f : mn_b;
        float c_a = exp2f(m_a - mu_a), c_b = exp2f(m_b - mu_b);
        m_a = mn_a;
        m_b = mn_b;
        float ps_a = 0, ps_b = 0;
#pragma unroll
        for (int j = 0; j < NT; j++) {
            s[j][0] = exp2f(s[j][0] - mu_a);
            s[j][1] = exp2f(s[j][1] - mu_a);
            s[j][2] = exp2f(s[j][2] - mu_b);
            s[j][3] = exp2f(s[j][3] - mu_b);
            ps_a += s[j][0] + s[j][1];
            ps_b += s[j][2] + s[j][3];
        }
        l_a = l_a * c_a + ps_a; /* this thread's share; summed over the quad at the end */
        l_b = l_b * c_b + ps_b;
#pragma unroll
        for (int j = 0; j < OT; j++) {
            o[j][0] *= c_a;
            o[j][1] *= c_a;
            o[j][2] *= c_b;
            o[j][3] *= c_b;
        }
        /* O += P V: P from the S accumulators, V^T fragments by ldmatrix.trans */
#pragma unroll
        for (int kk = 0; kk < FA_BN / 16; kk++) {
            uint32_t pa[4] = {pack_bf16x2(s[2 * kk][0], s[2 * kk][1]), pack_bf16x2(s[2 * kk][2], s[2 * kk][3]),
                              pack_bf16x2(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                              pack_bf16x2(s[2 * kk + 1][2], s[2 * kk + 1][3])};
            const int mat = lane >> 3;
            const bf16 *vrow = Vs + (kk * 16 + (mat & 1) * 8 + (lane & 7)) * SROW + (mat >> 1) * 8;
#pragma unroll
            for (int jn = 0; jn < OT / 2; jn++) {
                uint32_t vb[4];
                ldsm_x4_trans(vb, vrow + jn * 16);
                mma_16816(o[2 * jn], pa, vb[0], vb[1]);
                mma_16816(o[2 * jn + 1], pa, vb[2], vb[3]);
            }
        }
    }
    l_a += __shfl_xor_sync(0xffffffffu, l_a, 1);
    l_a += __shfl_xor_sync(0xffffffffu, l_a, 2);
    l_b += __shfl_xor_sync(0xffffffffu, l_b, 1);
    l_b += __shfl_xor_sync(0xffffffffu, l_b, 2);
#pragma unroll
    for (int half = 0; half < 2; half++) {
        const int r = half ? row_b : row_a;
        if (r >= nrows) continue;
        const float l = half ? l_b : l_a, m = half ? m_b : m_a;
        const int t = r / a.grp, h = g * a.grp + r % a.grp;
        if (a.splits == 1) {
            const float inv = l > 0 ? 1.0f / l : 0.0f;
            uint32_t *dst = (uint32_t *)(a.out + ((size_t)t * a.nh + h) * HD);
#pragma unroll
            for (int j = 0; j < OT; j++) dst[j * 4 + tig] = pack_bf16x2(o[j][2 * half] * inv, o[j][2 * half + 1] * inv);
        } else {
            const size_t pr = ((size_t)split * a.n + t) * a.nh + h;
            float2 *dst = (float2 *)(a.part + pr * HD);
#pragma unroll
            for (int j = 0; j < OT; j++) dst[j * 4 + tig] = make_float2(o[j][2 * half], o[j][2 * half + 1]);
            if (tig == 0) {
                a.ml[pr * 2] = m * 0.6931471805599453f; /* base-2 max -> natural, as k_attention's */
                a.ml[pr * 2 + 1] = l;
            }
        }
    }
}

/* ---- decode attention (one query token) ----
 * One block of DEC_NW warps per (KV head, split) computes all G query heads of
 * the group, so each K/V row is read once. A key is shared by HD / 16 lanes,
 * each holding 16 of its dimensions (two 16-byte loads of K and of V), so a
 * warp takes 32 * 16 / HD keys per step and each lane keeps its own online
 * softmax state (m, l, 16 output dims per head) over the keys it saw; the
 * states of all lanes are merged through shared memory at the end. Scores are
 * in base 2 (q is scaled by scale * log2 e). BF16 KV; G * HD <= 512. */
enum { DEC_NW = 4 };

__device__ __forceinline__ void bf16x8_to_f(const uint4 &u, float *f) {
    const __nv_bfloat162 *h = (const __nv_bfloat162 *)&u;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        float2 v = __bfloat1622float2(h[i]);
        f[2 * i] = v.x;
        f[2 * i + 1] = v.y;
    }
}

template <int HD, int G>
__global__ void __launch_bounds__(DEC_NW * 32) k_attn_decode(attn_args a) {
    constexpr int LPK = HD / 16;       /* lanes per key */
    constexpr int KPW = 32 / LPK;      /* keys per warp step */
    constexpr int NS = DEC_NW * KPW;   /* softmax states per block */
    static_assert(HD % 16 == 0 && G * HD <= 512, "decode attention shape");
    __shared__ float sm_o[NS][G][HD];
    __shared__ float sm_m[NS][G], sm_l[NS][G];
    const int g = blockIdx.y, split = blockIdx.z, tid = threadIdx.x, lane = tid & 31, w = tid >> 5;
    const int kg = lane / LPK, d0 = (lane % LPK) * 16, st = w * KPW + kg;
    const bf16 *kv = (const bf16 *)a.kv;
    long pos0, kbeg, split_len;
    attn_keys(a, split, &pos0, &kbeg, &split_len);
    const long kend = min(kbeg + split_len, pos0 + 1);
    const float sl2 = a.scale * 1.4426950408889634f;
    float qr[G][16], o[G][16], m[G], l[G];
#pragma unroll
    for (int h = 0; h < G; h++) {
        const float *qp = a.q + ((size_t)g * G + h) * HD + d0;
#pragma unroll
        for (int i = 0; i < 16; i++) {
            qr[h][i] = qp[i] * sl2;
            o[h][i] = 0;
        }
        m[h] = -INFINITY;
        l[h] = 0;
    }
    for (long base = kbeg + (long)w * KPW; base < kend; base += (long)DEC_NW * KPW) {
        const long p = base + kg;
        const bool valid = p < kend;
        uint4 kb0 = make_uint4(0, 0, 0, 0), kb1 = kb0, vb0 = kb0, vb1 = kb0;
        if (valid) {
            size_t off = a.g.row(a.table, p) + (size_t)g * HD + d0;
            kb0 = *(const uint4 *)(kv + off);
            kb1 = *(const uint4 *)(kv + off + 8);
            vb0 = *(const uint4 *)(kv + off + a.g.v_off);
            vb1 = *(const uint4 *)(kv + off + a.g.v_off + 8);
        }
        float kf[16], vf[16];
        bf16x8_to_f(kb0, kf);
        bf16x8_to_f(kb1, kf + 8);
        float s[G];
#pragma unroll
        for (int h = 0; h < G; h++) {
            float acc = 0;
#pragma unroll
            for (int i = 0; i < 16; i++) acc += qr[h][i] * kf[i];
#pragma unroll
            for (int off = 1; off < LPK; off <<= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
            s[h] = acc;
        }
        if (!valid) continue; /* after the shuffles: the whole warp took part in them */
        bf16x8_to_f(vb0, vf);
        bf16x8_to_f(vb1, vf + 8);
#pragma unroll
        for (int h = 0; h < G; h++) {
            float mn = fmaxf(m[h], s[h]);
            float c = exp2f(m[h] - mn), pr = exp2f(s[h] - mn); /* m = -inf: c = 0 */
            l[h] = l[h] * c + pr;
#pragma unroll
            for (int i = 0; i < 16; i++) o[h][i] = o[h][i] * c + pr * vf[i];
            m[h] = mn;
        }
    }
#pragma unroll
    for (int h = 0; h < G; h++) {
#pragma unroll
        for (int i = 0; i < 16; i++) sm_o[st][h][d0 + i] = o[h][i];
        if (lane % LPK == 0) {
            sm_m[st][h] = m[h];
            sm_l[st][h] = l[h];
        }
    }
    __syncthreads();
    for (int e = tid; e < G * HD; e += DEC_NW * 32) {
        const int h = e / HD, d = e % HD;
        float M = -INFINITY;
        for (int j = 0; j < NS; j++)
            if (sm_l[j][h] > 0) M = fmaxf(M, sm_m[j][h]);
        float L = 0, O = 0;
        for (int j = 0; j < NS; j++) {
            if (!(sm_l[j][h] > 0)) continue;
            float wj = exp2f(sm_m[j][h] - M);
            L += sm_l[j][h] * wj;
            O += sm_o[j][h][d] * wj;
        }
        const int hh = g * G + h;
        if (a.splits == 1) {
            a.out[(size_t)hh * HD + d] = __float2bfloat16_rn(L > 0 ? O / L : 0.0f);
        } else {
            const size_t pr = (size_t)split * a.nh + hh; /* n == 1 */
            a.part[pr * HD + d] = O;
            if (d == 0) {
                a.ml[pr * 2] = L > 0 ? M * 0.6931471805599453f : -INFINITY;
                a.ml[pr * 2 + 1] = L;
            }
        }
    }
}

/* Merges the splits of k_attention: out (n, nh, hd) bf16. One block per (t, h). */
__global__ void k_attn_combine(bf16 *out, const float *part, const float *ml, int n, int nh, int hd, int splits) {
    size_t row = blockIdx.x; /* t * nh + h */
    float M = -INFINITY;
    for (int s = 0; s < splits; s++) {
        size_t pr = (size_t)s * n * nh + row;
        if (ml[pr * 2 + 1] > 0) M = fmaxf(M, ml[pr * 2]);
    }
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float L = 0, o = 0;
        for (int s = 0; s < splits; s++) {
            size_t pr = (size_t)s * n * nh + row;
            float ls = ml[pr * 2 + 1];
            if (!(ls > 0)) continue;
            float wgt = expf(ml[pr * 2] - M);
            L += ls * wgt;
            o += part[pr * hd + d] * wgt;
        }
        out[row * hd + d] = __float2bfloat16_rn(L > 0 ? o / L : 0.0f);
    }
}

/* ---- the backend ---- */

/* Operations timed by SMOLDOC_CUDA_PROF (the label of a mark is the op that
 * ended at it). */
enum { OP_START, OP_EMBED, OP_NORM, OP_QKV, OP_ROPE, OP_ATTN, OP_WO, OP_GU, OP_SWIGLU, OP_DOWN, OP_LOGITS, OP_COUNT };
static const char *const op_names[OP_COUNT] = {"start", "embed", "rmsnorm", "qkv", "rope+kv", "attention",
                                               "o_proj", "gate_up", "swiglu", "down", "lm_head"};
enum { PROF_MAX_EV = 1024 };

typedef struct cu_layer {
    bf16 *wqkv;  /* (qd + 2 kvd, H): wq rows, then wk, then wv */
    bf16 *wo;    /* (H, qd) */
    bf16 *wgu;   /* (2 I, H): gate rows, then up */
    bf16 *wdown; /* (H, I) */
    float *attn_norm, *ffn_norm; /* (H) */
} cu_layer;

typedef struct cuda_backend {
    backend base;
    int dev, sms;
    cudaStream_t st;
    cublasHandle_t blas;
    int H, I, V, L, nh, nkv, hd, grp, qd, kvd, qkvd;
    /* weights */
    bf16 *wbuf;         /* every BF16 matrix, one allocation */
    size_t wbytes;
    float *nbuf;        /* every norm weight in f32: (2 L + 1, H) */
    cu_layer *layers;
    bf16 *embed;        /* (V, H) */
    bf16 *lm_head;      /* (V, H); == embed when tied */
    float *final_norm;  /* (H) */
    /* KV */
    void *kv;           /* (kv_blocks, L, 2, bs, kvd) in kv dtype */
    size_t kv_bytes, block_bytes;
    int kv_f32;
    kv_geom geom;
    double *inv_freq;   /* device (hd / 2) */
    double attn_factor;
    /* scratch for max_batch tokens B */
    float *x;           /* (B, H) residual stream */
    bf16 *h;            /* (B, max(H, qd)) normalised input of a product */
    float *qkv;         /* (B, qkvd) */
    float *q;           /* (B, qd) after RoPE */
    bf16 *att;          /* (B, qd) */
    float *gu;          /* (B, 2 I) */
    bf16 *act;          /* (B, I) */
    float *cs;          /* (B, hd / 2, 2) */
    float *part, *ml;   /* split-KV partials: (part_cap, nh, hd) and (part_cap, nh, 2) */
    int part_cap;       /* most n * splits */
    float *logits;      /* (logit_rows, V) */
    int logit_rows;
    int *tokens;        /* (B) */
    int *table;         /* (table_cap) */
    int table_cap;
    int use_gemv;
    const float *last_logits; /* row of the last position after a forward, or NULL */
    /* the decode step (n == 1) as one CUDA graph: it reads its position from
     * dpos, so it serves every position until the KV split count or the table
     * buffer changes */
    int use_graph;      /* 0 after SMOLDOC_CUDA_GRAPH=0 or a failed capture */
    long *dpos;         /* device: pos0 of the step */
    long *hpos;         /* pinned host copy */
    cudaGraphExec_t graph;
    int graph_splits;
    const int *graph_table;
    /* SMOLDOC_CUDA_PROF=1: events between the operations of eager forwards,
     * summed per operation, decode (n == 1) and prefill apart, printed to
     * stderr when the backend is freed. Graphs are off then. */
    int prof, prof_n;
    cudaEvent_t prof_ev[PROF_MAX_EV];
    unsigned char prof_lab[PROF_MAX_EV];
    double prof_ms[2][OP_COUNT];
    long prof_fwd[2];
} cuda_backend;

static void prof_mark(cuda_backend *cb, int op) {
    if (!cb->prof || cb->prof_n >= PROF_MAX_EV) return;
    if (!cb->prof_ev[cb->prof_n] && cudaEventCreate(&cb->prof_ev[cb->prof_n]) != cudaSuccess) return;
    cb->prof_lab[cb->prof_n] = (unsigned char)op;
    cudaEventRecord(cb->prof_ev[cb->prof_n++], cb->st);
}

/* After the forward's final synchronisation: time between marks, per op. */
static void prof_collect(cuda_backend *cb, int decode) {
    if (!cb->prof) return;
    for (int i = 1; i < cb->prof_n; i++) {
        float ms = 0;
        if (cudaEventElapsedTime(&ms, cb->prof_ev[i - 1], cb->prof_ev[i]) == cudaSuccess)
            cb->prof_ms[decode][cb->prof_lab[i]] += ms;
    }
    if (cb->prof_n > 1) cb->prof_fwd[decode]++;
    cb->prof_n = 0;
}

static void prof_print(cuda_backend *cb) {
    if (!cb->prof) return;
    for (int d = 0; d < 2; d++) {
        if (!cb->prof_fwd[d]) continue;
        double tot = 0;
        for (int o = 0; o < OP_COUNT; o++) tot += cb->prof_ms[d][o];
        fprintf(stderr, "cuda profile, %s: %ld forwards, %.3f ms each on the device\n", d ? "decode" : "prefill",
                cb->prof_fwd[d], tot / cb->prof_fwd[d]);
        for (int o = 0; o < OP_COUNT; o++)
            if (cb->prof_ms[d][o] > 0)
                fprintf(stderr, "  %-10s %9.4f ms %5.1f%%\n", op_names[o], cb->prof_ms[d][o] / cb->prof_fwd[d],
                        100 * cb->prof_ms[d][o] / tot);
    }
    for (int i = 0; i < PROF_MAX_EV; i++)
        if (cb->prof_ev[i]) cudaEventDestroy(cb->prof_ev[i]);
}

/* y (n, rows) f32 (+)= x (n, cols) bf16 . W^T, W (rows, cols) bf16 row-major.
 * Column-major view: Y^T (rows, n) = W (as cols x rows, transposed) . X^T. */
static int gemm(cuda_backend *cb, float *y, const bf16 *x, size_t n, const bf16 *w, int rows, int cols, int acc,
                sd_err *err) {
    if (n == 1 && cb->use_gemv && cols % 8 == 0) {
        k_gemv<<<(rows + 7) / 8, 256, 0, cb->st>>>(y, w, x, rows, cols, acc);
        CU_LAUNCH_CHECK();
        return 0;
    }
    float alpha = 1.0f, beta = acc ? 1.0f : 0.0f;
    CUBLAS_CHECK(cublasGemmEx(cb->blas, CUBLAS_OP_T, CUBLAS_OP_N, rows, (int)n, cols, &alpha, w, CUDA_R_16BF, cols,
                              x, CUDA_R_16BF, cols, &beta, y, CUDA_R_32F, rows, CUBLAS_COMPUTE_32F,
                              CUBLAS_GEMM_DEFAULT));
    return 0;
}

static int rmsnorm(cuda_backend *cb, bf16 *y, const float *x, const float *w, size_t n, sd_err *err) {
    k_rmsnorm<<<(unsigned)n, 256, 0, cb->st>>>(y, x, w, cb->H, cb->base.m->cfg.rms_eps);
    CU_LAUNCH_CHECK();
    return 0;
}

template <int HD, typename KT>
static int attention_launch(cudaStream_t st, const attn_args &a, sd_err *err) {
    dim3 grid((unsigned)((a.n * a.grp + ATT_ROWS - 1) / ATT_ROWS), (unsigned)a.nkv, (unsigned)a.splits);
    k_attention<HD, KT><<<grid, ATT_NW * 32, 0, st>>>(a);
    CU_LAUNCH_CHECK();
    return 0;
}

template <typename KT>
static int attention_hd(cudaStream_t st, int hd, const attn_args &a, sd_err *err) {
    switch (hd) {
    case 8: return attention_launch<8, KT>(st, a, err);
    case 16: return attention_launch<16, KT>(st, a, err);
    case 32: return attention_launch<32, KT>(st, a, err);
    case 64: return attention_launch<64, KT>(st, a, err);
    case 128: return attention_launch<128, KT>(st, a, err);
    }
    return sd_seterr(err, SD_EBACKEND, "backend_cuda: head_dim %d not supported (8, 16, 32, 64, 128)", hd);
}

static int head_dim_supported(int hd) { return hd == 8 || hd == 16 || hd == 32 || hd == 64 || hd == 128; }

/* Chooses the KV splits for n queries over ctx keys: enough blocks to fill the
 * GPU (about 4 per multiprocessor), splits of at least 4 * gran keys (k_attention:
 * 128, the tensor-core kernel: 256), n * splits within the partials buffer.
 * rows: query rows per block; gran: split lengths are multiples of it. force > 0
 * overrides. */
static void choose_splits(int n, int grp, int nkv, long ctx, int sms, int part_cap, int force, int rows, int gran,
                          int *splits, int *split_len) {
    long base = (long)((n * grp + rows - 1) / rows) * nkv, target = 4L * sms;
    long s = 1;
    if (force > 0) s = force;
    else if (base < target) {
        s = (target + base - 1) / base;
        long most = (ctx + 4 * gran - 1) / (4 * gran);
        if (s > most) s = most;
    }
    if (s > part_cap / n) s = part_cap / n;
    if (s < 1) s = 1;
    long len = (ctx + s - 1) / s;
    len = (len + gran - 1) / gran * gran;
    *split_len = (int)len;
    *splits = (int)((ctx + len - 1) / len);
}

/* 1 when the environment variable name is set to val. */
static int env_is(const char *name, const char *val) {
    const char *e = getenv(name);
    return e && !strcmp(e, val);
}

/* The tensor-core kernel takes BF16 KV, head_dim 64 or 128, and batches of at
 * least 32 query rows (decode stays on k_attention, whose 16-row blocks waste
 * less); SMOLDOC_CUDA_FA=0 turns it off. */
static int use_flash(int kv_f32, int hd, int n, int grp) {
    static int off = -1;
    if (off < 0) off = env_is("SMOLDOC_CUDA_FA", "0");
    return !off && !kv_f32 && (hd == 64 || hd == 128) && n * grp >= 32;
}

/* The decode kernel (k_attn_decode) for single-token steps with BF16 KV, head_dim
 * 16..128 and groups of 1, 2 or 4 heads. Not yet run on a GPU, so it is off
 * unless SMOLDOC_CUDA_DECODE_ATTN=1 (engine/cuda/NOTES.md). */
static int use_decode_kernel(int kv_f32, int hd, int n, int grp) {
    static int on = -1;
    if (on < 0) on = env_is("SMOLDOC_CUDA_DECODE_ATTN", "1");
    return on && n == 1 && !kv_f32 && (hd == 16 || hd == 32 || hd == 64 || hd == 128) &&
           (grp == 1 || grp == 2 || grp == 4) && grp * hd <= 512;
}

template <int HD>
static void decode_launch(dim3 grid, cudaStream_t st, const attn_args &a) {
    switch (a.grp) {
    case 1: k_attn_decode<HD, 1><<<grid, DEC_NW * 32, 0, st>>>(a); break;
    case 2: k_attn_decode<HD, 2><<<grid, DEC_NW * 32, 0, st>>>(a); break;
    default: k_attn_decode<HD, 4><<<grid, DEC_NW * 32, 0, st>>>(a); break;
    }
}

/* Attention of n queries (q, after RoPE) over positions [0, pos0 + n) of layer
 * geometry g; output bf16 in out. dpos (may be NULL): pos0 on the device, for
 * the decode graph; k_attention then sizes its splits itself. */
static int attention_run(cudaStream_t st, int sms, const float *q, const void *kv, int kv_f32, const int *table,
                         kv_geom g, int n, long pos0, const long *dpos, int nh, int nkv, int hd, bf16 *out,
                         float *part, float *ml, int part_cap, int force_splits, sd_err *err) {
    attn_args a;
    a.q = q;
    a.kv = kv;
    a.table = table;
    a.g = g;
    a.n = n;
    a.nh = nh;
    a.nkv = nkv;
    a.grp = nh / nkv;
    a.pos0 = pos0;
    a.dpos = dpos;
    a.scale = 1.0f / sqrtf((float)hd);
    a.out = out;
    a.part = part;
    a.ml = ml;
    if (!dpos && use_flash(kv_f32, hd, n, a.grp)) {
        choose_splits(n, a.grp, nkv, pos0 + n, sms, part_cap, force_splits, FA_BM, FA_BN, &a.splits, &a.split_len);
        dim3 grid((unsigned)((n * a.grp + FA_BM - 1) / FA_BM), (unsigned)nkv, (unsigned)a.splits);
        if (hd == 128) k_flash_attn<128><<<grid, FA_NW * 32, 0, st>>>(a);
        else k_flash_attn<64><<<grid, FA_NW * 32, 0, st>>>(a);
        CU_LAUNCH_CHECK();
    } else if (use_decode_kernel(kv_f32, hd, n, a.grp)) {
        choose_splits(n, a.grp, nkv, pos0 + n, sms, part_cap, force_splits, a.grp, ATT_BK, &a.splits, &a.split_len);
        dim3 grid(1, (unsigned)nkv, (unsigned)a.splits);
        switch (hd) {
        case 16: decode_launch<16>(grid, st, a); break;
        case 32: decode_launch<32>(grid, st, a); break;
        case 64: decode_launch<64>(grid, st, a); break;
        default: decode_launch<128>(grid, st, a); break;
        }
        CU_LAUNCH_CHECK();
    } else {
        choose_splits(n, a.grp, nkv, pos0 + n, sms, part_cap, force_splits, ATT_ROWS, ATT_BK, &a.splits,
                      &a.split_len);
        SD_TRY(kv_f32 ? attention_hd<float>(st, hd, a, err) : attention_hd<bf16>(st, hd, a, err));
    }
    if (a.splits > 1) {
        k_attn_combine<<<(unsigned)((size_t)n * nh), hd < 128 ? 32 * ((hd + 31) / 32) : 128, 0, st>>>(
            out, part, ml, n, nh, hd, a.splits);
        CU_LAUNCH_CHECK();
    }
    return 0;
}

static int upload_ints(cuda_backend *cb, int **dbuf, int *cap, const int *src, int n, const char *what, sd_err *err) {
    if (n > *cap) {
        cudaFree(*dbuf);
        *dbuf = NULL;
        *cap = 0;
        SD_TRY(sdcu_malloc((void **)dbuf, (size_t)n * sizeof(int), what, err));
        *cap = n;
    }
    CU_CHECK(cudaMemcpyAsync(*dbuf, src, (size_t)n * sizeof(int), cudaMemcpyHostToDevice, cb->st));
    return 0;
}

/* Enqueues the forward of n tokens (already uploaded) at pos0 on cb->st, up to
 * the final norm: every layer, then the normalised last row (or rows r0..) are
 * left for the logits. dpos: see attention_run; splits: KV splits (0: chosen
 * per call). */
static int enqueue_layers(cuda_backend *cb, size_t n, long pos0, const long *dpos, int splits, sd_err *err) {
    const model_config *c = &cb->base.m->cfg;
    const size_t bs = (size_t)cb->base.p.kv_block_size;
    const int half = cb->hd / 2, nh2 = (int)n * half;
    prof_mark(cb, OP_START);
    k_rope_table<<<(nh2 + 255) / 256, 256, 0, cb->st>>>(cb->cs, cb->inv_freq, pos0, dpos, (int)n, half, cb->attn_factor);
    CU_LAUNCH_CHECK();
    k_embed<<<(unsigned)n, 256, 0, cb->st>>>(cb->x, cb->embed, cb->tokens, cb->H);
    CU_LAUNCH_CHECK();
    prof_mark(cb, OP_EMBED);
    for (int l = 0; l < cb->L; l++) {
        const cu_layer *Ly = &cb->layers[l];
        kv_geom g = cb->geom;
        g.layer_off = (size_t)l * 2 * bs * (size_t)cb->kvd;
        SD_TRY(rmsnorm(cb, cb->h, cb->x, Ly->attn_norm, n, err));
        prof_mark(cb, OP_NORM);
        SD_TRY(gemm(cb, cb->qkv, cb->h, n, Ly->wqkv, cb->qkvd, cb->H, 0, err));
        prof_mark(cb, OP_QKV);
        if (cb->kv_f32)
            k_rope_store<float><<<(unsigned)n, 128, 0, cb->st>>>(cb->q, (float *)cb->kv, cb->qkv, cb->cs, cb->table, g,
                                                                pos0, dpos, cb->nh, cb->nkv, cb->hd, c->use_rope[l]);
        else
            k_rope_store<bf16><<<(unsigned)n, 128, 0, cb->st>>>(cb->q, (bf16 *)cb->kv, cb->qkv, cb->cs, cb->table, g,
                                                               pos0, dpos, cb->nh, cb->nkv, cb->hd, c->use_rope[l]);
        CU_LAUNCH_CHECK();
        prof_mark(cb, OP_ROPE);
        SD_TRY(attention_run(cb->st, cb->sms, cb->q, cb->kv, cb->kv_f32, cb->table, g, (int)n, pos0, dpos, cb->nh,
                             cb->nkv, cb->hd, cb->att, cb->part, cb->ml, cb->part_cap, splits, err));
        prof_mark(cb, OP_ATTN);
        SD_TRY(gemm(cb, cb->x, cb->att, n, Ly->wo, cb->H, cb->qd, 1, err)); /* residual add in the product */
        prof_mark(cb, OP_WO);
        SD_TRY(rmsnorm(cb, cb->h, cb->x, Ly->ffn_norm, n, err));
        prof_mark(cb, OP_NORM);
        SD_TRY(gemm(cb, cb->gu, cb->h, n, Ly->wgu, 2 * cb->I, cb->H, 0, err));
        prof_mark(cb, OP_GU);
        size_t ni = n * (size_t)cb->I;
        k_swiglu<<<(unsigned)((ni + 255) / 256), 256, 0, cb->st>>>(cb->act, cb->gu, (int)n, cb->I);
        CU_LAUNCH_CHECK();
        prof_mark(cb, OP_SWIGLU);
        SD_TRY(gemm(cb, cb->x, cb->act, n, Ly->wdown, cb->H, cb->I, 1, err));
        prof_mark(cb, OP_DOWN);
    }
    return 0;
}

/* Logits (rows, V) in cb->logits of the rows of the residual stream from x. */
static int enqueue_logits(cuda_backend *cb, const float *x, size_t rows, sd_err *err) {
    SD_TRY(rmsnorm(cb, cb->h, x, cb->final_norm, rows, err));
    return gemm(cb, cb->logits, cb->h, rows, cb->lm_head, cb->V, cb->H, 0, err);
}

/* The decode step, layers and logits, as a graph for the current split count
 * and table buffer; captured again when either changes. Returns 1 (no graph:
 * run eagerly) when graphs are off or the capture fails, which turns them off
 * for this backend with one line on stderr. */
static int decode_graph(cuda_backend *cb, long pos0, sd_err *err) {
    if (!cb->use_graph) return 1;
    int splits, len;
    choose_splits(1, cb->grp, cb->nkv, pos0 + 1, cb->sms, cb->part_cap, 0, ATT_ROWS, ATT_BK, &splits, &len);
    /* up to a power of two (within the partials buffer), so that the graph is
     * captured again only when the context doubles: the kernel sizes the
     * splits from the position it reads, and empty splits drop out */
    int p2 = 1;
    while (p2 < splits) p2 *= 2;
    if (p2 <= cb->part_cap && p2 <= 4 * cb->sms) splits = p2;
    if (cb->graph && cb->graph_splits == splits && cb->graph_table == cb->table) return 0;
    if (cb->graph) cudaGraphExecDestroy(cb->graph);
    cb->graph = NULL;
    cudaGraph_t gr = NULL;
    CU_CHECK(cudaStreamBeginCapture(cb->st, cudaStreamCaptureModeThreadLocal));
    sd_err cerr = {0};
    int rc = enqueue_layers(cb, 1, pos0, cb->dpos, splits, &cerr);
    if (!rc) rc = enqueue_logits(cb, cb->x, 1, &cerr);
    cudaError_t e = cudaStreamEndCapture(cb->st, &gr);
    if (!rc && e == cudaSuccess) e = cudaGraphInstantiate(&cb->graph, gr, 0);
    if (gr) cudaGraphDestroy(gr);
    if (rc || e != cudaSuccess) {
        cudaGetLastError();
        cb->graph = NULL;
        cb->use_graph = 0;
        fprintf(stderr, "backend_cuda: decode graph capture failed (%s); decoding without graphs\n",
                rc ? cerr.msg : cudaGetErrorString(e));
        return 1;
    }
    cb->graph_splits = splits;
    cb->graph_table = cb->table;
    return 0;
}

static int cuda_forward_impl(cuda_backend *cb, const backend_batch *bt, sd_err *err) {
    const model_config *c = &cb->base.m->cfg;
    const size_t n = bt->n, H = (size_t)cb->H, V = (size_t)cb->V;
    const size_t bs = (size_t)cb->base.p.kv_block_size;
    cb->last_logits = NULL;
    if (n == 0) return 0;
    if (n > (size_t)cb->base.p.max_batch)
        return sd_seterr(err, SD_EINVAL, "backend_cuda: batch of %zu tokens exceeds max_batch %d", n, cb->base.p.max_batch);
    if ((bt->pos0 + n + bs - 1) / bs > (size_t)bt->n_table)
        return sd_seterr(err, SD_EINVAL, "backend_cuda: block table too short for %zu tokens", bt->pos0 + n);
    for (size_t t = 0; t < n; t++)
        if (bt->tokens[t] < 0 || bt->tokens[t] >= c->vocab)
            return sd_seterr(err, SD_EINVAL, "backend_cuda: token id %d outside the vocabulary (%d)", bt->tokens[t], c->vocab);
    for (int i = 0; i < bt->n_table; i++)
        if (bt->block_table[i] < 0 || bt->block_table[i] >= cb->base.p.kv_blocks)
            return sd_seterr(err, SD_EINVAL, "backend_cuda: block %d outside the pool (%d)", bt->block_table[i], cb->base.p.kv_blocks);
    int tcap = cb->base.p.max_batch;
    SD_TRY(upload_ints(cb, &cb->tokens, &tcap, (const int *)bt->tokens, (int)n, "token ids", err));
    SD_TRY(upload_ints(cb, &cb->table, &cb->table_cap, bt->block_table, bt->n_table, "block table", err));
    if (n == 1 && decode_graph(cb, (long)bt->pos0, err) == 0) {
        /* the previous step's graph may still read hpos: it was synchronised below */
        *cb->hpos = (long)bt->pos0;
        CU_CHECK(cudaMemcpyAsync(cb->dpos, cb->hpos, sizeof(long), cudaMemcpyHostToDevice, cb->st));
        CU_CHECK(cudaGraphLaunch(cb->graph, cb->st));
        if (!bt->device_logits)
            CU_CHECK(cudaMemcpyAsync(bt->logits, cb->logits, V * sizeof(float), cudaMemcpyDeviceToHost, cb->st));
        CU_CHECK(cudaStreamSynchronize(cb->st));
        cb->last_logits = cb->logits;
        return 0;
    }
    SD_TRY(enqueue_layers(cb, n, (long)bt->pos0, NULL, 0, err));
    if (bt->all_logits) {
        for (size_t r0 = 0; r0 < n; r0 += (size_t)cb->logit_rows) {
            size_t rows = n - r0 < (size_t)cb->logit_rows ? n - r0 : (size_t)cb->logit_rows;
            SD_TRY(enqueue_logits(cb, cb->x + r0 * H, rows, err));
            CU_CHECK(cudaMemcpyAsync(bt->logits + r0 * V, cb->logits, rows * V * sizeof(float), cudaMemcpyDeviceToHost, cb->st));
            CU_CHECK(cudaStreamSynchronize(cb->st)); /* the logits buffer is reused */
            cb->last_logits = cb->logits + (rows - 1) * V;
        }
    } else {
        SD_TRY(enqueue_logits(cb, cb->x + (n - 1) * H, 1, err));
        if (!bt->device_logits) /* else they stay for cuda_sample_last */
            CU_CHECK(cudaMemcpyAsync(bt->logits, cb->logits, V * sizeof(float), cudaMemcpyDeviceToHost, cb->st));
        prof_mark(cb, OP_LOGITS);
        CU_CHECK(cudaStreamSynchronize(cb->st));
        cb->last_logits = cb->logits;
    }
    prof_collect(cb, n == 1);
    return 0;
}

static int cuda_forward(backend *b, const backend_batch *bt, sd_err *err) {
    cuda_backend *cb = (cuda_backend *)b;
    CU_CHECK(cudaSetDevice(cb->dev));
    int rc = cuda_forward_impl(cb, bt, err);
    if (rc) {
        cb->last_logits = NULL;
        cudaStreamSynchronize(cb->st);
        cudaGetLastError();
    }
    return rc;
}

static int cuda_kv_copy(backend *b, int dst, int src, sd_err *err) {
    cuda_backend *cb = (cuda_backend *)b;
    if (dst < 0 || src < 0 || dst >= b->p.kv_blocks || src >= b->p.kv_blocks)
        return sd_seterr(err, SD_EINVAL, "backend_cuda: kv_copy block out of range");
    CU_CHECK(cudaSetDevice(cb->dev));
    CU_CHECK(cudaMemcpyAsync((char *)cb->kv + (size_t)dst * cb->block_bytes, (char *)cb->kv + (size_t)src * cb->block_bytes,
                             cb->block_bytes, cudaMemcpyDeviceToDevice, cb->st));
    return 0;
}

static void cuda_mem_info(backend *b, size_t *kv_bytes, size_t *weight_bytes) {
    cuda_backend *cb = (cuda_backend *)b;
    if (kv_bytes) *kv_bytes = cb->kv_bytes;
    if (weight_bytes) *weight_bytes = cb->wbytes;
}

static void cuda_free(backend *b) {
    cuda_backend *cb = (cuda_backend *)b;
    if (!cb) return;
    cudaSetDevice(cb->dev);
    if (cb->st) cudaStreamSynchronize(cb->st);
    if (cb->graph) cudaGraphExecDestroy(cb->graph);
    if (cb->hpos) cudaFreeHost(cb->hpos);
    prof_print(cb);
    void *bufs[] = {cb->dpos, cb->wbuf, cb->nbuf, cb->kv, cb->inv_freq, cb->x, cb->h, cb->qkv, cb->q, cb->att, cb->gu,
                    cb->act, cb->cs, cb->part, cb->ml, cb->logits, cb->tokens, cb->table};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) cudaFree(bufs[i]);
    if (cb->blas) cublasDestroy(cb->blas);
    if (cb->st) cudaStreamDestroy(cb->st);
    free(cb->layers);
    free(cb);
}

static const backend_ops cuda_ops_tbl = {"cuda", cuda_forward, cuda_kv_copy, cuda_mem_info, cuda_free};

int sdcu_backend_last_logits(backend *b, const float **d_logits, int *vocab, cudaStream_t *st, sd_err *err) {
    if (!b || b->ops != &cuda_ops_tbl) return sd_seterr(err, SD_EINVAL, "cuda_sample: not a CUDA backend");
    cuda_backend *cb = (cuda_backend *)b;
    if (!cb->last_logits) return sd_seterr(err, SD_EINVAL, "cuda_sample: no logits yet (run a forward first)");
    *d_logits = cb->last_logits;
    *vocab = cb->V;
    *st = cb->st;
    return 0;
}

/* ---- weight upload ---- */

/* Host staging for conversions (pinned). */
typedef struct stager {
    void *buf;
    size_t cap;
} stager;

/* Copies rows x cols of weight w into dst as BF16 (converting F16/F32). */
static int upload_bf16(bf16 *dst, const model_weight *w, const char *name, stager *sg, sd_err *err) {
    size_t n = (size_t)w->rows * (size_t)w->cols;
    if (w->dtype == SD_DT_BF16) {
        CU_CHECK(cudaMemcpy(dst, w->data, n * 2, cudaMemcpyHostToDevice));
        return 0;
    }
    if (w->dtype != SD_DT_F16 && w->dtype != SD_DT_F32)
        return sd_seterr(err, SD_EBACKEND, "backend_cuda: weight %s has dtype %s (BF16, F16, F32 are supported)", name,
                         dtype_name(w->dtype));
    size_t per = sg->cap / 2;
    uint16_t *tmp = (uint16_t *)sg->buf;
    for (size_t i0 = 0; i0 < n; i0 += per) {
        size_t m = n - i0 < per ? n - i0 : per;
        if (w->dtype == SD_DT_F16) {
            const uint16_t *s = (const uint16_t *)w->data + i0;
            for (size_t i = 0; i < m; i++) { uint16_t h; memcpy(&h, s + i, 2); tmp[i] = f32_to_bf16(f16_to_f32(h)); }
        } else {
            const float *s = (const float *)w->data + i0;
            for (size_t i = 0; i < m; i++) { float f; memcpy(&f, s + i, 4); tmp[i] = f32_to_bf16(f); }
        }
        CU_CHECK(cudaMemcpy(dst + i0, tmp, m * 2, cudaMemcpyHostToDevice));
    }
    return 0;
}

/* A norm weight (d) as f32. */
static int upload_f32(float *dst, const model_weight *w, const char *name, sd_err *err) {
    size_t d = (size_t)w->rows * (size_t)(w->cols > 0 ? w->cols : 1);
    float *tmp = (float *)malloc(d * sizeof(float));
    if (!tmp) return sd_seterr(err, SD_ENOMEM, "backend_cuda: no host memory for %s", name);
    for (size_t i = 0; i < d; i++) {
        if (w->dtype == SD_DT_F32) memcpy(tmp + i, (const float *)w->data + i, 4);
        else {
            uint16_t h;
            memcpy(&h, (const uint16_t *)w->data + i, 2);
            tmp[i] = w->dtype == SD_DT_F16 ? f16_to_f32(h) : bf16_to_f32(h);
        }
    }
    cudaError_t e = cudaMemcpy(dst, tmp, d * sizeof(float), cudaMemcpyHostToDevice);
    free(tmp);
    CU_CHECK(e);
    return 0;
}

static int upload_weights(cuda_backend *cb, sd_err *err) {
    const model *m = cb->base.m;
    const size_t H = (size_t)cb->H;
    size_t per_layer = (size_t)cb->qkvd * H + H * (size_t)cb->qd + 2 * (size_t)cb->I * H + H * (size_t)cb->I;
    int tied = m->lm_head.data == m->embed.data;
    size_t elems = per_layer * (size_t)cb->L + (size_t)cb->V * H * (tied ? 1 : 2);
    cb->wbytes = elems * 2;
    SD_TRY(sdcu_malloc((void **)&cb->wbuf, cb->wbytes, "BF16 weights", err));
    SD_TRY(sdcu_malloc((void **)&cb->nbuf, (size_t)(2 * cb->L + 1) * H * sizeof(float), "norm weights", err));
    cb->layers = (cu_layer *)calloc((size_t)cb->L, sizeof(cu_layer));
    if (!cb->layers) return sd_seterr(err, SD_ENOMEM, "backend_cuda: no host memory for the layer table");
    stager sg = {NULL, 32u << 20};
    CU_CHECK(cudaMallocHost(&sg.buf, sg.cap));
    int rc = 0;
    bf16 *p = cb->wbuf;
    char nm[64];
    cb->embed = p;
    if ((rc = upload_bf16(p, &m->embed, "embed_tokens", &sg, err))) goto out;
    p += (size_t)cb->V * H;
    if (tied) cb->lm_head = cb->embed;
    else {
        cb->lm_head = p;
        if ((rc = upload_bf16(p, &m->lm_head, "lm_head", &sg, err))) goto out;
        p += (size_t)cb->V * H;
    }
    for (int l = 0; l < cb->L; l++) {
        const model_layer *ml = &m->layers[l];
        cu_layer *Ly = &cb->layers[l];
        snprintf(nm, sizeof nm, "layers.%d", l);
        Ly->wqkv = p;
        if ((rc = upload_bf16(p, &ml->wq, nm, &sg, err))) goto out;
        p += (size_t)cb->qd * H;
        if ((rc = upload_bf16(p, &ml->wk, nm, &sg, err))) goto out;
        p += (size_t)cb->kvd * H;
        if ((rc = upload_bf16(p, &ml->wv, nm, &sg, err))) goto out;
        p += (size_t)cb->kvd * H;
        Ly->wo = p;
        if ((rc = upload_bf16(p, &ml->wo, nm, &sg, err))) goto out;
        p += H * (size_t)cb->qd;
        Ly->wgu = p;
        if ((rc = upload_bf16(p, &ml->gate, nm, &sg, err))) goto out;
        p += (size_t)cb->I * H;
        if ((rc = upload_bf16(p, &ml->up, nm, &sg, err))) goto out;
        p += (size_t)cb->I * H;
        Ly->wdown = p;
        if ((rc = upload_bf16(p, &ml->down, nm, &sg, err))) goto out;
        p += H * (size_t)cb->I;
        Ly->attn_norm = cb->nbuf + (size_t)(2 * l) * H;
        Ly->ffn_norm = cb->nbuf + (size_t)(2 * l + 1) * H;
        if ((rc = upload_f32(Ly->attn_norm, &ml->attn_norm, nm, err))) goto out;
        if ((rc = upload_f32(Ly->ffn_norm, &ml->ffn_norm, nm, err))) goto out;
    }
    cb->final_norm = cb->nbuf + (size_t)(2 * cb->L) * H;
    rc = upload_f32(cb->final_norm, &m->norm, "norm", err);
out:
    cudaFreeHost(sg.buf);
    return rc;
}

/* ---- creation ---- */

static int device_open(int dev, int *sms, sd_err *err) {
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return sd_seterr(err, SD_EBACKEND, "no CUDA device: %s", cudaGetErrorString(e));
    }
    if (count == 0) return sd_seterr(err, SD_EBACKEND, "no CUDA device: none found");
    if (dev < 0 || dev >= count) return sd_seterr(err, SD_EBACKEND, "no CUDA device %d (%d present)", dev, count);
    cudaDeviceProp pr;
    CU_CHECK(cudaGetDeviceProperties(&pr, dev));
    if (pr.major < 8)
        return sd_seterr(err, SD_EBACKEND, "CUDA device %d (%s) has compute capability %d.%d; BF16 kernels need 8.0+",
                         dev, pr.name, pr.major, pr.minor);
    CU_CHECK(cudaSetDevice(dev));
    if (sms) *sms = pr.multiProcessorCount;
    return 0;
}

static int cuda_new_impl(cuda_backend *cb, sd_err *err) {
    const model *m = cb->base.m;
    const model_config *c = &m->cfg;
    const backend_params *p = &cb->base.p;
    SD_TRY(device_open(p->device, &cb->sms, err));
    cb->dev = p->device;
    if (p->kv_dtype != SD_DT_BF16 && p->kv_dtype != SD_DT_F32)
        return sd_seterr(err, SD_EBACKEND, "backend_cuda: KV dtype %s not supported (BF16, F32 are)", dtype_name(p->kv_dtype));
    if (p->kv_block_size < 1 || p->kv_blocks < 1 || p->max_batch < 1)
        return sd_seterr(err, SD_EINVAL, "backend_cuda: block size, block count and max batch must be positive");
    if (!head_dim_supported(c->head_dim))
        return sd_seterr(err, SD_EBACKEND, "backend_cuda: head_dim %d not supported (8, 16, 32, 64, 128)", c->head_dim);
    if (c->n_kv_head < 1 || c->n_head % c->n_kv_head)
        return sd_seterr(err, SD_EBACKEND, "backend_cuda: %d heads not a multiple of %d KV heads", c->n_head, c->n_kv_head);
    cb->H = c->hidden;
    cb->I = c->inter;
    cb->V = c->vocab;
    cb->L = c->n_layer;
    cb->nh = c->n_head;
    cb->nkv = c->n_kv_head;
    cb->hd = c->head_dim;
    cb->grp = c->n_head / c->n_kv_head;
    cb->qd = cb->nh * cb->hd;
    cb->kvd = cb->nkv * cb->hd;
    cb->qkvd = cb->qd + 2 * cb->kvd;
    cb->kv_f32 = p->kv_dtype == SD_DT_F32;
    cb->use_gemv = !env_is("SMOLDOC_CUDA_GEMV", "0");
    CU_CHECK(cudaStreamCreateWithFlags(&cb->st, cudaStreamNonBlocking));
    CUBLAS_CHECK(cublasCreate(&cb->blas));
    CUBLAS_CHECK(cublasSetStream(cb->blas, cb->st));
    SD_TRY(upload_weights(cb, err));
    /* KV pool */
    size_t bs = (size_t)p->kv_block_size;
    cb->block_bytes = backend_kv_token_bytes(c, p->kv_dtype) * bs;
    if (sd_mul_overflow(cb->block_bytes, (size_t)p->kv_blocks, &cb->kv_bytes))
        return sd_seterr(err, SD_ENOMEM, "backend_cuda: KV pool size overflows (%d blocks)", p->kv_blocks);
    SD_TRY(sdcu_malloc(&cb->kv, cb->kv_bytes, "the KV pool", err));
    CU_CHECK(cudaMemset(cb->kv, 0, cb->kv_bytes));
    cb->geom.block_elems = (size_t)cb->L * 2 * bs * (size_t)cb->kvd;
    cb->geom.v_off = bs * (size_t)cb->kvd;
    cb->geom.bs = p->kv_block_size;
    cb->geom.kvd = cb->kvd;
    cb->geom.layer_off = 0;
    /* RoPE */
    int half = cb->hd / 2;
    double *inv = (double *)malloc((size_t)half * sizeof(double));
    if (!inv) return sd_seterr(err, SD_ENOMEM, "backend_cuda: no host memory");
    model_rope_freqs(c, inv, &cb->attn_factor);
    int rc = sdcu_malloc((void **)&cb->inv_freq, (size_t)half * sizeof(double), "RoPE frequencies", err);
    if (!rc && cudaMemcpy(cb->inv_freq, inv, (size_t)half * sizeof(double), cudaMemcpyHostToDevice) != cudaSuccess)
        rc = sd_seterr(err, SD_EBACKEND, "backend_cuda: uploading RoPE frequencies failed");
    free(inv);
    if (rc) return rc;
    /* scratch */
    size_t B = (size_t)p->max_batch, H = (size_t)cb->H, hq = H > (size_t)cb->qd ? H : (size_t)cb->qd;
    cb->part_cap = p->max_batch > 4096 ? p->max_batch : 4096;
    cb->logit_rows = p->max_batch < 256 ? p->max_batch : 256;
    SD_TRY(sdcu_malloc((void **)&cb->x, B * H * 4, "activations x", err));
    SD_TRY(sdcu_malloc((void **)&cb->h, B * hq * 2, "activations h", err));
    SD_TRY(sdcu_malloc((void **)&cb->qkv, B * (size_t)cb->qkvd * 4, "activations qkv", err));
    SD_TRY(sdcu_malloc((void **)&cb->q, B * (size_t)cb->qd * 4, "activations q", err));
    SD_TRY(sdcu_malloc((void **)&cb->att, B * (size_t)cb->qd * 2, "activations att", err));
    SD_TRY(sdcu_malloc((void **)&cb->gu, B * 2 * (size_t)cb->I * 4, "activations gate/up", err));
    SD_TRY(sdcu_malloc((void **)&cb->act, B * (size_t)cb->I * 2, "activations swiglu", err));
    SD_TRY(sdcu_malloc((void **)&cb->cs, B * (size_t)half * 2 * 4, "RoPE table", err));
    SD_TRY(sdcu_malloc((void **)&cb->part, (size_t)cb->part_cap * (size_t)cb->qd * 4, "attention partials", err));
    SD_TRY(sdcu_malloc((void **)&cb->ml, (size_t)cb->part_cap * (size_t)cb->nh * 2 * 4, "attention partials", err));
    SD_TRY(sdcu_malloc((void **)&cb->logits, (size_t)cb->logit_rows * (size_t)cb->V * 4, "logits", err));
    SD_TRY(sdcu_malloc((void **)&cb->tokens, B * sizeof(int), "token ids", err));
    /* the block table buffer sized for the whole pool up front, so the decode
     * graph keeps its pointer */
    cb->table_cap = p->kv_blocks;
    SD_TRY(sdcu_malloc((void **)&cb->table, (size_t)cb->table_cap * sizeof(int), "block table", err));
    SD_TRY(sdcu_malloc((void **)&cb->dpos, sizeof(long), "decode position", err));
    CU_CHECK(cudaMallocHost((void **)&cb->hpos, sizeof(long)));
    cb->prof = env_is("SMOLDOC_CUDA_PROF", "1");
    cb->use_graph = cb->use_gemv && !cb->prof && !env_is("SMOLDOC_CUDA_GRAPH", "0"); /* cuBLAS products stay out of graphs */
    CU_CHECK(cudaDeviceSynchronize());
    return 0;
}

extern "C" int backend_cuda_new(const model *m, const backend_params *p, backend **out, sd_err *err) {
    *out = NULL;
    cuda_backend *cb = (cuda_backend *)calloc(1, sizeof *cb);
    if (!cb) return sd_seterr(err, SD_ENOMEM, "backend_cuda: no host memory");
    cb->base.ops = &cuda_ops_tbl;
    cb->base.m = m;
    cb->base.p = *p;
    int rc = cuda_new_impl(cb, err);
    if (rc) {
        cuda_free(&cb->base);
        cudaGetLastError();
        return rc;
    }
    *out = &cb->base;
    return 0;
}

/* ---- C entry points for tests and benchmarks ---- */

extern "C" int backend_cuda_devices(int *count, char *name, size_t name_len, sd_err *err) {
    *count = 0;
    cudaError_t e = cudaGetDeviceCount(count);
    if (e != cudaSuccess) {
        cudaGetLastError();
        *count = 0;
        return sd_seterr(err, SD_EBACKEND, "no CUDA device: %s", cudaGetErrorString(e));
    }
    if (*count == 0) return sd_seterr(err, SD_EBACKEND, "no CUDA device: none found");
    if (name && name_len) {
        cudaDeviceProp pr;
        CU_CHECK(cudaGetDeviceProperties(&pr, 0));
        snprintf(name, name_len, "%s (sm_%d%d, %d SMs, %.1f GiB)", pr.name, pr.major, pr.minor, pr.multiProcessorCount,
                 pr.totalGlobalMem / 1073741824.0);
    }
    return 0;
}

/* Device buffers freed on scope exit (test hooks only). */
struct dev_bufs {
    void *p[16];
    int n = 0;
    ~dev_bufs() { for (int i = 0; i < n; i++) cudaFree(p[i]); }
    int get(void **out, size_t bytes, sd_err *err) {
        SD_TRY(sdcu_malloc(out, bytes, "test buffer", err));
        p[n++] = *out;
        return 0;
    }
};

static void to_bf16_host(uint16_t *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = f32_to_bf16(src[i]);
}

extern "C" int backend_cuda_test_rmsnorm(float *y, const float *x, const float *w, size_t n, size_t d, float eps,
                                         sd_err *err) {
    SD_TRY(device_open(0, NULL, err));
    dev_bufs db;
    float *dx, *dw;
    bf16 *dy;
    SD_TRY(db.get((void **)&dx, n * d * 4, err));
    SD_TRY(db.get((void **)&dw, d * 4, err));
    SD_TRY(db.get((void **)&dy, n * d * 2, err));
    CU_CHECK(cudaMemcpy(dx, x, n * d * 4, cudaMemcpyHostToDevice));
    CU_CHECK(cudaMemcpy(dw, w, d * 4, cudaMemcpyHostToDevice));
    CU_CHECK(cudaMemset(dy, 0xff, n * d * 2)); /* poison: NaN */
    k_rmsnorm<<<(unsigned)n, 256>>>(dy, dx, dw, (int)d, eps);
    CU_LAUNCH_CHECK();
    uint16_t *hy = (uint16_t *)malloc(n * d * 2);
    if (!hy) return sd_seterr(err, SD_ENOMEM, "test: no memory");
    cudaError_t e = cudaMemcpy(hy, dy, n * d * 2, cudaMemcpyDeviceToHost);
    for (size_t i = 0; i < n * d; i++) y[i] = bf16_to_f32(hy[i]);
    free(hy);
    CU_CHECK(e);
    return 0;
}

extern "C" int backend_cuda_test_gemm(float *y, const float *x, const float *w, size_t n, size_t rows, size_t cols,
                                      int path, sd_err *err) {
    SD_TRY(device_open(0, NULL, err));
    if (path == 1 && (n != 1 || cols % 8))
        return sd_seterr(err, SD_EINVAL, "test_gemm: the GEMV path needs n == 1 and cols %% 8 == 0");
    dev_bufs db;
    bf16 *dx, *dw;
    float *dy;
    SD_TRY(db.get((void **)&dx, n * cols * 2, err));
    SD_TRY(db.get((void **)&dw, rows * cols * 2, err));
    SD_TRY(db.get((void **)&dy, n * rows * 4, err));
    uint16_t *tmp = (uint16_t *)malloc((rows > n ? rows : n) * cols * 2);
    if (!tmp) return sd_seterr(err, SD_ENOMEM, "test: no memory");
    to_bf16_host(tmp, x, n * cols);
    cudaError_t e1 = cudaMemcpy(dx, tmp, n * cols * 2, cudaMemcpyHostToDevice);
    to_bf16_host(tmp, w, rows * cols);
    cudaError_t e2 = cudaMemcpy(dw, tmp, rows * cols * 2, cudaMemcpyHostToDevice);
    free(tmp);
    CU_CHECK(e1);
    CU_CHECK(e2);
    CU_CHECK(cudaMemset(dy, 0xff, n * rows * 4));
    if (path == 1) {
        k_gemv<<<(unsigned)((rows + 7) / 8), 256>>>(dy, dw, dx, (int)rows, (int)cols, 0);
        CU_LAUNCH_CHECK();
    } else {
        cublasHandle_t h;
        CUBLAS_CHECK(cublasCreate(&h));
        float alpha = 1, beta = 0;
        cublasStatus_t s = cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, (int)rows, (int)n, (int)cols, &alpha, dw,
                                        CUDA_R_16BF, (int)cols, dx, CUDA_R_16BF, (int)cols, &beta, dy, CUDA_R_32F,
                                        (int)rows, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
        cublasDestroy(h);
        CUBLAS_CHECK(s);
    }
    CU_CHECK(cudaMemcpy(y, dy, n * rows * 4, cudaMemcpyDeviceToHost));
    return 0;
}

extern "C" int backend_cuda_test_attention(float *out, const float *q, const float *k, const float *v, size_t n,
                                           size_t pos0, int n_head, int n_kv_head, int head_dim, int block_size,
                                           int kv_f32, int splits, sd_err *err) {
    int sms = 0;
    SD_TRY(device_open(0, &sms, err));
    if (!head_dim_supported(head_dim) || n_kv_head < 1 || n_head % n_kv_head || block_size < 1)
        return sd_seterr(err, SD_EINVAL, "test_attention: unsupported shape");
    size_t ctx = pos0 + n, kvd = (size_t)n_kv_head * head_dim, bs = (size_t)block_size, es = kv_f32 ? 4 : 2;
    int nblk = (int)((ctx + bs - 1) / bs);
    /* a pool of 2 layers, test layer 1, blocks in reverse order with a gap */
    int L = 2, pool = 2 * nblk + 1;
    kv_geom g;
    g.block_elems = (size_t)L * 2 * bs * kvd;
    g.layer_off = 2 * bs * kvd;
    g.v_off = bs * kvd;
    g.bs = block_size;
    g.kvd = (int)kvd;
    int *table = (int *)malloc((size_t)nblk * sizeof(int));
    uint8_t *hkv = (uint8_t *)calloc((size_t)pool * g.block_elems, es);
    if (!table || !hkv) { free(table); free(hkv); return sd_seterr(err, SD_ENOMEM, "test: no memory"); }
    for (int i = 0; i < nblk; i++) table[i] = pool - 1 - 2 * i;
    for (size_t p = 0; p < ctx; p++)
        for (size_t i = 0; i < kvd; i++) {
            size_t off = g.row(table, (long)p) + i;
            if (kv_f32) {
                memcpy(hkv + off * 4, k + p * kvd + i, 4);
                memcpy(hkv + (off + g.v_off) * 4, v + p * kvd + i, 4);
            } else {
                uint16_t kb = f32_to_bf16(k[p * kvd + i]), vb = f32_to_bf16(v[p * kvd + i]);
                memcpy(hkv + off * 2, &kb, 2);
                memcpy(hkv + (off + g.v_off) * 2, &vb, 2);
            }
        }
    dev_bufs db;
    void *dkv;
    int *dtab;
    float *dq, *dpart, *dml;
    bf16 *dout;
    size_t qd = (size_t)n_head * head_dim;
    int part_cap = (int)(n * (size_t)(splits > 0 ? splits : 64));
    int rc = 0;
    if ((rc = db.get(&dkv, (size_t)pool * g.block_elems * es, err)) ||
        (rc = db.get((void **)&dtab, (size_t)nblk * sizeof(int), err)) ||
        (rc = db.get((void **)&dq, n * qd * 4, err)) || (rc = db.get((void **)&dout, n * qd * 2, err)) ||
        (rc = db.get((void **)&dpart, (size_t)part_cap * qd * 4, err)) ||
        (rc = db.get((void **)&dml, (size_t)part_cap * n_head * 2 * 4, err))) {
        free(table);
        free(hkv);
        return rc;
    }
    cudaError_t e1 = cudaMemcpy(dkv, hkv, (size_t)pool * g.block_elems * es, cudaMemcpyHostToDevice);
    cudaError_t e2 = cudaMemcpy(dtab, table, (size_t)nblk * sizeof(int), cudaMemcpyHostToDevice);
    free(table);
    free(hkv);
    CU_CHECK(e1);
    CU_CHECK(e2);
    CU_CHECK(cudaMemcpy(dq, q, n * qd * 4, cudaMemcpyHostToDevice));
    CU_CHECK(cudaMemset(dout, 0xff, n * qd * 2));
    SD_TRY(attention_run(0, sms, dq, dkv, kv_f32, dtab, g, (int)n, (long)pos0, NULL, n_head, n_kv_head, head_dim, dout, dpart,
                         dml, part_cap, splits, err));
    CU_CHECK(cudaDeviceSynchronize());
    uint16_t *ho = (uint16_t *)malloc(n * qd * 2);
    if (!ho) return sd_seterr(err, SD_ENOMEM, "test: no memory");
    cudaError_t e3 = cudaMemcpy(ho, dout, n * qd * 2, cudaMemcpyDeviceToHost);
    for (size_t i = 0; i < n * qd; i++) out[i] = bf16_to_f32(ho[i]);
    free(ho);
    CU_CHECK(e3);
    return 0;
}

/* Fills n 32-bit words with hashed bits whose BF16 halves are finite values in
 * (-2, 2): never time on zeros (they can run faster than real data). */
__global__ void k_fill_rand(uint32_t *p, size_t n, uint32_t seed) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        uint32_t h = (uint32_t)i * 0x9E3779B1u ^ seed;
        h ^= h >> 16; h *= 0x85EBCA6Bu; h ^= h >> 13; h *= 0xC2B2AE35u; h ^= h >> 16;
        p[i] = h & 0xBFFFBFFFu; /* clear bit 14 of each half: exponent < 128, so |x| < 2 */
    }
}

__global__ void k_copy(float4 *dst, const float4 *src, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = src[i];
}

extern "C" int backend_cuda_bench_floors(int device, double *bw_gbs, double *tflops, sd_err *err) {
    int sms = 0;
    SD_TRY(device_open(device, &sms, err));
    dev_bufs db;
    const size_t bytes = (size_t)1 << 31;
    void *a, *b;
    SD_TRY(db.get(&a, bytes, err));
    SD_TRY(db.get(&b, bytes, err));
    k_fill_rand<<<sms * 8, 512>>>((uint32_t *)a, bytes / 4, 0x1234567u);
    CU_LAUNCH_CHECK();
    cudaEvent_t e0, e1;
    CU_CHECK(cudaEventCreate(&e0));
    CU_CHECK(cudaEventCreate(&e1));
    size_t nv = bytes / 16;
    k_copy<<<sms * 8, 512>>>((float4 *)b, (const float4 *)a, nv); /* warm-up */
    CU_LAUNCH_CHECK();
    const int reps = 10;
    CU_CHECK(cudaEventRecord(e0));
    for (int i = 0; i < reps; i++) k_copy<<<sms * 8, 512>>>((float4 *)b, (const float4 *)a, nv);
    CU_CHECK(cudaEventRecord(e1));
    CU_CHECK(cudaEventSynchronize(e1));
    float ms = 0;
    CU_CHECK(cudaEventElapsedTime(&ms, e0, e1));
    *bw_gbs = 2.0 * (double)bytes * reps / (ms / 1e3) / 1e9;
    /* GEMM: reuse the buffers as bf16 matrices of 8192 x 8192 (128 MiB each) */
    const int N = 8192;
    bf16 *A = (bf16 *)a, *B = (bf16 *)a + (size_t)N * N;
    float *C = (float *)b;
    cublasHandle_t h;
    CUBLAS_CHECK(cublasCreate(&h));
    float alpha = 1, beta = 0;
    cublasStatus_t s = cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, N, N, N, &alpha, A, CUDA_R_16BF, N, B, CUDA_R_16BF, N,
                                    &beta, C, CUDA_R_32F, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (s == CUBLAS_STATUS_SUCCESS) {
        cudaEventRecord(e0);
        for (int i = 0; i < reps && s == CUBLAS_STATUS_SUCCESS; i++)
            s = cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, N, N, N, &alpha, A, CUDA_R_16BF, N, B, CUDA_R_16BF, N, &beta,
                             C, CUDA_R_32F, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
        cudaEventRecord(e1);
        cudaEventSynchronize(e1);
        cudaEventElapsedTime(&ms, e0, e1);
    }
    cublasDestroy(h);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    CUBLAS_CHECK(s);
    *tflops = 2.0 * N * (double)N * N * reps / (ms / 1e3) / 1e12;
    return 0;
}
