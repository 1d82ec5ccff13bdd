/* smollm3_tiny_gguf.c - writes a tiny random-weight SmolLM3 GGUF (architecture
 * "smollm3") with engine/gguf's writer: the metadata keys, tokenizer keys and
 * tensor names llama.cpp needs to load it, a minimal byte-level gpt2 vocab, and
 * Q/K rows permuted the way llama.cpp's converter does. Used to check that our
 * writer's files load in the llama.cpp peer (tools/llama-peer.sh); a reference
 * for `smolrun mkmodel --gguf`. Not built by the Makefile:
 *   cc -std=c11 -D_GNU_SOURCE -Iengine tools/bench/smollm3_tiny_gguf.c engine/gguf.c engine/sd.c -lm
 * usage: smollm3_tiny_gguf OUT.gguf [f32|f16|bf16|q8_0] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"

enum { N_LAYER = 4, N_EMBD = 64, N_HEAD = 4, N_HEAD_KV = 2, HEAD_DIM = 16, N_FF = 128 };

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static float rndw(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return ((float)(rng >> 40) / (float)(1 << 24) * 2.0f - 1.0f) * 0.08f;
}

/* GPT-2 byte-to-unicode: printable bytes map to themselves, the rest to U+0100.. */
static void byte_token(int b, char out[4]) {
    int cp;
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) {
        cp = b;
    } else {
        int n = 0;
        for (int x = 0; x < b; x++)
            if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) n++;
        cp = 256 + n;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = 0;
    } else {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        out[2] = 0;
    }
}

typedef struct store {
    void **bufs;
    size_t n;
} store;

static void *keep(store *s, void *p) {
    s->bufs = realloc(s->bufs, (s->n + 1) * sizeof *s->bufs);
    s->bufs[s->n++] = p;
    return p;
}

/* Random matrix (rows x cols, HF layout: rows = output features), converted to
 * type; permute_heads > 0 applies the Q/K row permutation. */
static int add_matrix(gguf_writer *w, store *s, const char *name, size_t rows, size_t cols, int type,
                      size_t permute_heads) {
    float *m = malloc(rows * cols * sizeof *m);
    for (size_t i = 0; i < rows * cols; i++) m[i] = rndw();
    if (permute_heads) {
        float *p = malloc(rows * cols * sizeof *p);
        gguf_permute_qk_rows(m, p, rows, cols * sizeof *m, permute_heads);
        free(m);
        m = p;
    }
    uint64_t dims[2] = {cols, rows};
    size_t nbytes = 0;
    if (gguf_tensor_nbytes(type, 2, dims, &nbytes)) return -1;
    void *out = keep(s, malloc(nbytes));
    size_t n = rows * cols;
    if (type == GGUF_TTYPE_F32) memcpy(out, m, nbytes);
    else if (type == GGUF_TTYPE_F16)
        for (size_t i = 0; i < n; i++) ((uint16_t *)out)[i] = gguf_f32_to_f16(m[i]);
    else if (type == GGUF_TTYPE_BF16)
        for (size_t i = 0; i < n; i++) ((uint16_t *)out)[i] = gguf_f32_to_bf16(m[i]);
    else gguf_quantize_q8_0(m, out, n);
    free(m);
    return gguf_writer_add_tensor(w, name, 2, dims, type, out);
}

