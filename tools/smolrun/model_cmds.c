/* model_cmds.c - smolrun mkmodel, logits, generate and bench. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmds.h"
#include "dtype.h"
#include "engine.h"
#include "kernels.h"
#include "sampler.h"

/* ---- small option helpers ---- */

static int want_help(int argc, char **argv) {
    for (int i = 1; i < argc; i++) if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return 1;
    return 0;
}

static int parse_long(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s ? s : "", &end, 10);
    if (!s || !*s || *end || errno || v < lo || v > hi) {
        fprintf(stderr, "smolrun %s: %s needs an integer in [%ld, %ld], got '%s'\n", cmd, opt, lo, hi, s ? s : "");
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_double(const char *cmd, const char *opt, const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s ? s : "", &end);
    if (!s || !*s || *end || errno || !isfinite(v)) {
        fprintf(stderr, "smolrun %s: %s needs a number, got '%s'\n", cmd, opt, s ? s : "");
        return -1;
    }
    *out = v;
    return 0;
}

/* "1 2 3" or "1,2,3" -> ids. Returns count or -1. */
static long parse_ids(const char *cmd, const char *s, int32_t **out) {
    size_t cap = 16, n = 0;
    int32_t *ids = xmalloc(cap * sizeof *ids);
    const char *p = s;
    while (*p) {
        while (*p == ' ' || *p == ',' || *p == '\n' || *p == '\t') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > INT32_MAX) {
            fprintf(stderr, "smolrun %s: bad token id near '%.20s'\n", cmd, p);
            free(ids);
            return -1;
        }
        if (n == cap) ids = xrealloc(ids, (cap *= 2) * sizeof *ids);
        ids[n++] = (int32_t)v;
        p = end;
    }
    *out = ids;
    return (long)n;
}

/* Options shared by logits, generate and bench. */
typedef struct run_opts {
    const char *model;
    const char *backend;
    int threads;
    sd_dtype kv_dtype;
    int block;
    int chunk;
    int max_ctx;
    int q8_0, compute_fast, mmap;
    int device;
    long kv_budget_mb;
} run_opts;

/* Consumes a shared option at argv[*i]; 1 if consumed, 0 if not, -1 on error. */
static int run_opt(const char *cmd, int argc, char **argv, int *i, run_opts *o) {
    const char *a = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    long x;
    if (!strcmp(a, "--model")) { if (!v) goto missing; o->model = v; }
    else if (!strcmp(a, "--backend")) { if (!v) goto missing; o->backend = v; }
    else if (!strcmp(a, "--threads")) { if (parse_long(cmd, a, v, 0, 1024, &x)) return -1; o->threads = (int)x; }
    else if (!strcmp(a, "--block")) { if (parse_long(cmd, a, v, 1, 1 << 16, &x)) return -1; o->block = (int)x; }
    else if (!strcmp(a, "--chunk")) { if (parse_long(cmd, a, v, 1, 1 << 20, &x)) return -1; o->chunk = (int)x; }
    else if (!strcmp(a, "--ctx")) { if (parse_long(cmd, a, v, 1, 1 << 24, &x)) return -1; o->max_ctx = (int)x; }
    else if (!strcmp(a, "--device")) { if (parse_long(cmd, a, v, 0, 255, &x)) return -1; o->device = (int)x; }
    else if (!strcmp(a, "--kv-budget")) { if (parse_long(cmd, a, v, 1, 1 << 24, &x)) return -1; o->kv_budget_mb = x; }
    else if (!strcmp(a, "--mmap")) { o->mmap = 1; return 1; }
    else if (!strcmp(a, "--weights")) {
        if (!v) goto missing;
        if (!strcmp(v, "q8_0")) o->q8_0 = 1;
        else if (!strcmp(v, "native")) o->q8_0 = 0;
        else { fprintf(stderr, "smolrun %s: --weights is native or q8_0\n", cmd); return -1; }
    } else if (!strcmp(a, "--compute")) {
        if (!v) goto missing;
        if (!strcmp(v, "fast") || !strcmp(v, "bf16")) o->compute_fast = 1;
        else if (!strcmp(v, "exact")) o->compute_fast = 0;
        else { fprintf(stderr, "smolrun %s: --compute is exact or fast\n", cmd); return -1; }
    } else if (!strcmp(a, "--kv")) {
        if (!v) goto missing;
        if (!strcmp(v, "f32")) o->kv_dtype = SD_DT_F32;
        else if (!strcmp(v, "bf16")) o->kv_dtype = SD_DT_BF16;
        else { fprintf(stderr, "smolrun %s: --kv is f32 or bf16\n", cmd); return -1; }
    } else return 0;
    (*i)++;
    return 1;
missing:
    fprintf(stderr, "smolrun %s: %s needs a value\n", cmd, a);
    return -1;
}

