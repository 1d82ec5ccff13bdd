/* test_model_gguf.c - SmolLM3 from GGUF: random safetensors folders (smolrun
 * mkmodel) are rewritten as GGUF files with engine/gguf's writer (Q/K rows
 * permuted as llama.cpp's converter does) in F32, BF16, F16 and Q8_0; the engine
 * must give the same logits from the GGUF as from the folder. Plus malformed
 * files: wrong architecture, missing tensor or key, wrong dims, unsupported type. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "gguf.h"
#include "model.h"
#include "test.h"

enum mut { M_NONE, M_ARCH, M_MISSING, M_DIMS, M_TYPE, M_NOKEY, M_NOPERM, M_HEADS, M_NOARCH };

typedef struct bufs { void **p; size_t n; } bufs;
static void *keep(bufs *b, void *p) {
    b->p = realloc(b->p, (b->n + 1) * sizeof *b->p);
    return b->p[b->n++] = p;
}

/* Tensor of weight w converted to GGUF type ty, Q/K rows permuted when heads > 0. */
static int add_weight(gguf_writer *g, bufs *b, const char *name, const model_weight *w, int ty, size_t heads,
                      int vector, int64_t extra_rows) {
    size_t rows = (size_t)w->rows, cols = (size_t)w->cols, n = rows * cols;
    float *f = malloc(n * sizeof *f), *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, (const uint8_t *)w->data + 2 * i, 2); /* mkmodel writes BF16 */
        f[i] = gguf_bf16_to_f32(h);
    }
    if (heads) gguf_permute_qk_rows(f, p, rows, cols * sizeof *f, heads);
    else memcpy(p, f, n * sizeof *f);
    uint64_t dims[2] = {cols, rows + (uint64_t)extra_rows};
    if (vector) dims[0] = rows + (uint64_t)extra_rows;
    size_t nbytes;
    if (gguf_tensor_nbytes(ty, vector ? 1 : 2, dims, &nbytes)) { free(f); free(p); return -1; }
    uint8_t *d = keep(b, calloc(1, nbytes));
    if (ty == GGUF_TTYPE_F32) memcpy(d, p, n * 4 < nbytes ? n * 4 : nbytes);
    else if (ty == GGUF_TTYPE_BF16) for (size_t i = 0; i < n && 2 * i < nbytes; i++) ((uint16_t *)d)[i] = gguf_f32_to_bf16(p[i]);
    else if (ty == GGUF_TTYPE_F16) for (size_t i = 0; i < n && 2 * i < nbytes; i++) ((uint16_t *)d)[i] = gguf_f32_to_f16(p[i]);
    else if (ty == GGUF_TTYPE_Q8_0 && !extra_rows) gguf_quantize_q8_0(p, d, n);
    free(f);
    free(p);
    return gguf_writer_add_tensor(g, name, vector ? 1 : 2, dims, ty, d);
}

