/* attn_cpu.c - causal GQA attention over the paged KV cache for the CPU
 * backend: flash-attention order (online softmax, memory independent of the
 * context length), f32 arithmetic, AVX-512 / AVX2+FMA / plain C paths.
 *
 * Tiling. A work unit is (a block of tb query tokens, one KV head, a range of
 * positions). Its rows are the tb x grp query heads that read that KV head
 * (tb = 16 / grp tokens, so 16 rows for the 3B; decode has grp rows). The unit
 * walks its positions in tiles of KT = 32 (prefetching the next tile's rows):
 *   1. K: the tile's rows are widened once to f32 into kf (hd / 16, KT, 16),
 *      16 dims of each position in turn, 16 KiB, L1 resident;
 *   2. scores, per row: 16 (AVX2: 8) dot products at a time in 16 accumulators
 *      (a q chunk in a register, K from kf at fixed offsets), reduced together
 *      by a transpose-add tree into one vector of 16 scores;
 *   3. online softmax per row: scale, causal mask (positions >= the token's
 *      pos + 1 get -inf), the new max, p = exp(s - max) (vectorized exp, see
 *      exp_v512), the correction exp(old max - new max) of the running sums;
 *   4. V: acc (rows, hd) = acc * corr + p . V, 4 rows x 64 dims (AVX2: 16) of
 *      accumulators in registers across the tile, V widened in registers
 *      straight from the cache (read once per 4 rows, from L1 after the first).
 * BF16 is widened without shuffles: a 32-bit lane holding two bf16 gives the
 * even dim by a shift and the odd one by a mask. So on the SIMD paths, K, V, q
 * and acc use "pair order" for BF16 (within each 32 dims, AVX2: 16, the even
 * dims then the odd ones): q is permuted into it once per unit, the output
 * back out of it. A dot product's terms are then just summed in another order.
 * Units are spread over the OpenMP threads. With fewer than 4 units per thread
 * (decode: one unit per KV head) the positions are split into chunks too, and
 * the partial states (max, sum, acc) of a row are merged at the end. Every
 * path computes the same sums up to reassociation. */
#include "attn_cpu.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "kernels.h"

#define KT 32          /* positions per tile */
#define ROWS 16        /* query rows (tokens x heads) per work unit, at least */
#define SPLIT_MIN 256  /* fewest positions in a chunk when splitting positions */
#define UNITS_PER_THREAD 4

struct attn_cpu {
    int n_head, n_kv_head, hd, grp;
    int tb;           /* query tokens per unit */
    int rows;         /* tb * grp rounded up to a multiple of 4 */
    int n_threads;
    float *ws;        /* per thread, ws_stride floats: see scratch() */
    size_t ws_stride;
    float *part;      /* split partials: (UNITS_PER_THREAD * 2 * n_threads, rows, hd + 2): acc, m, l */
    size_t part_stride;
    float *zero;      /* (hd): the K and V row of the positions past a tile's end */
};

/* One thread's scratch. */
typedef struct scratch {
    float *kf;              /* (KT, hd) in the level's layout */
    float *s;               /* (rows, KT) scores, then probabilities */
    float *corr, *m, *l;    /* (rows) */
    float *acc;             /* (rows, hd) in the level's dim order */
    float *q;               /* (rows, hd) q in that order */
} scratch;

static scratch scratch_of(const attn_cpu *a, int tid) {
    size_t hd = (size_t)a->hd, R = (size_t)a->rows;
    float *w = a->ws + (size_t)tid * a->ws_stride;
    scratch x = {.kf = w, .s = w + KT * hd};
    x.corr = x.s + R * KT;
    x.m = x.corr + R;
    x.l = x.m + R;
    x.acc = x.l + R;
    x.q = x.acc + R * hd;
    return x;
}

