/* test_kernels.c - kern_matmul at every SIMD level against a double-precision
 * product of the same semantics: F32, F16 and BF16 weights with f32 activations;
 * Q8_0 both in GGUF's 34-byte blocks and packed (kern_q8_pack: tiles of 4 rows
 * of f16 scales and offset-binary int8, model_repack_q8's layout), where the SIMD paths quantize the
 * activations per 32-block and the reference does the same. Shapes cover one
 * and several tokens, rows not a multiple of the tile, an odd number of blocks
 * per row (VNNI's fallback) and block counts that are and are not multiples of
 * the VNNI kernel's 16-block groups. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dtype.h"
#include "kernels.h"
#include "sd.h"
#include "test.h"

static uint64_t rng = 88172645463325252ull;
static float frand(void) { /* uniform in [-1, 1) */
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* The two-level activation quantization kern_matmul applies on its Q8_0 SIMD
 * paths: x ~ d (q_hi + q_lo / 256), written as its own small implementation. */
static void quant_x(const float *x, size_t n, int8_t *qh, int8_t *ql, float *d) {
    for (size_t b = 0; b < n / 32; b++) {
        float amax = 0;
        for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(x[b * 32 + i]));
        d[b] = amax / 127.0f;
        float id = d[b] ? 1.0f / d[b] : 0.0f;
        for (int i = 0; i < 32; i++) {
            float v = x[b * 32 + i];
            long h = lrintf(v * id), l = lrintf((v - (float)h * d[b]) * (id * 256.0f));
            qh[b * 32 + i] = (int8_t)h;
            ql[b * 32 + i] = (int8_t)(l > 127 ? 127 : l < -127 ? -127 : l);
        }
    }
}

/* Max |y - ref| relative to the shape's scale: max over outputs of sum |w x|,
 * which bounds rounding error whatever the cancellation in the sum. */
static double g_scale = 1;
static double rel_err(const float *y, const double *ref, size_t n) {
    double e = 0;
    for (size_t i = 0; i < n; i++) e = fmax(e, fabs(y[i] - ref[i]));
    return e / g_scale;
}

static const kern_simd levels[] = {KERN_SIMD_AVX512, KERN_SIMD_AVX2, KERN_SIMD_SCALAR};

/* Rows of two layouts of one weight that kern_row_f32 reads back differently. */
static size_t rows_differ(const model_weight *a, const model_weight *b) {
    const size_t K = (size_t)a->cols;
    float *ra = xmalloc(K * sizeof *ra), *rb = xmalloc(K * sizeof *rb);
    size_t bad = 0;
    for (int64_t r = 0; r < a->rows; r++) {
        kern_row_f32(ra, a, r);
        kern_row_f32(rb, b, r);
        bad += memcmp(ra, rb, K * sizeof *ra) != 0;
    }
    free(ra), free(rb);
    return bad;
}

static void run(const model_weight *w, const float *x, size_t n, const double *ref, const double *ref_q8, double tol,
                const char *what, kern_compute mode) {
    const size_t R = (size_t)w->rows;
    float *y = xmalloc(n * R * sizeof *y), *y0 = xmalloc(n * R * sizeof *y0);
    double *ref2 = xmalloc(n * R * sizeof *ref2);
    for (size_t l = 0; l < sizeof levels / sizeof *levels; l++) {
        kern_simd got = kern_set_simd(levels[l]);
        (void)got;
        if (kern_simd_level() != levels[l]) continue; /* the CPU lacks it */
        /* repacked Q8_0 on a SIMD path quantizes x; the scalar path does not */
        const double *r = ref_q8 && levels[l] != KERN_SIMD_SCALAR ? ref_q8 : ref;
        kern_matmul(y, x, n, w, 0, mode);
        double e = rel_err(y, r, n * R);
        CHECK_MSG(e < tol, "%s K=%lld R=%lld n=%zu simd=%s: rel err %.3g", what, (long long)w->cols, (long long)w->rows,
                  n, kern_simd_name(), e);
        /* accumulate mode adds to what is there */
        for (size_t i = 0; i < n * R; i++) { y0[i] = frand(); ref2[i] = r[i] + y0[i]; }
        memcpy(y, y0, n * R * sizeof *y);
        kern_matmul(y, x, n, w, 1, mode);
        e = rel_err(y, ref2, n * R);
        CHECK_MSG(e < tol, "%s accumulate K=%lld n=%zu simd=%s: rel err %.3g", what, (long long)w->cols, n,
                  kern_simd_name(), e);
    }
    kern_set_simd(KERN_SIMD_AVX512);
    free(y), free(y0), free(ref2);
}

