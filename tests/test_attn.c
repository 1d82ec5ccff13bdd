/* test_attn.c - the CPU attention (attn_cpu) against a plain double-precision
 * softmax attention on random q, K, V in a shuffled paged layout: decode and
 * prefill chunks, context lengths around the tile size, BF16 and F32 KV, GQA
 * groups 1, 2 and 4, head sizes on and off the SIMD paths, at every SIMD
 * level; and the vectorized exp against double exp. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn_cpu.h"
#include "kernels.h"
#include "test.h"

static uint64_t rng_state = 88172645463325252ull;
static float frand(void) { /* uniform in [-1, 1) */
    rng_state ^= rng_state << 13; rng_state ^= rng_state >> 7; rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / (1 << 23)) - 1.0);
}

/* A paged cache of ctx positions laid out like backend_cpu's (per block: the K
 * rows, then the V rows), blocks in shuffled order; kd, vd hold the stored
 * values decoded to f32 for the reference. */
typedef struct cache {
    uint8_t *mem;
    int *table;
    float *kd, *vd; /* (ctx, nkv * hd) */
    attn_cpu_kv kv;
} cache;

static void cache_make(cache *c, size_t ctx, int nkv, int hd, int bs, sd_dtype dt) {
    size_t row = (size_t)nkv * hd, es = dt == SD_DT_F32 ? 4 : 2;
    int nblk = (int)((ctx + (size_t)bs - 1) / (size_t)bs) + 3; /* spare blocks: not every block is used */
    size_t bstride = 2 * (size_t)bs * row * es;
    c->mem = malloc((size_t)nblk * bstride);
    c->table = malloc((size_t)nblk * sizeof(int));
    c->kd = malloc(ctx * row * sizeof(float));
    c->vd = malloc(ctx * row * sizeof(float));
    for (size_t i = 0; i < (size_t)nblk * bstride; i++) c->mem[i] = 0xff; /* NaN bf16 / f32 where unwritten */
    for (int i = 0; i < nblk; i++) c->table[i] = i;
    for (int i = nblk - 1; i > 0; i--) {
        int j = (int)((frand() + 1) * 0.5f * (float)(i + 1)) % (i + 1), t = c->table[i];
        c->table[i] = c->table[j];
        c->table[j] = t;
    }
    for (size_t p = 0; p < ctx; p++)
        for (int w = 0; w < 2; w++) {
            uint8_t *dst = c->mem + (size_t)c->table[p / (size_t)bs] * bstride + ((size_t)w * bs + p % (size_t)bs) * row * es;
            float *dec = (w ? c->vd : c->kd) + p * row;
            for (size_t i = 0; i < row; i++) {
                float x = frand() * (w ? 1.0f : 2.0f);
                if (dt == SD_DT_F32) memcpy(dst + i * 4, &x, 4);
                else {
                    uint16_t h = f32_to_bf16(x);
                    memcpy(dst + i * 2, &h, 2);
                    x = bf16_to_f32(h);
                }
                dec[i] = x;
            }
        }
    c->kv = (attn_cpu_kv){c->mem, c->mem + (size_t)bs * row * es, bstride, row * es, bs, c->table, dt};
}

static void cache_free(cache *c) { free(c->mem); free(c->table); free(c->kd); free(c->vd); }

/* out (n, nh * hd) by the textbook formula in double. */
static void reference(double *out, const float *q, size_t n, size_t pos0, const cache *c, int nh, int nkv, int hd) {
    size_t qd = (size_t)nh * hd, row = (size_t)nkv * hd, ctx = pos0 + n;
    double *s = malloc(ctx * sizeof(double));
    for (size_t t = 0; t < n; t++)
        for (int h = 0; h < nh; h++) {
            const float *qh = q + t * qd + (size_t)h * hd;
            size_t g = (size_t)(h / (nh / nkv)), pe = pos0 + t + 1;
            double mx = -INFINITY, sum = 0;
            for (size_t p = 0; p < pe; p++) {
                const float *k = c->kd + p * row + g * hd;
                double d = 0;
                for (int i = 0; i < hd; i++) d += (double)qh[i] * k[i];
                s[p] = d / sqrt((double)hd);
                if (s[p] > mx) mx = s[p];
            }
            double *o = out + t * qd + (size_t)h * hd;
            memset(o, 0, (size_t)hd * sizeof(double));
            for (size_t p = 0; p < pe; p++) {
                double e = exp(s[p] - mx);
                sum += e;
                const float *v = c->vd + p * row + g * hd;
                for (int i = 0; i < hd; i++) o[i] += e * v[i];
            }
            for (int i = 0; i < hd; i++) o[i] /= sum;
        }
    free(s);
}

static const char *level_name[] = {"scalar", "avx2", "avx512"};

