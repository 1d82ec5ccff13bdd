/* model.c - config.json parsing and binding of safetensors tensors to SmolLM3's layers. */
#include "model.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "kernels.h"
#include "safetensors.h"

typedef struct model_priv {
    safetensors **shards;
    size_t n_shards;
    void *ram;       /* materialized weights, or NULL */
    size_t ram_len;
    void *q8ram;     /* repacked Q8_0 matrices, or NULL */
    size_t q8ram_len;
} model_priv;

static int get_int(json_t *o, const char *k, int def, int lo, int hi, int *out, const char *file, sd_err *err) {
    json_t *v = json_object_get(o, k);
    if (!v || json_is_null(v)) { *out = def; return def == -999 ? sd_seterr(err, SD_EFORMAT, "model: %s: missing field '%s'", file, k) : 0; }
    if (!json_is_integer(v)) return sd_seterr(err, SD_EFORMAT, "model: %s: field '%s' must be an integer", file, k);
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi) return sd_seterr(err, SD_EFORMAT, "model: %s: field '%s' = %lld out of range [%d, %d]", file, k, (long long)x, lo, hi);
    *out = (int)x;
    return 0;
}

static int get_num(json_t *o, const char *k, double def, double *out, const char *file, sd_err *err) {
    json_t *v = json_object_get(o, k);
    if (!v || json_is_null(v)) { *out = def; return 0; }
    if (!json_is_number(v)) return sd_seterr(err, SD_EFORMAT, "model: %s: field '%s' must be a number", file, k);
    *out = json_number_value(v);
    if (!isfinite(*out)) return sd_seterr(err, SD_EFORMAT, "model: %s: field '%s' is not finite", file, k);
    return 0;
}

#define REQ (-999)

