/* attn_cpu.h - causal GQA attention over a paged KV cache on the CPU (f32
 * arithmetic, online softmax), with runtime SIMD dispatch like kernels.h:
 * AVX-512, AVX2+FMA or plain C, following kern_simd_level(). */
#ifndef ATTN_CPU_H
#define ATTN_CPU_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"

typedef struct attn_cpu attn_cpu;

/* One layer's K and V in the paged cache. The row of KV head g at position p is
 * at k + block_table[p / block_size] * block_stride + (p % block_size) * row_stride
 * + g * head_dim * elem_size (the same for v). Everything is borrowed. */
typedef struct attn_cpu_kv {
    const uint8_t *k, *v;   /* slot 0 of block 0 */
    size_t block_stride;    /* bytes from one block to the next */
    size_t row_stride;      /* bytes from one position to the next within a block */
    int block_size;         /* positions per block */
    const int *block_table; /* blocks covering positions [0, pos0 + n) */
    sd_dtype dtype;         /* SD_DT_F32 or SD_DT_BF16 */
} attn_cpu_kv;

/* Per-thread scratch for the given shape and up to n_threads OpenMP threads.
 * Returns NULL when out of memory. */
attn_cpu *attn_cpu_new(int n_head, int n_kv_head, int head_dim, int n_threads);
void attn_cpu_free(attn_cpu *a);

/* out (n, n_head * head_dim) = softmax(q k^T / sqrt(head_dim)) v for n query
 * tokens at positions pos0..pos0+n-1, token t seeing positions [0, pos0 + t]
 * (whose K and V must already be in the cache). q (n, n_head * head_dim) is f32;
 * query head h reads KV head h / (n_head / n_kv_head). Parallel with OpenMP;
 * allocates nothing. Call from one thread at a time per attn_cpu. */
void attn_cpu_run(attn_cpu *a, float *out, const float *q, size_t n, size_t pos0, const attn_cpu_kv *kv);

/* exp(x) as the SIMD paths compute it at the current SIMD level, for x <= 0
 * (tests): n values from x to y. */
void attn_cpu_exp(float *y, const float *x, size_t n);

#endif
