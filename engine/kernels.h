/* kernels.h - CPU compute kernels (f32 activations, weights in their stored
 * dtype: F32, F16, BF16, Q8_0), with runtime SIMD dispatch: AVX-512, else
 * AVX2+FMA, else plain C. SMOLDOC_SIMD=0|avx2|avx512 in the environment caps
 * the path (tests run the reference checks with each). */
#ifndef KERNELS_H
#define KERNELS_H

#include "model.h"

typedef enum kern_simd {
    KERN_SIMD_SCALAR = 0,
    KERN_SIMD_AVX2 = 1,
    KERN_SIMD_AVX512 = 2,
} kern_simd;

/* How matrix products treat activations. EXACT keeps them at (about) f32
 * precision: f32 activations times the widened weights (the reference
 * semantics), or for repacked Q8_0 weights two-level int8 activations (about 16
 * bits, see kernels.c). FAST uses llama.cpp's precision: BF16 weights take
 * activations rounded to bf16 and the CPU's bf16 dot product (AVX512-BF16, about
 * twice the prefill rate; EXACT where the CPU lacks it), Q8_0 weights take
 * activations quantized to 8 bits per 32-block (Q8_0 x Q8_0). */
typedef enum kern_compute {
    KERN_COMPUTE_EXACT = 0,
    KERN_COMPUTE_FAST = 1,
} kern_compute;

/* The path kern_matmul takes ("avx512", "avx512bf16", "avx2", "scalar"). */
const char *kern_simd_name(void);
kern_simd kern_simd_level(void);
/* Caps the SIMD level (tests); returns the previous level. */
kern_simd kern_set_simd(kern_simd level);
/* 1 when the CPU has AVX512-BF16 (and SIMD is not capped below AVX-512). */
int kern_has_bf16_dot(void);

/* y (n, w->rows) = x (n, w->cols) . W^T, or y += ... when accumulate.
 * Parallel over output rows with OpenMP. No allocation after the first calls
 * (per-thread scratch grows as needed). Call from one thread at a time. */
void kern_matmul(float *y, const float *x, size_t n, const model_weight *w, int accumulate, kern_compute mode);

/* y (n, d) = w * x / sqrt(mean(x^2) + eps), statistics in float; w is f32 (d). */
void kern_rmsnorm(float *y, const float *x, size_t n, const float *w, size_t d, float eps);

/* Row r of a weight (embedding lookup) as f32 into out (cols). */
void kern_row_f32(float *out, const model_weight *w, int64_t r);

/* Converts n values of dtype t at src to f32 (n a multiple of 32 for Q8_0). */
void kern_to_f32(float *dst, const void *src, sd_dtype t, size_t n);

/* Quantizes n floats (a multiple of 32) to Q8_0 blocks at dst (n/32*34 bytes):
 * per block d = max|x|/127 stored as f16, q = round(x/d). */
void kern_quantize_q8_0(void *dst, const float *src, size_t n);

/* Q8_0 packed for the CPU kernels (layout in kernels.c: tiles of 4 rows, each
 * one contiguous stream of f16 scales and offset-binary int8 weights). The
 * bytes of a (rows, cols) weight packed, and the packing of its GGUF 34-byte
 * blocks (cols a multiple of 32) into dst, 64-byte aligned. */
size_t kern_q8_packed_bytes(int64_t rows, int64_t cols);
void kern_q8_pack(void *dst, const void *blocks, int64_t rows, int64_t cols);

/* Packs a row-major BF16 weight in place for the CPU kernels (layout in
 * kernels.c: tiles of 4 rows, each one stream of 64-byte pieces of its rows).
 * Needs rows % 4 == 0 and cols % 32 == 0; returns 0, or -1 with data untouched. */
int kern_bf16_pack(void *data, int64_t rows, int64_t cols);

#endif