#define RUN_OPTS_HELP \
    "  --model DIR        Hugging Face model folder (config.json, safetensors)\n" \
    "  --backend B        auto (default), cpu or cuda\n" \
    "  --device N         CUDA device index (default 0)\n" \
    "  --kv-budget MIB    KV cache pool in MiB (default: room for --ctx tokens)\n" \
    "  --threads T        CPU threads (default: all cores)\n" \
    "  --kv f32|bf16      KV cache element type (default bf16)\n" \
    "  --block N          tokens per KV block (default 256)\n" \
    "  --chunk N          prefill chunk in tokens (default 256)\n" \
    "  --ctx N            context limit (default: the model's)\n" \
    "  --weights W        native (default: as stored) or q8_0 (quantized at load)\n" \
    "  --compute C        exact (default: f32 activations; about 16-bit ones for Q8_0) or\n" \
    "                     fast (llama.cpp's precision: bf16 activations with BF16 weights on\n" \
    "                     AVX512-BF16, 8-bit activations with Q8_0 weights; bf16 = fast)\n" \
    "  --mmap             compute from the file mapping instead of a copy in RAM\n"

static engine *open_engine(const char *cmd, const run_opts *o) {
    if (!o->model) { fprintf(stderr, "smolrun %s: --model DIR is required\n", cmd); return NULL; }
    engine_params p = engine_params_default();
    p.model_dir = o->model;
    p.backend = o->backend ? o->backend : "auto";
    p.n_threads = o->threads;
    p.kv_dtype = o->kv_dtype;
    if (o->block) p.kv_block_size = o->block;
    if (o->chunk) p.max_batch = o->chunk;
    p.max_ctx = o->max_ctx;
    p.device = o->device;
    p.kv_budget_bytes = (size_t)o->kv_budget_mb << 20;
    p.weights_q8_0 = o->q8_0;
    p.compute_fast = o->compute_fast;
    p.weights_mmap = o->mmap;
    sd_err err = {0};
    engine *e = engine_new(&p, &err);
    if (!e) fprintf(stderr, "smolrun %s: %s\n", cmd, err.msg);
    return e;
}

static run_opts run_opts_default(void) {
    run_opts o = {0};
    o.kv_dtype = SD_DT_BF16;
    return o;
}

/* ---- mkmodel ---- */

typedef struct mk_cfg {
    int hidden, inter, layers, heads, kv_heads, head_dim, vocab, rope_interval, tie;
    double yarn, theta;
    int orig, max_pos;
} mk_cfg;

static uint64_t rng_state;
static inline uint64_t rng_next(void) {
    uint64_t x = rng_state;
    x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1Dull;
}
/* Approximately normal (sum of four uniforms), unit variance. */
static inline float rng_normal(void) {
    uint64_t r = rng_next();
    float s = (float)(r & 0xffff) + (float)((r >> 16) & 0xffff) + (float)((r >> 32) & 0xffff) + (float)(r >> 48);
    return (s / 65536.0f - 2.0f) * 1.7320508f;
}

typedef struct mk_tensor { char name[96]; int64_t rows, cols; float std, mean; } mk_tensor;

static int write_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0) { if (errno == EINTR) continue; return -1; }
        c += w; n -= (size_t)w;
    }
    return 0;
}

