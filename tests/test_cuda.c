/* test_cuda.c - the CUDA backend against the CPU reference: each exposed kernel
 * (RMSNorm, cuBLAS and GEMV products, paged attention with and without KV
 * splits) on fresh random inputs with poisoned outputs, device sampling, and
 * whole-model logits and greedy generation on the tiny and small random models
 * made by `smolrun mkmodel`. Without CUDA in the build or without a device it
 * prints SKIP with the reason and passes. `test_cuda --bw` prints the floors
 * used by tools/check-gpu.sh (copy bandwidth, BF16 GEMM rate); `test_cuda
 * --kernels` runs the kernel checks only (quick enough for compute-sanitizer). */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "engine.h"
#include "model.h"
#include "test.h"
#ifdef SD_CUDA
#include "cuda/cuda_backend.h"
#include "cuda/cuda_sample.h"
#endif

#ifdef SD_CUDA
static uint64_t rng = 88172645463325252ull;
static float frand(void) { /* uniform in [-1, 1) */
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (float)((rng >> 40) * (1.0 / 8388608.0)) - 1.0f;
}
static float *rand_vec(size_t n, float scale) {
    float *v = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) v[i] = frand() * scale;
    return v;
}
static float bf(float x) { return bf16_to_f32(f32_to_bf16(x)); }

/* ||a - ref|| / ||ref||, or +inf when a holds a NaN or infinity. */
static double rel_err(const float *a, const float *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i])) return INFINITY;
        double d = (double)a[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    return sqrt(num / (den > 0 ? den : 1e-30));
}

static size_t argmax(const float *v, size_t n) {
    size_t b = 0;
    for (size_t i = 1; i < n; i++) if (v[i] > v[b]) b = i;
    return b;
}

static void test_rmsnorm(void) {
    size_t shapes[][2] = {{7, 2048}, {3, 64}, {1, 256}};
    for (int s = 0; s < 3; s++) {
        size_t n = shapes[s][0], d = shapes[s][1];
        float *x = rand_vec(n * d, 3), *w = rand_vec(d, 1), *y = malloc(n * d * 4), *ref = malloc(n * d * 4);
        for (size_t t = 0; t < n; t++) {
            double ss = 0;
            for (size_t i = 0; i < d; i++) ss += (double)x[t * d + i] * x[t * d + i];
            double r = 1.0 / sqrt(ss / d + 1e-6);
            for (size_t i = 0; i < d; i++) ref[t * d + i] = (float)(w[i] * (x[t * d + i] * r));
        }
        sd_err err = {0};
        int rc = backend_cuda_test_rmsnorm(y, x, w, n, d, 1e-6f, &err);
        CHECK_MSG(rc == 0, "%s", err.msg);
        double e = rel_err(y, ref, n * d);
        CHECK_MSG(e <= 1e-2, "rmsnorm n=%zu d=%zu rel err %g", n, d, e);
        free(x); free(w); free(y); free(ref);
    }
}

static void test_gemm(void) {
    struct { size_t n, rows, cols; int path; } cs[] = {{5, 300, 256, 0}, {64, 1000, 2048, 0}, {1, 1000, 2048, 1},
                                                      {1, 777, 64, 1}, {1, 513, 11008, 1}, {1, 100, 96, 0}};
    for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
        size_t n = cs[c].n, R = cs[c].rows, K = cs[c].cols;
        float *x = rand_vec(n * K, 1), *w = rand_vec(R * K, 0.05f), *y = malloc(n * R * 4), *ref = malloc(n * R * 4);
        for (size_t t = 0; t < n; t++)
            for (size_t r = 0; r < R; r++) {
                double s = 0;
                for (size_t k = 0; k < K; k++) s += (double)bf(x[t * K + k]) * bf(w[r * K + k]);
                ref[t * R + r] = (float)s;
            }
        sd_err err = {0};
        int rc = backend_cuda_test_gemm(y, x, w, n, R, K, cs[c].path, &err);
        CHECK_MSG(rc == 0, "%s", err.msg);
        double e = rel_err(y, ref, n * R);
        CHECK_MSG(e <= 1e-3, "gemm path %d n=%zu rows=%zu cols=%zu rel err %g", cs[c].path, n, R, K, e);
        free(x); free(w); free(y); free(ref);
    }
}

