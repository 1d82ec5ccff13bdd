/* model_gguf.c - SmolLM3 from a GGUF file (llama.cpp's format, architecture
 * "smollm3"): hyper-parameters from the smollm3.* keys, tensors bound by their
 * GGUF names, attn_q/attn_k rows un-permuted back to Hugging Face's half-split
 * RoPE layout. The weights are copied into one anonymous (huge-page) buffer,
 * because streaming from file-backed pages is several times slower on the
 * machines we run on; if that buffer cannot be had, they stay in the mapping. */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "gguf.h"

/* Loader state kept in model.extra. */
typedef struct gguf_extra {
    gguf *g;        /* open while weights point into its mapping; else NULL */
    void *ram;      /* all weights (anonymous mapping), or NULL */
    size_t ram_len;
    void *qk;       /* un-permuted Q/K rows when weights stay mapped */
} gguf_extra;

static void gguf_extra_free(void *p) {
    gguf_extra *x = p;
    if (!x) return;
    if (x->ram) munmap(x->ram, x->ram_len);
    free(x->qk);
    gguf_free(x->g);
    free(x);
}

/* ---- metadata ---- */

#define ARCH "smollm3"

/* Optional u32 hyper-parameter "smollm3.<key>" in [lo, hi]; def when absent
 * (def < 0: required). */
static int get_hp(const gguf *g, const char *path, const char *key, long def, long lo, long hi, int *out,
                  sd_err *err) {
    char k[128];
    snprintf(k, sizeof k, ARCH ".%s", key);
    uint64_t v;
    int rc = gguf_get_u64(g, k, &v, NULL);
    if (rc == SD_ENOTFOUND) {
        if (def < 0) return sd_seterr(err, SD_EFORMAT, "model: %s: GGUF key '%s' is missing", path, k);
        *out = (int)def;
        return 0;
    }
    if (rc) return sd_seterr(err, SD_EFORMAT, "model: %s: GGUF key '%s' must be a non-negative integer", path, k);
    if (v < (uint64_t)lo || v > (uint64_t)hi)
        return sd_seterr(err, SD_EFORMAT, "model: %s: GGUF key '%s' = %llu out of range [%ld, %ld]", path, k,
                         (unsigned long long)v, lo, hi);
    *out = (int)v;
    return 0;
}

/* Optional float "smollm3.<key>"; def when absent. */
static int get_hp_f(const gguf *g, const char *path, const char *key, double def, double *out, sd_err *err) {
    char k[128];
    snprintf(k, sizeof k, ARCH ".%s", key);
    int rc = gguf_get_f64(g, k, out, NULL);
    if (rc == SD_ENOTFOUND) { *out = def; return 0; }
    if (rc || !isfinite(*out)) return sd_seterr(err, SD_EFORMAT, "model: %s: GGUF key '%s' must be a finite number", path, k);
    return 0;
}

