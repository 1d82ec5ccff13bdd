/* gguf_export.c - writes a Hugging Face SmolLM3 folder's weights as a GGUF file
 * that llama.cpp loads (architecture "smollm3", Q/K rows permuted for its
 * adjacent-pair RoPE, tokenizer metadata), so both engines run on identical
 * weights. Tensors are streamed one at a time through the writer's fill
 * callback: the 3B model never needs to be in memory twice. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmds.h"
#include "gguf.h"
#include "kernels.h"
#include "model.h"

/* llama.cpp token types */
enum { TT_NORMAL = 1, TT_CONTROL = 3, TT_USER_DEFINED = 4, TT_UNUSED = 5 };

typedef struct ex_tensor {
    const model_weight *w;
    int type;       /* GGUF type written */
    size_t heads;   /* > 0: permute Q/K rows with this head count */
} ex_tensor;

static int fill_tensor(void *ctx, size_t idx, void *buf, size_t nbytes) {
    const ex_tensor *t = &((const ex_tensor *)ctx)[idx];
    const model_weight *w = t->w;
    size_t rows = (size_t)w->rows, cols = (size_t)w->cols, src_rb = dtype_row_bytes(w->dtype, cols);
    size_t dst_rb = nbytes / rows;
    uint8_t *dst = buf, *tmp = NULL;
    if (t->heads) { /* convert in HF order, then permute into buf */
        tmp = malloc(nbytes);
        if (!tmp) return SD_ENOMEM;
        dst = tmp;
    }
    float *row = malloc(cols * sizeof *row);
    if (!row) { free(tmp); return SD_ENOMEM; }
    for (size_t r = 0; r < rows; r++) {
        kern_to_f32(row, (const uint8_t *)w->data + r * src_rb, w->dtype, cols);
        uint8_t *d = dst + r * dst_rb;
        switch (t->type) {
        case GGUF_TTYPE_F32: memcpy(d, row, cols * 4); break;
        case GGUF_TTYPE_F16: for (size_t i = 0; i < cols; i++) ((uint16_t *)d)[i] = gguf_f32_to_f16(row[i]); break;
        case GGUF_TTYPE_BF16: for (size_t i = 0; i < cols; i++) ((uint16_t *)d)[i] = gguf_f32_to_bf16(row[i]); break;
        case GGUF_TTYPE_Q8_0: gguf_quantize_q8_0(row, d, cols); break;
        }
    }
    free(row);
    int rc = 0;
    if (t->heads) {
        rc = gguf_permute_qk_rows(tmp, buf, rows, dst_rb, t->heads) ? SD_EINVAL : 0;
        free(tmp);
    }
    return rc;
}

/* ---- tokenizer ---- */

typedef struct vocab {
    char **tok;     /* (n) owned strings; NULL = not yet set */
    int32_t *type;  /* (n) */
    size_t n;
    char **merges;  /* owned */
    size_t n_merges;
    int bos, eos, pad;
} vocab;

static void vocab_free(vocab *v) {
    for (size_t i = 0; i < v->n; i++) free(v->tok[i]);
    for (size_t i = 0; i < v->n_merges; i++) free(v->merges[i]);
    free(v->tok);
    free(v->type);
    free(v->merges);
}

static void set_tok(vocab *v, size_t id, const char *s, int type) {
    free(v->tok[id]);
    v->tok[id] = xstrdup(s);
    v->type[id] = type;
}

static long find_tok(const vocab *v, const char *s) {
    for (size_t i = 0; i < v->n; i++)
        if (v->tok[i] && !strcmp(v->tok[i], s)) return (long)i;
    return -1;
}

/* GPT-2 byte-to-unicode: printable bytes map to themselves, the rest to U+0100... */
static void byte_token(int b, char out[4]) {
    int cp = b, n = 0;
#define PRINTABLE(x) (((x) >= 33 && (x) <= 126) || ((x) >= 161 && (x) <= 172) || ((x) >= 174 && (x) <= 255))
    if (!PRINTABLE(b)) {
        for (int x = 0; x < b; x++) if (!PRINTABLE(x)) n++;
        cp = 256 + n;
    }
#undef PRINTABLE
    if (cp < 0x80) { out[0] = (char)cp; out[1] = 0; }
    else { out[0] = (char)(0xC0 | (cp >> 6)); out[1] = (char)(0x80 | (cp & 0x3F)); out[2] = 0; }
}

/* The synthetic vocabulary when the folder has no tokenizer.json: 256 byte
 * tokens, two merges, control tokens at the Llama-3 ids SmolLM3 uses (when the
 * vocabulary reaches them), unused padding elsewhere. */
