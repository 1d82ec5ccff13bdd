/* backend.h - the compute backend interface (a small vtable). The CPU backend
 * is the reference; the CUDA backend implements the same operations and is
 * checked against it. A backend owns the storage of the KV blocks; the block
 * tables come from kvcache. */
#ifndef BACKEND_H
#define BACKEND_H

#include "dtype.h"
#include "model.h"
#include "sd.h"

typedef struct backend backend;

typedef struct backend_params {
    int n_threads;      /* CPU threads (0 = all cores) */
    int device;         /* CUDA device index */
    int kv_block_size;  /* tokens per KV block */
    int kv_blocks;      /* blocks in the pool */
    sd_dtype kv_dtype;  /* SD_DT_BF16 (default) or SD_DT_F32 */
    int max_batch;      /* most tokens per forward call (scratch size) */
    int compute_fast;   /* CPU: activations at llama.cpp's precision (kernels.h KERN_COMPUTE_FAST) */
} backend_params;

/* One forward call: n new tokens of one sequence, at positions pos0..pos0+n-1,
 * whose KV lands in the blocks of block_table (already reserved). */
typedef struct backend_batch {
    const int32_t *tokens; /* (n) */
    size_t n;
    size_t pos0;
    const int *block_table; /* blocks covering positions [0, pos0 + n) */
    int n_table;
    float *logits;          /* (n, vocab) when all_logits, else (vocab): last position */
    int all_logits;
    int device_logits;      /* no one reads logits on the host: a device backend may
                               leave the last position's on the device (not with all_logits) */
} backend_batch;

typedef struct backend_ops {
    const char *name;
    /* Runs the model over the batch; returns 0 or SD_EBACKEND/SD_ENOMEM. */
    int (*forward)(backend *b, const backend_batch *batch, sd_err *err);
    /* Copies the contents of KV block src to dst (copy on write). */
    int (*kv_copy)(backend *b, int dst, int src, sd_err *err);
    /* Bytes of KV storage and of weights held by the backend. */
    void (*mem_info)(backend *b, size_t *kv_bytes, size_t *weight_bytes);
    void (*free)(backend *b);
} backend_ops;

struct backend {
    const backend_ops *ops;
    const model *m;
    backend_params p;
};

/* The CPU backend over an already loaded model (borrowed; must outlive it). */
int backend_cpu_new(const model *m, const backend_params *p, backend **out, sd_err *err);

/* Bytes one KV token takes over all layers (K and V) in dtype. */
size_t backend_kv_token_bytes(const model_config *c, sd_dtype kv_dtype);

#ifdef SD_CUDA
/* The CUDA backend (engine/cuda/). SD_EBACKEND when no usable device. */
int backend_cuda_new(const model *m, const backend_params *p, backend **out, sd_err *err);
#endif

#endif