int model_config_parse(const char *text, size_t len, const char *file, model_config *c, sd_err *err) {
    json_error_t je;
    json_t *o = json_loadb(text, len, 0, &je);
    int rc = 0;
    memset(c, 0, sizeof *c);
    if (!o || !json_is_object(o)) {
        rc = sd_seterr(err, SD_EFORMAT, "model: %s: malformed JSON: %s (line %d)", file, o ? "not an object" : je.text, o ? 0 : je.line);
        goto out;
    }
    if ((rc = get_int(o, "hidden_size", REQ, 1, 1 << 16, &c->hidden, file, err))) goto out;
    if ((rc = get_int(o, "intermediate_size", REQ, 1, 1 << 18, &c->inter, file, err))) goto out;
    if ((rc = get_int(o, "num_hidden_layers", REQ, 1, MODEL_MAX_LAYERS, &c->n_layer, file, err))) goto out;
    if ((rc = get_int(o, "num_attention_heads", REQ, 1, 1024, &c->n_head, file, err))) goto out;
    if ((rc = get_int(o, "num_key_value_heads", c->n_head, 1, 1024, &c->n_kv_head, file, err))) goto out;
    if ((rc = get_int(o, "head_dim", c->hidden / c->n_head, 2, 1024, &c->head_dim, file, err))) goto out;
    if ((rc = get_int(o, "vocab_size", REQ, 1, 1 << 24, &c->vocab, file, err))) goto out;
    if ((rc = get_int(o, "max_position_embeddings", 65536, 1, 1 << 24, &c->max_pos, file, err))) goto out;
    if (c->n_head % c->n_kv_head) { rc = sd_seterr(err, SD_EFORMAT, "model: %s: num_attention_heads %d not a multiple of num_key_value_heads %d", file, c->n_head, c->n_kv_head); goto out; }
    if (c->head_dim % 2) { rc = sd_seterr(err, SD_EFORMAT, "model: %s: head_dim %d must be even", file, c->head_dim); goto out; }
    double d;
    if ((rc = get_num(o, "rms_norm_eps", 1e-6, &d, file, err))) goto out;
    c->rms_eps = (float)d;
    if ((rc = get_num(o, "rope_theta", 2e6, &c->rope_theta, file, err))) goto out;
    if (c->rope_theta <= 1.0) { rc = sd_seterr(err, SD_EFORMAT, "model: %s: rope_theta must be > 1", file); goto out; }
    json_t *tie = json_object_get(o, "tie_word_embeddings");
    if (tie && !json_is_boolean(tie)) { rc = sd_seterr(err, SD_EFORMAT, "model: %s: tie_word_embeddings must be a boolean", file); goto out; }
    c->tie = tie ? json_is_true(tie) : 1;
    c->eos_id = c->bos_id = -1;
    json_t *eos = json_object_get(o, "eos_token_id");
    if (json_is_integer(eos)) c->eos_id = (int)json_integer_value(eos);
    else if (json_is_array(eos) && json_is_integer(json_array_get(eos, 0))) c->eos_id = (int)json_integer_value(json_array_get(eos, 0));
    json_t *bos = json_object_get(o, "bos_token_id");
    if (json_is_integer(bos)) c->bos_id = (int)json_integer_value(bos);

    /* RoPE per layer: no_rope_layers (1 = use RoPE) wins over no_rope_layer_interval. */
    json_t *nrl = json_object_get(o, "no_rope_layers");
    if (nrl && !json_is_null(nrl)) {
        if (!json_is_array(nrl) || json_array_size(nrl) != (size_t)c->n_layer) {
            rc = sd_seterr(err, SD_EFORMAT, "model: %s: no_rope_layers must be a list of %d integers", file, c->n_layer);
            goto out;
        }
        for (int l = 0; l < c->n_layer; l++) {
            json_t *x = json_array_get(nrl, l);
            if (!json_is_integer(x) && !json_is_boolean(x)) { rc = sd_seterr(err, SD_EFORMAT, "model: %s: no_rope_layers[%d] must be 0 or 1", file, l); goto out; }
            c->use_rope[l] = json_is_integer(x) ? json_integer_value(x) != 0 : json_is_true(x);
        }
    } else {
        int interval;
        if ((rc = get_int(o, "no_rope_layer_interval", 4, 0, 1 << 16, &interval, file, err))) goto out;
        for (int l = 0; l < c->n_layer; l++) c->use_rope[l] = interval ? ((l + 1) % interval != 0) : 1;
    }

    json_t *rs = json_object_get(o, "rope_scaling");
    c->yarn_attn_factor = 1.0;
    if (rs && !json_is_null(rs)) {
        if (!json_is_object(rs)) { rc = sd_seterr(err, SD_EFORMAT, "model: %s: rope_scaling must be null or an object", file); goto out; }
        json_t *ty = json_object_get(rs, "rope_type");
        if (!ty) ty = json_object_get(rs, "type");
        const char *tys = json_string_value(ty);
        if (!tys) { rc = sd_seterr(err, SD_EFORMAT, "model: %s: rope_scaling has no type", file); goto out; }
        if (!strcmp(tys, "default")) goto scaled;
        if (strcmp(tys, "yarn")) { rc = sd_seterr(err, SD_EFORMAT, "model: %s: rope_scaling type '%s' is not supported (yarn is)", file, tys); goto out; }
        c->yarn = 1;
        if ((rc = get_num(rs, "factor", NAN, &c->yarn_factor, file, err))) goto out;
        if (!(c->yarn_factor >= 1.0)) { rc = sd_seterr(err, SD_EFORMAT, "model: %s: rope_scaling.factor must be >= 1", file); goto out; }
        if ((rc = get_int(rs, "original_max_position_embeddings", c->max_pos, 1, 1 << 24, &c->yarn_orig, file, err))) goto out;
        if ((rc = get_num(rs, "beta_fast", 32.0, &c->yarn_beta_fast, file, err))) goto out;
        if ((rc = get_num(rs, "beta_slow", 1.0, &c->yarn_beta_slow, file, err))) goto out;
        double af, ms, msad;
        if ((rc = get_num(rs, "attention_factor", NAN, &af, file, err))) goto out;
        if ((rc = get_num(rs, "mscale", 0, &ms, file, err))) goto out;
        if ((rc = get_num(rs, "mscale_all_dim", 0, &msad, file, err))) goto out;
        if (isnan(af)) {
            double f = c->yarn_factor;
            #define GET_MSCALE(s, m) ((s) <= 1 ? 1.0 : 0.1 * (m) * log(s) + 1.0)
            if (ms != 0 && msad != 0) af = GET_MSCALE(f, ms) / GET_MSCALE(f, msad);
            else af = GET_MSCALE(f, 1.0);
            #undef GET_MSCALE
        }
        c->yarn_attn_factor = af;
    }
scaled:
out:
    json_decref(o);
    return rc;
}

