/* cuda_common.h - internal helpers shared by the CUDA sources (C++ only):
 * checked-call macros that turn a CUDA or cuBLAS failure into SD_EBACKEND with
 * file and line, and a device allocation helper that reports sizes. */
#ifndef SD_CUDA_COMMON_H
#define SD_CUDA_COMMON_H

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

extern "C" {
#include "backend.h"
#include "sd.h"
}

/* Evaluates a cudaError_t expression; on failure sets err and returns SD_EBACKEND
 * from the enclosing function (which must have `sd_err *err` in scope). */
#define CU_CHECK(call) do { \
    cudaError_t e_ = (call); \
    if (e_ != cudaSuccess) \
        return sd_seterr(err, SD_EBACKEND, "cuda: %s failed at %s:%d: %s", #call, __FILE__, __LINE__, \
                         cudaGetErrorString(e_)); \
} while (0)

#define CUBLAS_CHECK(call) do { \
    cublasStatus_t s_ = (call); \
    if (s_ != CUBLAS_STATUS_SUCCESS) \
        return sd_seterr(err, SD_EBACKEND, "cublas: %s failed at %s:%d: status %d (%s)", #call, __FILE__, \
                         __LINE__, (int)s_, cublasGetStatusString(s_)); \
} while (0)

/* Checks the last kernel launch. */
#define CU_LAUNCH_CHECK() CU_CHECK(cudaGetLastError())

/* Propagates a non-zero rc. */
#define SD_TRY(expr) do { int rc_ = (expr); if (rc_) return rc_; } while (0)

/* cudaMalloc with a clear out-of-memory message: what was asked, what is free. */
static inline int sdcu_malloc(void **p, size_t bytes, const char *what, sd_err *err) {
    *p = NULL;
    cudaError_t e = cudaMalloc(p, bytes ? bytes : 16);
    if (e == cudaSuccess) return 0;
    cudaGetLastError(); /* clear the sticky-free error state */
    size_t fr = 0, tot = 0;
    cudaMemGetInfo(&fr, &tot);
    if (e == cudaErrorMemoryAllocation)
        return sd_seterr(err, SD_ENOMEM, "cuda: out of device memory for %s: asked %zu bytes (%.2f GiB), "
                         "%zu bytes (%.2f GiB) free of %zu (%.2f GiB)", what, bytes, bytes / 1073741824.0,
                         fr, fr / 1073741824.0, tot, tot / 1073741824.0);
    return sd_seterr(err, SD_EBACKEND, "cuda: cudaMalloc(%zu) for %s failed: %s", bytes, what, cudaGetErrorString(e));
}



/* For cuda_sample.cu: the device logits (vocab floats) of the last position of
 * b's most recent forward and its stream. SD_EINVAL when b is not a CUDA
 * backend or has run no forward. */
int sdcu_backend_last_logits(backend *b, const float **d_logits, int *vocab, cudaStream_t *st, sd_err *err);
#endif