int cmd_mkmodel(int argc, char **argv) {
    static const char *help =
        "usage: smolrun mkmodel --out DIR --preset tiny|small|3b [--seed N] [--yarn F --orig N]\n"
        "                       [--vocab N] [--layers N] [--hidden N] [--inter N] [--heads N]\n"
        "                       [--kv-heads N] [--head-dim N] [--rope-interval N] [--theta X] [--untied]\n"
        "                       [--tokenizer FILE] [--gguf FILE [--gguf-type bf16|f16|q8_0|f32]]\n"
        "Writes a random-weight model folder in the exact Hugging Face layout (config.json,\n"
        "model.safetensors in BF16) with SmolLM3's structure. Presets: tiny (4 layers, hidden 64),\n"
        "small (8 layers, hidden 256), 3b (the real SmolLM3-3B dimensions, about 6.2 GB).\n"
        "--rope-interval 0 disables NoPE layers (RoPE everywhere); the default 4 makes every\n"
        "4th layer NoPE. --yarn F --orig N writes rope_scaling yarn with that factor.\n"
        "--tokenizer FILE copies a tokenizer.json into the folder. --gguf FILE also writes the same\n"
        "weights as a GGUF that llama.cpp loads (default type bf16). The weights are meaningless.\n";
    if (want_help(argc, argv)) { fputs(help, stdout); return 0; }
    const char *out = NULL, *preset = NULL, *tok = NULL, *gguf_out = NULL, *gguf_type = "bf16";
    long seed = 1, x;
    mk_cfg c = {0}, ov;
    memset(&ov, -1, sizeof ov);
    double yarn = 0, theta = -1;
    long orig = 0;
    int untied = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define INTOPT(flag, field, lo, hi) else if (!strcmp(a, flag)) { if (parse_long("mkmodel", a, v, lo, hi, &x)) return 2; ov.field = (int)x; i++; }
        if (!strcmp(a, "--out")) { if (!v) goto missing; out = argv[++i]; }
        else if (!strcmp(a, "--preset")) { if (!v) goto missing; preset = argv[++i]; }
        else if (!strcmp(a, "--tokenizer")) { if (!v) goto missing; tok = argv[++i]; }
        else if (!strcmp(a, "--seed")) { if (parse_long("mkmodel", a, v, 0, LONG_MAX, &seed)) return 2; i++; }
        else if (!strcmp(a, "--yarn")) { if (parse_double("mkmodel", a, v, &yarn) || yarn < 1) { fprintf(stderr, "smolrun mkmodel: --yarn needs a factor >= 1\n"); return 2; } i++; }
        else if (!strcmp(a, "--orig")) { if (parse_long("mkmodel", a, v, 1, 1 << 24, &orig)) return 2; i++; }
        else if (!strcmp(a, "--theta")) { if (parse_double("mkmodel", a, v, &theta) || theta <= 1) { fprintf(stderr, "smolrun mkmodel: --theta must be > 1\n"); return 2; } i++; }
        else if (!strcmp(a, "--untied")) untied = 1;
        else if (!strcmp(a, "--gguf")) { if (!v) goto missing; gguf_out = argv[++i]; }
        else if (!strcmp(a, "--gguf-type")) { if (!v) goto missing; gguf_type = argv[++i]; }
        INTOPT("--vocab", vocab, 16, 1 << 20)
        INTOPT("--layers", layers, 1, 256)
        INTOPT("--hidden", hidden, 16, 1 << 15)
        INTOPT("--inter", inter, 16, 1 << 17)
        INTOPT("--heads", heads, 1, 256)
        INTOPT("--kv-heads", kv_heads, 1, 256)
        INTOPT("--head-dim", head_dim, 2, 1024)
        INTOPT("--rope-interval", rope_interval, 0, 1024)
        else { fprintf(stderr, "smolrun mkmodel: unknown option '%s'\n%s", a, help); return 2; }
#undef INTOPT
    }
    if (!out || !preset) { fprintf(stderr, "smolrun mkmodel: --out and --preset are required\n%s", help); return 2; }
    if (!strcmp(preset, "tiny")) c = (mk_cfg){64, 128, 4, 4, 2, 16, 128256, 4, 1, 0, 5e6, 0, 65536};
    else if (!strcmp(preset, "small")) c = (mk_cfg){256, 768, 8, 8, 2, 32, 128256, 4, 1, 0, 5e6, 0, 65536};
    else if (!strcmp(preset, "3b")) c = (mk_cfg){2048, 11008, 36, 16, 4, 128, 128256, 4, 1, 0, 5e6, 0, 65536};
    else { fprintf(stderr, "smolrun mkmodel: unknown preset '%s' (tiny, small, 3b)\n", preset); return 2; }
    if (ov.vocab >= 0) c.vocab = ov.vocab;
    if (ov.layers >= 0) c.layers = ov.layers;
    if (ov.hidden >= 0) c.hidden = ov.hidden;
    if (ov.inter >= 0) c.inter = ov.inter;
    if (ov.heads >= 0) c.heads = ov.heads;
    if (ov.kv_heads >= 0) c.kv_heads = ov.kv_heads;
    if (ov.head_dim >= 0) c.head_dim = ov.head_dim;
    if (ov.rope_interval >= 0) c.rope_interval = ov.rope_interval;
    if (theta > 0) c.theta = theta;
    c.tie = !untied;
    if (c.heads % c.kv_heads) { fprintf(stderr, "smolrun mkmodel: heads must be a multiple of kv-heads\n"); return 2; }
    if (c.head_dim % 2) { fprintf(stderr, "smolrun mkmodel: head-dim must be even\n"); return 2; }
    if (yarn > 0) { c.yarn = yarn; c.orig = orig ? (int)orig : c.max_pos; c.max_pos = (int)(c.orig * yarn); }

    if (mkdir(out, 0755) && errno != EEXIST) { fprintf(stderr, "smolrun mkmodel: mkdir %s: %s\n", out, strerror(errno)); return 1; }
    char path[4096];
    /* config.json */
    snprintf(path, sizeof path, "%s/config.json", out);
    FILE *f = fopen(path, "w");
    if (!f) { fprintf(stderr, "smolrun mkmodel: %s: %s\n", path, strerror(errno)); return 1; }
    fprintf(f, "{\n  \"architectures\": [\"SmolLM3ForCausalLM\"],\n  \"model_type\": \"smollm3\",\n"
               "  \"hidden_size\": %d,\n  \"intermediate_size\": %d,\n  \"num_hidden_layers\": %d,\n"
               "  \"num_attention_heads\": %d,\n  \"num_key_value_heads\": %d,\n  \"head_dim\": %d,\n"
               "  \"vocab_size\": %d,\n  \"rms_norm_eps\": 1e-06,\n  \"rope_theta\": %.17g,\n"
               "  \"max_position_embeddings\": %d,\n  \"tie_word_embeddings\": %s,\n"
               "  \"hidden_act\": \"silu\",\n  \"attention_bias\": false,\n  \"mlp_bias\": false,\n"
               "  \"bos_token_id\": null,\n  \"eos_token_id\": 128012,\n  \"pad_token_id\": 128004,\n"
               "  \"torch_dtype\": \"bfloat16\",\n  \"no_rope_layers\": [",
            c.hidden, c.inter, c.layers, c.heads, c.kv_heads, c.head_dim, c.vocab, c.theta, c.max_pos,
            c.tie ? "true" : "false");
    for (int l = 0; l < c.layers; l++) fprintf(f, "%s%d", l ? ", " : "", c.rope_interval ? ((l + 1) % c.rope_interval != 0) : 1);
    fprintf(f, "],\n  \"no_rope_layer_interval\": %d,\n", c.rope_interval);
    if (c.yarn > 0)
        fprintf(f, "  \"rope_scaling\": {\"type\": \"yarn\", \"factor\": %.17g, \"original_max_position_embeddings\": %d}\n}\n", c.yarn, c.orig);
    else fprintf(f, "  \"rope_scaling\": null\n}\n");
    if (fclose(f)) { fprintf(stderr, "smolrun mkmodel: write %s failed\n", path); return 1; }

    /* Tensor list in the order HF writes them (sorted by name is not required). */
    size_t nt = 2 + (size_t)c.layers * 9 + (c.tie ? 0 : 1), k = 0;
    mk_tensor *t = xcalloc(nt, sizeof *t);
    int64_t H = c.hidden, qd = (int64_t)c.heads * c.head_dim, kvd = (int64_t)c.kv_heads * c.head_dim;
    t[k++] = (mk_tensor){"model.embed_tokens.weight", c.vocab, H, 1.0f, 0};
    for (int l = 0; l < c.layers; l++) {
        struct { const char *n; int64_t r, cc; float sd, mean; } L[9] = {
            {"input_layernorm.weight", H, 0, 0.1f, 1.0f},
            {"self_attn.q_proj.weight", qd, H, 1.0f / sqrtf((float)H), 0},
            {"self_attn.k_proj.weight", kvd, H, 1.0f / sqrtf((float)H), 0},
            {"self_attn.v_proj.weight", kvd, H, 1.0f / sqrtf((float)H), 0},
            {"self_attn.o_proj.weight", H, qd, 0.5f / sqrtf((float)qd), 0},
            {"post_attention_layernorm.weight", H, 0, 0.1f, 1.0f},
            {"mlp.gate_proj.weight", c.inter, H, 1.0f / sqrtf((float)H), 0},
            {"mlp.up_proj.weight", c.inter, H, 1.0f / sqrtf((float)H), 0},
            {"mlp.down_proj.weight", H, c.inter, 0.5f / sqrtf((float)c.inter), 0},
        };
        for (int j = 0; j < 9; j++) {
            snprintf(t[k].name, sizeof t[k].name, "model.layers.%d.%s", l, L[j].n);
            t[k].rows = L[j].r; t[k].cols = L[j].cc; t[k].std = L[j].sd; t[k].mean = L[j].mean;
            k++;
        }
    }
    t[k++] = (mk_tensor){"model.norm.weight", H, 0, 0.1f, 1.0f};
    if (!c.tie) t[k++] = (mk_tensor){"lm_head.weight", c.vocab, H, 1.0f, 0};

    /* Header JSON with data offsets, padded with spaces to a multiple of 8. */
    size_t hcap = 256 + nt * 160, hl = 0, off = 0;
    char *hdr = xmalloc(hcap);
    hl += (size_t)snprintf(hdr + hl, hcap - hl, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (size_t i = 0; i < nt; i++) {
        size_t nb = (size_t)t[i].rows * (size_t)(t[i].cols ? t[i].cols : 1) * 2;
        if (t[i].cols) hl += (size_t)snprintf(hdr + hl, hcap - hl, ",\"%s\":{\"dtype\":\"BF16\",\"shape\":[%lld,%lld],\"data_offsets\":[%zu,%zu]}", t[i].name, (long long)t[i].rows, (long long)t[i].cols, off, off + nb);
        else hl += (size_t)snprintf(hdr + hl, hcap - hl, ",\"%s\":{\"dtype\":\"BF16\",\"shape\":[%lld],\"data_offsets\":[%zu,%zu]}", t[i].name, (long long)t[i].rows, off, off + nb);
        off += nb;
    }
    hl += (size_t)snprintf(hdr + hl, hcap - hl, "}");
    while (hl % 8) hdr[hl++] = ' ';
    char tmp[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", out);
    snprintf(tmp, sizeof tmp, "%s/.model.safetensors.tmp", out);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) { fprintf(stderr, "smolrun mkmodel: %s: %s\n", tmp, strerror(errno)); free(hdr); free(t); return 1; }
    uint64_t hlen = hl;
    int bad = write_all(fd, &hlen, 8) || write_all(fd, hdr, hl);
    rng_state = 0x9E3779B97F4A7C15ull ^ ((uint64_t)seed * 0xD1B54A32D192ED03ull);
    if (!rng_state) rng_state = 1;
    size_t bufn = 1 << 20;
    uint16_t *buf = xmalloc(bufn * 2);
    int tty = isatty(2);
    for (size_t i = 0; i < nt && !bad; i++) {
        size_t n = (size_t)t[i].rows * (size_t)(t[i].cols ? t[i].cols : 1);
        for (size_t done = 0; done < n && !bad;) {
            size_t m = n - done < bufn ? n - done : bufn;
            for (size_t j = 0; j < m; j++) buf[j] = f32_to_bf16(t[i].mean + t[i].std * rng_normal());
            bad = write_all(fd, buf, m * 2);
            done += m;
        }
        if (tty) fprintf(stderr, "\rmkmodel: %zu/%zu tensors", i + 1, nt);
    }
    if (tty) fputc('\n', stderr);
    if (!bad) bad = fsync(fd);
    if (close(fd)) bad = 1;
    free(buf); free(hdr); free(t);
    if (bad || rename(tmp, path)) { fprintf(stderr, "smolrun mkmodel: writing %s failed: %s\n", path, strerror(errno)); unlink(tmp); return 1; }
    if (tok) {
        char *data; size_t len; sd_err err = {0};
        if (sd_read_file(tok, 1u << 30, &data, &len, &err)) { fprintf(stderr, "smolrun mkmodel: %s\n", err.msg); return 1; }
        snprintf(path, sizeof path, "%s/tokenizer.json", out);
        FILE *tf = fopen(path, "wb");
        int ok = tf && fwrite(data, 1, len, tf) == len;
        if (tf && fclose(tf)) ok = 0;
        free(data);
        if (!ok) { fprintf(stderr, "smolrun mkmodel: cannot write %s\n", path); return 1; }
    }
    fprintf(stderr, "mkmodel: wrote %s (preset %s, seed %ld, %zu tensors, %.1f MB): random weights, meaningless output\n",
            out, preset, seed, nt, (double)off / 1e6);
    if (gguf_out) {
        sd_err gerr = {0};
        if (mkmodel_write_gguf(out, gguf_out, gguf_type, &gerr)) { fprintf(stderr, "smolrun mkmodel: %s\n", gerr.msg); return 1; }
        fprintf(stderr, "mkmodel: wrote %s (GGUF %s)\n", gguf_out, gguf_type);
    }
    return 0;
missing:
    fprintf(stderr, "smolrun mkmodel: option needs a value\n");
    return 2;
}