void model_rope_freqs(const model_config *c, double *inv_freq, double *attn_factor) {
    int half = c->head_dim / 2, dim = c->head_dim;
    for (int i = 0; i < half; i++) inv_freq[i] = 1.0 / pow(c->rope_theta, (2.0 * i) / dim);
    *attn_factor = 1.0;
    if (!c->yarn) return;
    /* Hugging Face _compute_yarn_parameters, in double precision. */
    double base = c->rope_theta, L = c->yarn_orig;
    double low = floor(dim * log(L / (c->yarn_beta_fast * 2 * M_PI)) / (2 * log(base)));
    double high = ceil(dim * log(L / (c->yarn_beta_slow * 2 * M_PI)) / (2 * log(base)));
    if (low < 0) low = 0;
    if (high > dim - 1) high = dim - 1;
    if (low == high) high += 0.001;
    for (int i = 0; i < half; i++) {
        double ramp = (i - low) / (high - low);
        ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
        double extra = inv_freq[i], inter = inv_freq[i] / c->yarn_factor;
        double ef = 1.0 - ramp; /* extrapolation factor */
        inv_freq[i] = inter * (1 - ef) + extra * ef;
    }
    *attn_factor = c->yarn_attn_factor;
}

/* ---- tensor binding ---- */

static const st_tensor *find_tensor(model_priv *p, const char *name, const char **file) {
    for (size_t i = 0; i < p->n_shards; i++) {
        const st_tensor *t = safetensors_find(p->shards[i], name);
        if (t) { *file = safetensors_path(p->shards[i]); return t; }
    }
    return NULL;
}

static int bind(model *m, model_weight *w, const char *name, int64_t rows, int64_t cols, sd_err *err) {
    model_priv *p = m->priv;
    const char *file = NULL;
    const st_tensor *t = find_tensor(p, name, &file);
    if (!t) return sd_seterr(err, SD_EFORMAT, "model: %s: tensor '%s' is missing", m->dir, name);
    int ok = cols ? (t->n_dims == 2 && t->shape[0] == rows && t->shape[1] == cols) : (t->n_dims == 1 && t->shape[0] == rows);
    if (!ok) {
        char got[96] = "";
        int o = 0;
        for (int d = 0; d < t->n_dims && o < 80; d++) o += snprintf(got + o, sizeof got - o, "%s%lld", d ? "," : "", (long long)t->shape[d]);
        if (cols) return sd_seterr(err, SD_EFORMAT, "model: %s: tensor '%s' has shape [%s], config.json implies [%lld,%lld]", file, name, got, (long long)rows, (long long)cols);
        return sd_seterr(err, SD_EFORMAT, "model: %s: tensor '%s' has shape [%s], config.json implies [%lld]", file, name, got, (long long)rows);
    }
    w->dtype = t->dtype;
    w->rows = rows;
    w->cols = cols ? cols : 1;
    w->data = t->data;
    return 0;
}