static int read_config(const gguf *g, const char *path, const gguf_tensor *embd, model_config *c, sd_err *err) {
    int rc;
    memset(c, 0, sizeof *c);
    if ((rc = get_hp(g, path, "block_count", -1, 1, MODEL_MAX_LAYERS, &c->n_layer, err))) return rc;
    if ((rc = get_hp(g, path, "embedding_length", -1, 1, 1 << 16, &c->hidden, err))) return rc;
    if ((rc = get_hp(g, path, "feed_forward_length", -1, 1, 1 << 18, &c->inter, err))) return rc;
    if ((rc = get_hp(g, path, "attention.head_count", -1, 1, 1024, &c->n_head, err))) return rc;
    if ((rc = get_hp(g, path, "attention.head_count_kv", c->n_head, 1, 1024, &c->n_kv_head, err))) return rc;
    if ((rc = get_hp(g, path, "context_length", -1, 1, 1 << 24, &c->max_pos, err))) return rc;
    /* head_dim: key_length (llama.cpp's n_embd_head_k), else rope.dimension_count
     * (SmolLM3 ropes the whole head), else embedding / heads. */
    int rope_dim;
    if ((rc = get_hp(g, path, "rope.dimension_count", c->hidden / c->n_head, 2, 1024, &rope_dim, err))) return rc;
    if ((rc = get_hp(g, path, "attention.key_length", rope_dim, 2, 1024, &c->head_dim, err))) return rc;
    int vdim;
    if ((rc = get_hp(g, path, "attention.value_length", c->head_dim, 2, 1024, &vdim, err))) return rc;
    if (vdim != c->head_dim || rope_dim != c->head_dim)
        return sd_seterr(err, SD_EFORMAT, "model: %s: key_length %d, value_length %d and rope.dimension_count %d must be equal",
                         path, c->head_dim, vdim, rope_dim);
    if (c->head_dim < 2 || c->head_dim % 2) return sd_seterr(err, SD_EFORMAT, "model: %s: head dimension %d must be even and >= 2", path, c->head_dim);
    if (c->n_head % c->n_kv_head)
        return sd_seterr(err, SD_EFORMAT, "model: %s: head_count %d not a multiple of head_count_kv %d", path, c->n_head, c->n_kv_head);

    /* vocab: smollm3.vocab_size, else the token list, else token_embd's rows */
    size_t n_tok = 0;
    int et;
    int have_tokens = gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n_tok, NULL) == 0;
    long vdef = have_tokens ? (long)n_tok : embd ? (long)embd->dims[1] : -1;
    if (vdef > (1 << 24)) vdef = 1 << 24; /* out of range: reported below */
    if ((rc = get_hp(g, path, "vocab_size", vdef, 1, 1 << 24, &c->vocab, err))) return rc;
    if (have_tokens && n_tok > (size_t)c->vocab)
        return sd_seterr(err, SD_EFORMAT, "model: %s: tokenizer.ggml.tokens has %zu entries, more than vocab_size %d", path, n_tok, c->vocab);

    double d;
    if ((rc = get_hp_f(g, path, "attention.layer_norm_rms_epsilon", 1e-6, &d, err))) return rc;
    if (!(d > 0 && d < 1)) return sd_seterr(err, SD_EFORMAT, "model: %s: layer_norm_rms_epsilon %g out of range", path, d);
    c->rms_eps = (float)d;
    if ((rc = get_hp_f(g, path, "rope.freq_base", 10000.0, &c->rope_theta, err))) return rc; /* llama.cpp's default */
    if (c->rope_theta <= 1.0) return sd_seterr(err, SD_EFORMAT, "model: %s: rope.freq_base must be > 1", path);

    /* llama.cpp hard-codes SmolLM3's NoPE layers: every 4th (n_no_rope_layer_step). */
    for (int l = 0; l < c->n_layer; l++) c->use_rope[l] = (l + 1) % 4 != 0;

    /* RoPE scaling: none, or YaRN with the Hugging Face defaults for what GGUF lacks. */
    c->yarn_attn_factor = 1.0;
    const char *st = NULL;
    rc = gguf_get_str(g, ARCH ".rope.scaling.type", &st, NULL, NULL);
    if (rc && rc != SD_ENOTFOUND) return sd_seterr(err, SD_EFORMAT, "model: %s: " ARCH ".rope.scaling.type must be a string", path);
    double factor;
    if ((rc = get_hp_f(g, path, "rope.scaling.factor", 0.0, &factor, err))) return rc;
    if (st && !strcmp(st, "yarn")) {
        c->yarn = 1;
        c->yarn_factor = factor;
        if (!(factor >= 1.0)) return sd_seterr(err, SD_EFORMAT, "model: %s: yarn needs " ARCH ".rope.scaling.factor >= 1", path);
        if ((rc = get_hp(g, path, "rope.scaling.original_context_length", c->max_pos, 1, 1 << 24, &c->yarn_orig, err))) return rc;
        if ((rc = get_hp_f(g, path, "rope.scaling.yarn_beta_fast", 32.0, &c->yarn_beta_fast, err))) return rc;
        if ((rc = get_hp_f(g, path, "rope.scaling.yarn_beta_slow", 1.0, &c->yarn_beta_slow, err))) return rc;
        c->yarn_attn_factor = factor <= 1 ? 1.0 : 0.1 * log(factor) + 1.0; /* HF get_mscale(factor) */
    } else if (st && strcmp(st, "none") && !(!strcmp(st, "linear") && (factor == 0 || factor == 1))) {
        return sd_seterr(err, SD_ENOTSUP, "model: %s: RoPE scaling '%s' is not supported (yarn is)", path, st);
    }

    c->eos_id = c->bos_id = -1;
    uint32_t id;
    if (gguf_get_u32(g, "tokenizer.ggml.eos_token_id", &id, NULL) == 0 && id < (uint32_t)c->vocab) c->eos_id = (int)id;
    if (gguf_get_u32(g, "tokenizer.ggml.bos_token_id", &id, NULL) == 0 && id < (uint32_t)c->vocab) c->bos_id = (int)id;
    c->tie = gguf_find_tensor(g, "output.weight") == NULL;
    return 0;
}