static void shape(size_t K, size_t R, size_t n) {
    const size_t nb = K / 32;
    float *wf = xmalloc(R * K * sizeof *wf), *x = xmalloc(n * K * sizeof *x);
    for (size_t i = 0; i < R * K; i++) wf[i] = frand() * 0.5f;
    for (size_t i = 0; i < n * K; i++) x[i] = frand() * (i % 7 == 0 ? 4.0f : 1.0f);
    g_scale = 1e-30;
    for (size_t t = 0; t < n; t++)
        for (size_t r = 0; r < R; r++) {
            double a = 0;
            for (size_t i = 0; i < K; i++) a += fabs((double)wf[r * K + i] * x[t * K + i]);
            g_scale = fmax(g_scale, a);
        }
    double *ref = xmalloc(n * R * sizeof *ref), *refq = xmalloc(n * R * sizeof *refq), *ref1 = xmalloc(n * R * sizeof *ref1);

    /* BF16, F16, F32 weights */
    uint16_t *wb = xmalloc(R * K * 2), *wh = xmalloc(R * K * 2);
    for (size_t i = 0; i < R * K; i++) { wb[i] = f32_to_bf16(wf[i]); wh[i] = f32_to_f16(wf[i]); }
    const struct { sd_dtype dt; const void *data; const char *name; } plain[] = {
        {SD_DT_BF16, wb, "bf16"}, {SD_DT_F16, wh, "f16"}, {SD_DT_F32, wf, "f32"}};
    for (size_t k = 0; k < 3; k++) {
        model_weight w = {plain[k].dt, (int64_t)R, (int64_t)K, plain[k].data, 0};
        for (size_t t = 0; t < n; t++)
            for (size_t r = 0; r < R; r++) {
                double s = 0;
                for (size_t i = 0; i < K; i++) {
                    double wv = k == 0 ? bf16_to_f32(wb[r * K + i]) : k == 1 ? f16_to_f32(wh[r * K + i]) : wf[r * K + i];
                    s += wv * x[t * K + i];
                }
                ref[t * R + r] = s;
            }
        run(&w, x, n, ref, NULL, 2e-6, plain[k].name, KERN_COMPUTE_EXACT);
        if (k == 0 && R % 4 == 0 && K % 32 == 0) { /* BF16 packed in place (kern_bf16_pack) */
            uint16_t *wp = xmalloc(R * K * 2);
            memcpy(wp, wb, R * K * 2);
            CHECK(kern_bf16_pack(wp, (int64_t)R, (int64_t)K) == 0);
            model_weight pw = {SD_DT_BF16, (int64_t)R, (int64_t)K, wp, 1};
            size_t bad = rows_differ(&w, &pw);
            CHECK_MSG(bad == 0, "bf16 packed K=%zu R=%zu: %zu rows differ", K, R, bad);
            run(&pw, x, n, ref, NULL, 2e-6, "bf16 packed", KERN_COMPUTE_EXACT);
            free(wp);
        }
    }
    if (R % 4 || K % 32) /* packing refuses what it cannot tile, and leaves it as it was */
        CHECK(kern_bf16_pack(wh, (int64_t)R, (int64_t)K) == -1 && wh[0] == f32_to_f16(wf[0]));
    /* BF16 compute (AVX512-BF16): activations rounded to bf16 (nearest even, as
     * f32_to_bf16), exact products summed in f32 */
    if (kern_has_bf16_dot() && K % 32 == 0) {
        model_weight w = {SD_DT_BF16, (int64_t)R, (int64_t)K, wb, 0};
        for (size_t t = 0; t < n; t++)
            for (size_t r = 0; r < R; r++) {
                double s = 0;
                for (size_t i = 0; i < K; i++) s += (double)bf16_to_f32(wb[r * K + i]) * bf16_to_f32(f32_to_bf16(x[t * K + i]));
                ref[t * R + r] = s;
            }
        float *y = xmalloc(n * R * sizeof *y);
        kern_matmul(y, x, n, &w, 0, KERN_COMPUTE_FAST);
        double e = rel_err(y, ref, n * R);
        CHECK_MSG(e < 2e-6, "bf16 compute K=%zu R=%zu n=%zu: rel err %.3g", K, R, n, e);
        if (R % 4 == 0) {
            uint16_t *wp = xmalloc(R * K * 2);
            memcpy(wp, wb, R * K * 2);
            CHECK(kern_bf16_pack(wp, (int64_t)R, (int64_t)K) == 0);
            model_weight pw = {SD_DT_BF16, (int64_t)R, (int64_t)K, wp, 1};
            kern_matmul(y, x, n, &pw, 0, KERN_COMPUTE_FAST);
            e = rel_err(y, ref, n * R);
            CHECK_MSG(e < 2e-6, "bf16 packed compute K=%zu R=%zu n=%zu: rel err %.3g", K, R, n, e);
            free(wp);
        }
        free(y);
    }

    if (K % 32 == 0) {
        /* Q8_0: GGUF blocks, and the repacked layout */
        uint8_t *blk = xmalloc(R * nb * 34);
        for (size_t r = 0; r < R; r++) kern_quantize_q8_0(blk + r * nb * 34, wf + r * K, K);
        uint8_t *rq = aligned_alloc(64, (kern_q8_packed_bytes((int64_t)R, (int64_t)K) + 63) / 64 * 64);
        kern_q8_pack(rq, blk, (int64_t)R, (int64_t)K);
        float *rs = xmalloc(R * nb * sizeof *rs); /* the blocks' scales, for the references */
        for (size_t r = 0; r < R; r++)
            for (size_t b = 0; b < nb; b++) {
                uint16_t h;
                memcpy(&h, blk + (r * nb + b) * 34, 2);
                rs[r * nb + b] = f16_to_f32(h);
            }
        int8_t *xq = xmalloc(n * K), *xl = xmalloc(n * K);
        float *xd = xmalloc(n * nb * sizeof *xd);
        quant_x(x, n * K, xq, xl, xd);
        for (size_t t = 0; t < n; t++)
            for (size_t r = 0; r < R; r++) {
                double s = 0, sq = 0;
                for (size_t b = 0; b < nb; b++) {
                    double d = rs[r * nb + b], dot = 0;
                    int64_t idot = 0;
                    for (int i = 0; i < 32; i++) {
                        int8_t wq = (int8_t)blk[(r * nb + b) * 34 + 2 + i];
                        dot += (double)wq * x[t * K + b * 32 + i];
                        idot += (int64_t)wq * (256 * xq[t * K + b * 32 + i] + xl[t * K + b * 32 + i]);
                    }
                    s += d * dot;
                    sq += d * (double)xd[t * nb + b] / 256.0 * (double)idot;
                }
                ref[t * R + r] = s;
                refq[t * R + r] = sq;
            }
        model_weight wg = {SD_DT_Q8_0, (int64_t)R, (int64_t)K, blk, 0};
        run(&wg, x, n, ref, NULL, 2e-6, "q8_0 blocks", KERN_COMPUTE_EXACT);
        model_weight wr = {SD_DT_Q8_0, (int64_t)R, (int64_t)K, rq, 1};
        size_t bad = rows_differ(&wg, &wr); /* every packed row reads back as its blocks */
        CHECK_MSG(bad == 0, "q8_0 packed K=%zu R=%zu: %zu rows differ from their blocks", K, R, bad);
        run(&wr, x, n, ref, refq, 2e-6, "q8_0 repacked", KERN_COMPUTE_EXACT);
        /* FAST: one-level 8-bit activations (q_hi alone), llama.cpp's Q8_0 x Q8_0 */
        for (size_t t = 0; t < n; t++)
            for (size_t r = 0; r < R; r++) {
                double s1 = 0;
                for (size_t b = 0; b < nb; b++) {
                    int64_t idot = 0;
                    for (int i = 0; i < 32; i++) idot += (int64_t)(int8_t)blk[(r * nb + b) * 34 + 2 + i] * xq[t * K + b * 32 + i];
                    s1 += (double)rs[r * nb + b] * (double)xd[t * nb + b] * (double)idot;
                }
                ref1[t * R + r] = s1;
            }
        run(&wr, x, n, ref, ref1, 2e-6, "q8_0 repacked fast", KERN_COMPUTE_FAST);
        /* the two-level quantized activations keep the product near the exact one */
        double far = 0, far1 = 0;
        for (size_t i = 0; i < n * R; i++) { far = fmax(far, fabs(ref[i] - refq[i])); far1 = fmax(far1, fabs(ref[i] - ref1[i])); }
        CHECK_MSG(far / g_scale < 2e-5, "q8_0 two-level activation error %.3g at K=%zu", far / g_scale, K);
        CHECK_MSG(far1 / g_scale > 10 * far / g_scale, "q8_0 one-level error %.3g not above two-level %.3g", far1 / g_scale, far / g_scale);
        free(blk), free(rq), free(rs), free(xq), free(xl), free(xd);
    }
    free(wf), free(x), free(ref), free(refq), free(ref1), free(wb), free(wh);
}

int main(void) {
    printf("kernels: best SIMD path here: %s\n", kern_simd_name());
    const size_t Ks[] = {64, 96, 544, 1088, 2048, 11008};
    const size_t Rs[] = {1, 4, 5, 67, 68};
    const size_t ns[] = {1, 2, 3, 6};
    for (size_t a = 0; a < sizeof Ks / sizeof *Ks; a++)
        for (size_t b = 0; b < sizeof Rs / sizeof *Rs; b++)
            for (size_t c = 0; c < sizeof ns / sizeof *ns; c++) shape(Ks[a], Rs[b], ns[c]);
    return test_done();
}