static int load_shards(model *m, sd_err *err) {
    model_priv *p = m->priv;
    char path[4096];
    char *idx = NULL;
    json_t *root = NULL;
    int rc;
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", m->dir);
    size_t len;
    rc = sd_read_file(path, 64u << 20, &idx, &len, err);
    if (rc == SD_ENOTFOUND) {
        snprintf(path, sizeof path, "%s/model.safetensors", m->dir);
        p->shards = xcalloc(1, sizeof *p->shards);
        rc = safetensors_open(path, &p->shards[0], err);
        if (rc == 0) p->n_shards = 1;
        else if (rc == SD_ENOTFOUND) sd_seterr(err, rc, "model: %s has neither model.safetensors nor model.safetensors.index.json", m->dir);
        return rc;
    }
    if (rc) return rc;
    json_error_t je;
    root = json_loadb(idx, len, 0, &je);
    json_t *wm = json_object_get(root, "weight_map");
    if (!json_is_object(wm)) { rc = sd_seterr(err, SD_EFORMAT, "model: %s: malformed index (no weight_map object)%s%s", path, root ? "" : ": ", root ? "" : je.text); goto out; }
    /* Distinct shard file names, in first-seen order. */
    const char *key;
    json_t *val;
    size_t cap = json_object_size(wm) + 1;
    char **names = xcalloc(cap, sizeof *names);
    size_t nn = 0;
    json_object_foreach(wm, key, val) {
        const char *f = json_string_value(val);
        if (!f || strchr(f, '/') || !strcmp(f, "..")) { rc = sd_seterr(err, SD_EFORMAT, "model: %s: weight_map entry '%s' is not a plain file name", path, key); break; }
        size_t j;
        for (j = 0; j < nn; j++) if (!strcmp(names[j], f)) break;
        if (j == nn) names[nn++] = xstrdup(f);
    }
    if (!rc) {
        p->shards = xcalloc(nn + 1, sizeof *p->shards);
        for (size_t j = 0; j < nn && !rc; j++) {
            char sp[4096];
            snprintf(sp, sizeof sp, "%s/%s", m->dir, names[j]);
            rc = safetensors_open(sp, &p->shards[j], err);
            if (!rc) p->n_shards++;
        }
    }
    /* Every tensor the index names must be in the shard it names. */
    if (!rc) json_object_foreach(wm, key, val) {
        int found = 0;
        for (size_t j = 0; j < p->n_shards; j++)
            if (!strcmp(names[j], json_string_value(val))) found = safetensors_find(p->shards[j], key) != NULL;
        if (!found) { rc = sd_seterr(err, SD_EFORMAT, "model: %s: index names tensor '%s' in %s, which lacks it", path, key, json_string_value(val)); break; }
    }
    for (size_t j = 0; j < nn; j++) free(names[j]);
    free(names);
out:
    json_decref(root);
    free(idx);
    return rc;
}

int model_load(const char *dir, model **out, sd_err *err) {
    struct stat sb;
    if (stat(dir, &sb) == 0 && S_ISREG(sb.st_mode)) return model_load_gguf(dir, out, err);
    model *m = xcalloc(1, sizeof *m);
    m->dir = xstrdup(dir);
    m->priv = xcalloc(1, sizeof(model_priv));
    char path[4096], *cfg_text = NULL;
    size_t len;
    int rc;
    *out = NULL;
    snprintf(path, sizeof path, "%s/config.json", dir);
    if ((rc = sd_read_file(path, 1u << 20, &cfg_text, &len, err))) goto fail;
    if ((rc = model_config_parse(cfg_text, len, path, &m->cfg, err))) goto fail;
    if ((rc = load_shards(m, err))) goto fail;
    const model_config *c = &m->cfg;
    int64_t H = c->hidden, qd = (int64_t)c->n_head * c->head_dim, kvd = (int64_t)c->n_kv_head * c->head_dim;
    if ((rc = bind(m, &m->embed, "model.embed_tokens.weight", c->vocab, H, err))) goto fail;
    if ((rc = bind(m, &m->norm, "model.norm.weight", H, 0, err))) goto fail;
    if (c->tie) m->lm_head = m->embed; /* any lm_head.weight in the file is ignored */
    else if ((rc = bind(m, &m->lm_head, "lm_head.weight", c->vocab, H, err))) goto fail;
    m->layers = xcalloc((size_t)c->n_layer, sizeof *m->layers);
    for (int l = 0; l < c->n_layer; l++) {
        model_layer *L = &m->layers[l];
        char n[128];
#define B(field, suffix, r, cc) \
        snprintf(n, sizeof n, "model.layers.%d.%s", l, suffix); \
        if ((rc = bind(m, &L->field, n, r, cc, err))) goto fail;
        B(attn_norm, "input_layernorm.weight", H, 0)
        B(wq, "self_attn.q_proj.weight", qd, H)
        B(wk, "self_attn.k_proj.weight", kvd, H)
        B(wv, "self_attn.v_proj.weight", kvd, H)
        B(wo, "self_attn.o_proj.weight", H, qd)
        B(ffn_norm, "post_attention_layernorm.weight", H, 0)
        B(gate, "mlp.gate_proj.weight", c->inter, H)
        B(up, "mlp.up_proj.weight", c->inter, H)
        B(down, "mlp.down_proj.weight", H, c->inter)
#undef B
    }
    free(cfg_text);
    *out = m;
    return 0;
fail:
    free(cfg_text);
    model_free(m);
    return rc;
}

