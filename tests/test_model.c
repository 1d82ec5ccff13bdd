/* test_model.c - the model loader on valid and malformed model folders: every
 * kind of bad safetensors header or config.json gives a clear error naming the
 * file and the tensor, never a crash. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model.h"
#include "safetensors.h"
#include "test.h"

static char dir[256];

/* Tiny config: hidden 16, inter 32, 1 layer, 2 heads, 1 kv head, head_dim 8, vocab 32. */
static const char *CONFIG =
    "{\"hidden_size\":16,\"intermediate_size\":32,\"num_hidden_layers\":1,\"num_attention_heads\":2,"
    "\"num_key_value_heads\":1,\"head_dim\":8,\"vocab_size\":32,\"rms_norm_eps\":1e-6,\"rope_theta\":10000,"
    "\"max_position_embeddings\":64,\"tie_word_embeddings\":true}";

typedef struct { const char *name; const char *dtype; long r, c; } tdesc;
static tdesc TENSORS[] = {
    {"model.embed_tokens.weight", "BF16", 32, 16},
    {"model.norm.weight", "BF16", 16, 0},
    {"model.layers.0.input_layernorm.weight", "BF16", 16, 0},
    {"model.layers.0.self_attn.q_proj.weight", "BF16", 16, 16},
    {"model.layers.0.self_attn.k_proj.weight", "BF16", 8, 16},
    {"model.layers.0.self_attn.v_proj.weight", "BF16", 8, 16},
    {"model.layers.0.self_attn.o_proj.weight", "BF16", 16, 16},
    {"model.layers.0.post_attention_layernorm.weight", "BF16", 16, 0},
    {"model.layers.0.mlp.gate_proj.weight", "BF16", 32, 16},
    {"model.layers.0.mlp.up_proj.weight", "BF16", 32, 16},
    {"model.layers.0.mlp.down_proj.weight", "BF16", 16, 32},
};
#define NT (sizeof TENSORS / sizeof TENSORS[0])

enum mut { M_NONE, M_SKIP, M_DTYPE, M_SHAPE, M_RANGE, M_OVERLAP, M_HDRLEN, M_BADJSON, M_SPAN, M_LMHEAD };

static void write_file(const char *name, const void *data, size_t n) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    fwrite(data, 1, n, f);
    fclose(f);
}

/* Writes config.json and model.safetensors with one mutation applied to tensor `which`. */
static void make_model(const char *file, enum mut m, int which, const char *config) {
    char hdr[8192];
    size_t hl = 0, off = 0;
    hl += (size_t)sprintf(hdr + hl, "{\"__metadata__\":{\"format\":\"pt\"}");
    size_t nt = NT + (m == M_LMHEAD);
    for (size_t i = 0; i < nt; i++) {
        tdesc t = i < NT ? TENSORS[i] : (tdesc){"lm_head.weight", "BF16", 3, 3};
        if (m == M_SKIP && (int)i == which) continue;
        long r = t.r, c = t.c;
        const char *dt = t.dtype;
        if (m == M_DTYPE && (int)i == which) dt = "I8";
        if (m == M_SHAPE && (int)i == which) r += 1;
        size_t nb = (size_t)r * (size_t)(c ? c : 1) * 2, b = off, e = off + nb;
        if (m == M_RANGE && (int)i == which) { b += 1000000; e += 1000000; }
        if (m == M_OVERLAP && (int)i == which) { b -= 2; e -= 2; }
        if (m == M_SPAN && (int)i == which) e += 2;
        if (c) hl += (size_t)sprintf(hdr + hl, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%ld,%ld],\"data_offsets\":[%zu,%zu]}", t.name, dt, r, c, b, e);
        else hl += (size_t)sprintf(hdr + hl, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%ld],\"data_offsets\":[%zu,%zu]}", t.name, dt, r, b, e);
        off += nb;
        if (m == M_SPAN && (int)i == which) off += 2;
    }
    hl += (size_t)sprintf(hdr + hl, "}");
    if (m == M_BADJSON) hdr[hl - 1] = ','; /* trailing comma, no closing brace */
    size_t total = 8 + hl + off;
    unsigned char *buf = calloc(1, total);
    uint64_t h = hl;
    if (m == M_HDRLEN) h = total; /* header length past the end of the file */
    memcpy(buf, &h, 8);
    memcpy(buf + 8, hdr, hl);
    /* weights: bf16 of small values */
    for (size_t i = 8 + hl; i + 1 < total; i += 2) { buf[i] = 0x80; buf[i + 1] = 0x3f; }
    write_file(file, buf, total);
    free(buf);
    write_file("config.json", config ? config : CONFIG, strlen(config ? config : CONFIG));
}

