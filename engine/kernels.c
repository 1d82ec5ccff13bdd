/* kernels.c - matrix products, RMSNorm and conversions for the CPU backend.
 * Matrix products tile 4 weight rows x 4 tokens so each weight vector loaded
 * (and widened to f32 in registers) feeds four FMAs. */
#include "kernels.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

static int simd_state = -1; /* kern_simd, -1 = not yet detected */
static int cap_state = -1;  /* cap from the environment or kern_set_simd */
static int has_bf16 = 0;
static int has_vnni = 0;

static kern_simd detect(void) {
    if (simd_state >= 0) return (kern_simd)simd_state;
    int lvl = KERN_SIMD_SCALAR;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) lvl = KERN_SIMD_AVX2;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")) lvl = KERN_SIMD_AVX512;
    has_bf16 = lvl == KERN_SIMD_AVX512 && __builtin_cpu_supports("avx512bf16");
    has_vnni = lvl == KERN_SIMD_AVX512 && __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vl");
#endif
    if (cap_state < 0) {
        const char *e = getenv("SMOLDOC_SIMD");
        cap_state = KERN_SIMD_AVX512;
        if (e && (!strcmp(e, "0") || !strcmp(e, "scalar"))) cap_state = KERN_SIMD_SCALAR;
        else if (e && !strcmp(e, "avx2")) cap_state = KERN_SIMD_AVX2;
    }
    if (lvl > cap_state) lvl = cap_state;
    if (lvl < KERN_SIMD_AVX512) has_bf16 = has_vnni = 0;
    simd_state = lvl;
    return (kern_simd)lvl;
}

kern_simd kern_simd_level(void) { return detect(); }
int kern_has_bf16_dot(void) { detect(); return has_bf16; }

const char *kern_simd_name(void) {
    switch (detect()) {
    case KERN_SIMD_AVX512: return has_bf16 ? "avx512bf16" : "avx512";
    case KERN_SIMD_AVX2: return "avx2";
    default: return "scalar";
    }
}

kern_simd kern_set_simd(kern_simd level) {
    kern_simd prev = detect();
    cap_state = (int)level;
    simd_state = -1;
    detect();
    return prev;
}

void kern_to_f32(float *dst, const void *src, sd_dtype t, size_t n) {
    switch (t) {
    case SD_DT_F32: memcpy(dst, src, n * 4); break;
    case SD_DT_BF16: { const uint16_t *s = src; for (size_t i = 0; i < n; i++) dst[i] = bf16_to_f32(s[i]); } break;
    case SD_DT_F16: { const uint16_t *s = src; for (size_t i = 0; i < n; i++) dst[i] = f16_to_f32(s[i]); } break;
    case SD_DT_Q8_0: {
        const uint8_t *s = src;
        for (size_t b = 0; b < n / 32; b++, s += 34) {
            uint16_t h;
            memcpy(&h, s, 2);
            float d = f16_to_f32(h);
            for (int i = 0; i < 32; i++) dst[b * 32 + i] = d * (float)(int8_t)s[2 + i];
        }
    } break;
    }
}

void kern_quantize_q8_0(void *dst, const float *src, size_t n) {
    uint8_t *o = dst;
    for (size_t b = 0; b < n / 32; b++, o += 34) {
        const float *x = src + b * 32;
        float amax = 0;
        for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(x[i]));
        float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
        uint16_t h = f32_to_f16(d);
        memcpy(o, &h, 2);
        for (int i = 0; i < 32; i++) o[2 + i] = (uint8_t)(int8_t)lrintf(x[i] * id);
    }
}

/* ---- Q8_0 packed for the CPU kernels (kern_q8_pack) ----
 * Rows go in tiles of 4 (TR), and each tile is one contiguous stream, in groups
 * of 16 blocks (512 columns): first the group's f16 scales as GGUF stores them,
 * 16 per row (row i at +32 i, 128 bytes), then its blocks in pairs, each pair the 4 rows' 64 bytes
 * one after another (row i at +64 i). Weights are offset binary (u = w + 128,
 * the unsigned operand of VNNI's vpdpbusd). Rows past the last, the block that
 * completes an odd last pair and scale slots past the last block hold weight 0
 * with scale 0. Why one stream: decode reads each weight once, so it runs at
 * the speed the prefetchers keep up. With 4 row streams plus 4 scale streams per
 * tile the VNNI product read about 40 GB/s on the 2-core bench machine, where
 * this layout reads about 50 (a plain read of the same bytes: about 55). f16
 * scales keep the bytes read per token at GGUF's 34 per block (f32 scales read
 * 36, 6% more, for the same numbers). */
#define Q8P_GROUP (128 + 8 * 256) /* bytes of a full group of 16 blocks */
static size_t q8p_tile_bytes(size_t nb) { return 128 * ((nb + 15) / 16) + 256 * ((nb + 1) / 2); }
/* Offsets in a tile of row 0's block b (row i: + 64 i) and of its f16 scale (row i: + 32 i). */
static inline size_t q8p_block(size_t b) { return (b / 16) * Q8P_GROUP + 128 + (b % 16 / 2) * 256 + (b % 2) * 32; }
static inline size_t q8p_scale(size_t b) { return (b / 16) * Q8P_GROUP + (b % 16) * 2; }

size_t kern_q8_packed_bytes(int64_t rows, int64_t cols) {
    return (size_t)(rows + 3) / 4 * q8p_tile_bytes((size_t)cols / 32);
}

void kern_q8_pack(void *dst, const void *blocks, int64_t rows, int64_t cols) {
    const size_t nb = (size_t)cols / 32, tb = q8p_tile_bytes(nb), ntile = (size_t)(rows + 3) / 4;
    const uint8_t *src = blocks;
#pragma omp parallel for schedule(static)
    for (size_t t = 0; t < ntile; t++) {
        uint8_t *tp = (uint8_t *)dst + t * tb;
        for (size_t g = 0; g < nb; g += 16) { /* padding first: scale 0, weight 0 (0x80) */
            size_t np = ((nb - g < 16 ? nb - g : 16) + 1) / 2;
            memset(tp + (g / 16) * Q8P_GROUP, 0, 128);
            memset(tp + (g / 16) * Q8P_GROUP + 128, 0x80, np * 256);
        }
        for (size_t i = 0; i < 4 && t * 4 + i < (size_t)rows; i++) {
            const uint8_t *row = src + (t * 4 + i) * nb * 34;
            for (size_t b = 0; b < nb; b++) {
                memcpy(tp + q8p_scale(b) + 32 * i, row + b * 34, 2);
                uint8_t *q = tp + q8p_block(b) + 64 * i;
                for (int k = 0; k < 32; k++) q[k] = row[b * 34 + 2 + k] ^ 0x80;
            }
        }
    }
}