/* Writes model m as GGUF at path with 2-D weights in type ty, norms F32, and one mutation. */
static int write_gguf(const model *m, const char *path, int ty, enum mut mu) {
    const model_config *c = &m->cfg;
    sd_err err = {0};
    gguf_writer *g = gguf_writer_new(path, &err);
    if (!g) { fprintf(stderr, "%s\n", err.msg); return -1; }
    bufs b = {0};
    int rc = 0;
    if (mu != M_NOARCH) rc |= gguf_writer_add_str(g, "general.architecture", mu == M_ARCH ? "llama" : "smollm3");
    if (mu != M_NOKEY) rc |= gguf_writer_add_u32(g, "smollm3.block_count", (uint32_t)c->n_layer);
    rc |= gguf_writer_add_u32(g, "smollm3.context_length", (uint32_t)c->max_pos);
    rc |= gguf_writer_add_u32(g, "smollm3.embedding_length", (uint32_t)c->hidden);
    rc |= gguf_writer_add_u32(g, "smollm3.feed_forward_length", (uint32_t)c->inter);
    rc |= gguf_writer_add_u32(g, "smollm3.attention.head_count", (uint32_t)c->n_head);
    rc |= gguf_writer_add_u32(g, "smollm3.attention.head_count_kv", mu == M_HEADS ? 3u : (uint32_t)c->n_kv_head);
    rc |= gguf_writer_add_f32(g, "smollm3.rope.freq_base", (float)c->rope_theta);
    rc |= gguf_writer_add_f32(g, "smollm3.attention.layer_norm_rms_epsilon", c->rms_eps);
    rc |= gguf_writer_add_u32(g, "smollm3.vocab_size", (uint32_t)c->vocab);
    rc |= gguf_writer_add_u32(g, "smollm3.rope.dimension_count", (uint32_t)c->head_dim);
    if (c->yarn) {
        rc |= gguf_writer_add_str(g, "smollm3.rope.scaling.type", "yarn");
        rc |= gguf_writer_add_f32(g, "smollm3.rope.scaling.factor", (float)c->yarn_factor);
        rc |= gguf_writer_add_u32(g, "smollm3.rope.scaling.original_context_length", (uint32_t)c->yarn_orig);
    }
    if (c->eos_id >= 0) rc |= gguf_writer_add_u32(g, "tokenizer.ggml.eos_token_id", (uint32_t)c->eos_id);
    rc |= add_weight(g, &b, "token_embd.weight", &m->embed, ty, 0, 0, 0);
    rc |= add_weight(g, &b, "output_norm.weight", &m->norm, GGUF_TTYPE_F32, 0, 1, 0);
    if (!c->tie) rc |= add_weight(g, &b, "output.weight", &m->lm_head, ty, 0, 0, 0);
    char n[64];
    for (int l = 0; l < c->n_layer; l++) {
        const model_layer *L = &m->layers[l];
        size_t ph = mu == M_NOPERM ? 0 : (size_t)c->n_head, pk = mu == M_NOPERM ? 0 : (size_t)c->n_kv_head;
#define W(suffix, field, heads, vec) snprintf(n, sizeof n, "blk.%d.%s.weight", l, suffix); \
        rc |= add_weight(g, &b, n, &L->field, vec ? GGUF_TTYPE_F32 : ty, heads, vec, 0);
        W("attn_norm", attn_norm, 0, 1)
        W("attn_q", wq, ph, 0)
        if (mu == M_DIMS && l == 1) rc |= add_weight(g, &b, "blk.1.attn_k.weight", &L->wk, ty, 0, 0, 16);
        else { W("attn_k", wk, pk, 0) }
        W("attn_v", wv, 0, 0)
        if (mu == M_TYPE && l == 0) rc |= add_weight(g, &b, "blk.0.attn_output.weight", &L->wo, GGUF_TTYPE_Q4_0, 0, 0, 0);
        else { W("attn_output", wo, 0, 0) }
        W("ffn_norm", ffn_norm, 0, 1)
        W("ffn_gate", gate, 0, 0)
        if (!(mu == M_MISSING && l == 1)) { W("ffn_up", up, 0, 0) }
        W("ffn_down", down, 0, 0)
#undef W
    }
    if (!rc) rc = gguf_writer_finish(g, &err);
    if (rc) fprintf(stderr, "write_gguf: %d %s\n", rc, err.msg);
    gguf_writer_free(g);
    for (size_t i = 0; i < b.n; i++) free(b.p[i]);
    free(b.p);
    return rc;
}

static engine *open_engine(const char *path, sd_err *err) {
    engine_params p = engine_params_default();
    p.model_dir = path;
    p.backend = "cpu";
    p.kv_dtype = SD_DT_F32;
    p.n_threads = 2;
    p.max_ctx = 256;
    /* The GGUF loader already copies its weights into anonymous memory; the
     * folder's copy step is skipped for both so the two runs stay alike. */
    p.weights_mmap = 1;
    return engine_new(&p, err);
}

/* All-position logits of ids through the engine at path; NULL on failure. */
static float *logits_of(const char *path, const int32_t *ids, size_t n, int *vocab) {
    sd_err err = {0};
    engine *e = open_engine(path, &err);
    if (!e) { fprintf(stderr, "engine_new(%s): %s\n", path, err.msg); return NULL; }
    *vocab = engine_config(e)->vocab;
    float *lg = malloc(n * (size_t)*vocab * sizeof *lg);
    int seq = engine_seq_new(e);
    if (engine_forward(e, seq, ids, n, lg, 1, NULL, NULL, &err)) {
        fprintf(stderr, "engine_forward(%s): %s\n", path, err.msg);
        free(lg);
        lg = NULL;
    }
    engine_free(e);
    return lg;
}

typedef struct cmp { double rel; double agree; } cmp;