/* The per-level operations; the driver below is shared by all levels. */
typedef struct attn_level {
    int pair; /* BF16 dim order: 0 natural, else pairs of this many dims (see the top) */
    /* kf = the KT K rows at kr[i] (hd values each) in f32, in the level's layout */
    void (*tile)(float *kf, const uint8_t *const *kr, sd_dtype dt, int hd);
    /* s[i] = q . k_i for the KT positions i of the tile kf */
    void (*scores)(float *s, const float *q, const float *kf, int hd);
    /* x_i = s[i] * scale for i < nv; new max m' = max(*m, max x_i); *corr =
     * exp(*m - m') (1 when the max stays); s[i] = exp(x_i - m'), 0 from nv on;
     * *m = m'. Returns the sum of the s[i]. nv >= 1. */
    float (*softmax)(float *s, int nv, float scale, float *m, float *corr);
    /* four rows r: acc[r] = acc[r] * corr[r] + sum_i p[r * KT + i] * v_i, v_i the
     * row at vr[i] */
    void (*pv)(float *acc, const float *p, const uint8_t *const *vr, sd_dtype dt, const float *corr, int hd);
    /* y[i] = exp(x[i]) for i < n (x <= 0) */
    void (*exp)(float *y, const float *x, size_t n);
} attn_level;

/* ---- plain C ---- */

static float kv_at(const uint8_t *row, int c, sd_dtype dt) {
    if (dt == SD_DT_F32) { float f; memcpy(&f, row + (size_t)c * 4, 4); return f; }
    uint16_t h;
    memcpy(&h, row + (size_t)c * 2, 2);
    return bf16_to_f32(h);
}

/* kf is (KT, hd), row-major */
static void tile_c(float *kf, const uint8_t *const *kr, sd_dtype dt, int hd) {
    for (int i = 0; i < KT; i++)
        for (int c = 0; c < hd; c++) kf[(size_t)i * hd + c] = kv_at(kr[i], c, dt);
}

static void scores_c(float *s, const float *q, const float *kf, int hd) {
    for (int i = 0; i < KT; i++) {
        const float *k = kf + (size_t)i * hd;
        float d = 0;
        for (int c = 0; c < hd; c++) d += q[c] * k[c];
        s[i] = d;
    }
}

static float softmax_c(float *s, int nv, float scale, float *m, float *corr) {
    float bm = -INFINITY, sum = 0;
    for (int i = 0; i < nv; i++) { s[i] *= scale; bm = s[i] > bm ? s[i] : bm; }
    *corr = 1;
    if (bm > *m) { *corr = expf(*m - bm); *m = bm; } /* 0 on the first tile */
    for (int i = 0; i < KT; i++) { s[i] = i < nv ? expf(s[i] - *m) : 0; sum += s[i]; }
    return sum;
}

static void pv_c(float *acc, const float *p, const uint8_t *const *vr, sd_dtype dt, const float *corr, int hd) {
    for (int r = 0; r < 4; r++) {
        float *a = acc + (size_t)r * hd;
        for (int d = 0; d < hd; d++) a[d] *= corr[r];
        for (int i = 0; i < KT; i++) {
            float pr = p[r * KT + i];
            for (int d = 0; d < hd; d++) a[d] += pr * kv_at(vr[i], d, dt);
        }
    }
}

static void exp_c(float *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = expf(x[i]);
}

static const attn_level level_c = {0, tile_c, scores_c, softmax_c, pv_c, exp_c};

#if defined(__x86_64__)
/* exp for x <= 0 (Cephes expf): x = n ln2 + r with |r| <= ln2 / 2 (ln2 in two
 * parts), exp(r) by a degree-7 polynomial, 2^n through the exponent bits.
 * Below ln(FLT_MIN) (and for -inf) it returns 0 where expf gives a denormal:
 * an absolute error under 1.2e-38. tests/test_attn.c checks the relative
 * error against expf over [-87.3, 0]. */
#define EXP_MIN (-87.33654f)
#define EXP_LOG2E 1.44269504088896341f
#define EXP_C1 0.693359375f
#define EXP_C2 (-2.12194440e-4f)
#define EXP_P0 1.9875691500e-4f
#define EXP_P1 1.3981999507e-3f
#define EXP_P2 8.3334519073e-3f
#define EXP_P3 4.1665795894e-2f
#define EXP_P4 1.6666665459e-1f
#define EXP_P5 5.0000001201e-1f

/* ---- AVX-512 ---- */
#define T512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))