/* ---- BF16 packed for the CPU kernels (kern_bf16_pack) ----
 * Rows go in tiles of 4 (the tile occupies the same bytes as its 4 rows did),
 * and in a tile each 32 columns of the 4 rows come one after another (64 bytes
 * per row): one stream per tile, which the hardware prefetcher follows better
 * than 4 row streams (a decode-shaped product read about 60 GB/s against 54 on
 * the bench machine). Element k of row i of a tile is at 128 (k / 32) + 32 i +
 * k % 32; with a row-major weight the same formula holds with 32 for 128. */
static inline size_t bf16_ofs(size_t k, size_t step) { return (k & ~(size_t)31) * step + (k & 31); }

int kern_bf16_pack(void *data, int64_t rows, int64_t cols) {
    if (rows % 4 || cols % 32 || cols <= 0) return -1;
    const size_t K = (size_t)cols, ntile = (size_t)rows / 4;
    const int nt = omp_get_max_threads();
    uint16_t *tmp = malloc((size_t)nt * 4 * K * sizeof *tmp); /* all or nothing: before any tile moves */
    if (!tmp) return -1;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (size_t t = 0; t < ntile; t++) {
        uint16_t *tp = (uint16_t *)data + t * 4 * K, *tm = tmp + (size_t)omp_get_thread_num() * 4 * K;
        memcpy(tm, tp, 4 * K * sizeof *tm);
        for (size_t k = 0; k < K; k += 32)
            for (size_t i = 0; i < 4; i++) memcpy(tp + 4 * k + 32 * i, tm + i * K + k, 64);
    }
    free(tmp);
    return 0;
}

void kern_row_f32(float *out, const model_weight *w, int64_t r) {
    if (w->packed && w->dtype == SD_DT_BF16) {
        const size_t K = (size_t)w->cols;
        const uint16_t *p = (const uint16_t *)w->data + (size_t)r / 4 * 4 * K + 32 * ((size_t)r % 4);
        for (size_t k = 0; k < K; k += 32) kern_to_f32(out + k, p + 4 * k, SD_DT_BF16, 32);
        return;
    }
    if (w->packed) {
        const size_t nb = (size_t)w->cols / 32, i = (size_t)r % 4;
        const uint8_t *tp = (const uint8_t *)w->data + (size_t)r / 4 * q8p_tile_bytes(nb);
        for (size_t b = 0; b < nb; b++) {
            uint16_t h;
            memcpy(&h, tp + q8p_scale(b) + 32 * i, 2);
            const float d = f16_to_f32(h);
            const uint8_t *q = tp + q8p_block(b) + 64 * i;
            for (int k = 0; k < 32; k++) out[b * 32 + (size_t)k] = d * (float)(int8_t)(q[k] ^ 0x80);
        }
        return;
    }
    size_t rb = dtype_row_bytes(w->dtype, (size_t)w->cols);
    kern_to_f32(out, (const uint8_t *)w->data + rb * (size_t)r, w->dtype, (size_t)w->cols);
}

/* Per-thread scratch, grown on demand and kept (no allocation per token). */
static float *scratch(size_t n) {
    static __thread float *buf;
    static __thread size_t cap;
    if (n > cap) {
        free(buf);
        cap = n + n / 4 + 64;
        buf = malloc(cap * sizeof(float));
        if (!buf) abort();
    }
    return buf;
}

#define TR 4 /* rows per tile */
#define TT 4 /* tokens per tile */

static inline void store(float *y, size_t R, size_t t, int64_t r, float s, int acc) {
    float *yp = y + t * R + (size_t)r;
    *yp = acc ? *yp + s : s;
}

/* ---- scalar path: a row widened to f32 at a time ---- */

static void matmul_scalar_rows(float *y, const float *x, size_t n, const model_weight *w, int64_t r0, int64_t r1, int acc) {
    size_t K = (size_t)w->cols, R = (size_t)w->rows;
    float *wbuf = scratch(K);
    for (int64_t r = r0; r < r1; r++) {
        kern_row_f32(wbuf, w, r);
        for (size_t t = 0; t < n; t++) {
            const float *xt = x + t * K;
            float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            size_t k = 0;
            for (; k + 4 <= K; k += 4) {
                s0 += xt[k] * wbuf[k]; s1 += xt[k + 1] * wbuf[k + 1];
                s2 += xt[k + 2] * wbuf[k + 2]; s3 += xt[k + 3] * wbuf[k + 3];
            }
            for (; k < K; k++) s0 += xt[k] * wbuf[k];
            store(y, R, t, r, (s0 + s1) + (s2 + s3), acc);
        }
    }
}

#if defined(__x86_64__)

/* ---- AVX-512 ---- */
#define T512 __attribute__((target("avx512f,avx512bw,avx512vl,f16c,fma")))

/* 16 weights at element k of a row, widened to f32. For Q8_0, k is a multiple
 * of 16 inside a 32-block; the block scale is applied. */
T512 static inline __m512 w16_512(const uint8_t *row, size_t k, sd_dtype t) {
    switch (t) {
    case SD_DT_BF16: return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(row + 2 * k))), 16));
    case SD_DT_F16: return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(row + 2 * k)));
    case SD_DT_Q8_0: {
        const uint8_t *blk = row + (k / 32) * 34;
        uint16_t h;
        memcpy(&h, blk, 2);
        __m512 q = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 2 + (k % 32)))));
        return _mm512_mul_ps(q, _mm512_set1_ps(_cvtsh_ss(h)));
    }
    default: return _mm512_loadu_ps(row + 4 * k);
    }
}