static cmp compare(const float *a, const float *ref, size_t n, size_t V) {
    double md = 0, mr = 0;
    size_t same = 0;
    for (size_t t = 0; t < n; t++) {
        size_t ba = 0, br = 0;
        for (size_t v = 0; v < V; v++) {
            double d = fabs((double)a[t * V + v] - ref[t * V + v]);
            if (d > md) md = d;
            if (fabs(ref[t * V + v]) > mr) mr = fabs(ref[t * V + v]);
            if (a[t * V + v] > a[t * V + ba]) ba = v;
            if (ref[t * V + v] > ref[t * V + br]) br = v;
        }
        same += ba == br;
    }
    return (cmp){md / (mr > 0 ? mr : 1), (double)same / (double)n};
}

static void check_config(const char *gpath, const model_config *w) {
    model *m = NULL;
    sd_err err = {0};
    CHECK_MSG(model_load(gpath, &m, &err) == 0, "%s", err.msg);
    if (!m) return;
    const model_config *c = &m->cfg;
    CHECK_EQ(c->hidden, w->hidden);
    CHECK_EQ(c->inter, w->inter);
    CHECK_EQ(c->n_layer, w->n_layer);
    CHECK_EQ(c->n_head, w->n_head);
    CHECK_EQ(c->n_kv_head, w->n_kv_head);
    CHECK_EQ(c->head_dim, w->head_dim);
    CHECK_EQ(c->vocab, w->vocab);
    CHECK_EQ(c->max_pos, w->max_pos);
    CHECK_EQ(c->tie, w->tie);
    CHECK_EQ(c->yarn, w->yarn);
    CHECK_EQ(c->eos_id, w->eos_id < w->vocab ? w->eos_id : -1); /* out-of-vocabulary ids are dropped */
    CHECK_NEAR(c->rope_theta, w->rope_theta, 1e-6 * w->rope_theta);
    CHECK_NEAR(c->rms_eps, w->rms_eps, 1e-12);
    if (w->yarn) {
        CHECK_NEAR(c->yarn_factor, w->yarn_factor, 1e-6);
        CHECK_EQ(c->yarn_orig, w->yarn_orig);
        CHECK_NEAR(c->yarn_attn_factor, w->yarn_attn_factor, 1e-6);
        CHECK_NEAR(c->yarn_beta_fast, w->yarn_beta_fast, 1e-9);
        CHECK_NEAR(c->yarn_beta_slow, w->yarn_beta_slow, 1e-9);
    }
    CHECK(memcmp(c->use_rope, w->use_rope, sizeof c->use_rope) == 0);
    CHECK_EQ(m->layers[0].wq.dtype == m->layers[0].wv.dtype, 1);
    model_free(m);
}

/* Loads path and expects code, with a message naming the file and `needle`. */
static void expect_error(const char *path, int code, const char *needle) {
    model *m = NULL;
    sd_err err = {0};
    int rc = model_load(path, &m, &err);
    CHECK_MSG(rc == code, "%s: got %d (%s), want %d", needle, rc, err.msg, code);
    CHECK(m == NULL);
    CHECK_MSG(strstr(err.msg, path) != NULL, "message '%s' lacks the file name", err.msg);
    CHECK_MSG(strstr(err.msg, needle) != NULL, "message '%s' lacks '%s'", err.msg, needle);
    model_free(m);
}

/* full: every type and the control; else all but Q8_0 (covered on the first
 * folder, whose margin is wider: 5 layers of vocab 512 sit at 1.7% / 95%). */