/* ---- tensors ---- */

typedef struct bind_ctx {
    const gguf *g;
    const char *path;
    sd_err *err;
} bind_ctx;

/* Checks tensor `name` against (rows, cols) (cols 0: a vector of rows) and
 * fills w->dtype/rows/cols, w->data pointing into the mapping. *t gets the tensor. */
static int bind(bind_ctx *b, model_weight *w, const gguf_tensor **tp, const char *name, int64_t rows, int64_t cols) {
    const gguf_tensor *t = gguf_find_tensor(b->g, name);
    if (!t) return sd_seterr(b->err, SD_EFORMAT, "model: %s: tensor '%s' is missing", b->path, name);
    int ok = cols ? t->n_dims == 2 && t->dims[0] == (uint64_t)cols && t->dims[1] == (uint64_t)rows
                  : t->n_dims == 1 && t->dims[0] == (uint64_t)rows;
    if (!ok) {
        char got[96] = "";
        int o = 0;
        for (uint32_t d = 0; d < t->n_dims && o < 80; d++) o += snprintf(got + o, sizeof got - o, "%s%llu", d ? "," : "", (unsigned long long)t->dims[d]);
        if (cols)
            return sd_seterr(b->err, SD_EFORMAT, "model: %s: tensor '%s' has dims [%s], the metadata implies [%lld,%lld] (ggml order)",
                             b->path, name, got, (long long)cols, (long long)rows);
        return sd_seterr(b->err, SD_EFORMAT, "model: %s: tensor '%s' has dims [%s], the metadata implies [%lld]", b->path, name, got, (long long)rows);
    }
    switch (t->type) {
    case GGUF_TTYPE_F32: w->dtype = SD_DT_F32; break;
    case GGUF_TTYPE_F16: w->dtype = SD_DT_F16; break;
    case GGUF_TTYPE_BF16: w->dtype = SD_DT_BF16; break;
    case GGUF_TTYPE_Q8_0: w->dtype = SD_DT_Q8_0; break;
    default:
        return sd_seterr(b->err, SD_ENOTSUP, "model: %s: tensor '%s' has type %s (F32, F16, BF16 and Q8_0 are supported)",
                         b->path, name, gguf_ttype_name(t->type));
    }
    w->rows = rows;
    w->cols = cols ? cols : 1;
    w->data = t->data;
    if (tp) *tp = t;
    return 0;
}

static size_t al64(size_t n) { return (n + 63) & ~(size_t)63; }

/* Every weight of m in a fixed order, for the copy; heads[i] is the head count
 * whose Q/K permutation weight i carries (0: none). */