T512 static void matmul_avx512_rows(float *y, const float *x, size_t n, const model_weight *w, int64_t r0, int64_t r1, int acc) {
    const sd_dtype dt = w->dtype;
    const size_t K = (size_t)w->cols, R = (size_t)w->rows, rb = dtype_row_bytes(dt, K);
    const uint8_t *W = w->data;
    const size_t st = w->packed ? 4 : 1, rs = w->packed ? 64 : rb; /* packed BF16: bf16_ofs */
    int64_t r = r0;
    for (; r + TR <= r1; r += TR) {
        const uint8_t *w0 = W + rb * (size_t)r, *w1 = w0 + rs, *w2 = w1 + rs, *w3 = w2 + rs;
        size_t t = 0;
        for (; t + TT <= n; t += TT) {
            const float *x0 = x + t * K, *x1 = x0 + K, *x2 = x1 + K, *x3 = x2 + K;
            __m512 a00 = _mm512_setzero_ps(), a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00, a13 = a00,
                   a20 = a00, a21 = a00, a22 = a00, a23 = a00, a30 = a00, a31 = a00, a32 = a00, a33 = a00;
            for (size_t k = 0; k < K; k += 16) {
                __m512 v0 = _mm512_loadu_ps(x0 + k), v1 = _mm512_loadu_ps(x1 + k), v2 = _mm512_loadu_ps(x2 + k), v3 = _mm512_loadu_ps(x3 + k);
                __m512 q = w16_512(w0, bf16_ofs(k, st), dt);
                a00 = _mm512_fmadd_ps(q, v0, a00); a01 = _mm512_fmadd_ps(q, v1, a01); a02 = _mm512_fmadd_ps(q, v2, a02); a03 = _mm512_fmadd_ps(q, v3, a03);
                q = w16_512(w1, bf16_ofs(k, st), dt);
                a10 = _mm512_fmadd_ps(q, v0, a10); a11 = _mm512_fmadd_ps(q, v1, a11); a12 = _mm512_fmadd_ps(q, v2, a12); a13 = _mm512_fmadd_ps(q, v3, a13);
                q = w16_512(w2, bf16_ofs(k, st), dt);
                a20 = _mm512_fmadd_ps(q, v0, a20); a21 = _mm512_fmadd_ps(q, v1, a21); a22 = _mm512_fmadd_ps(q, v2, a22); a23 = _mm512_fmadd_ps(q, v3, a23);
                q = w16_512(w3, bf16_ofs(k, st), dt);
                a30 = _mm512_fmadd_ps(q, v0, a30); a31 = _mm512_fmadd_ps(q, v1, a31); a32 = _mm512_fmadd_ps(q, v2, a32); a33 = _mm512_fmadd_ps(q, v3, a33);
            }
            __m512 A[4][4] = {{a00, a01, a02, a03}, {a10, a11, a12, a13}, {a20, a21, a22, a23}, {a30, a31, a32, a33}};
            for (int i = 0; i < TR; i++)
                for (int j = 0; j < TT; j++) store(y, R, t + (size_t)j, r + i, _mm512_reduce_add_ps(A[i][j]), acc);
        }
        for (; t < n; t++) { /* leftover tokens: 4 rows x 1 token (the decode case) */
            const float *x0 = x + t * K;
            __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (size_t k = 0; k < K; k += 16) {
                __m512 v0 = _mm512_loadu_ps(x0 + k);
                a0 = _mm512_fmadd_ps(w16_512(w0, bf16_ofs(k, st), dt), v0, a0);
                a1 = _mm512_fmadd_ps(w16_512(w1, bf16_ofs(k, st), dt), v0, a1);
                a2 = _mm512_fmadd_ps(w16_512(w2, bf16_ofs(k, st), dt), v0, a2);
                a3 = _mm512_fmadd_ps(w16_512(w3, bf16_ofs(k, st), dt), v0, a3);
            }
            store(y, R, t, r, _mm512_reduce_add_ps(a0), acc);
            store(y, R, t, r + 1, _mm512_reduce_add_ps(a1), acc);
            store(y, R, t, r + 2, _mm512_reduce_add_ps(a2), acc);
            store(y, R, t, r + 3, _mm512_reduce_add_ps(a3), acc);
        }
    }
    for (; r < r1; r++) { /* leftover rows */
        const uint8_t *w0 = W + rb * (size_t)r;
        for (size_t t = 0; t < n; t++) {
            const float *x0 = x + t * K;
            __m512 a0 = _mm512_setzero_ps();
            for (size_t k = 0; k < K; k += 16) a0 = _mm512_fmadd_ps(w16_512(w0, bf16_ofs(k, st), dt), _mm512_loadu_ps(x0 + k), a0);
            store(y, R, t, r, _mm512_reduce_add_ps(a0), acc);
        }
    }
}

/* ---- AVX512-BF16: activations rounded to bf16 (xb: n x K bf16), dot products in pairs ---- */
#define TBF __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