static int vocab_synthetic(vocab *v, const model_config *c, sd_err *err) {
    if (c->vocab < 262) return sd_seterr(err, SD_EINVAL, "mkmodel: --gguf needs a vocabulary of at least 262 tokens without a tokenizer.json (have %d)", c->vocab);
    char b[4], pad[48];
    for (int i = 0; i < 256; i++) { byte_token(i, b); set_tok(v, (size_t)i, b, TT_NORMAL); }
    set_tok(v, 256, "\xc4\xa0t", TT_NORMAL); /* "Ġt" */
    set_tok(v, 257, "he", TT_NORMAL);
    v->merges = xcalloc(2, sizeof *v->merges);
    v->merges[0] = xstrdup("\xc4\xa0 t");
    v->merges[1] = xstrdup("h e");
    v->n_merges = 2;
    for (size_t i = 258; i < v->n; i++) {
        if (i >= 128000) {
            snprintf(pad, sizeof pad, "<|reserved_special_token_%zu|>", i - 128000);
            set_tok(v, i, pad, TT_CONTROL);
        } else {
            snprintf(pad, sizeof pad, "[PAD%zu]", i);
            set_tok(v, i, pad, TT_UNUSED);
        }
    }
    static const struct { size_t id; const char *s; } sp[] = {
        {128000, "<|begin_of_text|>"}, {128001, "<|end_of_text|>"}, {128004, "<|finetune_right_pad_id|>"},
        {128011, "<|im_start|>"}, {128012, "<|im_end|>"}};
    int have_ctl = 0;
    for (size_t i = 0; i < sizeof sp / sizeof sp[0]; i++)
        if (sp[i].id < v->n) { set_tok(v, sp[i].id, sp[i].s, TT_CONTROL); have_ctl = 1; }
    if (!have_ctl) { /* small vocabulary: the last four ids */
        set_tok(v, v->n - 4, "<|begin_of_text|>", TT_CONTROL);
        set_tok(v, v->n - 3, "<|end_of_text|>", TT_CONTROL);
        set_tok(v, v->n - 2, "<|im_start|>", TT_CONTROL);
        set_tok(v, v->n - 1, "<|im_end|>", TT_CONTROL);
    }
    return 0;
}

/* Vocabulary, merges and added tokens of a Hugging Face tokenizer.json (BPE). */
static int vocab_from_json(vocab *v, const char *path, sd_err *err) {
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    int rc = 0;
    if (!root) return sd_seterr(err, SD_EFORMAT, "mkmodel: %s: %s (line %d)", path, je.text, je.line);
    json_t *mod = json_object_get(root, "model"), *vo = json_object_get(mod, "vocab"), *mg = json_object_get(mod, "merges");
    const char *ty = json_string_value(json_object_get(mod, "type"));
    if (!ty || strcmp(ty, "BPE") || !json_is_object(vo) || !json_is_array(mg)) {
        rc = sd_seterr(err, SD_EFORMAT, "mkmodel: %s: not a BPE tokenizer with model.vocab and model.merges", path);
        goto out;
    }
    const char *key;
    json_t *val;
    json_object_foreach(vo, key, val) {
        json_int_t id = json_integer_value(val);
        if (!json_is_integer(val) || id < 0 || (size_t)id >= v->n) {
            rc = sd_seterr(err, SD_EFORMAT, "mkmodel: %s: token '%.40s' has id outside the model's vocabulary (%zu)", path, key, v->n);
            goto out;
        }
        set_tok(v, (size_t)id, key, TT_NORMAL);
    }
    size_t i;
    json_t *a = json_object_get(root, "added_tokens");
    json_array_foreach(a, i, val) {
        json_int_t id = json_integer_value(json_object_get(val, "id"));
        const char *s = json_string_value(json_object_get(val, "content"));
        if (!s || id < 0 || (size_t)id >= v->n) {
            rc = sd_seterr(err, SD_EFORMAT, "mkmodel: %s: added_tokens[%zu] is malformed or outside the vocabulary", path, i);
            goto out;
        }
        set_tok(v, (size_t)id, s, json_is_true(json_object_get(val, "special")) ? TT_CONTROL : TT_USER_DEFINED);
    }
    v->merges = xcalloc(json_array_size(mg) + 1, sizeof *v->merges);
    json_array_foreach(mg, i, val) {
        char *m = NULL;
        if (json_is_string(val)) m = xstrdup(json_string_value(val));
        else if (json_is_array(val) && json_array_size(val) == 2 && json_is_string(json_array_get(val, 0)) &&
                 json_is_string(json_array_get(val, 1))) {
            const char *l = json_string_value(json_array_get(val, 0)), *r = json_string_value(json_array_get(val, 1));
            m = xmalloc(strlen(l) + strlen(r) + 2);
            sprintf(m, "%s %s", l, r);
        }
        if (!m) { rc = sd_seterr(err, SD_EFORMAT, "mkmodel: %s: merges[%zu] is malformed", path, i); goto out; }
        v->merges[v->n_merges++] = m;
    }
    char pad[48];
    for (size_t id = 0; id < v->n; id++)
        if (!v->tok[id]) { snprintf(pad, sizeof pad, "[PAD%zu]", id); set_tok(v, id, pad, TT_UNUSED); }
out:
    json_decref(root);
    return rc;
}