static void test_attention(void) {
    struct { size_t n, pos0; int nh, nkv, hd, bs, f32, splits; } cs[] = {
        {1, 1000, 16, 4, 128, 256, 0, 0},  {1, 5000, 16, 4, 128, 256, 0, 7}, {37, 0, 16, 4, 128, 16, 0, 0},
        {50, 300, 4, 2, 16, 16, 1, 0},     {20, 100, 8, 2, 32, 32, 0, 3},    {64, 64, 8, 8, 64, 64, 0, 0},
        {9, 40, 4, 1, 8, 8, 1, 2},         {3, 2000, 16, 4, 128, 256, 1, 0}, {130, 700, 16, 4, 128, 256, 0, 0},
        /* the tensor-core kernel (BF16 KV, head_dim 64/128, >= 32 query rows): partial and exact
         * 64-row blocks, GQA groups of 1, 3 and 4, forced and chosen splits, tiles past a block edge */
        {16, 0, 16, 4, 128, 16, 0, 0},     {8, 0, 16, 4, 128, 16, 0, 0},     {200, 3000, 16, 4, 128, 256, 0, 5},
        {33, 5, 12, 4, 64, 16, 0, 0},      {300, 0, 16, 4, 128, 64, 0, 2},   {40, 1000, 8, 8, 128, 32, 0, 0},
        {97, 31, 16, 4, 64, 8, 0, 0},
        /* single tokens with BF16 KV: k_attn_decode when SMOLDOC_CUDA_DECODE_ATTN=1 */
        {1, 0, 8, 2, 64, 16, 0, 0},        {1, 77, 4, 4, 32, 8, 0, 3},       {1, 300, 4, 2, 16, 16, 0, 0},
        {1, 20000, 16, 4, 128, 256, 0, 0}, {1, 4095, 16, 8, 128, 64, 0, 0},
    };
    for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
        size_t n = cs[c].n, p0 = cs[c].pos0, ctx = n + p0;
        int nh = cs[c].nh, nkv = cs[c].nkv, hd = cs[c].hd, grp = nh / nkv;
        size_t qd = (size_t)nh * hd, kvd = (size_t)nkv * hd;
        float *q = rand_vec(n * qd, 1), *k = rand_vec(ctx * kvd, 1), *v = rand_vec(ctx * kvd, 1);
        float *out = malloc(n * qd * 4), *ref = malloc(n * qd * 4);
        double *sc = malloc(ctx * sizeof(double));
        for (size_t t = 0; t < n; t++)
            for (int h = 0; h < nh; h++) {
                int g = h / grp;
                size_t pend = p0 + t + 1;
                double mx = -INFINITY, sum = 0;
                for (size_t p = 0; p < pend; p++) {
                    double s = 0;
                    for (int i = 0; i < hd; i++) {
                        float kk = k[p * kvd + (size_t)g * hd + i];
                        s += (double)q[t * qd + (size_t)h * hd + i] * (cs[c].f32 ? kk : bf(kk));
                    }
                    sc[p] = s / sqrt((double)hd);
                    if (sc[p] > mx) mx = sc[p];
                }
                for (size_t p = 0; p < pend; p++) sum += exp(sc[p] - mx);
                for (int i = 0; i < hd; i++) {
                    double o = 0;
                    for (size_t p = 0; p < pend; p++) {
                        float vv = v[p * kvd + (size_t)g * hd + i];
                        o += exp(sc[p] - mx) * (cs[c].f32 ? vv : bf(vv));
                    }
                    ref[t * qd + (size_t)h * hd + i] = (float)(o / sum);
                }
            }
        sd_err err = {0};
        int rc = backend_cuda_test_attention(out, q, k, v, n, p0, nh, nkv, hd, cs[c].bs, cs[c].f32, cs[c].splits, &err);
        CHECK_MSG(rc == 0, "%s", err.msg);
        double e = rel_err(out, ref, n * qd);
        CHECK_MSG(e <= 1e-2, "attention n=%zu pos0=%zu heads %d/%d hd %d bs %d %s splits %d: rel err %g", n, p0, nh, nkv,
                  hd, cs[c].bs, cs[c].f32 ? "f32" : "bf16", cs[c].splits, e);
        free(q); free(k); free(v); free(out); free(ref); free(sc);
    }
}