/* ---- logits ---- */

int cmd_logits(int argc, char **argv) {
    static const char *help =
        "usage: smolrun logits --model DIR --ids \"1 2 3\" --out FILE [--all] [--decode] [options]\n"
        "Writes float32 little-endian logits of the last position (vocab values), or of every\n"
        "position with --all (positions x vocab, row-major). --decode feeds the ids one at a time\n"
        "through the KV cache instead of one batched prefill.\n" RUN_OPTS_HELP;
    if (want_help(argc, argv)) { fputs(help, stdout); return 0; }
    run_opts o = run_opts_default();
    const char *ids_s = NULL, *outp = NULL;
    int all = 0, decode = 0;
    for (int i = 1; i < argc; i++) {
        int r = run_opt("logits", argc, argv, &i, &o);
        if (r < 0) return 2;
        if (r) continue;
        if (!strcmp(argv[i], "--ids") && i + 1 < argc) ids_s = argv[++i];
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) outp = argv[++i];
        else if (!strcmp(argv[i], "--all")) all = 1;
        else if (!strcmp(argv[i], "--decode")) decode = 1;
        else { fprintf(stderr, "smolrun logits: unknown or incomplete option '%s'\n%s", argv[i], help); return 2; }
    }
    if (!ids_s || !outp) { fprintf(stderr, "smolrun logits: --ids and --out are required\n"); return 2; }
    int32_t *ids;
    long n = parse_ids("logits", ids_s, &ids);
    if (n < 0) return 2;
    if (n == 0) { fprintf(stderr, "smolrun logits: --ids is empty\n"); free(ids); return 2; }
    engine *e = open_engine("logits", &o);
    if (!e) { free(ids); return 1; }
    size_t V = (size_t)engine_config(e)->vocab, rows = all ? (size_t)n : 1;
    float *lg = malloc(rows * V * sizeof(float));
    int rc = 1;
    sd_err err = {0};
    int seq = engine_seq_new(e);
    if (!lg) { fprintf(stderr, "smolrun logits: out of memory\n"); goto out; }
    if (decode) {
        for (long t = 0; t < n; t++)
            if (engine_forward(e, seq, ids + t, 1, all ? lg + (size_t)t * V : lg, 0, NULL, NULL, &err)) goto fail;
    } else if (engine_forward(e, seq, ids, (size_t)n, lg, all, NULL, NULL, &err)) goto fail;
    FILE *f = fopen(outp, "wb");
    if (!f || fwrite(lg, sizeof(float), rows * V, f) != rows * V || fclose(f)) {
        fprintf(stderr, "smolrun logits: cannot write %s: %s\n", outp, strerror(errno));
        goto out;
    }
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "smolrun logits: %s\n", err.msg);
out:
    free(lg);
    free(ids);
    engine_free(e);
    return rc;
}

