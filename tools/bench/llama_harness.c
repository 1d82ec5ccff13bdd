/* llama_harness.c - times llama.cpp (the benchmark peer) the way smolrun times
 * our engine: prefill of N seeded random tokens in one llama_decode, and decode
 * of M single tokens after a ctx-token prefill; medians over R runs after a
 * warm-up that faults the mapped weights in. Prints one JSON line.
 * Not built by the Makefile: tools/llama-peer.sh compiles it against the cached
 * llama.cpp build (nothing of llama.cpp is in this repository). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "llama.h"

typedef struct opts {
    const char *model;
    int threads, prefill, decode, ctx, runs, ubatch, fa;
    uint64_t seed;
    const char *logits_out;
    int verbose;
    enum llama_load_mode load_mode;
} opts;

static void usage(void) {
    fprintf(stderr,
            "usage: llama_harness MODEL.gguf [--threads N=2] [--prefill N=128] [--decode M=32]\n"
            "       [--ctx C=128] [--runs R=3] [--seed S=1] [--ubatch U=min(N,512)] [--fa -1|0|1]\n"
            "       [--logits-out FILE] [--load-mode none|mmap|auto (default none)] [--verbose]\n"
            "  --prefill 0 / --decode 0 skip that measurement. --logits-out writes the float32\n"
            "  logits of every position of the first prefill (N x n_vocab) and skips timing.\n");
    exit(2);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t rng_state;
static uint32_t rng_next(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

static int quiet_level = 1;
static void log_cb(enum ggml_log_level level, const char *text, void *ud) {
    (void)ud;
    if (!quiet_level || level >= GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

static bool no_progress(float progress, void *ud) {
    (void)progress, (void)ud;
    return true;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Decodes n tokens starting at position pos, in chunks of at most n_batch;
 * only the last token of the last chunk (or all, when all_logits) outputs logits. */
static int feed(struct llama_context *lctx, llama_batch *b, const llama_token *tok, int n, int pos,
                int n_batch, int all_logits) {
    for (int s = 0; s < n; s += n_batch) {
        int m = n - s < n_batch ? n - s : n_batch;
        b->n_tokens = m;
        for (int i = 0; i < m; i++) {
            b->token[i] = tok[s + i];
            b->pos[i] = pos + s + i;
            b->n_seq_id[i] = 1;
            b->seq_id[i][0] = 0;
            b->logits[i] = all_logits || (s + i == n - 1);
        }
        int rc = llama_decode(lctx, *b);
        if (rc != 0) {
            fprintf(stderr, "llama_harness: llama_decode failed (%d) at position %d\n", rc, pos + s);
            return -1;
        }
    }
    llama_synchronize(lctx);
    return 0;
}

