/* kernels.h - CPU compute kernels (f32 activations, weights in their stored
 * dtype), with runtime SIMD dispatch: AVX-512 where present, else plain C.
 * SMOLDOC_SIMD=0 in the environment forces the plain C path. */
#ifndef KERNELS_H
#define KERNELS_H

#include "model.h"

/* Which path kern_matmul takes: "avx512" or "scalar". */
const char *kern_simd_name(void);
/* Forces the scalar path (tests); returns the previous setting. */
int kern_set_simd(int on);

/* y (n, w->rows) = x (n, w->cols) . W^T, or y += ... when accumulate.
 * Parallel over output rows with OpenMP. */
void kern_matmul(float *y, const float *x, size_t n, const model_weight *w, int accumulate);

/* y (n, d) = w * x / sqrt(mean(x^2) + eps), statistics in float. */
void kern_rmsnorm(float *y, const float *x, size_t n, const model_weight *w, float eps);

/* Row r of a weight (embedding lookup) as f32 into out (cols). */
void kern_row_f32(float *out, const model_weight *w, int64_t r);

/* Converts n values of dtype t at src to f32. */
void kern_to_f32(float *dst, const void *src, sd_dtype t, size_t n);

#endif