T512 static inline __m512 exp_v512(__m512 x) {
    __mmask16 ok = _mm512_cmp_ps_mask(x, _mm512_set1_ps(EXP_MIN), _CMP_GE_OQ);
    x = _mm512_max_ps(x, _mm512_set1_ps(EXP_MIN));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(EXP_LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(EXP_C1), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(EXP_C2), r);
    __m512 y = _mm512_set1_ps(EXP_P0);
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(EXP_P1));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(EXP_P2));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(EXP_P3));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(EXP_P4));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(EXP_P5));
    y = _mm512_fmadd_ps(y, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_maskz_mul_ps(ok, y, _mm512_castsi512_ps(e));
}

/* 32 dims from c of a row as two vectors: BF16 in pair order (the even dims,
 * then the odd ones), F32 in order. */
T512 static inline void load32_512(const uint8_t *row, int c, sd_dtype dt, __m512 *lo, __m512 *hi) {
    if (dt == SD_DT_F32) {
        *lo = _mm512_loadu_ps((const float *)row + c);
        *hi = _mm512_loadu_ps((const float *)row + c + 16);
    } else {
        __m512i x = _mm512_loadu_si512((const void *)(row + (size_t)c * 2));
        *lo = _mm512_castsi512_ps(_mm512_slli_epi32(x, 16));
        *hi = _mm512_castsi512_ps(_mm512_and_si512(x, _mm512_set1_epi32((int)0xffff0000u)));
    }
}

/* kf is (hd / 16, KT, 16): 16 dims from c (in load32_512's order) of position i
 * at kf + c * KT + i * 16, so scores reads every position from one pointer. */
T512 static void tile_512(float *kf, const uint8_t *const *kr, sd_dtype dt, int hd) {
    for (int i = 0; i < KT; i++)
        for (int c = 0; c < hd; c += 32) {
            __m512 lo, hi;
            load32_512(kr[i], c, dt, &lo, &hi);
            _mm512_store_ps(kf + (size_t)c * KT + i * 16, lo);
            _mm512_store_ps(kf + (size_t)(c + 16) * KT + i * 16, hi);
        }
}

T512 static inline __m512 hsum16_512(const __m512 *a) {
    __m512 b[8], c[4], d[2];
    for (int i = 0; i < 8; i++) /* per 128-bit lane: a[2i], a[2i+1], a[2i], a[2i+1] */
        b[i] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * i], a[2 * i + 1]), _mm512_unpackhi_ps(a[2 * i], a[2 * i + 1]));
    for (int i = 0; i < 4; i++) { /* per 128-bit lane: a[4i] .. a[4i+3] */
        __m512d x = _mm512_castps_pd(b[2 * i]), y = _mm512_castps_pd(b[2 * i + 1]);
        c[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)), _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
    }
    for (int i = 0; i < 2; i++) /* 128-bit lanes 0+1 and 2+3 of c[2i], then of c[2i+1] */
        d[i] = _mm512_add_ps(_mm512_shuffle_f32x4(c[2 * i], c[2 * i + 1], 0x88), _mm512_shuffle_f32x4(c[2 * i], c[2 * i + 1], 0xdd));
    return _mm512_add_ps(_mm512_shuffle_f32x4(d[0], d[1], 0x88), _mm512_shuffle_f32x4(d[0], d[1], 0xdd));
}

T512 static void scores_512(float *s, const float *q, const float *kf, int hd) {
    for (int i0 = 0; i0 < KT; i0 += 16) {
        __m512 a[16];
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++) a[i] = _mm512_setzero_ps();
        for (int c = 0; c < hd; c += 16) {
            __m512 qv = _mm512_loadu_ps(q + c);
            const float *k = kf + (size_t)c * KT + i0 * 16;
#pragma GCC unroll 16
            for (int i = 0; i < 16; i++) a[i] = _mm512_fmadd_ps(qv, _mm512_load_ps(k + i * 16), a[i]);
        }
        _mm512_storeu_ps(s + i0, hsum16_512(a));
    }
}

