/* attnbench.c - times the CPU attention (attn_cpu) against the algorithm it
 * replaced (per-position dot / axpy calls, kept below, and scalar expf) in the
 * same process, on the SmolLM3-3B shape (16 query heads, 4 KV heads, head_dim
 * 128) over a paged BF16 (or F32) cache laid out like backend_cpu's.
 *
 *   build/attnbench [--threads N] [--reps N] [--kv f32]
 *
 * Decode cases cycle through several layers' worth of cache (up to 36 layers,
 * 512 MiB) so the KV comes from memory, not from the last level cache. Old and
 * new runs alternate; each column is the median over the reps, in ms per layer. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attn_cpu.h"
#include "dtype.h"
#include "kernels.h"
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#define NH 16
#define NKV 4
#define HD 128
#define BS 256

/* ---- the old algorithm's per-row helpers (formerly kern_dot_kv / kern_axpy_kv) ---- */
#if defined(__x86_64__)
#define T512 __attribute__((target("avx512f,avx512bw,avx512vl,fma")))
T512 static inline __m512 bf16x16(const void *p, int i) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)((const uint16_t *)p + i))), 16));
}
T512 static float dot_kv_512(const float *q, const void *k, sd_dtype dt, int n) {
    __m512 a = _mm512_setzero_ps(), b = a;
    int i = 0;
    if (dt == SD_DT_BF16) {
        for (; i + 32 <= n; i += 32) {
            a = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), bf16x16(k, i), a);
            b = _mm512_fmadd_ps(_mm512_loadu_ps(q + i + 16), bf16x16(k, i + 16), b);
        }
        for (; i + 16 <= n; i += 16) a = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), bf16x16(k, i), a);
    } else {
        for (; i + 16 <= n; i += 16) a = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), _mm512_loadu_ps((const float *)k + i), a);
    }
    float s = _mm512_reduce_add_ps(_mm512_add_ps(a, b));
    for (; i < n; i++) s += q[i] * (dt == SD_DT_BF16 ? bf16_to_f32(((const uint16_t *)k)[i]) : ((const float *)k)[i]);
    return s;
}
T512 static void axpy_kv_512(float *acc, float a, const void *v, sd_dtype dt, int n) {
    __m512 av = _mm512_set1_ps(a);
    int i = 0;
    if (dt == SD_DT_BF16)
        for (; i + 16 <= n; i += 16) _mm512_storeu_ps(acc + i, _mm512_fmadd_ps(av, bf16x16(v, i), _mm512_loadu_ps(acc + i)));
    else
        for (; i + 16 <= n; i += 16) _mm512_storeu_ps(acc + i, _mm512_fmadd_ps(av, _mm512_loadu_ps((const float *)v + i), _mm512_loadu_ps(acc + i)));
    for (; i < n; i++) acc[i] += a * (dt == SD_DT_BF16 ? bf16_to_f32(((const uint16_t *)v)[i]) : ((const float *)v)[i]);
}
#endif

static float kern_dot_kv(const float *q, const void *k, sd_dtype dt, int n) {
#if defined(__x86_64__)
    if (kern_simd_level() == KERN_SIMD_AVX512) return dot_kv_512(q, k, dt, n);
#endif
    float s = 0;
    for (int i = 0; i < n; i++) s += q[i] * (dt == SD_DT_BF16 ? bf16_to_f32(((const uint16_t *)k)[i]) : ((const float *)k)[i]);
    return s;
}