/* ---- generate ---- */

static int sampler_opt(int argc, char **argv, int *i, sampler_params *sp) {
    const char *a = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    double d;
    long x;
    if (!strcmp(a, "--greedy")) { sp->temperature = 0; return 1; }
    if (!strcmp(a, "--temp")) { if (parse_double("generate", a, v, &d) || d < 0) return -1; sp->temperature = (float)d; }
    else if (!strcmp(a, "--top-p")) { if (parse_double("generate", a, v, &d) || d <= 0 || d > 1) return -1; sp->top_p = (float)d; }
    else if (!strcmp(a, "--min-p")) { if (parse_double("generate", a, v, &d) || d < 0 || d > 1) return -1; sp->min_p = (float)d; }
    else if (!strcmp(a, "--rep-pen")) { if (parse_double("generate", a, v, &d) || d <= 0) return -1; sp->repetition_penalty = (float)d; }
    else if (!strcmp(a, "--top-k")) { if (parse_long("generate", a, v, 0, 1 << 24, &x)) return -1; sp->top_k = (int)x; }
    else if (!strcmp(a, "--seed")) { if (parse_long("generate", a, v, 0, LONG_MAX, &x)) return -1; sp->seed = (uint64_t)x; }
    else return 0;
    (*i)++;
    return 1;
}