int model_load_gguf(const char *path, model **out, sd_err *err) {
    model *m = NULL;
    gguf_extra *x = NULL;
    model_weight **ws = NULL;
    int *heads_of = NULL;
    int rc = 0;
    *out = NULL;
    sd_err gerr = {0};
    gguf *g = gguf_open(path, &gerr);
    if (!g) return sd_seterr(err, gerr.code, "model: %s", gerr.msg);
    const char *arch = NULL;
    if (gguf_get_str(g, "general.architecture", &arch, NULL, NULL)) {
        rc = sd_seterr(err, SD_EFORMAT, "model: %s: GGUF has no string 'general.architecture'", path);
        goto fail;
    }
    if (strcmp(arch, ARCH)) {
        rc = sd_seterr(err, SD_EFORMAT, "model: %s: GGUF architecture is '%.64s', not '" ARCH "'", path, arch);
        goto fail;
    }
    m = xcalloc(1, sizeof *m);
    m->dir = xstrdup(path);
    x = xcalloc(1, sizeof *x);
    x->g = g;
    m->extra = x;
    m->extra_free = gguf_extra_free;
    if ((rc = read_config(g, path, gguf_find_tensor(g, "token_embd.weight"), &m->cfg, err))) goto fail;
    const model_config *c = &m->cfg;
    int64_t H = c->hidden, qd = (int64_t)c->n_head * c->head_dim, kvd = (int64_t)c->n_kv_head * c->head_dim;
    bind_ctx b = {g, path, err};
    if ((rc = bind(&b, &m->embed, NULL, "token_embd.weight", c->vocab, H))) goto fail;
    if ((rc = bind(&b, &m->norm, NULL, "output_norm.weight", H, 0))) goto fail;
    if (c->tie) m->lm_head = m->embed;
    else if ((rc = bind(&b, &m->lm_head, NULL, "output.weight", c->vocab, H))) goto fail;
    m->layers = xcalloc((size_t)c->n_layer, sizeof *m->layers);
    for (int l = 0; l < c->n_layer; l++) {
        model_layer *L = &m->layers[l];
        char n[64];
#define B(field, suffix, r, cc) \
        snprintf(n, sizeof n, "blk.%d.%s.weight", l, suffix); \
        if ((rc = bind(&b, &L->field, NULL, n, r, cc))) goto fail;
        B(attn_norm, "attn_norm", H, 0)
        B(wq, "attn_q", qd, H)
        B(wk, "attn_k", kvd, H)
        B(wv, "attn_v", kvd, H)
        B(wo, "attn_output", H, qd)
        B(ffn_norm, "ffn_norm", H, 0)
        B(gate, "ffn_gate", c->inter, H)
        B(up, "ffn_up", c->inter, H)
        B(down, "ffn_down", H, c->inter)
#undef B
    }

    /* Copy every weight into one anonymous buffer, un-permuting Q/K on the way. */
    size_t nw_max = model_weight_count(c), total = 0;
    ws = xcalloc(nw_max, sizeof *ws);
    heads_of = xcalloc(nw_max, sizeof *heads_of);
    size_t nw = model_weight_list(m, ws);
    for (int l = 0; l < c->n_layer; l++) { /* Q and K rows are permuted per head */
        for (size_t i = 0; i < nw; i++) {
            if (ws[i] == &m->layers[l].wq) heads_of[i] = c->n_head;
            if (ws[i] == &m->layers[l].wk) heads_of[i] = c->n_kv_head;
        }
    }
    for (size_t i = 0; i < nw; i++) total += al64(model_weight_nbytes(ws[i]));
    size_t len = (total + (2u << 20) - 1) & ~(size_t)((2u << 20) - 1);
    uint8_t *ram = sd_map_huge(len);
    if (ram) {
        x->ram = ram;
        x->ram_len = len;
        m->ram = ram;
        m->ram_len = len;
        size_t off = 0;
        for (size_t i = 0; i < nw; i++) {
            model_weight *w = ws[i];
            size_t n = model_weight_nbytes(w);
            int heads = heads_of[i];
            if (heads) {
                if (gguf_unpermute_qk_rows(w->data, ram + off, (size_t)w->rows, n / (size_t)w->rows, (size_t)heads)) {
                    rc = sd_seterr(err, SD_EFORMAT, "model: %s: Q/K rows (%lld) not a multiple of 2 x heads (%d)", path, (long long)w->rows, heads);
                    goto fail;
                }
            } else {
                memcpy(ram + off, w->data, n);
            }
            w->data = ram + off;
            off += al64(n);
        }
        if (c->tie) m->lm_head = m->embed;
        x->g = NULL;
        gguf_free(g);
        g = NULL;
    } else {
        /* Not enough address space or memory: compute from the mapping, with
         * the Q/K rows un-permuted into one owned buffer. */
        size_t qk = 0;
        for (int l = 0; l < c->n_layer; l++) qk += al64(model_weight_nbytes(&m->layers[l].wq)) + al64(model_weight_nbytes(&m->layers[l].wk));
        uint8_t *buf = x->qk = malloc(qk);
        if (!buf) { rc = sd_seterr(err, SD_ENOMEM, "model: %s: cannot allocate %zu bytes for Q/K rows", path, qk); goto fail; }
        size_t off = 0;
        for (int l = 0; l < c->n_layer; l++) {
            model_weight *q = &m->layers[l].wq, *k = &m->layers[l].wk;
            size_t nq = model_weight_nbytes(q), nk = model_weight_nbytes(k);
            if (gguf_unpermute_qk_rows(q->data, buf + off, (size_t)q->rows, nq / (size_t)q->rows, (size_t)c->n_head) ||
                gguf_unpermute_qk_rows(k->data, buf + off + al64(nq), (size_t)k->rows, nk / (size_t)k->rows, (size_t)c->n_kv_head)) {
                rc = sd_seterr(err, SD_EFORMAT, "model: %s: Q/K rows not a multiple of 2 x heads", path);
                goto fail;
            }
            q->data = buf + off;
            k->data = buf + off + al64(nq);
            off += al64(nq) + al64(nk);
        }
    }
    free(ws);
    free(heads_of);
    *out = m;
    return 0;
fail:
    free(ws);
    free(heads_of);
    if (m) model_free(m); /* frees x, which owns g */
    else gguf_free(g);
    return rc;
}