TBF static void matmul_bf16dot_rows(float *y, const uint16_t *xb, size_t n, const model_weight *w, int64_t r0, int64_t r1, int acc) {
    const size_t K = (size_t)w->cols, R = (size_t)w->rows;
    const uint16_t *W = w->data;
    const size_t st = w->packed ? 4 : 1, rs = w->packed ? 32 : K; /* packed: bf16_ofs */
    int64_t r = r0;
#define LDW(p) ((__m512bh)_mm512_loadu_si512((const void *)(p)))
    for (; r + TR <= r1; r += TR) {
        const uint16_t *w0 = W + K * (size_t)r, *w1 = w0 + rs, *w2 = w1 + rs, *w3 = w2 + rs;
        size_t t = 0;
        for (; t + TT <= n; t += TT) {
            const uint16_t *x0 = xb + t * K, *x1 = x0 + K, *x2 = x1 + K, *x3 = x2 + K;
            __m512 a00 = _mm512_setzero_ps(), a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00, a13 = a00,
                   a20 = a00, a21 = a00, a22 = a00, a23 = a00, a30 = a00, a31 = a00, a32 = a00, a33 = a00;
            for (size_t k = 0; k < K; k += 32) {
                __m512bh v0 = LDW(x0 + k), v1 = LDW(x1 + k), v2 = LDW(x2 + k), v3 = LDW(x3 + k);
                __m512bh q = LDW(w0 + st * k);
                a00 = _mm512_dpbf16_ps(a00, q, v0); a01 = _mm512_dpbf16_ps(a01, q, v1); a02 = _mm512_dpbf16_ps(a02, q, v2); a03 = _mm512_dpbf16_ps(a03, q, v3);
                q = LDW(w1 + st * k);
                a10 = _mm512_dpbf16_ps(a10, q, v0); a11 = _mm512_dpbf16_ps(a11, q, v1); a12 = _mm512_dpbf16_ps(a12, q, v2); a13 = _mm512_dpbf16_ps(a13, q, v3);
                q = LDW(w2 + st * k);
                a20 = _mm512_dpbf16_ps(a20, q, v0); a21 = _mm512_dpbf16_ps(a21, q, v1); a22 = _mm512_dpbf16_ps(a22, q, v2); a23 = _mm512_dpbf16_ps(a23, q, v3);
                q = LDW(w3 + st * k);
                a30 = _mm512_dpbf16_ps(a30, q, v0); a31 = _mm512_dpbf16_ps(a31, q, v1); a32 = _mm512_dpbf16_ps(a32, q, v2); a33 = _mm512_dpbf16_ps(a33, q, v3);
            }
            __m512 A[4][4] = {{a00, a01, a02, a03}, {a10, a11, a12, a13}, {a20, a21, a22, a23}, {a30, a31, a32, a33}};
            for (int i = 0; i < TR; i++)
                for (int j = 0; j < TT; j++) store(y, R, t + (size_t)j, r + i, _mm512_reduce_add_ps(A[i][j]), acc);
        }
        for (; t < n; t++) {
            const uint16_t *x0 = xb + t * K;
            __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (size_t k = 0; k < K; k += 32) {
                __m512bh v0 = LDW(x0 + k);
                a0 = _mm512_dpbf16_ps(a0, LDW(w0 + st * k), v0);
                a1 = _mm512_dpbf16_ps(a1, LDW(w1 + st * k), v0);
                a2 = _mm512_dpbf16_ps(a2, LDW(w2 + st * k), v0);
                a3 = _mm512_dpbf16_ps(a3, LDW(w3 + st * k), v0);
            }
            store(y, R, t, r, _mm512_reduce_add_ps(a0), acc);
            store(y, R, t, r + 1, _mm512_reduce_add_ps(a1), acc);
            store(y, R, t, r + 2, _mm512_reduce_add_ps(a2), acc);
            store(y, R, t, r + 3, _mm512_reduce_add_ps(a3), acc);
        }
    }
    for (; r < r1; r++) {
        const uint16_t *w0 = W + K * (size_t)r;
        for (size_t t = 0; t < n; t++) {
            __m512 a0 = _mm512_setzero_ps();
            for (size_t k = 0; k < K; k += 32) a0 = _mm512_dpbf16_ps(a0, LDW(w0 + st * k), LDW(xb + t * K + k));
            store(y, R, t, r, _mm512_reduce_add_ps(a0), acc);
        }
    }
#undef LDW
}

/* ---- AVX2 + FMA: 8 lanes, 4 rows x 2 tokens ---- */
#define T256 __attribute__((target("avx2,fma,f16c")))

T256 static inline __m256 w8_256(const uint8_t *row, size_t k, sd_dtype t) {
    switch (t) {
    case SD_DT_BF16: return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(row + 2 * k))), 16));
    case SD_DT_F16: return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + 2 * k)));
    case SD_DT_Q8_0: {
        const uint8_t *blk = row + (k / 32) * 34;
        uint16_t h;
        memcpy(&h, blk, 2);
        __m256 q = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(blk + 2 + (k % 32)))));
        return _mm256_mul_ps(q, _mm256_set1_ps(_cvtsh_ss(h)));
    }
    default: return _mm256_loadu_ps((const float *)(row + 4 * k));
    }
}

T256 static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

T256 static void matmul_avx2_rows(float *y, const float *x, size_t n, const model_weight *w, int64_t r0, int64_t r1, int acc) {
    const sd_dtype dt = w->dtype;
    const size_t K = (size_t)w->cols, R = (size_t)w->rows, rb = dtype_row_bytes(dt, K);
    const uint8_t *W = w->data;
    const size_t st = w->packed ? 4 : 1, rs = w->packed ? 64 : rb; /* packed BF16: bf16_ofs */
    int64_t r = r0;
    for (; r + TR <= r1; r += TR) {
        const uint8_t *w0 = W + rb * (size_t)r, *w1 = w0 + rs, *w2 = w1 + rs, *w3 = w2 + rs;
        size_t t = 0;
        for (; t + 2 <= n; t += 2) {
            const float *x0 = x + t * K, *x1 = x0 + K;
            __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
            for (size_t k = 0; k < K; k += 8) {
                __m256 v0 = _mm256_loadu_ps(x0 + k), v1 = _mm256_loadu_ps(x1 + k), q;
                q = w8_256(w0, bf16_ofs(k, st), dt); a00 = _mm256_fmadd_ps(q, v0, a00); a01 = _mm256_fmadd_ps(q, v1, a01);
                q = w8_256(w1, bf16_ofs(k, st), dt); a10 = _mm256_fmadd_ps(q, v0, a10); a11 = _mm256_fmadd_ps(q, v1, a11);
                q = w8_256(w2, bf16_ofs(k, st), dt); a20 = _mm256_fmadd_ps(q, v0, a20); a21 = _mm256_fmadd_ps(q, v1, a21);
                q = w8_256(w3, bf16_ofs(k, st), dt); a30 = _mm256_fmadd_ps(q, v0, a30); a31 = _mm256_fmadd_ps(q, v1, a31);
            }
            store(y, R, t, r, hsum256(a00), acc); store(y, R, t + 1, r, hsum256(a01), acc);
            store(y, R, t, r + 1, hsum256(a10), acc); store(y, R, t + 1, r + 1, hsum256(a11), acc);
            store(y, R, t, r + 2, hsum256(a20), acc); store(y, R, t + 1, r + 2, hsum256(a21), acc);
            store(y, R, t, r + 3, hsum256(a30), acc); store(y, R, t + 1, r + 3, hsum256(a31), acc);
        }
        for (; t < n; t++) {
            const float *x0 = x + t * K;
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (size_t k = 0; k < K; k += 8) {
                __m256 v0 = _mm256_loadu_ps(x0 + k);
                a0 = _mm256_fmadd_ps(w8_256(w0, bf16_ofs(k, st), dt), v0, a0);
                a1 = _mm256_fmadd_ps(w8_256(w1, bf16_ofs(k, st), dt), v0, a1);
                a2 = _mm256_fmadd_ps(w8_256(w2, bf16_ofs(k, st), dt), v0, a2);
                a3 = _mm256_fmadd_ps(w8_256(w3, bf16_ofs(k, st), dt), v0, a3);
            }
            store(y, R, t, r, hsum256(a0), acc); store(y, R, t, r + 1, hsum256(a1), acc);
            store(y, R, t, r + 2, hsum256(a2), acc); store(y, R, t, r + 3, hsum256(a3), acc);
        }
    }
    for (; r < r1; r++) {
        const uint8_t *w0 = W + rb * (size_t)r;
        for (size_t t = 0; t < n; t++) {
            __m256 a0 = _mm256_setzero_ps();
            for (size_t k = 0; k < K; k += 8) a0 = _mm256_fmadd_ps(w8_256(w0, bf16_ofs(k, st), dt), _mm256_loadu_ps(x + t * K + k), a0);
            store(y, R, t, r, hsum256(a0), acc);
        }
    }
}
#endif /* __x86_64__ */