static void test_sampling(void) {
    sd_err err = {0};
    const int V = 128256;
    float *lg = rand_vec((size_t)V, 3);
    size_t am = argmax(lg, (size_t)V);
    uint64_t st = cuda_sample_seed(1);
    int32_t tok = -1;
    cuda_sample_params greedy = {0, 0, 1, 0};
    CHECK_MSG(cuda_sample_host(lg, V, &greedy, &st, &tok, &err) == 0, "%s", err.msg);
    CHECK_EQ(tok, am);
    cuda_sample_params k1 = {1.0f, 1, 1, 0}, p0 = {0.7f, 0, 1e-6f, 0};
    CHECK(cuda_sample_host(lg, V, &k1, &st, &tok, &err) == 0 && tok == (int32_t)am);
    CHECK(cuda_sample_host(lg, V, &p0, &st, &tok, &err) == 0 && tok == (int32_t)am);
    /* top-k 5: every draw among the 5 largest; same seed, same draws */
    float *sorted = malloc((size_t)V * 4);
    memcpy(sorted, lg, (size_t)V * 4);
    float kth = -FLT_MAX;
    for (int r = 0; r < 5; r++) { size_t b = argmax(sorted, (size_t)V); kth = sorted[b]; sorted[b] = -FLT_MAX; }
    cuda_sample_params k5 = {1.0f, 5, 1, 0};
    uint64_t s1 = cuda_sample_seed(42), s2 = cuda_sample_seed(42);
    int in_top = 1, same = 1, distinct = 0;
    int32_t first[5];
    for (int i = 0; i < 200; i++) {
        int32_t a = -1, b = -1;
        if (cuda_sample_host(lg, V, &k5, &s1, &a, &err) || cuda_sample_host(lg, V, &k5, &s2, &b, &err)) { in_top = 0; break; }
        if (a < 0 || a >= V || lg[a] < kth) in_top = 0;
        if (a != b) same = 0;
        int j;
        for (j = 0; j < distinct; j++) if (first[j] == a) break;
        if (j == distinct && distinct < 5) first[distinct++] = a;
    }
    CHECK_MSG(in_top, "top-k 5 drew outside the top 5: %s", err.msg);
    CHECK(same);
    CHECK_MSG(distinct >= 2, "top-k 5 drew only %d distinct tokens in 200", distinct);
    /* distribution over 4 tokens and top-p */
    float small[4] = {logf(0.1f), logf(0.2f), logf(0.3f), logf(0.4f)};
    cuda_sample_params t1 = {1.0f, 0, 1, 0}, tp = {1.0f, 0, 0.65f, 0}, mp = {1.0f, 0, 1, 0.6f};
    int cnt[4] = {0}, bad_p = 0, bad_m = 0;
    const int N = 4000;
    uint64_t s3 = cuda_sample_seed(7);
    for (int i = 0; i < N; i++) {
        int32_t a = -1;
        if (cuda_sample_host(small, 4, &t1, &s3, &a, &err) == 0 && a >= 0 && a < 4) cnt[a]++;
        if (cuda_sample_host(small, 4, &tp, &s3, &a, &err) || a < 2) bad_p++; /* keeps {0.4, 0.3} */
        if (cuda_sample_host(small, 4, &mp, &s3, &a, &err) || a < 2) bad_m++; /* min_p 0.6 of 0.4: >= 0.24 */
    }
    for (int j = 0; j < 4; j++)
        CHECK_MSG(fabs(cnt[j] / (double)N - 0.1 * (j + 1)) < 0.03, "token %d drawn %d of %d times", j, cnt[j], N);
    CHECK_EQ(bad_p, 0);
    CHECK_EQ(bad_m, 0);
    free(sorted);
    free(lg);
}

/* ---- whole model ---- */