static int load_expect(int want, const char *needle1, const char *needle2) {
    model *m = NULL;
    sd_err err = {0};
    int rc = model_load(dir, &m, &err);
    int ok = rc == want && (!needle1 || strstr(err.msg, needle1)) && (!needle2 || strstr(err.msg, needle2));
    if (!ok) fprintf(stderr, "  got rc=%d msg='%s' (wanted %d, '%s', '%s')\n", rc, err.msg, want, needle1 ? needle1 : "", needle2 ? needle2 : "");
    model_free(m);
    return ok;
}

static void clean(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -f %s/*", dir);
    if (system(cmd)) {}
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/test_model.XXXXXX");
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }

    make_model("model.safetensors", M_NONE, -1, NULL);
    { /* valid model loads, with shapes from config */
        model *m = NULL;
        sd_err err = {0};
        CHECK_EQ(model_load(dir, &m, &err), 0);
        if (m) {
            CHECK_EQ(m->cfg.hidden, 16);
            CHECK_EQ(m->cfg.n_kv_head, 1);
            CHECK_EQ(m->cfg.head_dim, 8);
            CHECK(m->lm_head.data == m->embed.data);
            CHECK_EQ(m->layers[0].wk.rows, 8);
            CHECK_EQ(m->cfg.use_rope[0], 1); /* interval 4: layer 0 uses RoPE */
        }
        model_free(m);
    }
    make_model("model.safetensors", M_LMHEAD, -1, NULL); /* tied: a bogus lm_head.weight is ignored */
    CHECK(load_expect(0, NULL, NULL));
    make_model("model.safetensors", M_SKIP, 4, NULL);
    CHECK(load_expect(SD_EFORMAT, "k_proj", "missing"));
    make_model("model.safetensors", M_DTYPE, 3, NULL);
    CHECK(load_expect(SD_EFORMAT, "q_proj", "I8"));
    make_model("model.safetensors", M_SHAPE, 9, NULL);
    CHECK(load_expect(SD_EFORMAT, "up_proj", "config.json implies"));
    make_model("model.safetensors", M_RANGE, 10, NULL);
    CHECK(load_expect(SD_EFORMAT, "down_proj", "outside the data section"));
    make_model("model.safetensors", M_OVERLAP, 2, NULL);
    CHECK(load_expect(SD_EFORMAT, "overlap", "model.safetensors"));
    make_model("model.safetensors", M_HDRLEN, -1, NULL);
    CHECK(load_expect(SD_EFORMAT, "header length", "model.safetensors"));
    make_model("model.safetensors", M_BADJSON, -1, NULL);
    CHECK(load_expect(SD_EFORMAT, "malformed JSON", "model.safetensors"));
    make_model("model.safetensors", M_SPAN, 5, NULL);
    CHECK(load_expect(SD_EFORMAT, "v_proj", "span"));
    /* a file shorter than the 8-byte length */
    write_file("model.safetensors", "abc", 3);
    CHECK(load_expect(SD_EFORMAT, "no header", NULL));
    /* config.json: malformed, missing field, wrong type, bad GQA, unsupported scaling */
    make_model("model.safetensors", M_NONE, -1, "{\"hidden_size\": 16,");
    CHECK(load_expect(SD_EFORMAT, "config.json", "malformed JSON"));
    make_model("model.safetensors", M_NONE, -1, "{\"hidden_size\":16}");
    CHECK(load_expect(SD_EFORMAT, "config.json", "intermediate_size"));
    make_model("model.safetensors", M_NONE, -1,
               "{\"hidden_size\":\"16\",\"intermediate_size\":32,\"num_hidden_layers\":1,\"num_attention_heads\":2,\"vocab_size\":32}");
    CHECK(load_expect(SD_EFORMAT, "hidden_size", "integer"));
    make_model("model.safetensors", M_NONE, -1,
               "{\"hidden_size\":16,\"intermediate_size\":32,\"num_hidden_layers\":1,\"num_attention_heads\":3,\"num_key_value_heads\":2,\"vocab_size\":32}");
    CHECK(load_expect(SD_EFORMAT, "multiple", NULL));
    make_model("model.safetensors", M_NONE, -1,
               "{\"hidden_size\":16,\"intermediate_size\":32,\"num_hidden_layers\":1,\"num_attention_heads\":2,\"num_key_value_heads\":1,"
               "\"head_dim\":8,\"vocab_size\":32,\"rope_scaling\":{\"type\":\"dynamic\",\"factor\":2}}");
    CHECK(load_expect(SD_EFORMAT, "dynamic", NULL));
    /* no weights at all; no config */
    clean();
    write_file("config.json", CONFIG, strlen(CONFIG));
    CHECK(load_expect(SD_ENOTFOUND, "model.safetensors", NULL));
    clean();
    CHECK(load_expect(SD_ENOTFOUND, "config.json", NULL));
    /* sharded index naming a shard that lacks the tensor, and a path escape */
    make_model("shard1.safetensors", M_NONE, -1, NULL);
    const char *idx = "{\"weight_map\":{\"model.norm.weight\":\"shard1.safetensors\",\"model.extra.weight\":\"shard1.safetensors\"}}";
    write_file("model.safetensors.index.json", idx, strlen(idx));
    CHECK(load_expect(SD_EFORMAT, "model.extra.weight", "lacks it"));
    const char *idx2 = "{\"weight_map\":{\"model.norm.weight\":\"../x.safetensors\"}}";
    write_file("model.safetensors.index.json", idx2, strlen(idx2));
    CHECK(load_expect(SD_EFORMAT, "plain file name", NULL));
    const char *idx3 = "{\"weight_map\":{\"model.norm.weight\":\"shard1.safetensors\"}}";
    write_file("model.safetensors.index.json", idx3, strlen(idx3));
    CHECK(load_expect(0, NULL, NULL)); /* index naming one shard that has everything */

    { /* YaRN frequencies: SPEC section 6 worked numbers (low 24, high 39 for theta 5e6, L 65536, dim 128) */
        model_config c;
        const char *cfg = "{\"hidden_size\":2048,\"intermediate_size\":11008,\"num_hidden_layers\":36,\"num_attention_heads\":16,"
                          "\"num_key_value_heads\":4,\"vocab_size\":128256,\"rope_theta\":5000000,\"max_position_embeddings\":131072,"
                          "\"rope_scaling\":{\"type\":\"yarn\",\"factor\":2.0,\"original_max_position_embeddings\":65536}}";
        sd_err err = {0};
        CHECK_EQ(model_config_parse(cfg, strlen(cfg), "cfg", &c, &err), 0);
        double f[64], af, base[64];
        model_rope_freqs(&c, f, &af);
        c.yarn = 0;
        model_rope_freqs(&c, base, &(double){0});
        CHECK_NEAR(af, 0.1 * log(2.0) + 1.0, 1e-12);
        CHECK_NEAR(f[24], base[24], 1e-18);          /* ramp 0 up to index 24: unchanged */
        CHECK_NEAR(f[39], base[39] / 2, 1e-18);      /* ramp 1 from index 39: interpolated */
        CHECK_NEAR(f[30], base[30] * (1 - 6.0 / 15) + base[30] / 2 * (6.0 / 15), 1e-15);
        CHECK_EQ(c.use_rope[3], 0);
        CHECK_EQ(c.use_rope[35], 0);
        CHECK_EQ(c.use_rope[34], 1);
    }
    clean();
    rmdir(dir);
    return test_done();
}