int main(int argc, char **argv) {
    opts o = {NULL, 2, 128, 32, 128, 3, 0, -1, 1, NULL, 0, LLAMA_LOAD_MODE_NONE};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--verbose")) { o.verbose = 1; continue; }
        if (a[0] != '-') { o.model = a; continue; }
        if (!v) usage();
        i++;
        if (!strcmp(a, "--threads")) o.threads = atoi(v);
        else if (!strcmp(a, "--prefill")) o.prefill = atoi(v);
        else if (!strcmp(a, "--decode")) o.decode = atoi(v);
        else if (!strcmp(a, "--ctx")) o.ctx = atoi(v);
        else if (!strcmp(a, "--runs")) o.runs = atoi(v);
        else if (!strcmp(a, "--seed")) o.seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--ubatch")) o.ubatch = atoi(v);
        else if (!strcmp(a, "--fa")) o.fa = atoi(v);
        else if (!strcmp(a, "--logits-out")) o.logits_out = v;
        else if (!strcmp(a, "--load-mode")) o.load_mode = llama_load_mode_from_str(v);
        else usage();
    }
    if (!o.model || o.threads < 1 || o.prefill < 0 || o.decode < 0 || o.ctx < 1 || o.runs < 1 ||
        o.runs > 1000 || o.fa < -1 || o.fa > 1)
        usage();
    if (o.logits_out && o.prefill < 1) usage();
    quiet_level = !o.verbose;
    llama_log_set(log_cb, NULL);
    llama_backend_init();

    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    if (!o.verbose) mp.progress_callback = no_progress;
    /* load_mode NONE by default: weights read into anonymous memory, as our engine
     * copies them; file-backed mmap pages stream at ~1 GB/s on the development VM
     * against ~10 GB/s for anonymous memory, which would make llama.cpp look slow.
     * --load-mode auto gives llama.cpp's own default. Weight repacking stays on. */
    mp.load_mode = o.load_mode;
    struct llama_model *model = llama_model_load_from_file(o.model, mp);
    if (!model) {
        fprintf(stderr, "llama_harness: cannot load %s (rerun with --verbose)\n", o.model);
        return 1;
    }
    const struct llama_vocab *vocab = llama_model_get_vocab(model);
    int n_vocab = llama_vocab_n_tokens(vocab);

    int need_ctx = o.prefill > o.ctx + o.decode ? o.prefill : o.ctx + o.decode;
    int n_batch = o.prefill > o.ctx ? o.prefill : o.ctx;
    if (n_batch < 1) n_batch = 1;
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)((need_ctx + 255) / 256 * 256);
    cp.n_batch = (uint32_t)n_batch;
    cp.n_ubatch = (uint32_t)(o.ubatch > 0 ? o.ubatch : (n_batch < 512 ? n_batch : 512));
    cp.n_seq_max = 1;
    cp.n_threads = o.threads;
    cp.n_threads_batch = o.threads;
    cp.flash_attn_type = (enum llama_flash_attn_type)o.fa;
    cp.no_perf = 1;
    struct llama_context *lctx = llama_init_from_model(model, cp);
    if (!lctx) {
        fprintf(stderr, "llama_harness: cannot create a context of %u tokens\n", cp.n_ctx);
        llama_model_free(model);
        return 1;
    }
    llama_memory_t mem = llama_get_memory(lctx);

    int n_tok = need_ctx > n_batch ? need_ctx : n_batch;
    llama_token *tok = malloc(sizeof *tok * (size_t)n_tok);
    llama_batch b = llama_batch_init(n_batch, 0, 1);
    if (!tok) return 1;
    rng_state = o.seed * 0x9E3779B97F4A7C15ull + 1;
    for (int i = 0; i < n_tok; i++) tok[i] = (llama_token)(rng_next() % (uint32_t)n_vocab);
    int rc = 0;

    if (o.logits_out) {
        rc = feed(lctx, &b, tok, o.prefill, 0, n_batch, 1);
        FILE *f = rc ? NULL : fopen(o.logits_out, "wb");
        for (int i = 0; f && i < o.prefill; i++) {
            const float *lg = llama_get_logits_ith(lctx, i);
            if (!lg || fwrite(lg, sizeof(float), (size_t)n_vocab, f) != (size_t)n_vocab) rc = -1;
        }
        if (!f || fclose(f) != 0) rc = -1;
        printf("{\"engine\":\"llama.cpp\",\"model\":\"%s\",\"n_vocab\":%d,\"n_layer\":%d,"
               "\"tokens\":[",
               o.model, n_vocab, llama_model_n_layer(model));
        for (int i = 0; i < o.prefill; i++) printf("%s%d", i ? "," : "", tok[i]);
        printf("],\"logits_out\":\"%s\",\"ok\":%s}\n", o.logits_out, rc ? "false" : "true");
        goto done;
    }

    /* warm-up: fault every mapped weight in, settle the thread pool */
    rc = feed(lctx, &b, tok, n_batch < 32 ? n_batch : 32, 0, n_batch, 0);
    llama_memory_clear(mem, 1);
    if (!rc) rc = feed(lctx, &b, tok, n_batch < 32 ? n_batch : 32, 0, n_batch, 0);
    llama_memory_clear(mem, 1);

    double *pre = calloc((size_t)o.runs, sizeof *pre), *dec = calloc((size_t)o.runs, sizeof *dec);
    double pre_med = 0, dec_med = 0;
    for (int r = 0; !rc && o.prefill > 0 && r < o.runs; r++) {
        double t0 = now();
        rc = feed(lctx, &b, tok, o.prefill, 0, n_batch, 0);
        double t1 = now();
        pre[r] = o.prefill / (t1 - t0);
        llama_memory_clear(mem, 1);
    }
    if (!rc && o.prefill > 0) pre_med = median(pre, o.runs);
    for (int r = 0; !rc && o.decode > 0 && r < o.runs; r++) {
        rc = feed(lctx, &b, tok, o.ctx, 0, n_batch, 0);
        double t0 = now();
        for (int i = 0; !rc && i < o.decode; i++) rc = feed(lctx, &b, tok + o.ctx + i, 1, o.ctx + i, 1, 0);
        double t1 = now();
        dec[r] = o.decode / (t1 - t0);
        llama_memory_clear(mem, 1);
    }
    if (!rc && o.decode > 0) dec_med = median(dec, o.runs);
    if (!rc) {
        char desc[128];
        llama_model_desc(model, desc, sizeof desc);
        printf("{\"engine\":\"llama.cpp\",\"model\":\"%s\",\"desc\":\"%s\",\"threads\":%d,"
               "\"runs\":%d,\"prefill_tokens\":%d,\"prefill_tps\":%.3f,\"decode_ctx\":%d,"
               "\"decode_tokens\":%d,\"decode_tps\":%.3f,\"n_ubatch\":%u,\"flash_attn\":%d}\n",
               o.model, desc, o.threads, o.runs, o.prefill, pre_med, o.ctx, o.decode, dec_med,
               cp.n_ubatch, o.fa);
    }
    free(pre);
    free(dec);
done:
    llama_batch_free(b);
    free(tok);
    llama_free(lctx);
    llama_model_free(model);
    llama_backend_free();
    return rc ? 1 : 0;
}
