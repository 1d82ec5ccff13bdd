/* kernels.c - matrix products, RMSNorm and conversions for the CPU backend. */
#include "kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

static int simd_state = -1; /* -1 unknown, 0 scalar, 1 avx512 */

static int simd_detect(void) {
    if (simd_state >= 0) return simd_state;
    int on = 0;
#if defined(__x86_64__)
    __builtin_cpu_init();
    on = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
#endif
    const char *e = getenv("SMOLDOC_SIMD");
    if (e && !strcmp(e, "0")) on = 0;
    simd_state = on;
    return on;
}

const char *kern_simd_name(void) { return simd_detect() ? "avx512" : "scalar"; }

int kern_set_simd(int on) {
    int prev = simd_detect();
    simd_state = 0;
    if (on) { simd_state = -1; simd_state = simd_detect(); }
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
            uint16_t h; memcpy(&h, s, 2);
            float d = f16_to_f32(h);
            for (int i = 0; i < 32; i++) dst[b * 32 + i] = d * (float)(int8_t)s[2 + i];
        }
    } break;
    }
}

void kern_row_f32(float *out, const model_weight *w, int64_t r) {
    size_t rb = dtype_row_bytes(w->dtype, (size_t)w->cols);
    kern_to_f32(out, (const uint8_t *)w->data + rb * (size_t)r, w->dtype, (size_t)w->cols);
}

/* ---- scalar path: rows converted to f32 a tile at a time ---- */

#define TR 4 /* rows per tile */
#define TT 4 /* tokens per tile */

static void matmul_scalar_rows(float *y, const float *x, size_t n, const model_weight *w,
                               int64_t r0, int64_t r1, int acc, float *wbuf) {
    size_t K = (size_t)w->cols, R = (size_t)w->rows, rb = dtype_row_bytes(w->dtype, K);
    for (int64_t r = r0; r < r1; r++) {
        kern_to_f32(wbuf, (const uint8_t *)w->data + rb * (size_t)r, w->dtype, K);
        for (size_t t = 0; t < n; t++) {
            const float *xt = x + t * K;
            float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            size_t k = 0;
            for (; k + 4 <= K; k += 4) {
                s0 += xt[k] * wbuf[k]; s1 += xt[k + 1] * wbuf[k + 1];
                s2 += xt[k + 2] * wbuf[k + 2]; s3 += xt[k + 3] * wbuf[k + 3];
            }
            for (; k < K; k++) s0 += xt[k] * wbuf[k];
            float s = (s0 + s1) + (s2 + s3);
            float *yp = y + t * R + (size_t)r;
            *yp = acc ? *yp + s : s;
        }
    }
}

#if defined(__x86_64__)
/* ---- AVX-512: 4 rows x 4 tokens per tile, 16 lanes, weights widened in registers ---- */

__attribute__((target("avx512f,avx512bw"))) static inline __m512 load16(const void *p, sd_dtype t) {
    switch (t) {
    case SD_DT_BF16: return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
    case SD_DT_F16: return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
    default: return _mm512_loadu_ps(p);
    }
}