int cmd_generate(int argc, char **argv) {
    static const char *help =
        "usage: smolrun generate --model DIR --ids \"...\" --n N [--greedy | --temp T --top-p P\n"
        "                        --top-k K --min-p M --rep-pen R] [--seed S] [--stop ID] [options]\n"
        "Prefills the ids, then decodes N tokens one step at a time through the KV cache and\n"
        "prints the generated ids, space separated. Defaults: temperature 0.6, top-p 0.95, seed 0.\n"
        "--stop ID ends generation at that id (printed).\n" RUN_OPTS_HELP;
    if (want_help(argc, argv)) { fputs(help, stdout); return 0; }
    run_opts o = run_opts_default();
    sampler_params sp = sampler_params_default();
    const char *ids_s = NULL;
    long n_gen = -1, stop = -1;
    for (int i = 1; i < argc; i++) {
        int r = run_opt("generate", argc, argv, &i, &o);
        if (r == 0) r = sampler_opt(argc, argv, &i, &sp);
        if (r < 0) { fprintf(stderr, "smolrun generate: bad value for %s\n", argv[i]); return 2; }
        if (r) continue;
        if (!strcmp(argv[i], "--ids") && i + 1 < argc) ids_s = argv[++i];
        else if (!strcmp(argv[i], "--n")) { if (parse_long("generate", "--n", i + 1 < argc ? argv[i + 1] : NULL, 0, 1 << 24, &n_gen)) return 2; i++; }
        else if (!strcmp(argv[i], "--stop")) { if (parse_long("generate", "--stop", i + 1 < argc ? argv[i + 1] : NULL, 0, INT32_MAX, &stop)) return 2; i++; }
        else { fprintf(stderr, "smolrun generate: unknown or incomplete option '%s'\n%s", argv[i], help); return 2; }
    }
    if (!ids_s || n_gen < 0) { fprintf(stderr, "smolrun generate: --ids and --n are required\n"); return 2; }
    int32_t *ids;
    long n = parse_ids("generate", ids_s, &ids);
    if (n <= 0) { if (n == 0) { fprintf(stderr, "smolrun generate: --ids is empty\n"); free(ids); } return 2; }
    engine *e = open_engine("generate", &o);
    if (!e) { free(ids); return 1; }
    size_t V = (size_t)engine_config(e)->vocab;
    float *lg = xmalloc(V * sizeof(float));
    int32_t *hist = xmalloc(((size_t)n + (size_t)n_gen + 1) * sizeof *hist);
    memcpy(hist, ids, (size_t)n * sizeof *hist);
    size_t nh = (size_t)n;
    sampler *s = sampler_new(&sp, (int)V);
    sd_err err = {0};
    int seq = engine_seq_new(e), rc = 0;
    if (engine_forward(e, seq, ids, (size_t)n, lg, 0, NULL, NULL, &err)) { fprintf(stderr, "smolrun generate: %s\n", err.msg); rc = 1; goto out; }
    for (long g = 0; g < n_gen; g++) {
        int32_t tok = sampler_sample(s, lg, hist, nh);
        hist[nh++] = tok;
        printf("%s%d", g ? " " : "", tok);
        fflush(stdout);
        if (tok == stop || g + 1 == n_gen) break;
        if (engine_forward(e, seq, &tok, 1, lg, 0, NULL, NULL, &err)) { fprintf(stderr, "\nsmolrun generate: %s\n", err.msg); rc = 1; goto out; }
    }
    printf("\n");
out:
    sampler_free(s);
    free(hist); free(lg); free(ids);
    engine_free(e);
    return rc;
}