T512 static float softmax_512(float *s, int nv, float scale, float *m, float *corr) {
    __m512 x[KT / 16], bm = _mm512_set1_ps(-INFINITY), sum = _mm512_setzero_ps();
    for (int j = 0; j < KT / 16; j++) { /* masked lanes stay -inf */
        int left = nv - 16 * j;
        __mmask16 k = left >= 16 ? 0xffff : left > 0 ? (__mmask16)((1u << left) - 1) : 0;
        x[j] = _mm512_mask_mul_ps(_mm512_set1_ps(-INFINITY), k, _mm512_loadu_ps(s + 16 * j), _mm512_set1_ps(scale));
        bm = _mm512_max_ps(bm, x[j]);
    }
    float b = _mm512_reduce_max_ps(bm);
    *corr = 1;
    if (b > *m) { *corr = expf(*m - b); *m = b; } /* 0 on the first tile */
    __m512 mv = _mm512_set1_ps(*m);
    for (int j = 0; j < KT / 16; j++) {
        __m512 e = exp_v512(_mm512_sub_ps(x[j], mv));
        _mm512_storeu_ps(s + 16 * j, e);
        sum = _mm512_add_ps(sum, e);
    }
    return _mm512_reduce_add_ps(sum);
}

/* nv vectors of 16 dims from d (nv = 4 or 2) of four rows, over the tile. */
T512 static inline __attribute__((always_inline)) void pv_block_512(float *acc, const float *p, const uint8_t *const *vr, sd_dtype dt,
                                                                    const float *corr, int hd, int d, const int nv) {
    __m512 a[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++) {
        __m512 c = _mm512_set1_ps(corr[r]);
#pragma GCC unroll 4
        for (int k = 0; k < nv; k++) a[r][k] = _mm512_mul_ps(_mm512_loadu_ps(acc + (size_t)r * hd + d + 16 * k), c);
    }
    for (int i = 0; i < KT; i++) {
        __m512 v[4];
#pragma GCC unroll 2
        for (int k = 0; k < nv; k += 2) load32_512(vr[i], d + 16 * k, dt, &v[k], &v[k + 1]);
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            __m512 pr = _mm512_set1_ps(p[r * KT + i]);
#pragma GCC unroll 4
            for (int k = 0; k < nv; k++) a[r][k] = _mm512_fmadd_ps(pr, v[k], a[r][k]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++)
#pragma GCC unroll 4
        for (int k = 0; k < nv; k++) _mm512_storeu_ps(acc + (size_t)r * hd + d + 16 * k, a[r][k]);
}

T512 static void pv_512(float *acc, const float *p, const uint8_t *const *vr, sd_dtype dt, const float *corr, int hd) {
    int d = 0;
    for (; d + 64 <= hd; d += 64) pv_block_512(acc, p, vr, dt, corr, hd, d, 4);
    for (; d < hd; d += 32) pv_block_512(acc, p, vr, dt, corr, hd, d, 2);
}

T512 static void exp_512(float *y, const float *x, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, exp_v512(_mm512_loadu_ps(x + i)));
    if (i < n) {
        __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(y + i, k, exp_v512(_mm512_maskz_loadu_ps(k, x + i)));
    }
}

static const attn_level level_512 = {32, tile_512, scores_512, softmax_512, pv_512, exp_512};

/* ---- AVX2 + FMA ---- */
#define T256 __attribute__((target("avx2,fma")))

T256 static inline __m256 exp_v256(__m256 x) {
    __m256 ok = _mm256_cmp_ps(x, _mm256_set1_ps(EXP_MIN), _CMP_GE_OQ);
    x = _mm256_max_ps(x, _mm256_set1_ps(EXP_MIN));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(EXP_LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(EXP_C1), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(EXP_C2), r);
    __m256 y = _mm256_set1_ps(EXP_P0);
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(EXP_P1));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(EXP_P2));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(EXP_P3));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(EXP_P4));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(EXP_P5));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_and_ps(ok, _mm256_mul_ps(y, _mm256_castsi256_ps(e)));
}

/* 16 dims from c of a row as two vectors, as load32_512. */
T256 static inline void load16_256(const uint8_t *row, int c, sd_dtype dt, __m256 *lo, __m256 *hi) {
    if (dt == SD_DT_F32) {
        *lo = _mm256_loadu_ps((const float *)row + c);
        *hi = _mm256_loadu_ps((const float *)row + c + 8);
    } else {
        __m256i x = _mm256_loadu_si256((const __m256i *)(row + (size_t)c * 2));
        *lo = _mm256_castsi256_ps(_mm256_slli_epi32(x, 16));
        *hi = _mm256_castsi256_ps(_mm256_and_si256(x, _mm256_set1_epi32((int)0xffff0000u)));
    }
}