#if defined(__x86_64__)
/* ---- Q8_0 weights x two-level int8 activations: int8 dot products per 32-block ----
 * Activations are quantized per 32-block like the weights, in two levels: x is
 * about d (q_hi + q_lo / 256), q_lo quantizing the residual of q_hi, so the
 * activations keep about 16 bits where llama.cpp's Q8_0 x Q8_0 keeps 8 (which
 * alone put the logits of random test models at 2% of their range, the issue's
 * bound, where weight rounding alone gives 1.3%). Each block's exact int32
 * 256 dot(w, q_hi) + dot(w, q_lo) is scaled by d_w * d / 256. Repacked weights
 * are stored offset-binary (u = w + 128, model_repack_q8), which is the unsigned
 * operand VNNI's vpdpbusd wants: sum u*x = sum w*x + 128 sum x, so the low
 * level's accumulator starts at -128 * (256 sum q_hi + sum q_lo) over its
 * lanes, precomputed once per activation, and the int32 dot is exact. AVX2 has no such instruction with a
 * wide enough accumulator (vpmaddubsw saturates at 16 bits), so it flips u back
 * to w and multiplies |w| by x * sign(w). */
#define T512Q __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))
#define TQ2 __attribute__((target("avx2,fma,f16c")))

/* Software prefetch along the packed weights, Q8_PREFETCH bytes ahead of the
 * loads in the tile's one stream (the next tile follows the current one in
 * memory). NTA keeps the streamed weights from evicting the activations. */
#ifndef Q8_PREFETCH
#define Q8_PREFETCH 2048
#endif
#ifndef Q8_HINT
#define Q8_HINT _MM_HINT_NTA
#endif

/* AVX-512 VNNI: one packed tile (4 rows) x NT (1 or 2) tokens, two blocks (64
 * bytes) per instruction. Per group of 16 blocks, each (row, token) pair gets a
 * vector of its 16 block scales d_w * d_x; vpermps spreads two of them over the
 * 8 lanes of each block. Needs an even number of blocks per row. Written out per
 * row (the Q8V_* macros) so the accumulators and scales stay in registers. */
#define Q8V_SCALES(i, S0, S1)                                                                           \
    {                                                                                                   \
        __m512 dw = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(p + 32 * i)));                  \
        S0 = _mm512_mul_ps(dw, dx0);                                                                    \
        if (NT == 2) S1 = _mm512_mul_ps(dw, dx1);                                                       \
    }
#define Q8V_ROW(i, A0, A1, S0, S1)                                                                      \
    {                                                                                                   \
        __m512i wv = _mm512_load_si512((const void *)(p + 64 * i));                                     \
        __m512i d0 = LO ? _mm512_add_epi32(_mm512_slli_epi32(_mm512_dpbusd_epi32(zero, wv, h0), 8), _mm512_dpbusd_epi32(c0, wv, l0)) \
                        : _mm512_dpbusd_epi32(c0, wv, h0);                                              \
        A0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d0), _mm512_permutexvar_ps(idx, S0), A0);                \
        if (NT == 2) {                                                                                  \
            __m512i d1 = LO ? _mm512_add_epi32(_mm512_slli_epi32(_mm512_dpbusd_epi32(zero, wv, h1), 8), _mm512_dpbusd_epi32(c1, wv, l1)) \
                            : _mm512_dpbusd_epi32(c1, wv, h1);                                          \
            A1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d1), _mm512_permutexvar_ps(idx, S1), A1);            \
        }                                                                                               \
    }