void model_free(model *m) {
    if (!m) return;
    model_priv *p = m->priv;
    if (p) {
        for (size_t i = 0; i < p->n_shards; i++) safetensors_close(p->shards[i]);
        free(p->shards);
        if (p->ram) munmap(p->ram, p->ram_len);
        if (p->q8ram) munmap(p->q8ram, p->q8ram_len);
        free(p);
    }
    if (m->extra_free) m->extra_free(m->extra);
    free(m->layers);
    free(m->dir);
    free(m);
}

size_t model_weight_nbytes(const model_weight *w) {
    if (w->packed && w->dtype == SD_DT_Q8_0) return kern_q8_packed_bytes(w->rows, w->cols);
    return dtype_row_bytes(w->dtype, (size_t)w->cols) * (size_t)w->rows;
}

size_t model_weight_count(const model_config *c) { return 3 + 9 * (size_t)c->n_layer; }

size_t model_weight_list(model *m, model_weight **out) {
    size_t k = 0;
    out[k++] = &m->embed;
    out[k++] = &m->norm;
    if (!m->cfg.tie) out[k++] = &m->lm_head;
    for (int l = 0; l < m->cfg.n_layer; l++) {
        model_layer *L = &m->layers[l];
        model_weight *lw[9] = {&L->attn_norm, &L->wq, &L->wk, &L->wv, &L->wo, &L->ffn_norm, &L->gate, &L->up, &L->down};
        for (int j = 0; j < 9; j++) out[k++] = lw[j];
    }
    return k;
}

size_t model_weight_bytes(const model *m) {
    /* Per token: every matrix and norm, and of the embedding only the head when tied. */
    model_weight **ws = xmalloc(model_weight_count(&m->cfg) * sizeof *ws);
    size_t n = model_weight_list((model *)m, ws), s = 0;
    for (size_t i = 0; i < n; i++)
        if (ws[i] != &m->embed || m->cfg.tie) s += model_weight_nbytes(ws[i]);
    free(ws);
    return s;
}

static size_t wbytes_to(const model_weight *w, int q8) {
    int conv = q8 && w->cols > 1 && w->cols % 32 == 0 && w->dtype != SD_DT_Q8_0;
    size_t n = conv ? dtype_row_bytes(SD_DT_Q8_0, (size_t)w->cols) * (size_t)w->rows : model_weight_nbytes(w);
    return (n + 63) & ~(size_t)63;
}

/* Copies (or quantizes to Q8_0, rows in parallel) one weight into base + *off. */
static void copy_weight(model_weight *w, uint8_t *base, size_t *off, int q8) {
    int conv = q8 && w->cols > 1 && w->cols % 32 == 0 && w->dtype != SD_DT_Q8_0;
    size_t n = model_weight_nbytes(w), K = (size_t)w->cols;
    if (!conv) {
        memcpy(base + *off, w->data, n);
    } else {
        size_t rb_in = dtype_row_bytes(w->dtype, K), rb_out = dtype_row_bytes(SD_DT_Q8_0, K);
        const uint8_t *src = w->data;
        uint8_t *dst = base + *off;
        int64_t rows = w->rows;
#pragma omp parallel
        {
            float *tmp = malloc(K * sizeof(float));
            if (!tmp) abort();
#pragma omp for schedule(static)
            for (int64_t r = 0; r < rows; r++) {
                kern_to_f32(tmp, src + (size_t)r * rb_in, w->dtype, K);
                kern_quantize_q8_0(dst + (size_t)r * rb_out, tmp, K);
            }
            free(tmp);
        }
        w->dtype = SD_DT_Q8_0;
    }
    w->data = base + *off;
    *off += (model_weight_nbytes(w) + 63) & ~(size_t)63;
}