/* kf is (hd / 8, KT, 8), as in tile_512 */
T256 static void tile_256(float *kf, const uint8_t *const *kr, sd_dtype dt, int hd) {
    for (int i = 0; i < KT; i++)
        for (int c = 0; c < hd; c += 16) {
            __m256 lo, hi;
            load16_256(kr[i], c, dt, &lo, &hi);
            _mm256_store_ps(kf + (size_t)c * KT + i * 8, lo);
            _mm256_store_ps(kf + (size_t)(c + 8) * KT + i * 8, hi);
        }
}

T256 static inline __m256 hsum8_256(const __m256 *a) {
    __m256 b[4], c[2];
    for (int i = 0; i < 4; i++)
        b[i] = _mm256_add_ps(_mm256_unpacklo_ps(a[2 * i], a[2 * i + 1]), _mm256_unpackhi_ps(a[2 * i], a[2 * i + 1]));
    for (int i = 0; i < 2; i++) {
        __m256d x = _mm256_castps_pd(b[2 * i]), y = _mm256_castps_pd(b[2 * i + 1]);
        c[i] = _mm256_add_ps(_mm256_castpd_ps(_mm256_unpacklo_pd(x, y)), _mm256_castpd_ps(_mm256_unpackhi_pd(x, y)));
    }
    return _mm256_add_ps(_mm256_permute2f128_ps(c[0], c[1], 0x20), _mm256_permute2f128_ps(c[0], c[1], 0x31));
}

T256 static void scores_256(float *s, const float *q, const float *kf, int hd) {
    for (int i0 = 0; i0 < KT; i0 += 8) {
        __m256 a[8];
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) a[i] = _mm256_setzero_ps();
        for (int c = 0; c < hd; c += 8) {
            __m256 qv = _mm256_loadu_ps(q + c);
            const float *k = kf + (size_t)c * KT + i0 * 8;
#pragma GCC unroll 8
            for (int i = 0; i < 8; i++) a[i] = _mm256_fmadd_ps(qv, _mm256_load_ps(k + i * 8), a[i]);
        }
        _mm256_storeu_ps(s + i0, hsum8_256(a));
    }
}

T256 static float softmax_256(float *s, int nv, float scale, float *m, float *corr) {
    __m256 x[KT / 8], bm = _mm256_set1_ps(-INFINITY), sum = _mm256_setzero_ps();
    const __m256 lane = _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7);
    for (int j = 0; j < KT / 8; j++) { /* masked lanes stay -inf */
        __m256 k = _mm256_cmp_ps(lane, _mm256_set1_ps((float)(nv - 8 * j)), _CMP_LT_OQ);
        x[j] = _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), _mm256_mul_ps(_mm256_loadu_ps(s + 8 * j), _mm256_set1_ps(scale)), k);
        bm = _mm256_max_ps(bm, x[j]);
    }
    float t[8], b = -INFINITY;
    _mm256_storeu_ps(t, bm);
    for (int i = 0; i < 8; i++) b = t[i] > b ? t[i] : b;
    *corr = 1;
    if (b > *m) { *corr = expf(*m - b); *m = b; } /* 0 on the first tile */
    __m256 mv = _mm256_set1_ps(*m);
    for (int j = 0; j < KT / 8; j++) {
        __m256 e = exp_v256(_mm256_sub_ps(x[j], mv));
        _mm256_storeu_ps(s + 8 * j, e);
        sum = _mm256_add_ps(sum, e);
    }
    float r = 0;
    _mm256_storeu_ps(t, sum);
    for (int i = 0; i < 8; i++) r += t[i];
    return r;
}