static int make_model(const char *preset, const char *extra, char *dir, size_t dlen) {
    const char *b = getenv("BUILD");
    char sr[512], cmd[2048];
    snprintf(sr, sizeof sr, "%s/smolrun", b && *b ? b : "build");
    if (access(sr, X_OK)) return -1;
    snprintf(dir, dlen, "/tmp/sd_test_cuda_XXXXXX");
    if (!mkdtemp(dir)) return -2;
    snprintf(cmd, sizeof cmd, "%s mkmodel --out %s --preset %s --seed 7 %s >/dev/null 2>&1", sr, dir, preset, extra);
    return system(cmd) == 0 ? 0 : -2;
}

static void rm_dir(const char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) fprintf(stderr, "warning: could not remove %s\n", dir);
}

/* Runs tokens [0, n) from position pos0 in chunks of `chunk`, all logits. */
static int run(backend *b, const int32_t *tok, size_t n, size_t pos0, size_t chunk, const int *table, int nt,
               float *logits, size_t V, sd_err *err) {
    for (size_t d = 0; d < n; d += chunk) {
        size_t m = n - d < chunk ? n - d : chunk;
        backend_batch bt = {tok + d, m, pos0 + d, table, nt, logits + d * V, 1, 0};
        int rc = b->ops->forward(b, &bt, err);
        if (rc) return rc;
    }
    return 0;
}

static void poison(float *v, size_t n) { for (size_t i = 0; i < n; i++) v[i] = NAN; }