/* One case: n query tokens at pos0, every SIMD level, 2 and 3 threads. */
static void check_case(size_t n, size_t pos0, int nkv, int grp, int hd, int bs, sd_dtype dt, float qscale) {
    int nh = nkv * grp;
    size_t qd = (size_t)nh * hd;
    cache c;
    cache_make(&c, pos0 + n, nkv, hd, bs, dt);
    float *q = malloc(n * qd * sizeof(float)), *out = malloc(n * qd * sizeof(float));
    double *ref = malloc(n * qd * sizeof(double));
    for (size_t i = 0; i < n * qd; i++) q[i] = frand() * qscale;
    reference(ref, q, n, pos0, &c, nh, nkv, hd);
    double amax = 0;
    for (size_t i = 0; i < n * qd; i++) amax = fmax(amax, fabs(ref[i]));
    kern_simd top = kern_set_simd(KERN_SIMD_AVX512);
    kern_set_simd(top);
    for (int lv = (int)top; lv >= 0; lv--)
        for (int th = 2; th <= 3; th++) {
            kern_set_simd((kern_simd)lv);
            attn_cpu *a = attn_cpu_new(nh, nkv, hd, th);
            CHECK(a != NULL);
            if (!a) continue;
            for (size_t i = 0; i < n * qd; i++) out[i] = NAN;
            attn_cpu_run(a, out, q, n, pos0, &c.kv);
            double e = 0;
            for (size_t i = 0; i < n * qd; i++) {
                double d = fabs(out[i] - ref[i]);
                e = isnan(d) ? INFINITY : fmax(e, d);
            }
            CHECK_MSG(e <= 1e-5 * amax, "n=%zu pos0=%zu nkv=%d grp=%d hd=%d %s %s threads=%d: max error %g of max |out| %g",
                      n, pos0, nkv, grp, hd, dt == SD_DT_F32 ? "f32" : "bf16", level_name[lv], th, e, amax);
            attn_cpu_free(a);
        }
    kern_set_simd(top);
    free(q); free(out); free(ref);
    cache_free(&c);
}

static void test_attention(void) {
    static const size_t ctxs[] = {1, 2, 63, 64, 65, 1000, 4097};
    for (size_t i = 0; i < sizeof ctxs / sizeof ctxs[0]; i++) /* decode */
        for (int grp = 1; grp <= 4; grp *= 2) {
            check_case(1, ctxs[i] - 1, 2, grp, 128, 16, SD_DT_BF16, 4.0f);
            check_case(1, ctxs[i] - 1, 2, grp, 128, 16, SD_DT_F32, 1.0f);
        }
    /* prefill chunks: from 0 and from pos0 > 0, ragged token blocks */
    static const size_t pre[][2] = {{1, 0}, {7, 0}, {64, 0}, {37, 65}, {5, 1000}, {70, 960}, {9, 4088}};
    for (size_t i = 0; i < sizeof pre / sizeof pre[0]; i++)
        for (int grp = 1; grp <= 4; grp *= 2) {
            check_case(pre[i][0], pre[i][1], 2, grp, 128, 16, SD_DT_BF16, 4.0f);
            check_case(pre[i][0], pre[i][1], 4, grp, 128, 7, SD_DT_F32, 1.0f);
        }
    /* the 3B's shape; head sizes with a 16-wide remainder, one vector, off SIMD */
    check_case(1, 2000, 4, 4, 128, 64, SD_DT_BF16, 4.0f);
    check_case(20, 300, 4, 4, 128, 64, SD_DT_BF16, 4.0f);
    check_case(11, 90, 2, 3, 96, 16, SD_DT_BF16, 4.0f);
    check_case(3, 600, 2, 3, 32, 16, SD_DT_BF16, 4.0f);
    check_case(11, 90, 2, 2, 16, 5, SD_DT_F32, 4.0f);
    check_case(11, 90, 2, 2, 24, 16, SD_DT_BF16, 4.0f);
    check_case(1, 700, 1, 8, 16, 16, SD_DT_BF16, 8.0f);
    /* a peaked softmax: the max moves often and most weights underflow */
    check_case(40, 500, 2, 4, 128, 16, SD_DT_F32, 12.0f);
}

/* exp: relative error in units of the last place, over the range attention
 * uses (x <= 0), and 0 below ln(FLT_MIN). */
static void test_exp(void) {
    size_t n = 1 << 20;
    float *x = malloc((n + 8) * sizeof(float)), *y = malloc((n + 8) * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = -87.33f * (float)i / (float)n;
    x[n] = 0; x[n + 1] = -1e-30f; x[n + 2] = -0.34657359f; x[n + 3] = -87.3365f;
    x[n + 4] = -87.5f; x[n + 5] = -100.0f; x[n + 6] = -INFINITY; x[n + 7] = -1e30f;
    kern_simd top = kern_set_simd(KERN_SIMD_AVX512);
    kern_set_simd(top);
    for (int lv = (int)top; lv >= 0; lv--) {
        kern_set_simd((kern_simd)lv);
        attn_cpu_exp(y, x, n + 8);
        double worst = 0;
        for (size_t i = 0; i < n + 4; i++) {
            double ex = exp((double)x[i]);
            if (ex < 1.1754944e-38) continue; /* denormal results: checked below */
            double ulp = ldexp(1.0, ilogb(ex) - 23);
            worst = fmax(worst, fabs((double)y[i] - ex) / ulp);
        }
        printf("exp %s: max error %.2f ulp\n", level_name[lv], worst);
        CHECK_MSG(worst <= 2.0, "%s: %g ulp", level_name[lv], worst);
        CHECK(y[n] == 1.0f);
        for (size_t i = n + 3; i < n + 8; i++) CHECK(y[i] >= 0 && y[i] <= 1.2e-38f);
    }
    kern_set_simd(top);
    free(x); free(y);
}

int main(void) {
    test_exp();
    test_attention();
    return test_done();
}
