/* test_engine.c - paged KV bookkeeping, prefill vs decode, truncation, prefix
 * sharing with copy on write, KV dtypes, pool exhaustion, and the sampler. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "kvcache.h"
#include "sampler.h"
#include "test.h"

static double rel_err(const float *a, const float *b, size_t n) {
    double e = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > e || isnan(d)) e = isnan(d) ? INFINITY : d;
        if (fabs(b[i]) > s) s = fabs(b[i]);
    }
    return e / (s ? s : 1);
}

static int argmax(const float *x, size_t n) {
    size_t b = 0;
    for (size_t i = 1; i < n; i++) if (x[i] > x[b]) b = i;
    return (int)b;
}

static void test_kvcache(void) {
    kvcache *kv = kvcache_new(6, 4);
    int cs, cd;
    int a = kvcache_seq_new(kv);
    CHECK_EQ(kvcache_seq_reserve(kv, a, 6, &cs, &cd), 0); /* 2 blocks */
    kvcache_seq_advance(kv, a, 6);
    CHECK_EQ(kvcache_free_blocks(kv), 4);
    int b = kvcache_seq_fork(kv, a);
    CHECK(b >= 0);
    int n1, n2;
    const int *t1 = kvcache_seq_blocks(kv, a, &n1);
    CHECK_EQ(kvcache_block_refs(kv, t1[0]), 2);
    CHECK_EQ(kvcache_seq_len(kv, b), 6);
    /* b appends into the shared, partly filled block: copy on write */
    CHECK_EQ(kvcache_seq_reserve(kv, b, 1, &cs, &cd), 0);
    t1 = kvcache_seq_blocks(kv, a, &n1);
    const int *t2 = kvcache_seq_blocks(kv, b, &n2);
    CHECK_EQ(cs, t1[1]);
    CHECK_EQ(cd, t2[1]);
    CHECK(t2[1] != t1[1]);
    CHECK_EQ(t2[0], t1[0]); /* the full block stays shared */
    CHECK_EQ(kvcache_block_refs(kv, t1[1]), 1);
    kvcache_seq_advance(kv, b, 1);
    /* exhaustion: nothing changes */
    int fb = kvcache_free_blocks(kv);
    CHECK_EQ(kvcache_seq_reserve(kv, a, 100, &cs, &cd), SD_ENOMEM);
    CHECK_EQ(kvcache_free_blocks(kv), fb);
    CHECK_EQ(kvcache_seq_len(kv, a), 6);
    /* truncate frees blocks no longer needed */
    CHECK_EQ(kvcache_seq_truncate(kv, b, 3), 0);
    CHECK_EQ(kvcache_seq_len(kv, b), 3);
    kvcache_seq_blocks(kv, b, &n2);
    CHECK_EQ(n2, 1);
    kvcache_seq_free(kv, b);
    kvcache_seq_free(kv, a);
    CHECK_EQ(kvcache_free_blocks(kv), 6);
    CHECK_EQ(kvcache_seq_truncate(kv, a, 0), SD_EINVAL); /* freed id */
    kvcache_free(kv);
}

static engine *open_model(const char *dir, sd_dtype kvdt, int block, size_t budget) {
    engine_params p = engine_params_default();
    p.model_dir = dir;
    p.backend = "cpu";
    p.kv_dtype = kvdt;
    p.kv_block_size = block;
    p.max_batch = 8;
    p.kv_budget_bytes = budget;
    sd_err err = {0};
    engine *e = engine_new(&p, &err);
    if (!e) fprintf(stderr, "engine_new: %s\n", err.msg);
    return e;
}