static int add_tokenizer(gguf_writer *w, const char *model_dir, const model_config *c, sd_err *err) {
    vocab v = {0};
    v.n = (size_t)c->vocab;
    v.tok = xcalloc(v.n, sizeof *v.tok);
    v.type = xcalloc(v.n, sizeof *v.type);
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", model_dir);
    FILE *f = fopen(path, "rb");
    int rc;
    if (f) { fclose(f); rc = vocab_from_json(&v, path, err); }
    else rc = vocab_synthetic(&v, c, err);
    if (rc) goto out;
    long bos = find_tok(&v, "<|begin_of_text|>"), eos = c->eos_id >= 0 && c->eos_id < c->vocab ? c->eos_id : find_tok(&v, "<|im_end|>");
    long pad = find_tok(&v, "<|finetune_right_pad_id|>");
    rc |= gguf_writer_add_str(w, "tokenizer.ggml.model", "gpt2");
    rc |= gguf_writer_add_str(w, "tokenizer.ggml.pre", "llama-bpe");
    rc |= gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v.tok, v.n);
    rc |= gguf_writer_add_arr(w, "tokenizer.ggml.token_type", GGUF_VTYPE_INT32, v.type, v.n);
    rc |= gguf_writer_add_arr_str(w, "tokenizer.ggml.merges", (const char *const *)v.merges, v.n_merges);
    if (bos >= 0) rc |= gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)bos);
    if (eos >= 0) rc |= gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)eos);
    if (pad >= 0) rc |= gguf_writer_add_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)pad);
    rc |= gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", 0);
    if (rc) rc = sd_seterr(err, SD_EINVAL, "mkmodel: building the GGUF tokenizer metadata failed");
out:
    vocab_free(&v);
    return rc;
}

/* ---- the file ---- */

