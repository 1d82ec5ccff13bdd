/* model.h - SmolLM3 configuration and weights, loaded from a Hugging Face model
 * folder (config.json + model.safetensors or a sharded index), mmap'd. */
#ifndef MODEL_H
#define MODEL_H

#include "dtype.h"
#include "sd.h"

#define MODEL_MAX_LAYERS 256

typedef struct model_config {
    int hidden;      /* hidden_size, 2048 */
    int inter;       /* intermediate_size, 11008 */
    int n_layer;     /* num_hidden_layers, 36 */
    int n_head;      /* num_attention_heads, 16 */
    int n_kv_head;   /* num_key_value_heads, 4 */
    int head_dim;    /* head_dim or hidden / n_head, 128 */
    int vocab;       /* vocab_size, 128256 */
    float rms_eps;   /* rms_norm_eps, 1e-6 */
    double rope_theta;
    int max_pos;     /* max_position_embeddings */
    int tie;         /* tie_word_embeddings */
    int yarn;        /* rope_scaling is yarn */
    double yarn_factor;
    int yarn_orig;   /* original_max_position_embeddings */
    double yarn_beta_fast, yarn_beta_slow;
    double yarn_attn_factor; /* multiplies cos and sin */
    int eos_id, bos_id;      /* -1 when absent */
    uint8_t use_rope[MODEL_MAX_LAYERS]; /* no_rope_layers: 1 = apply RoPE */
} model_config;

/* A weight matrix y = x W^T: rows = output features, cols = input features. */
typedef struct model_weight {
    sd_dtype dtype;
    int64_t rows, cols;
    const void *data; /* row-major, borrowed from a mapping or owned by the model */
    int packed;      /* laid out for the CPU kernels in tiles of 4 rows (kernels.h): Q8_0 by
                        model_repack_q8 (kern_q8_pack), BF16 by model_pack_bf16
                        (kern_bf16_pack); 0 = plain row-major */
} model_weight;

typedef struct model_layer {
    model_weight attn_norm; /* (hidden) */
    model_weight wq;        /* (n_head * head_dim, hidden) */
    model_weight wk;        /* (n_kv_head * head_dim, hidden) */
    model_weight wv;        /* (n_kv_head * head_dim, hidden) */
    model_weight wo;        /* (hidden, n_head * head_dim) */
    model_weight ffn_norm;  /* (hidden) */
    model_weight gate;      /* (inter, hidden) */
    model_weight up;        /* (inter, hidden) */
    model_weight down;      /* (hidden, inter) */
} model_layer;

typedef struct model {
    model_config cfg;
    model_weight embed;   /* (vocab, hidden) */
    model_weight norm;    /* (hidden) */
    model_weight lm_head; /* (vocab, hidden); == embed when tied */
    model_layer *layers;  /* n_layer */
    char *dir;
    void *priv;           /* mappings and owned buffers */
    void *ram;            /* the weights' writable RAM copy (materialized, or GGUF's), else NULL */
    size_t ram_len;
    void *extra;          /* loader-specific state (GGUF), freed by extra_free */
    void (*extra_free)(void *extra);
} model;

/* Parses config.json text into cfg (defaults as SmolLM3Config's).
 * Returns 0 or SD_EFORMAT with a message naming file and field. */
int model_config_parse(const char *json_text, size_t len, const char *file, model_config *cfg, sd_err *err);

/* Loads dir/config.json and dir/model.safetensors or dir/model.safetensors.index.json
 * with its shards. Every tensor's presence, dtype and shape is checked against
 * the config. Returns 0, SD_ENOTFOUND, SD_EIO, SD_EFORMAT or SD_ENOMEM. */
int model_load(const char *dir, model **out, sd_err *err);
void model_free(model *m);

/* Loads a GGUF file (llama.cpp's format, architecture smollm3) into the same
 * structure: Q/K rows un-permuted back to the half-split layout, F32/F16/BF16/
 * Q8_0 tensors. model_load calls it when its path is a regular file.
 * Implemented in engine/model_gguf.c. */
int model_load_gguf(const char *path, model **out, sd_err *err);

/* Copies every weight out of the file mappings into one anonymous buffer
 * (2 MiB aligned, transparent huge pages requested) and drops the mappings'
 * page cache. Streaming weights from file-backed pages is several times slower
 * than from anonymous huge pages on many machines (measured 0.9 vs 10.5 GB/s on
 * the 2-core development VM). With quant_q8_0, every matrix whose rows are a
 * multiple of 32 is quantized to Q8_0 on the way (norms stay as they are).
 * Returns 0 or SD_ENOMEM (the model stays usable as it was). */
int model_materialize(model *m, int quant_q8_0, sd_err *err);

/* Repacks every Q8_0 matrix for the CPU kernels into a new buffer
 * (kern_q8_pack: tiles of 4 rows, f16 scales and offset-binary int8, one
 * stream per tile; GGUF's 34-byte blocks cost split loads and an f16
 * conversion per block). Returns 0 or SD_ENOMEM (the model stays usable as it was). */
int model_repack_q8(model *m, sd_err *err);

/* Packs in place (kern_bf16_pack) every BF16 matrix that lies in the model's
 * RAM copy (m->ram) and has rows % 4 == 0, cols % 32 == 0; weights computed
 * from a file mapping stay row-major. Returns how many were packed. */
int model_pack_bf16(model *m);

/* inv_freq[i] for i < head_dim/2 (YaRN applied when configured) and the
 * attention factor that scales cos and sin (1 without YaRN). */
void model_rope_freqs(const model_config *cfg, double *inv_freq, double *attn_factor);

/* Every weight of the model in a fixed order: embedding, final norm, the head
 * when untied, then per layer attn_norm, wq, wk, wv, wo, ffn_norm, gate, up,
 * down. out must hold model_weight_count(&m->cfg) pointers; returns the count. */
size_t model_weight_list(model *m, model_weight **out);
size_t model_weight_count(const model_config *c);
/* Bytes a weight occupies (repacked Q8_0 included). */
size_t model_weight_nbytes(const model_weight *w);

/* Total bytes of weights read by one decode step (all matrices and the head). */
size_t model_weight_bytes(const model *m);

#endif