static void test_engine(const char *dir) {
    enum { N = 20, P = 11 };
    engine *e = open_model(dir, SD_DT_F32, 4, 0);
    CHECK(e != NULL);
    if (!e) return;
    const size_t V = (size_t)engine_config(e)->vocab;
    int32_t ids[N], alt[N];
    for (int i = 0; i < N; i++) { ids[i] = (i * 7919 + 13) % 1000; alt[i] = (i * 104729 + 5) % 1000; }
    float *A = malloc(N * V * sizeof(float)), *B = malloc(N * V * sizeof(float)), *l = malloc(V * sizeof(float));
    sd_err err = {0};
    /* prefill of N (in chunks of 8) vs one token at a time */
    int s = engine_seq_new(e);
    CHECK_EQ(engine_forward(e, s, ids, N, A, 1, NULL, NULL, &err), 0);
    CHECK_EQ(engine_seq_len(e, s), N);
    int d = engine_seq_new(e);
    for (int i = 0; i < N; i++) CHECK_EQ(engine_forward(e, d, ids + i, 1, B + (size_t)i * V, 0, NULL, NULL, &err), 0);
    CHECK_MSG(rel_err(B, A, N * V) <= 1e-4, "prefill vs decode rel err %g", rel_err(B, A, N * V));
    /* truncate and decode again reproduces the first logits */
    CHECK_EQ(engine_seq_truncate(e, s, P), 0);
    CHECK_EQ(engine_seq_len(e, s), P);
    CHECK_EQ(engine_forward(e, s, ids + P, N - P, l, 0, NULL, NULL, &err), 0);
    CHECK_MSG(rel_err(l, A + (size_t)(N - 1) * V, V) <= 1e-5, "after truncate rel err %g", rel_err(l, A + (size_t)(N - 1) * V, V));
    /* a shared prefix: two forks write their own suffixes; the prefix stays intact */
    engine_seq_truncate(e, s, P);
    int f1 = engine_seq_fork(e, s), f2 = engine_seq_fork(e, s);
    CHECK(f1 >= 0 && f2 >= 0);
    CHECK_EQ(engine_forward(e, f2, alt, 5, l, 0, NULL, NULL, &err), 0);
    CHECK_EQ(engine_forward(e, f1, ids + P, N - P, l, 0, NULL, NULL, &err), 0);
    CHECK_MSG(rel_err(l, A + (size_t)(N - 1) * V, V) <= 1e-5, "fork rel err %g", rel_err(l, A + (size_t)(N - 1) * V, V));
    { /* f2's logits equal a fresh sequence of the same tokens */
        int g = engine_seq_new(e);
        int32_t cat[P + 5];
        memcpy(cat, ids, P * sizeof *cat);
        memcpy(cat + P, alt, 5 * sizeof *cat);
        float *l2 = malloc(V * sizeof(float));
        CHECK_EQ(engine_forward(e, g, cat, P + 5, l2, 0, NULL, NULL, &err), 0);
        CHECK_EQ(engine_forward(e, f2, alt + 5, 1, l, 0, NULL, NULL, &err), 0);
        CHECK_EQ(engine_forward(e, g, alt + 5, 1, l2, 0, NULL, NULL, &err), 0);
        CHECK_MSG(rel_err(l, l2, V) <= 1e-5, "fork2 rel err %g", rel_err(l, l2, V));
        free(l2);
        engine_seq_free(e, g);
    }
    CHECK_EQ(engine_forward(e, s, ids + P, N - P, l, 0, NULL, NULL, &err), 0);
    CHECK_MSG(rel_err(l, A + (size_t)(N - 1) * V, V) <= 1e-5, "prefix after forks rel err %g", rel_err(l, A + (size_t)(N - 1) * V, V));
    { /* ENGINE_LOGITS_DEVICE on the CPU: the sequence advances the same, the host
       * buffer is left alone, and device sampling says it is not available */
        int g = engine_seq_new(e);
        for (size_t i = 0; i < V; i++) l[i] = -7.0f;
        CHECK_EQ(engine_forward(e, g, ids, N, l, ENGINE_LOGITS_DEVICE, NULL, NULL, &err), 0);
        CHECK_EQ(engine_seq_len(e, g), N);
        int untouched = 1;
        for (size_t i = 0; i < V; i++) untouched &= l[i] == -7.0f;
        CHECK(untouched);
        CHECK_EQ(engine_forward(e, g, ids, 1, l, 0, NULL, NULL, &err), 0); /* and continues normally */
        float *l3 = malloc(V * sizeof(float));
        int h = engine_seq_new(e);
        int32_t cat[N + 1];
        memcpy(cat, ids, N * sizeof *cat);
        cat[N] = ids[0];
        CHECK_EQ(engine_forward(e, h, cat, N + 1, l3, 0, NULL, NULL, &err), 0);
        CHECK_MSG(rel_err(l, l3, V) <= 1e-5, "after a device-logits chunk rel err %g", rel_err(l, l3, V));
        sampler_params sp = sampler_params_default();
        sp.temperature = 0;
        CHECK(!engine_can_sample_device(e, &sp));
        int32_t t = 0;
        CHECK_EQ(engine_sample_device(e, &sp, &(uint64_t){1}, &t, &err), SD_ENOTSUP);
        free(l3);
        engine_seq_free(e, g);
        engine_seq_free(e, h);
    }
    /* bad input */
    int32_t bad = (int32_t)V;
    CHECK_EQ(engine_forward(e, s, &bad, 1, l, 0, NULL, NULL, &err), SD_EINVAL);
    CHECK(strstr(err.msg, "vocabulary") != NULL);
    CHECK_EQ(engine_forward(e, 9999, ids, 1, l, 0, NULL, NULL, &err), SD_EINVAL);
    engine_free(e);

    /* BF16 KV stays close to F32 KV */
    e = open_model(dir, SD_DT_BF16, 4, 0);
    s = engine_seq_new(e);
    CHECK_EQ(engine_forward(e, s, ids, N, B, 1, NULL, NULL, &err), 0);
    int same = 0;
    for (int i = 0; i < N; i++) same += argmax(A + (size_t)i * V, V) == argmax(B + (size_t)i * V, V);
    CHECK_MSG(rel_err(B, A, N * V) <= 2e-2, "bf16 KV rel err %g", rel_err(B, A, N * V));
    CHECK(same >= N - 1);
    engine_free(e);

    /* a tiny pool: running out is SD_ENOMEM with a message, and the sequence keeps what it had */
    engine_params p = engine_params_default();
    size_t tokb = backend_kv_token_bytes(&(model_config){.n_layer = 4, .n_kv_head = 2, .head_dim = 16}, SD_DT_F32);
    e = open_model(dir, SD_DT_F32, 4, tokb * 4 * 3); /* 3 blocks of 4 tokens */
    (void)p;
    if (e) {
        s = engine_seq_new(e);
        CHECK_EQ(engine_forward(e, s, ids, 8, l, 0, NULL, NULL, &err), 0);
        CHECK_EQ(engine_forward(e, s, ids, 8, l, 0, NULL, NULL, &err), SD_ENOMEM);
        CHECK(strstr(err.msg, "KV pool full") != NULL);
        CHECK(engine_seq_len(e, s) >= 8);
        engine_free(e);
    }
    free(A); free(B); free(l);
}