int mkmodel_write_gguf(const char *model_dir, const char *gguf_path, const char *type, sd_err *err) {
    int ty, ftype; /* llama_ftype: ALL_F32 0, MOSTLY_F16 1, MOSTLY_Q8_0 7, MOSTLY_BF16 32 */
    if (!type || !strcmp(type, "bf16")) { ty = GGUF_TTYPE_BF16; ftype = 32; }
    else if (!strcmp(type, "f16")) { ty = GGUF_TTYPE_F16; ftype = 1; }
    else if (!strcmp(type, "q8_0")) { ty = GGUF_TTYPE_Q8_0; ftype = 7; }
    else if (!strcmp(type, "f32")) { ty = GGUF_TTYPE_F32; ftype = 0; }
    else return sd_seterr(err, SD_EINVAL, "mkmodel: GGUF type '%s' (bf16, f16, q8_0, f32)", type);
    model *m = NULL;
    gguf_writer *w = NULL;
    ex_tensor *ts = NULL;
    int rc = model_load(model_dir, &m, err);
    if (rc) return rc;
    const model_config *c = &m->cfg;
    for (int l = 0; l < c->n_layer; l++)
        if (c->use_rope[l] != ((l + 1) % 4 != 0)) {
            rc = sd_seterr(err, SD_ENOTSUP, "mkmodel: %s: layer %d %s RoPE, but llama.cpp's smollm3 makes exactly every 4th layer NoPE",
                           model_dir, l, c->use_rope[l] ? "uses" : "skips");
            goto out;
        }
    if (!(w = gguf_writer_new(gguf_path, err))) { rc = err ? err->code : SD_EIO; goto out; }
    char name[64];
    snprintf(name, sizeof name, "smoldoc random SmolLM3 (%s)", type ? type : "bf16");
    rc |= gguf_writer_add_str(w, "general.architecture", "smollm3");
    rc |= gguf_writer_add_str(w, "general.name", name);
    rc |= gguf_writer_add_u32(w, "general.file_type", (uint32_t)ftype);
    rc |= gguf_writer_add_u32(w, "general.quantization_version", 2);
    rc |= gguf_writer_add_u32(w, "smollm3.block_count", (uint32_t)c->n_layer);
    rc |= gguf_writer_add_u32(w, "smollm3.context_length", (uint32_t)c->max_pos);
    rc |= gguf_writer_add_u32(w, "smollm3.embedding_length", (uint32_t)c->hidden);
    rc |= gguf_writer_add_u32(w, "smollm3.feed_forward_length", (uint32_t)c->inter);
    rc |= gguf_writer_add_u32(w, "smollm3.attention.head_count", (uint32_t)c->n_head);
    rc |= gguf_writer_add_u32(w, "smollm3.attention.head_count_kv", (uint32_t)c->n_kv_head);
    rc |= gguf_writer_add_f32(w, "smollm3.rope.freq_base", (float)c->rope_theta);
    rc |= gguf_writer_add_f32(w, "smollm3.attention.layer_norm_rms_epsilon", c->rms_eps);
    rc |= gguf_writer_add_u32(w, "smollm3.vocab_size", (uint32_t)c->vocab);
    rc |= gguf_writer_add_u32(w, "smollm3.rope.dimension_count", (uint32_t)c->head_dim);
    if (c->head_dim * c->n_head != c->hidden) {
        rc |= gguf_writer_add_u32(w, "smollm3.attention.key_length", (uint32_t)c->head_dim);
        rc |= gguf_writer_add_u32(w, "smollm3.attention.value_length", (uint32_t)c->head_dim);
    }
    if (c->yarn) {
        rc |= gguf_writer_add_str(w, "smollm3.rope.scaling.type", "yarn");
        rc |= gguf_writer_add_f32(w, "smollm3.rope.scaling.factor", (float)c->yarn_factor);
        rc |= gguf_writer_add_u32(w, "smollm3.rope.scaling.original_context_length", (uint32_t)c->yarn_orig);
    }
    if (rc) { rc = sd_seterr(err, SD_EINVAL, "mkmodel: building the GGUF metadata failed"); goto out; }
    if ((rc = add_tokenizer(w, model_dir, c, err))) goto out;

    size_t nt = 3 + (size_t)c->n_layer * 9, k = 0;
    ts = xcalloc(nt, sizeof *ts);
    char (*names)[64] = xcalloc(nt, sizeof *names);
    /* 2-D weights in the chosen type (Q8_0 needs rows of whole blocks; llama.cpp's
     * converter falls back to F16 otherwise, we to BF16, which is exact), norms F32. */
#define ADD(nm, wp, heads_) do { \
        ts[k].w = (wp); ts[k].heads = (heads_); \
        ts[k].type = (wp)->cols > 1 ? ty : GGUF_TTYPE_F32; \
        if (ts[k].type == GGUF_TTYPE_Q8_0 && (wp)->cols % 32) ts[k].type = GGUF_TTYPE_BF16; \
        snprintf(names[k], 64, "%s", nm); \
        k++; } while (0)
    ADD("token_embd.weight", &m->embed, 0);
    ADD("output_norm.weight", &m->norm, 0);
    if (!c->tie) ADD("output.weight", &m->lm_head, 0);
    for (int l = 0; l < c->n_layer; l++) {
        model_layer *L = &m->layers[l];
        char n[64];
#define L_(suffix, field, heads_) snprintf(n, sizeof n, "blk.%d.%s.weight", l, suffix); ADD(n, &L->field, heads_);
        L_("attn_norm", attn_norm, 0)
        L_("attn_q", wq, (size_t)c->n_head)
        L_("attn_k", wk, (size_t)c->n_kv_head)
        L_("attn_v", wv, 0)
        L_("attn_output", wo, 0)
        L_("ffn_norm", ffn_norm, 0)
        L_("ffn_gate", gate, 0)
        L_("ffn_up", up, 0)
        L_("ffn_down", down, 0)
#undef L_
    }
#undef ADD
    for (size_t i = 0; i < k && !rc; i++) {
        const model_weight *wt = ts[i].w;
        uint64_t dims[2] = {(uint64_t)wt->cols, (uint64_t)wt->rows};
        if (wt->cols > 1) rc = gguf_writer_add_tensor_fill(w, names[i], 2, dims, ts[i].type, fill_tensor, ts);
        else { dims[0] = (uint64_t)wt->rows; rc = gguf_writer_add_tensor_fill(w, names[i], 1, dims, ts[i].type, fill_tensor, ts); }
        if (rc) sd_seterr(err, rc, "mkmodel: adding GGUF tensor '%s' failed: %s", names[i], sd_strerror(rc));
    }
    free(names);
    if (rc) goto out;
    rc = gguf_writer_finish(w, err);
out:
    gguf_writer_free(w);
    free(ts);
    model_free(m);
    return rc;
}