static void test_model(const char *preset, const char *extra, sd_dtype kv) {
    char dir[256], label[96];
    snprintf(label, sizeof label, "%s%s%s", preset, *extra ? " " : "", extra);
    int mr = make_model(preset, extra, dir, sizeof dir);
    if (mr == -1) { SKIP("%s model: smolrun not built (make build/smolrun)", label); return; }
    CHECK_MSG(mr == 0, "smolrun mkmodel --preset %s failed", label);
    if (mr) return;
    model *m = NULL;
    sd_err err = {0};
    int rc = model_load(dir, &m, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc) { rm_dir(dir); return; }
    const size_t V = (size_t)m->cfg.vocab, NP = 150, NG = 64, BS = 16;
    backend_params bp = {.n_threads = 0, .device = 0, .kv_block_size = (int)BS, .kv_blocks = 64, .kv_dtype = kv,
                         .max_batch = 64};
    backend *cpu = NULL, *gpu = NULL;
    CHECK_MSG(backend_cpu_new(m, &bp, &cpu, &err) == 0, "%s", err.msg);
    rc = backend_cuda_new(m, &bp, &gpu, &err);
    CHECK_MSG(rc == 0, "backend_cuda_new: %s", err.msg);
    if (!cpu || !gpu) goto out;
    int table[32], nt = (int)((NP + NG + BS) / BS);
    for (int i = 0; i < nt; i++) table[i] = 63 - 2 * i; /* scrambled, with gaps */
    int32_t *tok = malloc((NP + NG) * sizeof(int32_t));
    for (size_t i = 0; i < NP; i++) { frand(); tok[i] = (int32_t)(rng % V); }
    float *ref = malloc(NP * V * 4), *got = malloc(NP * V * 4);
    poison(ref, NP * V);
    poison(got, NP * V);
    rc = run(cpu, tok, NP, 0, 64, table, nt, ref, V, &err);
    CHECK_MSG(rc == 0, "cpu: %s", err.msg);
    rc = run(gpu, tok, NP, 0, 37, table, nt, got, V, &err); /* other chunking on purpose */
    CHECK_MSG(rc == 0, "cuda: %s", err.msg);
    size_t same = 0;
    for (size_t t = 0; t < NP; t++) same += argmax(ref + t * V, V) == argmax(got + t * V, V);
    double e = rel_err(got, ref, NP * V);
    const char *kvn = dtype_name(kv);
    printf("%s kv %s prefill: argmax agreement %zu/%zu, rel err %.3g\n", label, kvn, same, NP, e);
    CHECK_MSG(same * 100 >= NP * 99, "%s: argmax agrees at %zu of %zu positions", label, same, NP);
    CHECK_MSG(e <= 1e-2, "%s kv %s: prefill logits rel err %g", label, kvn, e);
    /* greedy generation, each backend on its own tokens */
    int32_t *gc = malloc(NG * sizeof(int32_t)), *gg = malloc(NG * sizeof(int32_t));
    float *lc = malloc(V * 4), *lgp = malloc(V * 4);
    int32_t tc = tok[NP - 1], tg = tok[NP - 1];
    int diverged = -1, tie_ok = 1, sample_ok = 1;
    double worst = 0;
    for (size_t s = 0; s < NG; s++) {
        poison(lgp, V);
        backend_batch bc = {&tc, 1, NP + s, table, nt, lc, 0, 0}, bg = {&tg, 1, NP + s, table, nt, lgp, 0, 0};
        if (cpu->ops->forward(cpu, &bc, &err) || gpu->ops->forward(gpu, &bg, &err)) { CHECK_MSG(0, "decode: %s", err.msg); break; }
        size_t ac = argmax(lc, V), ag = argmax(lgp, V);
        cuda_sample_params gp = {0, 0, 1, 0};
        uint64_t rs = 1;
        int32_t ds = -1;
        if (cuda_sample_last(gpu, &gp, &rs, &ds, &err) || ds != (int32_t)ag) sample_ok = 0;
        if (diverged < 0) {
            double d = rel_err(lgp, lc, V);
            if (d > worst) worst = d;
            if (ac != ag) {
                diverged = (int)s;
                float top = lc[ac], second = -FLT_MAX;
                for (size_t i = 0; i < V; i++) if (i != ac && lc[i] > second) second = lc[i];
                if (top - second >= 1e-2f) tie_ok = 0;
                printf("%s: greedy generation diverges at step %zu (CPU top-2 gap %g)\n", label, s, top - second);
            }
        }
        gc[s] = tc = (int32_t)ac;
        gg[s] = tg = (int32_t)ag;
    }
    printf("%s kv %s decode: worst logits rel err %.3g over the identical steps\n", label, kvn, worst);
    CHECK_MSG(tie_ok, "%s: greedy generation diverged at step %d, not a near-tie", label, diverged);
    CHECK_MSG(worst <= 1e-2, "%s: decode logits rel err %g", label, worst);
    CHECK_MSG(sample_ok, "%s: device greedy sampling differs from the host argmax of the device logits", label);
    /* kv_copy: the same continuation through copied blocks gives the same logits */
    {
        int nb = (int)((NP + NG + BS - 1) / BS), t2[32];
        int ok = 1;
        for (int i = 0; i < nb; i++) {
            t2[i] = 2 * i; /* even blocks are unused by table */
            if (gpu->ops->kv_copy(gpu, t2[i], table[i], &err)) ok = 0;
        }
        for (int i = nb; i < nt; i++) t2[i] = table[i];
        int32_t nx = 5;
        backend_batch b1 = {&nx, 1, NP + NG, table, nt, lc, 0, 0}, b2 = {&nx, 1, NP + NG, t2, nt, lgp, 0, 0};
        poison(lgp, V);
        if (ok && (gpu->ops->forward(gpu, &b1, &err) || gpu->ops->forward(gpu, &b2, &err))) ok = 0;
        CHECK_MSG(ok, "kv_copy: %s", err.msg);
        CHECK_MSG(ok && rel_err(lgp, lc, V) <= 1e-5, "%s: logits through copied KV blocks differ", label);
    }
    free(gc); free(gg); free(lc); free(lgp); free(ref); free(got); free(tok);
out:
    if (cpu) cpu->ops->free(cpu);
    if (gpu) gpu->ops->free(gpu);
    model_free(m);
    rm_dir(dir);
}
/* Sampling on the device through the engine (SMOLDOC_DEVICE_SAMPLE=1): greedy
 * tokens drawn on the device from logits left there equal the host argmax of
 * the same logits copied back, step for step, on the tiny model; settings the
 * device sampler lacks fall back to the host. */