static int cancel_after_first(void *ud, size_t done, size_t total) {
    (void)total;
    *(size_t *)ud = done;
    return 1;
}

static void test_cancel(const char *dir) {
    engine *e = open_model(dir, SD_DT_BF16, 4, 0);
    if (!e) return;
    int32_t ids[20] = {0};
    size_t seen = 0;
    sd_err err = {0};
    int s = engine_seq_new(e);
    CHECK_EQ(engine_forward(e, s, ids, 20, NULL, 0, cancel_after_first, &seen, &err), SD_ECANCELED);
    CHECK_EQ(seen, 8);
    CHECK_EQ(engine_seq_len(e, s), 8);
    engine_free(e);
}

static void test_sampler(void) {
    enum { V = 8 };
    float base[V] = {1.0f, 3.0f, 2.9f, 0.5f, -1.0f, 2.0f, 0.0f, 1.5f}, l[V];
    sampler_params p = sampler_params_default();
    /* greedy */
    p.temperature = 0;
    sampler *s = sampler_new(&p, V);
    memcpy(l, base, sizeof l);
    CHECK_EQ(sampler_sample(s, l, NULL, 0), 1);
    sampler_free(s);
    /* repetition penalty turns the choice when token 1 was seen */
    p.repetition_penalty = 1.5f;
    s = sampler_new(&p, V);
    int32_t hist[] = {1, 1, 4};
    memcpy(l, base, sizeof l);
    CHECK_EQ(sampler_sample(s, l, hist, 3), 2);
    CHECK_NEAR(l[1], 2.0, 1e-6);  /* 3.0 / 1.5, applied once despite two occurrences */
    CHECK_NEAR(l[4], -1.5, 1e-6); /* negative logits are multiplied */
    sampler_free(s);
    /* reproducible with a seed; another seed gives another sequence */
    p = sampler_params_default();
    p.temperature = 1.0f;
    p.top_p = 1.0f;
    p.seed = 42;
    int a[64], b[64], c[64], differ = 0;
    sampler *s1 = sampler_new(&p, V), *s2 = sampler_new(&p, V);
    p.seed = 43;
    sampler *s3 = sampler_new(&p, V);
    for (int i = 0; i < 64; i++) {
        memcpy(l, base, sizeof l); a[i] = sampler_sample(s1, l, NULL, 0);
        memcpy(l, base, sizeof l); b[i] = sampler_sample(s2, l, NULL, 0);
        memcpy(l, base, sizeof l); c[i] = sampler_sample(s3, l, NULL, 0);
        differ += a[i] != c[i];
    }
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(differ > 0);
    sampler_free(s1); sampler_free(s2); sampler_free(s3);
    /* frequencies follow softmax(logits / T) */
    p.seed = 7;
    p.temperature = 1.0f;
    s = sampler_new(&p, V);
    int cnt[V] = {0};
    for (int i = 0; i < 20000; i++) { memcpy(l, base, sizeof l); cnt[sampler_sample(s, l, NULL, 0)]++; }
    double z = 0;
    for (int i = 0; i < V; i++) z += exp(base[i]);
    for (int i = 0; i < V; i++) CHECK_NEAR(cnt[i] / 20000.0, exp(base[i]) / z, 0.015);
    sampler_free(s);
    /* temperature: low T concentrates on the top token, high T spreads */
    p.temperature = 0.05f;
    s = sampler_new(&p, V);
    int top = 0;
    for (int i = 0; i < 1000; i++) { memcpy(l, base, sizeof l); top += sampler_sample(s, l, NULL, 0) == 1; }
    sampler_free(s);
    CHECK(top > 850);
    p.temperature = 20.0f;
    s = sampler_new(&p, V);
    int seen_low = 0;
    for (int i = 0; i < 1000; i++) { memcpy(l, base, sizeof l); seen_low += sampler_sample(s, l, NULL, 0) == 4; }
    sampler_free(s);
    CHECK(seen_low > 60); /* ~1/8 of draws at high temperature */
    /* top-k 2: only tokens 1 and 2 */
    p.temperature = 1.0f;
    p.top_k = 2;
    s = sampler_new(&p, V);
    int only12 = 1, saw2 = 0;
    for (int i = 0; i < 2000; i++) {
        memcpy(l, base, sizeof l);
        int t = sampler_sample(s, l, NULL, 0);
        only12 &= t == 1 || t == 2;
        saw2 += t == 2;
    }
    CHECK(only12);
    CHECK(saw2 > 700); /* p(2 | top-2) = 0.475 */
    sampler_free(s);
    /* top-p 0.3: the top token alone reaches it (p(1) ~ 0.33) */
    p.top_k = 0;
    p.top_p = 0.3f;
    s = sampler_new(&p, V);
    int all1 = 1;
    for (int i = 0; i < 500; i++) { memcpy(l, base, sizeof l); all1 &= sampler_sample(s, l, NULL, 0) == 1; }
    CHECK(all1);
    sampler_free(s);
    /* min-p 0.5: keeps tokens with p >= 0.5 p_max: 1 (3.0), 2 (2.9) only (5: e^-1 = 0.37) */
    p.top_p = 1.0f;
    p.min_p = 0.5f;
    s = sampler_new(&p, V);
    int ok = 1;
    for (int i = 0; i < 2000; i++) { memcpy(l, base, sizeof l); int t = sampler_sample(s, l, NULL, 0); ok &= t == 1 || t == 2; }
    CHECK(ok);
    sampler_free(s);
}

int main(int argc, char **argv) {
    test_kvcache();
    test_sampler();
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
    char dir[] = "/tmp/test_engine.XXXXXX", cmd[1024];
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    const char *model_dir = argc > 1 ? argv[1] : dir;
    if (argc <= 1) {
        snprintf(cmd, sizeof cmd, "%s/smolrun mkmodel --out %s --preset tiny --seed 5 --vocab 1000 2>/dev/null", build, dir);
        CHECK_EQ(system(cmd), 0);
    }
    test_engine(model_dir);
    test_cancel(model_dir);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) {}
    return test_done();
}