T512Q static inline __attribute__((always_inline)) void q8v_tile(float *y, const int8_t *xq, const int8_t *xl, const float *xd,
                                                                 const int32_t *xc, size_t t, const int NT, const int LO, int nr,
                                                                 const model_weight *w, int64_t r, int acc) {
    const size_t K = (size_t)w->cols, R = (size_t)w->rows, nb = K / 32;
    const uint8_t *p = (const uint8_t *)w->data + (size_t)r / TR * q8p_tile_bytes(nb);
    const size_t t1 = t + (size_t)(NT - 1);
    const int8_t *x0 = xq + t * K, *x1 = xq + t1 * K, *y0 = LO ? xl + t * K : x0, *y1 = LO ? xl + t1 * K : x1;
    const __m512i zero = _mm512_setzero_si512();
    const int32_t *xc0 = xc + t * K / 4, *xc1 = xc + t1 * K / 4;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    const __m512i lo = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0), two = _mm512_set1_epi32(2);
    for (size_t g = 0; g < nb; g += 16) {
        const int nbg = nb - g < 16 ? (int)(nb - g) : 16;
        const __mmask16 m = (__mmask16)((1u << nbg) - 1);
        const __m512 dx0 = _mm512_maskz_loadu_ps(m, xd + t * nb + g), dx1 = _mm512_maskz_loadu_ps(m, xd + t1 * nb + g);
        __m512 s0, s1, s2, s3, u0 = dx1, u1 = dx1, u2 = dx1, u3 = dx1;
        Q8V_SCALES(0, s0, u0) Q8V_SCALES(1, s1, u1) Q8V_SCALES(2, s2, u2) Q8V_SCALES(3, s3, u3)
        p += 128;
        __m512i idx = lo;
        for (size_t off = g * 32; off < (g + (size_t)nbg) * 32; off += 64, p += 256, idx = _mm512_add_epi32(idx, two)) {
            for (int q = 0; q < 256; q += 64) _mm_prefetch((const char *)p + Q8_PREFETCH + q, Q8_HINT);
            const __m512i h0 = _mm512_loadu_si512((const void *)(x0 + off)), h1 = _mm512_loadu_si512((const void *)(x1 + off));
            const __m512i l0 = LO ? _mm512_loadu_si512((const void *)(y0 + off)) : h0, l1 = LO ? _mm512_loadu_si512((const void *)(y1 + off)) : h1;
            const __m512i c0 = _mm512_load_si512((const void *)(xc0 + off / 4)), c1 = _mm512_load_si512((const void *)(xc1 + off / 4));
            Q8V_ROW(0, a0, b0, s0, u0) Q8V_ROW(1, a1, b1, s1, u1) Q8V_ROW(2, a2, b2, s2, u2) Q8V_ROW(3, a3, b3, s3, u3)
        }
    }
    const float sa[TR] = {_mm512_reduce_add_ps(a0), _mm512_reduce_add_ps(a1), _mm512_reduce_add_ps(a2), _mm512_reduce_add_ps(a3)};
    const float sb[TR] = {_mm512_reduce_add_ps(b0), _mm512_reduce_add_ps(b1), _mm512_reduce_add_ps(b2), _mm512_reduce_add_ps(b3)};
    for (int i = 0; i < nr; i++) {
        store(y, R, t, r + i, sa[i], acc);
        if (NT == 2) store(y, R, t1, r + i, sb[i], acc);
    }
}

T512Q static void matmul_q8v_rows(float *y, const int8_t *xq, const int8_t *xl, const float *xd, const int32_t *xc, size_t n,
                                  const model_weight *w, int64_t r0, int64_t r1, int acc) {
    for (int64_t r = r0; r < r1; r += TR) {
        int nr = r1 - r < TR ? (int)(r1 - r) : TR;
        size_t t = 0;
        if (xl) {
            for (; t + 2 <= n; t += 2) q8v_tile(y, xq, xl, xd, xc, t, 2, 1, nr, w, r, acc);
            if (t < n) q8v_tile(y, xq, xl, xd, xc, t, 1, 1, nr, w, r, acc);
        } else {
            for (; t + 2 <= n; t += 2) q8v_tile(y, xq, xl, xd, xc, t, 2, 0, nr, w, r, acc);
            if (t < n) q8v_tile(y, xq, xl, xd, xc, t, 1, 0, nr, w, r, acc);
        }
    }
}

TQ2 static inline __m256 q8dot_avx2(__m256i aw, __m256i w, __m256i xh, __m256i xl, int lo) {
    __m256i ph = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(xh, w));
    if (!lo) return _mm256_cvtepi32_ps(_mm256_madd_epi16(ph, _mm256_set1_epi16(1)));
    __m256i pl = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(xl, w));
    return _mm256_cvtepi32_ps(_mm256_add_epi32(_mm256_madd_epi16(ph, _mm256_set1_epi16(256)), _mm256_madd_epi16(pl, _mm256_set1_epi16(1))));
}

/* AVX2: row i of the packed tile against block b (offsets bo, so in the tile):
 * accumulators A (token 0) and C (token 1, when NT == 2), written out so they
 * stay in registers. */
#define Q8R_ROW(NT, i, A, C)                                                                            \
    {                                                                                                   \
        const uint8_t *qp = tp + bo + 64 * i;                                                           \
        _mm_prefetch((const char *)qp + Q8_PREFETCH, Q8_HINT);                                          \
        uint16_t dh;                                                                                    \
        memcpy(&dh, tp + so + 32 * i, 2);                                                               \
        const float dw = _cvtsh_ss(dh);                                                                 \
        __m256i q = _mm256_xor_si256(_mm256_load_si256((const __m256i *)qp), flip);                     \
        __m256i aq = _mm256_sign_epi8(q, q);                                                            \
        A = _mm256_fmadd_ps(_mm256_set1_ps(dw * d0[b]), q8dot_avx2(aq, q, v0, g0, lo), A);              \
        if (NT == 2) C = _mm256_fmadd_ps(_mm256_set1_ps(dw * d1[b]), q8dot_avx2(aq, q, v1, g1, lo), C); \
    }

#define Q8R_BLOCKS(NT)                                                                                  \
    for (size_t b = 0; b < nb; b++) {                                                                   \
        const size_t bo = q8p_block(b), so = q8p_scale(b);                                              \
        __m256i v0 = _mm256_loadu_si256((const __m256i *)(x0 + b * 32));                                \
        __m256i v1 = NT == 2 ? _mm256_loadu_si256((const __m256i *)(x1 + b * 32)) : v0;                 \
        __m256i g0 = lo ? _mm256_loadu_si256((const __m256i *)(l0 + b * 32)) : v0;                      \
        __m256i g1 = lo && NT == 2 ? _mm256_loadu_si256((const __m256i *)(l1 + b * 32)) : g0;           \
        Q8R_ROW(NT, 0, a0, c0) Q8R_ROW(NT, 1, a1, c1) Q8R_ROW(NT, 2, a2, c2) Q8R_ROW(NT, 3, a3, c3)     \
    }

