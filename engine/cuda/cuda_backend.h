/* cuda_backend.h - C entry points of the CUDA backend beyond backend_cuda_new
 * (declared in engine/backend.h): device queries, single-kernel test hooks used
 * by tests/test_cuda.c to check each kernel against a CPU reference, and the
 * floors measured by tools/check-gpu.sh (memory bandwidth, BF16 GEMM rate).
 * Every function returns 0 or a negative SD_E* code with err filled;
 * SD_EBACKEND when there is no usable device. All buffers are host memory. */
#ifndef CUDA_BACKEND_H
#define CUDA_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "sd.h"

/* Number of CUDA devices in *count; name (may be NULL) gets device 0's name and
 * compute capability. SD_EBACKEND with the driver's reason when none is usable. */
int backend_cuda_devices(int *count, char *name, size_t name_len, sd_err *err);

/* y (n, d) = w * x / sqrt(mean(x^2) + eps) on the device; y is the BF16 result
 * widened to f32. */
int backend_cuda_test_rmsnorm(float *y, const float *x, const float *w, size_t n, size_t d, float eps, sd_err *err);

/* y (n, rows) = x (n, cols) . W^T with x and W rounded to BF16, f32 accumulation.
 * path: 0 = cuBLAS, 1 = our GEMV kernel (n must be 1 and cols a multiple of 8). */
int backend_cuda_test_gemm(float *y, const float *x, const float *w, size_t n, size_t rows, size_t cols,
                           int path, sd_err *err);

/* Causal GQA attention through a paged KV pool, as in the forward pass:
 * q (n, n_head, head_dim) for positions pos0..pos0+n-1; k, v (pos0 + n, n_kv_head,
 * head_dim) are written into a pool of blocks of block_size tokens whose table
 * is deliberately scrambled; out (n, n_head, head_dim). kv_f32 selects F32 KV
 * instead of BF16. splits: KV splits (0 = the backend's own choice). */
int backend_cuda_test_attention(float *out, const float *q, const float *k, const float *v, size_t n, size_t pos0,
                                int n_head, int n_kv_head, int head_dim, int block_size, int kv_f32, int splits,
                                sd_err *err);

/* Floors for benchmarks on device `device`: *bw_gbs the device-to-device copy
 * bandwidth in GB/s (bytes read + written) of a plain copy kernel over 2 GiB;
 * *tflops the cuBLAS BF16 GEMM rate (f32 accumulate) at m = n = k = 8192. */
int backend_cuda_bench_floors(int device, double *bw_gbs, double *tflops, sd_err *err);

#endif