static int add_norm(gguf_writer *w, store *s, const char *name) {
    float *v = keep(s, malloc(N_EMBD * sizeof *v));
    for (int i = 0; i < N_EMBD; i++) v[i] = 1.0f + rndw();
    uint64_t dims[1] = {N_EMBD};
    return gguf_writer_add_tensor(w, name, 1, dims, GGUF_TTYPE_F32, v);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: smollm3_tiny_gguf OUT.gguf [f32|f16|bf16|q8_0]\n");
        return 2;
    }
    const char *ty = argc > 2 ? argv[2] : "f32";
    int type = !strcmp(ty, "f16") ? GGUF_TTYPE_F16 : !strcmp(ty, "bf16") ? GGUF_TTYPE_BF16
             : !strcmp(ty, "q8_0") ? GGUF_TTYPE_Q8_0 : GGUF_TTYPE_F32;
    /* llama_ftype: ALL_F32 0, MOSTLY_F16 1, MOSTLY_Q8_0 7, MOSTLY_BF16 32 */
    uint32_t ftype = type == GGUF_TTYPE_F16 ? 1 : type == GGUF_TTYPE_BF16 ? 32 : type == GGUF_TTYPE_Q8_0 ? 7 : 0;

    /* vocab: 256 byte tokens, 2 merges, 4 control tokens */
    const char *specials[] = {"<|begin_of_text|>", "<|end_of_text|>", "<|im_start|>", "<|im_end|>"};
    enum { N_VOCAB = 256 + 2 + 4 };
    char bytes[256][4];
    const char *tokens[N_VOCAB];
    int32_t types[N_VOCAB];
    for (int b = 0; b < 256; b++) {
        byte_token(b, bytes[b]);
        tokens[b] = bytes[b];
        types[b] = 1; /* NORMAL */
    }
    tokens[256] = "\xc4\xa0t"; /* "Ġt" */
    tokens[257] = "he";
    types[256] = types[257] = 1;
    for (int i = 0; i < 4; i++) {
        tokens[258 + i] = specials[i];
        types[258 + i] = 3; /* CONTROL */
    }
    const char *merges[] = {"\xc4\xa0 t", "h e"};

    sd_err err = {0};
    gguf_writer *w = gguf_writer_new(argv[1], &err);
    if (!w) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    int rc = 0;
    rc |= gguf_writer_add_str(w, "general.architecture", "smollm3");
    rc |= gguf_writer_add_str(w, "general.name", "smoldoc tiny random SmolLM3");
    rc |= gguf_writer_add_u32(w, "general.file_type", ftype);
    rc |= gguf_writer_add_u32(w, "general.quantization_version", 2);
    rc |= gguf_writer_add_u32(w, "smollm3.block_count", N_LAYER);
    rc |= gguf_writer_add_u32(w, "smollm3.context_length", 4096);
    rc |= gguf_writer_add_u32(w, "smollm3.embedding_length", N_EMBD);
    rc |= gguf_writer_add_u32(w, "smollm3.feed_forward_length", N_FF);
    rc |= gguf_writer_add_u32(w, "smollm3.attention.head_count", N_HEAD);
    rc |= gguf_writer_add_u32(w, "smollm3.attention.head_count_kv", N_HEAD_KV);
    rc |= gguf_writer_add_f32(w, "smollm3.rope.freq_base", 5000000.0f);
    rc |= gguf_writer_add_f32(w, "smollm3.attention.layer_norm_rms_epsilon", 1e-6f);
    rc |= gguf_writer_add_u32(w, "smollm3.vocab_size", N_VOCAB);
    rc |= gguf_writer_add_u32(w, "smollm3.rope.dimension_count", HEAD_DIM);
    rc |= gguf_writer_add_str(w, "tokenizer.ggml.model", "gpt2");
    rc |= gguf_writer_add_str(w, "tokenizer.ggml.pre", "llama-bpe");
    rc |= gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", tokens, N_VOCAB);
    rc |= gguf_writer_add_arr(w, "tokenizer.ggml.token_type", GGUF_VTYPE_INT32, types, N_VOCAB);
    rc |= gguf_writer_add_arr_str(w, "tokenizer.ggml.merges", merges, 2);
    rc |= gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", 258);
    rc |= gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", 261);
    rc |= gguf_writer_add_u32(w, "tokenizer.ggml.padding_token_id", 259);
    rc |= gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", 0);

    store s = {0};
    int emb_type = type;
    rc |= add_matrix(w, &s, "token_embd.weight", N_VOCAB, N_EMBD, emb_type, 0);
    rc |= add_norm(w, &s, "output_norm.weight");
    char name[64];
    for (int l = 0; l < N_LAYER; l++) {
#define NM(fmt) (snprintf(name, sizeof name, fmt, l), name)
        rc |= add_norm(w, &s, NM("blk.%d.attn_norm.weight"));
        rc |= add_matrix(w, &s, NM("blk.%d.attn_q.weight"), N_HEAD * HEAD_DIM, N_EMBD, type, N_HEAD);
        rc |= add_matrix(w, &s, NM("blk.%d.attn_k.weight"), N_HEAD_KV * HEAD_DIM, N_EMBD, type, N_HEAD_KV);
        rc |= add_matrix(w, &s, NM("blk.%d.attn_v.weight"), N_HEAD_KV * HEAD_DIM, N_EMBD, type, 0);
        rc |= add_matrix(w, &s, NM("blk.%d.attn_output.weight"), N_EMBD, N_HEAD * HEAD_DIM, type, 0);
        rc |= add_norm(w, &s, NM("blk.%d.ffn_norm.weight"));
        rc |= add_matrix(w, &s, NM("blk.%d.ffn_gate.weight"), N_FF, N_EMBD, type, 0);
        rc |= add_matrix(w, &s, NM("blk.%d.ffn_up.weight"), N_FF, N_EMBD, type, 0);
        rc |= add_matrix(w, &s, NM("blk.%d.ffn_down.weight"), N_EMBD, N_FF, type, 0);
#undef NM
    }
    if (rc) {
        fprintf(stderr, "smollm3_tiny_gguf: building the file failed\n");
        gguf_writer_free(w);
        return 1;
    }
    rc = gguf_writer_finish(w, &err);
    gguf_writer_free(w);
    for (size_t i = 0; i < s.n; i++) free(s.bufs[i]);
    free(s.bufs);
    if (rc) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    printf("wrote %s (%s, vocab %d, %d layers)\n", argv[1], ty, N_VOCAB, N_LAYER);
    return 0;
}