static void kern_axpy_kv(float *acc, float a, const void *v, sd_dtype dt, int n) {
#if defined(__x86_64__)
    if (kern_simd_level() == KERN_SIMD_AVX512) { axpy_kv_512(acc, a, v, dt, n); return; }
#endif
    for (int i = 0; i < n; i++) acc[i] += a * (dt == SD_DT_BF16 ? bf16_to_f32(((const uint16_t *)v)[i]) : ((const float *)v)[i]);
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The attention of backend_cpu.c before attn_cpu (commit fe9857c), over an attn_cpu_kv. */
#define ATT_TILE 64
static void old_attention(float *att, const float *qbuf, size_t n, size_t pos0, const attn_cpu_kv *kv, float *scratch, int n_threads) {
    const int hd = HD, nkv = NKV, grp = NH / NKV;
    const size_t bs = (size_t)kv->block_size, qd = (size_t)NH * hd;
    const sd_dtype dt = kv->dtype;
    const size_t es = dt == SD_DT_F32 ? 4 : 2, goff = (size_t)hd * es, stride = (size_t)grp * (hd + ATT_TILE);
    const float scale = 1.0f / sqrtf((float)hd);
    const long n_items = (long)n * nkv;
#pragma omp parallel num_threads(n_threads)
    {
        float *acc = scratch + (size_t)omp_get_thread_num() * stride;
        float *sc = acc + (size_t)grp * hd;
        float mx[64], sum[64];
#pragma omp for schedule(dynamic, 1)
        for (long it = 0; it < n_items; it++) {
            size_t t = (size_t)(it / nkv);
            int g = (int)(it % nkv);
            size_t p_end = pos0 + t + 1;
            const float *q = qbuf + t * qd + (size_t)g * grp * hd;
            for (int j = 0; j < grp; j++) { mx[j] = -INFINITY; sum[j] = 0; }
            memset(acc, 0, (size_t)grp * hd * sizeof(float));
            for (size_t p0 = 0; p0 < p_end; p0 += ATT_TILE) {
                int nb = (int)(p_end - p0 < ATT_TILE ? p_end - p0 : ATT_TILE);
                for (int i = 0; i < nb; i++) {
                    size_t p = p0 + (size_t)i;
                    const uint8_t *kr = kv->k + (size_t)kv->block_table[p / bs] * kv->block_stride + (p % bs) * kv->row_stride + (size_t)g * goff;
                    for (int j = 0; j < grp; j++) sc[j * ATT_TILE + i] = kern_dot_kv(q + (size_t)j * hd, kr, dt, hd) * scale;
                }
                for (int j = 0; j < grp; j++) {
                    float *s = sc + j * ATT_TILE, bm = s[0];
                    for (int i = 1; i < nb; i++) bm = s[i] > bm ? s[i] : bm;
                    if (bm > mx[j]) {
                        float corr = expf(mx[j] - bm);
                        sum[j] *= corr;
                        float *a = acc + (size_t)j * hd;
                        for (int i = 0; i < hd; i++) a[i] *= corr;
                        mx[j] = bm;
                    }
                    for (int i = 0; i < nb; i++) { s[i] = expf(s[i] - mx[j]); sum[j] += s[i]; }
                }
                for (int i = 0; i < nb; i++) {
                    size_t p = p0 + (size_t)i;
                    const uint8_t *vr = kv->v + (size_t)kv->block_table[p / bs] * kv->block_stride + (p % bs) * kv->row_stride + (size_t)g * goff;
                    for (int j = 0; j < grp; j++) kern_axpy_kv(acc + (size_t)j * hd, sc[j * ATT_TILE + i], vr, dt, hd);
                }
            }
            float *out = att + t * qd + (size_t)g * grp * hd;
            for (int j = 0; j < grp; j++)
                for (int i = 0; i < hd; i++) out[(size_t)j * hd + i] = acc[(size_t)j * hd + i] / sum[j];
        }
    }
}

typedef struct bcase {
    const char *name;
    size_t n, pos0;
} bcase;

int main(int argc, char **argv) {
    int threads = 2, reps = 7;
    sd_dtype dt = SD_DT_BF16;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--kv") && i + 1 < argc) dt = !strcmp(argv[++i], "f32") ? SD_DT_F32 : SD_DT_BF16;
        else { fprintf(stderr, "usage: %s [--threads N] [--reps N] [--kv bf16|f32]\n", argv[0]); return 2; }
    }
    if (reps < 1 || reps > 100 || threads < 1) { fprintf(stderr, "attnbench: bad --reps or --threads\n"); return 2; }
    const bcase cases[] = {
        {"decode ctx 128", 1, 127},        {"decode ctx 1024", 1, 1023},     {"decode ctx 4096", 1, 4095},
        {"decode ctx 16384", 1, 16383},    {"prefill 512 @ 0", 512, 0},      {"prefill 512 @ 3584", 512, 3584},
    };
    const size_t es = dt == SD_DT_F32 ? 4 : 2, row = (size_t)NKV * HD * es, qd = (size_t)NH * HD;
    attn_cpu *a = attn_cpu_new(NH, NKV, HD, threads);
    float *scratch = malloc((size_t)threads * (NH / NKV) * (HD + ATT_TILE) * sizeof(float));
    float *q = malloc(512 * qd * sizeof(float)), *o_old = malloc(512 * qd * sizeof(float)), *o_new = malloc(512 * qd * sizeof(float));
    if (!a || !scratch || !q || !o_old || !o_new) { fprintf(stderr, "attnbench: out of memory\n"); return 1; }
    srand(1);
    for (size_t i = 0; i < 512 * qd; i++) q[i] = (float)rand() / RAND_MAX * 2 - 1;
    printf("attnbench: %d threads, %s KV, simd %s, block %d, %d reps (median ms per layer)\n", threads,
           dt == SD_DT_F32 ? "f32" : "bf16", kern_simd_name(), BS, reps);
    printf("%-20s %6s %10s %10s %8s %9s %10s\n", "case", "layers", "old ms", "new ms", "speedup", "new GB/s", "max diff");
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const bcase *c = &cases[ci];
        size_t ctx = c->pos0 + c->n, nblk = (ctx + BS - 1) / BS, layer_bytes = 2 * ctx * row;
        size_t fit = ((size_t)512 << 20) / layer_bytes;
        int nl = c->n > 1 || fit < 1 ? 1 : fit > 36 ? 36 : (int)fit;
        size_t bstride = (size_t)nl * 2 * BS * row; /* (n_layer, 2, BS, row) per block, as backend_cpu */
        uint8_t *mem = malloc(nblk * bstride);
        int *table = malloc(nblk * sizeof(int));
        if (!mem || !table) { fprintf(stderr, "attnbench: out of memory\n"); return 1; }
        for (size_t b = 0; b < nblk; b++) table[b] = (int)(nblk - 1 - b);
        for (size_t i = 0; i < nblk * bstride / 2; i++) { /* bf16 or f32 halves of random values in [-2, 2) */
            uint16_t h = f32_to_bf16((float)(i * 2654435761u % 65536) / 16384.0f - 2.0f);
            if (dt == SD_DT_F32 && i % 2 == 0) h = 0;
            memcpy(mem + 2 * i, &h, 2);
        }
        attn_cpu_kv kvs[36];
        for (int l = 0; l < nl; l++)
            kvs[l] = (attn_cpu_kv){mem + (size_t)l * 2 * BS * row, mem + ((size_t)l * 2 + 1) * BS * row, bstride, row, BS, table, dt};
        double t_old[100], t_new[100];
        for (int r = 0; r < reps; r++) {
            double t0 = now_ms();
            for (int l = 0; l < nl; l++) old_attention(o_old, q, c->n, c->pos0, &kvs[l], scratch, threads);
            double t1 = now_ms();
            for (int l = 0; l < nl; l++) attn_cpu_run(a, o_new, q, c->n, c->pos0, &kvs[l]);
            double t2 = now_ms();
            t_old[r] = (t1 - t0) / nl;
            t_new[r] = (t2 - t1) / nl;
        }
        double diff = 0, amax = 0;
        for (size_t i = 0; i < c->n * qd; i++) {
            diff = fmax(diff, fabs(o_old[i] - o_new[i]));
            amax = fmax(amax, fabs(o_old[i]));
        }
        double mo = median(t_old, reps), mn = median(t_new, reps);
        printf("%-20s %6d %10.3f %10.3f %7.1fx %9.1f %10.2e\n", c->name, nl, mo, mn, mo / mn,
               (double)layer_bytes / (mn * 1e6), diff / (amax ? amax : 1));
        fflush(stdout);
        free(mem);
        free(table);
    }
    attn_cpu_free(a);
    free(scratch); free(q); free(o_old); free(o_new);
    return 0;
}