__attribute__((target("avx512f,avx512bw")))
static void matmul_avx512_rows(float *y, const float *x, size_t n, const model_weight *w,
                               int64_t r0, int64_t r1, int acc) {
    const sd_dtype dt = w->dtype;
    const size_t K = (size_t)w->cols, R = (size_t)w->rows, es = dt == SD_DT_F32 ? 4 : 2, rb = K * es;
    const uint8_t *W = w->data;
    int64_t r = r0;
    for (; r + TR <= r1; r += TR) {
        const uint8_t *w0 = W + rb * (size_t)r, *w1 = w0 + rb, *w2 = w1 + rb, *w3 = w2 + rb;
        size_t t = 0;
        for (; t + TT <= n; t += TT) {
            const float *x0 = x + t * K, *x1 = x0 + K, *x2 = x1 + K, *x3 = x2 + K;
            __m512 a00 = _mm512_setzero_ps(), a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00, a13 = a00,
                   a20 = a00, a21 = a00, a22 = a00, a23 = a00, a30 = a00, a31 = a00, a32 = a00, a33 = a00;
            for (size_t k = 0; k < K; k += 16) {
                __m512 v0 = _mm512_loadu_ps(x0 + k), v1 = _mm512_loadu_ps(x1 + k), v2 = _mm512_loadu_ps(x2 + k), v3 = _mm512_loadu_ps(x3 + k);
                __m512 q = load16(w0 + k * es, dt);
                a00 = _mm512_fmadd_ps(q, v0, a00); a01 = _mm512_fmadd_ps(q, v1, a01); a02 = _mm512_fmadd_ps(q, v2, a02); a03 = _mm512_fmadd_ps(q, v3, a03);
                q = load16(w1 + k * es, dt);
                a10 = _mm512_fmadd_ps(q, v0, a10); a11 = _mm512_fmadd_ps(q, v1, a11); a12 = _mm512_fmadd_ps(q, v2, a12); a13 = _mm512_fmadd_ps(q, v3, a13);
                q = load16(w2 + k * es, dt);
                a20 = _mm512_fmadd_ps(q, v0, a20); a21 = _mm512_fmadd_ps(q, v1, a21); a22 = _mm512_fmadd_ps(q, v2, a22); a23 = _mm512_fmadd_ps(q, v3, a23);
                q = load16(w3 + k * es, dt);
                a30 = _mm512_fmadd_ps(q, v0, a30); a31 = _mm512_fmadd_ps(q, v1, a31); a32 = _mm512_fmadd_ps(q, v2, a32); a33 = _mm512_fmadd_ps(q, v3, a33);
            }
            float s[4][4] = {
                {_mm512_reduce_add_ps(a00), _mm512_reduce_add_ps(a01), _mm512_reduce_add_ps(a02), _mm512_reduce_add_ps(a03)},
                {_mm512_reduce_add_ps(a10), _mm512_reduce_add_ps(a11), _mm512_reduce_add_ps(a12), _mm512_reduce_add_ps(a13)},
                {_mm512_reduce_add_ps(a20), _mm512_reduce_add_ps(a21), _mm512_reduce_add_ps(a22), _mm512_reduce_add_ps(a23)},
                {_mm512_reduce_add_ps(a30), _mm512_reduce_add_ps(a31), _mm512_reduce_add_ps(a32), _mm512_reduce_add_ps(a33)}};
            for (int i = 0; i < TR; i++)
                for (int j = 0; j < TT; j++) {
                    float *yp = y + (t + (size_t)j) * R + (size_t)r + (size_t)i;
                    *yp = acc ? *yp + s[i][j] : s[i][j];
                }
        }
        for (; t < n; t++) { /* leftover tokens: 4 rows x 1 token */
            const float *x0 = x + t * K;
            __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (size_t k = 0; k < K; k += 16) {
                __m512 v0 = _mm512_loadu_ps(x0 + k);
                a0 = _mm512_fmadd_ps(load16(w0 + k * es, dt), v0, a0);
                a1 = _mm512_fmadd_ps(load16(w1 + k * es, dt), v0, a1);
                a2 = _mm512_fmadd_ps(load16(w2 + k * es, dt), v0, a2);
                a3 = _mm512_fmadd_ps(load16(w3 + k * es, dt), v0, a3);
            }
            float s[4] = {_mm512_reduce_add_ps(a0), _mm512_reduce_add_ps(a1), _mm512_reduce_add_ps(a2), _mm512_reduce_add_ps(a3)};
            for (int i = 0; i < TR; i++) {
                float *yp = y + t * R + (size_t)r + (size_t)i;
                *yp = acc ? *yp + s[i] : s[i];
            }
        }
    }
    for (; r < r1; r++) { /* leftover rows */
        const uint8_t *w0 = W + rb * (size_t)r;
        for (size_t t = 0; t < n; t++) {
            const float *x0 = x + t * K;
            __m512 a0 = _mm512_setzero_ps();
            for (size_t k = 0; k < K; k += 16) a0 = _mm512_fmadd_ps(load16(w0 + k * es, dt), _mm512_loadu_ps(x0 + k), a0);
            float s = _mm512_reduce_add_ps(a0);
            float *yp = y + t * R + (size_t)r;
            *yp = acc ? *yp + s : s;
        }
    }
}
#endif

void kern_matmul(float *y, const float *x, size_t n, const model_weight *w, int acc) {
    const int64_t R = w->rows;
    const size_t K = (size_t)w->cols;
    int simd = simd_detect() && K % 16 == 0 && w->dtype != SD_DT_Q8_0;
    /* Row chunks: multiples of TR, about 4 per thread for balance. */
    int64_t chunk = 64;
    int64_t n_chunks = (R + chunk - 1) / chunk;
#pragma omp parallel
    {
        float *wbuf = simd ? NULL : malloc(K * sizeof(float));
#pragma omp for schedule(dynamic, 1)
        for (int64_t c = 0; c < n_chunks; c++) {
            int64_t r0 = c * chunk, r1 = r0 + chunk < R ? r0 + chunk : R;
#if defined(__x86_64__)
            if (simd) matmul_avx512_rows(y, x, n, w, r0, r1, acc);
            else
#endif
                matmul_scalar_rows(y, x, n, w, r0, r1, acc, wbuf);
        }
        free(wbuf);
    }
}

void kern_rmsnorm(float *y, const float *x, size_t n, const model_weight *w, float eps) {
    size_t d = (size_t)w->rows;
    float *wf = malloc(d * sizeof(float));
    if (!wf) abort();
    kern_to_f32(wf, w->data, w->dtype, d);
    for (size_t t = 0; t < n; t++) {
        const float *xt = x + t * d;
        double ss = 0; /* a double accumulator: cheap here, and removes order effects */
        for (size_t i = 0; i < d; i++) ss += (double)xt[i] * xt[i];
        float r = 1.0f / sqrtf((float)(ss / (double)d) + eps);
        for (size_t i = 0; i < d; i++) y[t * d + i] = wf[i] * (xt[i] * r);
    }
    free(wf);
}
