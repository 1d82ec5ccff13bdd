/* engine.h - the engine's public C API: a loaded SmolLM3 model on a backend,
 * with paged KV sequences that can share a prefix, be truncated and extended. */
#ifndef ENGINE_H
#define ENGINE_H

#include "backend.h"
#include "model.h"
#include "sampler.h"
#include "sd.h"

typedef struct engine engine;

typedef struct engine_params {
    const char *model_dir;
    const char *backend;    /* "auto" (default), "cpu" or "cuda" */
    int device;             /* CUDA device index */
    int n_threads;          /* CPU threads; 0 = all cores */
    int kv_block_size;      /* tokens per KV block (default 256) */
    size_t kv_budget_bytes; /* KV pool size (default: room for max_ctx tokens) */
    int max_ctx;            /* default: the model's max_position_embeddings */
    sd_dtype kv_dtype;      /* SD_DT_BF16 (default) or SD_DT_F32 */
    int max_batch;          /* prefill chunk in tokens (default 256) */
    int weights_mmap;       /* CPU: 1 = compute from the file mapping; 0 (default) = copy to RAM */
    int weights_q8_0;       /* CPU: quantize matrices to Q8_0 at load */
    int compute_fast;       /* CPU: activations at llama.cpp's precision (kernels.h KERN_COMPUTE_FAST) */
} engine_params;

engine_params engine_params_default(void);

/* Loads the model and creates the backend and KV pool. Returns NULL on failure
 * with err filled (SD_ENOTFOUND, SD_EFORMAT, SD_ENOMEM, SD_EBACKEND, SD_EINVAL). */
engine *engine_new(const engine_params *p, sd_err *err);
void engine_free(engine *e);

const model_config *engine_config(const engine *e);
const char *engine_backend_name(const engine *e);
/* Why the backend was chosen (e.g. "no CUDA device: ..."); borrowed. */
const char *engine_backend_reason(const engine *e);
const engine_params *engine_params_get(const engine *e);

/* Sequences: ids >= 0, or a negative SD_E* code. */
int engine_seq_new(engine *e);
int engine_seq_fork(engine *e, int src);
void engine_seq_free(engine *e, int seq);
size_t engine_seq_len(const engine *e, int seq);
int engine_seq_truncate(engine *e, int seq, size_t len);

/* Appends n tokens to seq, running them through the model in chunks of
 * max_batch. logits: (vocab) of the last token, or (n, vocab) with
 * ENGINE_LOGITS_ALL in flags. With logits NULL, or ENGINE_LOGITS_DEVICE in
 * flags, logits is not written and the last token's logits stay where they
 * were computed, for engine_sample_device. progress (may be NULL) is called after each chunk
 * with tokens done and total; a non-zero return cancels (SD_ECANCELED, tokens
 * done so far stay in the sequence). Returns 0, SD_ENOMEM (KV pool full),
 * SD_EINVAL, SD_EBACKEND. */
enum { ENGINE_LOGITS_ALL = 1, ENGINE_LOGITS_DEVICE = 2 };
typedef int (*engine_progress_fn)(void *ud, size_t done, size_t total);
int engine_forward(engine *e, int seq, const int32_t *tokens, size_t n, float *logits,
                   int flags, engine_progress_fn progress, void *ud, sd_err *err);

/* Sampling where the logits are, so that only token ids cross PCIe: 1 when the
 * backend samples its own last logits (the CUDA backend, while
 * SMOLDOC_DEVICE_SAMPLE=1: the path has not yet run on a GPU) and p asks for
 * nothing its sampler lacks (the repetition penalty). Then engine_forward with
 * ENGINE_LOGITS_DEVICE, and engine_sample_device draws the next token
 * (greedy, or temperature with top-k, top-p and min-p; its own random stream,
 * started by engine_sample_device_seed). */
int engine_can_sample_device(const engine *e, const sampler_params *p);
uint64_t engine_sample_device_seed(const engine *e, uint64_t seed);
int engine_sample_device(engine *e, const sampler_params *p, uint64_t *rng, int32_t *tok, sd_err *err);

/* KV pool usage in blocks. */
void engine_kv_usage(const engine *e, int *used_blocks, int *total_blocks, int *block_size);
size_t engine_weight_bytes(const engine *e);

#endif