/* ---- bench ---- */

int cmd_bench(int argc, char **argv) {
    static const char *help =
        "usage: smolrun bench --model DIR --prompt N --gen M [--threads T] [--reps R] [--seed S] [options]\n"
        "Times a prefill of N seeded random token ids (one batched forward, chunked by --chunk) and\n"
        "M single-token decode steps after it; prints one JSON line with the medians over R runs\n"
        "(default 1) of prefill and decode tokens per second. The first run is preceded by a\n"
        "warm-up forward that faults the mapped weights in.\n" RUN_OPTS_HELP;
    if (want_help(argc, argv)) { fputs(help, stdout); return 0; }
    run_opts o = run_opts_default();
    long np = -1, ng = -1, reps = 1, seed = 1;
    for (int i = 1; i < argc; i++) {
        int r = run_opt("bench", argc, argv, &i, &o);
        if (r < 0) return 2;
        if (r) continue;
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--prompt")) { if (parse_long("bench", "--prompt", v, 1, 1 << 24, &np)) return 2; i++; }
        else if (!strcmp(argv[i], "--gen")) { if (parse_long("bench", "--gen", v, 0, 1 << 24, &ng)) return 2; i++; }
        else if (!strcmp(argv[i], "--reps")) { if (parse_long("bench", "--reps", v, 1, 1000, &reps)) return 2; i++; }
        else if (!strcmp(argv[i], "--seed")) { if (parse_long("bench", "--seed", v, 0, LONG_MAX, &seed)) return 2; i++; }
        else { fprintf(stderr, "smolrun bench: unknown or incomplete option '%s'\n%s", argv[i], help); return 2; }
    }
    if (np < 0 || ng < 0) { fprintf(stderr, "smolrun bench: --prompt and --gen are required\n"); return 2; }
    if (!o.max_ctx) o.max_ctx = (int)(np + ng + 1);
    engine *e = open_engine("bench", &o);
    if (!e) return 1;
    const model_config *c = engine_config(e);
    size_t V = (size_t)c->vocab;
    int32_t *ids = xmalloc((size_t)np * sizeof *ids);
    rng_state = (uint64_t)seed * 0x9E3779B97F4A7C15ull + 1;
    for (long i = 0; i < np; i++) ids[i] = (int32_t)(rng_next() % (uint64_t)(V < 128000 ? V : 128000));
    float *lg = xmalloc(V * sizeof(float));
    double *pt = xcalloc((size_t)reps, sizeof(double)), *dt = xcalloc((size_t)reps, sizeof(double));
    sd_err err = {0};
    int rc = 0;
    { /* warm-up: touches every weight once */
        int s = engine_seq_new(e);
        if (engine_forward(e, s, ids, 1, lg, 0, NULL, NULL, &err)) { fprintf(stderr, "smolrun bench: %s\n", err.msg); rc = 1; goto out; }
        engine_seq_free(e, s);
    }
    /* greedy decoding; the argmax on the device where the engine can (only the
     * token id crosses PCIe), else on the host over the copied logits */
    sampler_params gp = sampler_params_default();
    gp.temperature = 0;
    gp.repetition_penalty = 1;
    const int dev = engine_can_sample_device(e, &gp);
    uint64_t drng = engine_sample_device_seed(e, 1);
    for (long r = 0; r < reps; r++) {
        int s = engine_seq_new(e);
        double t0 = sd_now();
        if (engine_forward(e, s, ids, (size_t)np, lg, dev ? ENGINE_LOGITS_DEVICE : 0, NULL, NULL, &err)) { fprintf(stderr, "smolrun bench: %s\n", err.msg); rc = 1; goto out; }
        double t1 = sd_now();
        int32_t tok = ids[np - 1];
        for (long g = 0; g < ng; g++) {
            if (engine_forward(e, s, &tok, 1, lg, dev ? ENGINE_LOGITS_DEVICE : 0, NULL, NULL, &err)) { fprintf(stderr, "smolrun bench: %s\n", err.msg); rc = 1; goto out; }
            int32_t best = 0;
            if (dev) {
                if (engine_sample_device(e, &gp, &drng, &best, &err)) { fprintf(stderr, "smolrun bench: %s\n", err.msg); rc = 1; goto out; }
            } else {
                for (size_t i = 1; i < V; i++) if (lg[i] > lg[best]) best = (int32_t)i;
            }
            tok = best;
        }
        double t2 = sd_now();
        pt[r] = (double)np / (t1 - t0);
        dt[r] = ng ? (double)ng / (t2 - t1) : 0;
        engine_seq_free(e, s);
    }
    for (long i = 0; i < reps; i++) /* sort both for medians */
        for (long j = i + 1; j < reps; j++) {
            if (pt[j] < pt[i]) { double x = pt[i]; pt[i] = pt[j]; pt[j] = x; }
            if (dt[j] < dt[i]) { double x = dt[i]; dt[i] = dt[j]; dt[j] = x; }
        }
    printf("{\"engine\":\"smoldoc\",\"backend\":\"%s\",\"simd\":\"%s\",\"weights\":\"%s\",\"compute\":\"%s\",\"threads\":%d,\"prompt\":%ld,\"gen\":%ld,"
           "\"reps\":%ld,\"prefill_tps\":%.3f,\"decode_tps\":%.3f,\"weight_bytes\":%zu,\"sample\":\"%s\"}\n",
           engine_backend_name(e), kern_simd_name(), o.q8_0 ? "q8_0" : "native", o.compute_fast ? "fast" : "exact", o.threads, np, ng, reps, pt[reps / 2], dt[reps / 2], engine_weight_bytes(e), dev ? "device" : "host");
out:
    free(pt); free(dt); free(lg); free(ids);
    engine_free(e);
    return rc;
}