int model_materialize(model *m, int q8, sd_err *err) {
    if (!m->priv) { /* a GGUF model: its loader already holds the weights in RAM */
        if (!q8) return 0;
        m->priv = xcalloc(1, sizeof(model_priv));
    }
    model_priv *p = m->priv;
    const model_config *c = &m->cfg;
    model_weight **ws = xmalloc(model_weight_count(c) * sizeof *ws);
    size_t nw = model_weight_list(m, ws), total = 0;
    for (size_t i = 0; i < nw; i++) total += wbytes_to(ws[i], q8);
    size_t len = (total + (2u << 20) - 1) & ~(size_t)((2u << 20) - 1);
    uint8_t *base = sd_map_huge(len);
    if (!base) {
        free(ws);
        return sd_seterr(err, SD_ENOMEM, "model: cannot allocate %zu bytes for the weights", len);
    }
    size_t off = 0;
    for (size_t i = 0; i < nw; i++) copy_weight(ws[i], base, &off, q8);
    if (c->tie) m->lm_head = m->embed;
    free(ws);
    if (p->ram) munmap(p->ram, p->ram_len); /* a second call (e.g. quantizing) replaces the first copy */
    p->ram = base;
    p->ram_len = len;
    m->ram = base;
    m->ram_len = len;
    for (size_t i = 0; i < p->n_shards; i++) safetensors_drop_cache(p->shards[i]);
    return 0;
}

static int is_q8_plain(const model_weight *w) {
    return w->dtype == SD_DT_Q8_0 && !w->packed && w->cols % 32 == 0 && w->cols > 0;
}

static size_t q8r_bytes(const model_weight *w) { return (kern_q8_packed_bytes(w->rows, w->cols) + 63) & ~(size_t)63; }

static void q8_repack_one(model_weight *w, uint8_t *base, size_t *off) {
    kern_q8_pack(base + *off, w->data, w->rows, w->cols);
    w->data = base + *off;
    w->packed = 1;
    *off += q8r_bytes(w);
}

int model_pack_bf16(model *m) {
    if (!m->ram) return 0;
    const model_config *c = &m->cfg;
    model_weight **ws = xmalloc(model_weight_count(c) * sizeof *ws);
    size_t nw = model_weight_list(m, ws);
    const uint8_t *lo = m->ram, *hi = lo + m->ram_len;
    int n = 0;
    for (size_t i = 0; i < nw; i++) {
        model_weight *w = ws[i];
        const uint8_t *d = w->data;
        if (w->dtype != SD_DT_BF16 || w->packed || w->rows < 4 || d < lo || d + model_weight_nbytes(w) > hi) continue;
        if (kern_bf16_pack((void *)w->data, w->rows, w->cols) == 0) { w->packed = 1; n++; }
    }
    if (c->tie) m->lm_head = m->embed;
    free(ws);
    return n;
}

int model_repack_q8(model *m, sd_err *err) {
    const model_config *c = &m->cfg;
    model_weight **all = xmalloc(model_weight_count(c) * sizeof *all), **ws = all;
    size_t na = model_weight_list(m, all), n = 0, total = 0;
    for (size_t i = 0; i < na; i++)
        if (is_q8_plain(all[i])) ws[n++] = all[i];
    if (n == 0) { free(all); return 0; }
    for (size_t i = 0; i < n; i++) total += q8r_bytes(ws[i]);
    uint8_t *base = sd_map_huge(total);
    if (!base) {
        free(all);
        return sd_seterr(err, SD_ENOMEM, "model: cannot allocate %zu bytes to repack Q8_0 weights", total);
    }
    if (!m->priv) m->priv = xcalloc(1, sizeof(model_priv));
    model_priv *p = m->priv;
    size_t off = 0;
    for (size_t i = 0; i < n; i++) q8_repack_one(ws[i], base, &off);
    if (c->tie) m->lm_head = m->embed;
    free(all);
    p->q8ram = base;
    p->q8ram_len = total;
    return 0;
}