static void test_folder(const char *dir, const char *tmp, int full) {
    model *src = NULL;
    sd_err err = {0};
    CHECK_MSG(model_load(dir, &src, &err) == 0, "%s", err.msg);
    if (!src) return;
    enum { N = 40 };
    int32_t ids[N];
    uint64_t r = 0x1234567;
    for (int i = 0; i < N; i++) { r = r * 6364136223846793005ull + 1442695040888963407ull; ids[i] = (int32_t)((r >> 33) % (uint64_t)src->cfg.vocab); }
    int V = 0, V2 = 0;
    float *ref = logits_of(dir, ids, N, &V);
    CHECK(ref != NULL);
    char path[1024];
    static const struct { int ty; const char *name; double tol; } types[] = {
        {GGUF_TTYPE_BF16, "bf16", 1e-5}, {GGUF_TTYPE_F32, "f32", 1e-4}, {GGUF_TTYPE_F16, "f16", 5e-3}, {GGUF_TTYPE_Q8_0, "q8_0", 0.02}};
    for (size_t k = 0; k < sizeof types / sizeof types[0] && ref; k++) {
        if (!full && types[k].ty == GGUF_TTYPE_Q8_0) continue;
        snprintf(path, sizeof path, "%s/m-%s.gguf", tmp, types[k].name);
        CHECK_EQ(write_gguf(src, path, types[k].ty, M_NONE), 0);
        if (types[k].ty == GGUF_TTYPE_BF16) check_config(path, &src->cfg);
        float *lg = logits_of(path, ids, N, &V2);
        CHECK_MSG(lg != NULL, "%s", types[k].name);
        if (!lg) continue;
        CHECK_EQ(V2, V);
        cmp c = compare(lg, ref, N, (size_t)V);
        printf("%s %-5s: max rel err %.3g, argmax agreement %.1f%%\n", dir, types[k].name, c.rel, 100 * c.agree);
        CHECK_MSG(c.rel <= types[k].tol, "%s: max rel err %g > %g", types[k].name, c.rel, types[k].tol);
        CHECK_MSG(c.agree >= (types[k].ty == GGUF_TTYPE_Q8_0 ? 0.95 : 1.0), "%s: argmax agreement %.3f", types[k].name, c.agree);
        free(lg);
    }
    if (ref) { /* control: without the Q/K permutation in the file the logits must differ */
        snprintf(path, sizeof path, "%s/noperm.gguf", tmp);
        CHECK_EQ(write_gguf(src, path, GGUF_TTYPE_BF16, M_NOPERM), 0);
        float *lg = logits_of(path, ids, N, &V2);
        if (lg) {
            cmp c = compare(lg, ref, N, (size_t)V);
            CHECK_MSG(c.rel > 1e-3, "un-permutation not observable (rel err %g)", c.rel);
            free(lg);
        }
    }
    free(ref);
    model_free(src);
}

static void test_errors(const char *dir, const char *tmp) {
    model *src = NULL;
    sd_err err = {0};
    CHECK_MSG(model_load(dir, &src, &err) == 0, "%s", err.msg);
    if (!src) return;
    char path[1024];
    static const struct { enum mut mu; int code; const char *needle; } cases[] = {
        {M_ARCH, SD_EFORMAT, "'llama'"},
        {M_NOARCH, SD_EFORMAT, "general.architecture"},
        {M_MISSING, SD_EFORMAT, "blk.1.ffn_up.weight"},
        {M_DIMS, SD_EFORMAT, "blk.1.attn_k.weight"},
        {M_TYPE, SD_ENOTSUP, "blk.0.attn_output.weight"},
        {M_NOKEY, SD_EFORMAT, "smollm3.block_count"},
        {M_HEADS, SD_EFORMAT, "head_count_kv"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(path, sizeof path, "%s/bad%zu.gguf", tmp, i);
        CHECK_EQ(write_gguf(src, path, GGUF_TTYPE_BF16, cases[i].mu), 0);
        expect_error(path, cases[i].code, cases[i].needle);
    }
    /* not a GGUF at all, and a truncated one: the reader's error, with the file */
    snprintf(path, sizeof path, "%s/config.json", dir);
    expect_error(path, SD_EFORMAT, "config.json");
    snprintf(path, sizeof path, "%s/trunc.gguf", tmp);
    char good[1024];
    snprintf(good, sizeof good, "%s/m-bf16.gguf", tmp);
    FILE *in = fopen(good, "rb"), *out = fopen(path, "wb");
    if (in && out) {
        char buf[4096];
        size_t n = fread(buf, 1, sizeof buf, in);
        fwrite(buf, 1, n / 2, out);
    }
    if (in) fclose(in);
    if (out) fclose(out);
    model *m = NULL;
    CHECK(model_load(path, &m, &err) != 0);
    CHECK(m == NULL);
    model_free(src);
}

int main(void) {
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
    char tmp[] = "/tmp/test_model_gguf.XXXXXX", cmd[2048], a[600], b[600];
    if (!mkdtemp(tmp)) { perror("mkdtemp"); return 1; }
    snprintf(a, sizeof a, "%s/tied", tmp);
    snprintf(b, sizeof b, "%s/untied-yarn", tmp);
    snprintf(cmd, sizeof cmd, "%s/smolrun mkmodel --out %s --preset tiny --seed 7 --vocab 1000 2>/dev/null && "
             "%s/smolrun mkmodel --out %s --preset tiny --seed 8 --vocab 512 --untied --yarn 4 --orig 1024 --layers 5 2>/dev/null",
             build, a, build, b);
    int rc = system(cmd);
    CHECK_MSG(rc == 0, "smolrun mkmodel failed (is %s/smolrun built?)", build);
    if (rc == 0) {
        test_folder(a, tmp, 1);
        test_folder(b, tmp, 0);
        test_errors(a, tmp);
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    if (system(cmd)) {}
    return test_done();
}