static void test_engine_device_sampling(void) {
    char dir[256];
    int mr = make_model("tiny", "", dir, sizeof dir);
    if (mr == -1) { SKIP("engine sampling: smolrun not built"); return; }
    CHECK_MSG(mr == 0, "smolrun mkmodel --preset tiny failed");
    if (mr) return;
    setenv("SMOLDOC_DEVICE_SAMPLE", "1", 1);
    engine_params ep = engine_params_default();
    ep.model_dir = dir;
    ep.backend = "cuda";
    ep.max_ctx = 512;
    sd_err err = {0};
    engine *e = engine_new(&ep, &err);
    CHECK_MSG(e != NULL, "engine_new: %s", err.msg);
    if (!e) { rm_dir(dir); return; }
    sampler_params gp = sampler_params_default(), rp = gp;
    gp.temperature = 0;
    gp.repetition_penalty = 1;
    rp.repetition_penalty = 1.1f;
    CHECK(engine_can_sample_device(e, &gp));
    CHECK(!engine_can_sample_device(e, &rp));
    const size_t V = (size_t)engine_config(e)->vocab, NP = 40, NG = 32;
    int32_t prompt[40];
    for (size_t i = 0; i < NP; i++) { frand(); prompt[i] = (int32_t)(rng % V); }
    float *lg = malloc(V * 4);
    int sh = engine_seq_new(e), sd = engine_seq_new(e), same = 1, ok = 1;
    uint64_t drng = engine_sample_device_seed(e, 3);
    ok = engine_forward(e, sh, prompt, NP, lg, 0, NULL, NULL, &err) == 0 &&
         engine_forward(e, sd, prompt, NP, NULL, ENGINE_LOGITS_DEVICE, NULL, NULL, &err) == 0;
    int32_t th = -1, td = -1;
    for (size_t s = 0; ok && s < NG; s++) {
        th = (int32_t)argmax(lg, V);
        if (engine_sample_device(e, &gp, &drng, &td, &err)) { ok = 0; break; }
        if (th != td) { same = 0; break; }
        if (engine_forward(e, sh, &th, 1, lg, 0, NULL, NULL, &err) ||
            engine_forward(e, sd, &td, 1, NULL, ENGINE_LOGITS_DEVICE, NULL, NULL, &err)) ok = 0;
    }
    CHECK_MSG(ok, "engine device sampling: %s", err.msg);
    CHECK_MSG(same, "device greedy token %d differs from the host argmax %d", td, th);
    /* temperature, top-k and top-p on the device: valid ids */
    sampler_params tp = gp;
    tp.temperature = 0.8f;
    tp.top_k = 40;
    tp.top_p = 0.9f;
    int valid = 1;
    for (int i = 0; ok && i < 8; i++) {
        int32_t t = -1;
        if (engine_sample_device(e, &tp, &drng, &t, &err) || t < 0 || (size_t)t >= V) valid = 0;
    }
    CHECK_MSG(valid, "device temperature sampling: %s", err.msg);
    free(lg);
    engine_free(e);
    unsetenv("SMOLDOC_DEVICE_SAMPLE");
    rm_dir(dir);
}
#endif

int main(int argc, char **argv) {
#ifndef SD_CUDA
    (void)argc; (void)argv;
    SKIP("this build has no CUDA backend (make CUDA=1 with nvcc)");
    return test_done();
#else
    int count = 0;
    char name[256];
    sd_err err = {0};
    if (backend_cuda_devices(&count, name, sizeof name, &err)) {
        SKIP("%s", err.msg);
        return test_done();
    }
    printf("device: %s (%d present)\n", name, count);
    if (argc > 1 && !strcmp(argv[1], "--bw")) {
        double bw = 0, tf = 0;
        if (backend_cuda_bench_floors(0, &bw, &tf, &err)) { fprintf(stderr, "test_cuda --bw: %s\n", err.msg); return 1; }
        printf("bandwidth_gbs %.1f\ngemm_bf16_tflops %.1f\n", bw, tf);
        return 0;
    }
    test_rmsnorm();
    test_gemm();
    test_attention();
    test_sampling();
    if (argc > 1 && !strcmp(argv[1], "--kernels")) return test_done(); /* for compute-sanitizer */
    test_model("tiny", "", SD_DT_BF16);
    test_model("tiny", "", SD_DT_F32);
    test_model("small", "", SD_DT_BF16);
    test_model("small", "--head-dim 128", SD_DT_BF16); /* prefill through the tensor-core kernel */
    test_engine_device_sampling();
    return test_done();
#endif
}