/* four rows x 16 dims of accumulators per pass (8 of the 16 registers). */
T256 static void pv_256(float *acc, const float *p, const uint8_t *const *vr, sd_dtype dt, const float *corr, int hd) {
    for (int d = 0; d < hd; d += 16) {
        __m256 a[4][2];
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            __m256 c = _mm256_set1_ps(corr[r]);
            a[r][0] = _mm256_mul_ps(_mm256_loadu_ps(acc + (size_t)r * hd + d), c);
            a[r][1] = _mm256_mul_ps(_mm256_loadu_ps(acc + (size_t)r * hd + d + 8), c);
        }
        for (int i = 0; i < KT; i++) {
            __m256 v0, v1;
            load16_256(vr[i], d, dt, &v0, &v1);
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) {
                __m256 pr = _mm256_broadcast_ss(p + r * KT + i);
                a[r][0] = _mm256_fmadd_ps(pr, v0, a[r][0]);
                a[r][1] = _mm256_fmadd_ps(pr, v1, a[r][1]);
            }
        }
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            _mm256_storeu_ps(acc + (size_t)r * hd + d, a[r][0]);
            _mm256_storeu_ps(acc + (size_t)r * hd + d + 8, a[r][1]);
        }
    }
}

T256 static void exp_256(float *y, const float *x, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, exp_v256(_mm256_loadu_ps(x + i)));
    for (; i < n; i++) {
        float t[8] = {0};
        t[0] = x[i];
        _mm256_storeu_ps(t, exp_v256(_mm256_loadu_ps(t)));
        y[i] = t[0];
    }
}

static const attn_level level_256 = {16, tile_256, scores_256, softmax_256, pv_256, exp_256};
#endif

/* The SIMD paths need head_dim to be a multiple of 32. */
static const attn_level *pick_level(int hd) {
#if defined(__x86_64__)
    if (hd % 32 == 0) {
        kern_simd s = kern_simd_level();
        if (s == KERN_SIMD_AVX512) return &level_512;
        if (s == KERN_SIMD_AVX2) return &level_256;
    }
#else
    (void)hd;
#endif
    return &level_c;
}

void attn_cpu_exp(float *y, const float *x, size_t n) { pick_level(32)->exp(y, x, n); }

static size_t round_up(size_t a, size_t b) { return (a + b - 1) / b * b; }

attn_cpu *attn_cpu_new(int n_head, int n_kv_head, int head_dim, int n_threads) {
    if (n_head < 1 || n_kv_head < 1 || n_head % n_kv_head || head_dim < 1) return NULL;
    attn_cpu *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->n_head = n_head;
    a->n_kv_head = n_kv_head;
    a->hd = head_dim;
    a->grp = n_head / n_kv_head;
    a->tb = a->grp >= ROWS ? 1 : (ROWS + a->grp - 1) / a->grp;
    a->rows = (int)round_up((size_t)a->tb * a->grp, 4);
    a->n_threads = n_threads > 0 ? n_threads : omp_get_max_threads();
    size_t hd = (size_t)head_dim, R = (size_t)a->rows;
    a->ws_stride = round_up(KT * hd + R * KT + 3 * R + 2 * R * hd, 16);
    a->part_stride = R * (hd + 2);
    a->ws = aligned_alloc(64, a->ws_stride * (size_t)a->n_threads * sizeof(float));
    a->part = malloc(a->part_stride * UNITS_PER_THREAD * 2 * (size_t)a->n_threads * sizeof(float));
    a->zero = calloc(hd, sizeof(float));
    if (!a->ws || !a->part || !a->zero) {
        attn_cpu_free(a);
        return NULL;
    }
    return a;
}

void attn_cpu_free(attn_cpu *a) {
    if (!a) return;
    free(a->ws);
    free(a->part);
    free(a->zero);
    free(a);
}

/* Where dim d sits in pair order with pairs of G dims (G = 0: natural order). */
static inline int pair_pos(int d, int G) {
    if (!G) return d;
    int e = d % G;
    return d - e + (e & 1) * (G / 2) + e / 2;
}

/* Points kr, vr at the K and V rows of KV head g (byte offset goff) for the nb
 * positions from the cursor (block index *blk, slot *o), advancing it, and
 * prefetches them (the hardware prefetchers miss this strided pattern); the
 * rows from nb to KT point at zeros. */