TQ2 static void matmul_q8r_avx2_rows(float *y, const int8_t *xq, const int8_t *xl, const float *xd, size_t n, const model_weight *w,
                                     int64_t r0, int64_t r1, int acc) {
    const size_t K = (size_t)w->cols, R = (size_t)w->rows, nb = K / 32, tb = q8p_tile_bytes(nb);
    const __m256i flip = _mm256_set1_epi8((char)0x80);
    for (int64_t r = r0; r < r1; r += TR) {
        int nr = r1 - r < TR ? (int)(r1 - r) : TR;
        const uint8_t *tp = (const uint8_t *)w->data + (size_t)r / TR * tb;
        for (size_t t = 0; t < n; t += 2) {
            int nt = n - t < 2 ? 1 : 2;
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, c0 = a0, c1 = a0, c2 = a0, c3 = a0;
            const int8_t *x0 = xq + t * K, *x1 = xq + (t + (size_t)(nt - 1)) * K;
            const int lo = xl != NULL;
            const int8_t *l0 = lo ? xl + t * K : x0, *l1 = lo ? xl + (t + (size_t)(nt - 1)) * K : x1;
            const float *d0 = xd + t * nb, *d1 = xd + (t + (size_t)(nt - 1)) * nb;
            if (nt == 2) { Q8R_BLOCKS(2) } else { Q8R_BLOCKS(1) }
            float s0[TR] = {hsum256(a0), hsum256(a1), hsum256(a2), hsum256(a3)};
            float s1[TR] = {hsum256(c0), hsum256(c1), hsum256(c2), hsum256(c3)};
            for (int i = 0; i < nr; i++) {
                store(y, R, t, r + i, s0[i], acc);
                if (nt == 2) store(y, R, t + 1, r + i, s1[i], acc);
            }
        }
    }
}
#endif

/* f32 to bf16, rounding to nearest even with NaN kept NaN: f32_to_bf16 over
 * 16 lanes (only called on the AVX512-BF16 path). */
#if defined(__x86_64__)
T512 static void to_bf16_512(uint16_t *dst, const float *src, size_t n) {
    size_t i = 0;
    const __m512i one = _mm512_set1_epi32(1), rnd = _mm512_set1_epi32(0x7fff), abs = _mm512_set1_epi32(0x7fffffff),
                  inf = _mm512_set1_epi32(0x7f800000), qb = _mm512_set1_epi32(0x400000);
    for (; i + 16 <= n; i += 16) {
        __m512i u = _mm512_castps_si512(_mm512_loadu_ps(src + i));
        __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, abs), inf);
        __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(rnd, _mm512_and_si512(_mm512_srli_epi32(u, 16), one)));
        r = _mm512_mask_or_epi32(r, nan, u, qb);
        _mm256_storeu_si256((__m256i *)(dst + i), _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16)));
    }
    for (; i < n; i++) dst[i] = f32_to_bf16(src[i]);
}
#endif

/* Activations to two-level Q8, blocks [b, e): d = amax / 127; q_hi = x / d
 * rounded to nearest even (as lrintf); q_lo = (x - q_hi d) 256 / d rounded,
 * clamped to +-127; the stored scale is d / 256; and the VNNI correction
 * -128 (256 sum q_hi + sum q_lo) over each 4 bytes. The AVX-512 version does the
 * same IEEE operations in the same order (no fused multiply-adds), so both give
 * identical bytes. */
static void quant_q8_scalar(const float *x, int8_t *qh, int8_t *ql, float *d, int32_t *c, size_t b, size_t e) {
    const int two = ql != NULL;
    for (; b < e; b++) {
        const float *xs = x + b * 32;
        int8_t *hs = qh + b * 32, *ls = two ? ql + b * 32 : NULL;
        float amax = 0;
        for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(xs[i]));
        float db = amax / 127.0f, id = db ? 1.0f / db : 0.0f, id256 = id * 256.0f;
        d[b] = two ? db * (1.0f / 256.0f) : db;
        for (int i = 0; i < 32; i++) {
            long h = lrintf(xs[i] * id);
            hs[i] = (int8_t)h;
            if (two) {
                long l = lrintf((xs[i] - (float)h * db) * id256);
                ls[i] = (int8_t)(l > 127 ? 127 : l < -127 ? -127 : l);
            }
        }
        for (int i = 0; i < 8; i++) {
            int sh = hs[4 * i] + hs[4 * i + 1] + hs[4 * i + 2] + hs[4 * i + 3];
            int sl = two ? ls[4 * i] + ls[4 * i + 1] + ls[4 * i + 2] + ls[4 * i + 3] : 0;
            c[b * 8 + (size_t)i] = two ? -128 * (256 * sh + sl) : -128 * sh;
        }
    }
}

#if defined(__x86_64__)
/* sums of each 4 consecutive int32 of (lo, hi): 8 results */
T512 static inline __m256i sum4_512(__m512i lo, __m512i hi) {
    const __m512i ev = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0),
                  od = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    __m512i s = _mm512_add_epi32(_mm512_permutex2var_epi32(lo, ev, hi), _mm512_permutex2var_epi32(lo, od, hi));
    s = _mm512_permutexvar_epi32(_mm512_set_epi32(15, 13, 11, 9, 7, 5, 3, 1, 14, 12, 10, 8, 6, 4, 2, 0), s);
    return _mm256_add_epi32(_mm512_castsi512_si256(s), _mm512_extracti64x4_epi64(s, 1));
}

T512 static void quant_q8_512(const float *x, int8_t *qh, int8_t *ql, float *d, int32_t *c, size_t b, size_t e) {
    const int two = ql != NULL;
    const __m512i lim = _mm512_set1_epi32(127), nlim = _mm512_set1_epi32(-127);
    for (; b < e; b++) {
        const float *xs = x + b * 32;
        __m512 v[2] = {_mm512_loadu_ps(xs), _mm512_loadu_ps(xs + 16)};
        float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v[0]), _mm512_abs_ps(v[1])));
        float db = amax / 127.0f, id = db ? 1.0f / db : 0.0f, id256 = id * 256.0f;
        d[b] = two ? db * (1.0f / 256.0f) : db;
        __m512i h[2], l[2];
        for (int k = 0; k < 2; k++) {
            h[k] = _mm512_cvtps_epi32(_mm512_mul_ps(v[k], _mm512_set1_ps(id)));
            _mm_storeu_si128((__m128i *)(qh + b * 32 + 16 * k), _mm512_cvtsepi32_epi8(h[k]));
            if (!two) continue;
            __m512 r = _mm512_sub_ps(v[k], _mm512_mul_ps(_mm512_cvtepi32_ps(h[k]), _mm512_set1_ps(db)));
            l[k] = _mm512_min_epi32(lim, _mm512_max_epi32(nlim, _mm512_cvtps_epi32(_mm512_mul_ps(r, _mm512_set1_ps(id256)))));
            _mm_storeu_si128((__m128i *)(ql + b * 32 + 16 * k), _mm512_cvtsepi32_epi8(l[k]));
        }
        __m256i sc = sum4_512(h[0], h[1]);
        if (two) sc = _mm256_add_epi32(_mm256_slli_epi32(sc, 8), sum4_512(l[0], l[1]));
        _mm256_storeu_si256((__m256i *)(c + b * 8), _mm256_mullo_epi32(sc, _mm256_set1_epi32(-128)));
    }
}
#endif

/* The activations in another form (bf16, or quantized), shared by the threads of
 * one product: one 64-byte aligned buffer, grown on demand and kept. */
static void *act_buf(size_t bytes) {
    static void *buf;
    static size_t cap;
    if (bytes > cap) {
        free(buf);
        cap = (bytes + bytes / 4 + 63) & ~(size_t)63;
        buf = aligned_alloc(64, cap);
        if (!buf) abort();
    }
    return buf;
}

void kern_matmul(float *y, const float *x, size_t n, const model_weight *w, int acc, kern_compute mode) {
    const int64_t R = w->rows;
    const size_t K = (size_t)w->cols;
    kern_simd lvl = detect();
    if (lvl == KERN_SIMD_AVX512 && K % 16) lvl = KERN_SIMD_AVX2;
    if (lvl == KERN_SIMD_AVX2 && K % 8) lvl = KERN_SIMD_SCALAR;
    int bf16dot = mode == KERN_COMPUTE_FAST && has_bf16 && lvl == KERN_SIMD_AVX512 && w->dtype == SD_DT_BF16 && K % 32 == 0;
    const uint16_t *xb = NULL;
    if (bf16dot) { /* round activations to bf16 once, shared by all threads */
        uint16_t *xbuf = act_buf(n * K * 2);
#if defined(__x86_64__)
        to_bf16_512(xbuf, x, n * K);
#endif
        xb = xbuf;
    }
    /* Q8_0 in GGUF's 34-byte blocks (not repacked) takes the scalar path. */
    int q8q8 = w->dtype == SD_DT_Q8_0 && w->packed && lvl >= KERN_SIMD_AVX2 && K % 32 == 0;
    int vnni = q8q8 && lvl == KERN_SIMD_AVX512 && has_vnni && K % 64 == 0;
    const int8_t *xq = NULL, *xl = NULL;
    const float *xd = NULL;
    const int32_t *xc = NULL;
    const int two = mode == KERN_COMPUTE_EXACT; /* two-level activations (kernels.c's Q8_0 notes) */
    if (q8q8) { /* quantize activations per 32-block once, shared by all threads */
        /* one buffer: q_hi (n K bytes), q_lo (n K), corrections (n K / 4 int32), scales (n K / 32 f32) */
        const size_t nk = (n * K + 63) & ~(size_t)63;
        uint8_t *buf = act_buf(3 * nk + n * K / 8);
        int8_t *qbuf = (int8_t *)buf, *lbuf = two ? (int8_t *)buf + nk : NULL;
        int32_t *cbuf = (int32_t *)(buf + 2 * nk);
        float *dbuf = (float *)(buf + 3 * nk);
        const size_t nblk = n * K / 32;
#pragma omp parallel for schedule(static) if (nblk >= 4096)
        for (size_t b = 0; b < nblk; b += 64) {
            size_t e = b + 64 < nblk ? b + 64 : nblk;
#if defined(__x86_64__)
            if (lvl == KERN_SIMD_AVX512) { quant_q8_512(x, qbuf, lbuf, dbuf, cbuf, b, e); continue; }
#endif
            quant_q8_scalar(x, qbuf, lbuf, dbuf, cbuf, b, e);
        }
        xq = qbuf;
        xl = lbuf;
        xd = dbuf;
        xc = cbuf;
    }
    /* Row chunks of 64 (a multiple of TR), handed out guided: each thread first
     * takes a long run of consecutive chunks (one stream the prefetchers follow
     * for longer; on the bench machine Q8_0 decode went from about 13.5 to 15.5
     * tokens/s against dynamic chunks of 64), then ever smaller runs that even
     * out the finish. */
    const int64_t chunk = 64, n_chunks = (R + chunk - 1) / chunk;
#pragma omp parallel for schedule(guided)
    for (int64_t c = 0; c < n_chunks; c++) {
        int64_t r0 = c * chunk, r1 = r0 + chunk < R ? r0 + chunk : R;
#if defined(__x86_64__)
        if (vnni) matmul_q8v_rows(y, xq, xl, xd, xc, n, w, r0, r1, acc);
        else if (q8q8) matmul_q8r_avx2_rows(y, xq, xl, xd, n, w, r0, r1, acc);
        else if (bf16dot) matmul_bf16dot_rows(y, xb, n, w, r0, r1, acc);
        else if (lvl == KERN_SIMD_AVX512) matmul_avx512_rows(y, x, n, w, r0, r1, acc);
        else if (lvl == KERN_SIMD_AVX2) matmul_avx2_rows(y, x, n, w, r0, r1, acc);
        else
#endif
            matmul_scalar_rows(y, x, n, w, r0, r1, acc);
    }
}

void kern_rmsnorm(float *y, const float *x, size_t n, const float *w, size_t d, float eps) {
    for (size_t t = 0; t < n; t++) {
        const float *xt = x + t * d;
        double ss = 0; /* a double accumulator: cheap here, and removes order effects */
        for (size_t i = 0; i < d; i++) ss += (double)xt[i] * xt[i];
        float r = 1.0f / sqrtf((float)(ss / (double)d) + eps);
        for (size_t i = 0; i < d; i++) y[t * d + i] = w[i] * (xt[i] * r);
    }
}