static void tile_rows(const attn_cpu *a, const attn_cpu_kv *kv, size_t *blk, size_t *o, int nb, size_t goff,
                      const uint8_t **kr, const uint8_t **vr) {
    size_t seg = (size_t)a->hd * (kv->dtype == SD_DT_F32 ? 4 : 2);
    for (int i = 0; i < nb; i++) {
        size_t off = (size_t)kv->block_table[*blk] * kv->block_stride + *o * kv->row_stride + goff;
        kr[i] = kv->k + off;
        vr[i] = kv->v + off;
        for (size_t b = 0; b < seg; b += 64) {
            __builtin_prefetch(kr[i] + b);
            __builtin_prefetch(vr[i] + b);
        }
        if (++*o == (size_t)kv->block_size) { *o = 0; ++*blk; }
    }
    for (int i = nb; i < KT; i++) kr[i] = vr[i] = (const uint8_t *)a->zero;
}

/* One work unit: tokens [t0, t0 + nt) of the batch, KV head g, positions
 * [s0, s1). Leaves acc, m and l in the scratch x. */
static void run_unit(const attn_cpu *a, const attn_level *L, const scratch *x, const float *q, size_t pos0,
                     size_t t0, int nt, int g, size_t s0, size_t s1, const attn_cpu_kv *kv) {
    const int hd = a->hd, grp = a->grp, R = nt * grp, RP = (R + 3) & ~3;
    const int G = kv->dtype == SD_DT_BF16 ? L->pair : 0;
    const size_t qd = (size_t)a->n_head * hd, es = kv->dtype == SD_DT_F32 ? 4 : 2;
    const size_t bs = (size_t)kv->block_size, goff = (size_t)g * hd * es;
    const float scale = 1.0f / sqrtf((float)hd);
    for (int r = 0; r < RP; r++) { x->m[r] = -INFINITY; x->l[r] = 0; x->corr[r] = 1; }
    memset(x->acc, 0, (size_t)RP * hd * sizeof(float));
    memset(x->s + (size_t)R * KT, 0, (size_t)(RP - R) * KT * sizeof(float)); /* padding rows: p = 0 */
    for (int r = 0; r < R; r++) {
        const float *qr = q + (t0 + (size_t)(r / grp)) * qd + ((size_t)g * grp + r % grp) * hd;
        for (int d = 0; d < hd; d++) x->q[(size_t)r * hd + pair_pos(d, G)] = qr[d];
    }
    size_t end = pos0 + t0 + (size_t)nt; /* the last token's causal end */
    if (end > s1) end = s1;
    const uint8_t *kr[2][KT], *vr[2][KT]; /* this tile's rows and the next's */
    size_t blk = s0 / bs, o = s0 % bs;
    if (s0 < end) tile_rows(a, kv, &blk, &o, end - s0 < KT ? (int)(end - s0) : KT, goff, kr[0], vr[0]);
    for (size_t p0 = s0, cur = 0; p0 < end; p0 += KT, cur ^= 1) {
        int nb = end - p0 < KT ? (int)(end - p0) : KT;
        if (p0 + KT < end)
            tile_rows(a, kv, &blk, &o, end - p0 - KT < KT ? (int)(end - p0 - KT) : KT, goff, kr[cur ^ 1], vr[cur ^ 1]);
        L->tile(x->kf, kr[cur], kv->dtype, hd);
        for (int r = 0; r < R; r++) {
            size_t pe = pos0 + t0 + (size_t)(r / grp) + 1; /* this token sees positions < pe */
            int nv = pe <= p0 ? 0 : pe - p0 < (size_t)nb ? (int)(pe - p0) : nb;
            float *sr = x->s + (size_t)r * KT;
            if (nv == 0) { memset(sr, 0, KT * sizeof(float)); x->corr[r] = 1; continue; }
            L->scores(sr, x->q + (size_t)r * hd, x->kf, hd);
            float sum = L->softmax(sr, nv, scale, &x->m[r], &x->corr[r]);
            x->l[r] = x->l[r] * x->corr[r] + sum;
        }
        for (int r = 0; r < RP; r += 4) L->pv(x->acc + (size_t)r * hd, x->s + (size_t)r * KT, vr[cur], kv->dtype, x->corr + r, hd);
    }
}

void attn_cpu_run(attn_cpu *a, float *out, const float *q, size_t n, size_t pos0, const attn_cpu_kv *kv) {
    const attn_level *L = pick_level(a->hd);
    const int hd = a->hd, grp = a->grp, nkv = a->n_kv_head, T = a->n_threads, R = a->rows;
    const int G = kv->dtype == SD_DT_BF16 ? L->pair : 0;
    const size_t qd = (size_t)a->n_head * hd, n_tb = (n + (size_t)a->tb - 1) / (size_t)a->tb;
    const long base = (long)(n_tb * (size_t)nkv);
    long split = 1; /* chunks of positions per (token block, KV head) */
    if (base < (long)UNITS_PER_THREAD * T) {
        long want = ((long)UNITS_PER_THREAD * T + base - 1) / base, most = (long)((pos0 + 1) / SPLIT_MIN);
        split = want < most ? want : most > 1 ? most : 1;
    }
    const long units = base * split;
#pragma omp parallel num_threads(T)
    {
        scratch x = scratch_of(a, omp_get_thread_num());
#pragma omp for schedule(dynamic, 1)
        for (long u = 0; u < units; u++) {
            long w = u / split, c = u % split;
            size_t t0 = (size_t)(w / nkv) * (size_t)a->tb;
            int g = (int)(w % nkv), nt = n - t0 < (size_t)a->tb ? (int)(n - t0) : a->tb;
            size_t ctx = pos0 + t0 + (size_t)nt, chunk = round_up((ctx + (size_t)split - 1) / (size_t)split, KT);
            size_t s0 = (size_t)c * chunk, s1 = s0 + chunk < ctx ? s0 + chunk : ctx;
            run_unit(a, L, &x, q, pos0, t0, nt, g, s0, s1, kv);
            if (split == 1) {
                for (int r = 0; r < nt * grp; r++) {
                    float *o = out + (t0 + (size_t)(r / grp)) * qd + ((size_t)g * grp + r % grp) * hd;
                    for (int d = 0; d < hd; d++) o[d] = x.acc[(size_t)r * hd + pair_pos(d, G)] / x.l[r];
                }
            } else {
                float *pp = a->part + (size_t)u * a->part_stride;
                memcpy(pp, x.acc, (size_t)R * hd * sizeof(float));
                memcpy(pp + (size_t)R * hd, x.m, (size_t)R * sizeof(float));
                memcpy(pp + (size_t)R * (hd + 1), x.l, (size_t)R * sizeof(float));
            }
        }
        if (split > 1) { /* merge the chunks' states: rescale each to the common max */
#pragma omp for schedule(static)
            for (long w = 0; w < base; w++) {
                size_t t0 = (size_t)(w / nkv) * (size_t)a->tb;
                int g = (int)(w % nkv), nt = n - t0 < (size_t)a->tb ? (int)(n - t0) : a->tb;
                const float *pw = a->part + (size_t)(w * split) * a->part_stride;
                for (int r = 0; r < nt * grp; r++) {
                    float mx = -INFINITY, sum = 0, *acc = x.acc; /* (hd), in the level's order */
                    for (long c = 0; c < split; c++) {
                        float mc = pw[(size_t)c * a->part_stride + (size_t)R * hd + r];
                        mx = mc > mx ? mc : mx;
                    }
                    memset(acc, 0, (size_t)hd * sizeof(float));
                    for (long c = 0; c < split; c++) {
                        const float *pc = pw + (size_t)c * a->part_stride;
                        float mc = pc[(size_t)R * hd + r];
                        if (mc == -INFINITY) continue; /* no position of this chunk is visible */
                        float f = expf(mc - mx);
                        sum += pc[(size_t)R * (hd + 1) + r] * f;
                        for (int d = 0; d < hd; d++) acc[d] += pc[(size_t)r * hd + d] * f;
                    }
                    float *o = out + (t0 + (size_t)(r / grp)) * qd + ((size_t)g * grp + r % grp) * hd;
                    for (int d = 0; d < hd; d++) o[d] = acc[pair_pos(d, G)] / sum;
                }
            }
        }
    }
}
