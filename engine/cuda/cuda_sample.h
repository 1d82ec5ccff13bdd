/* cuda_sample.h - token sampling on the device, so that only token ids cross
 * PCIe: greedy (argmax, lowest id on ties), or temperature with top-k, top-p
 * and min-p, from a caller-held seeded random state. Thresholds are exact
 * (found by bisection over the float ordering), the draw is in id order. The
 * repetition penalty of engine/sampler.h is not applied here. */
#ifndef CUDA_SAMPLE_H
#define CUDA_SAMPLE_H

#include <stdint.h>

#include "backend.h"
#include "sd.h"

typedef struct cuda_sample_params {
    float temperature; /* <= 0: greedy */
    int top_k;         /* 0: off */
    float top_p;       /* >= 1: off */
    float min_p;       /* 0: off */
} cuda_sample_params;

/* Seeds a random state for cuda_sample_* (any seed, 0 included). */
uint64_t cuda_sample_seed(uint64_t seed);

/* Samples from the logits of the last position of the most recent forward of
 * CUDA backend b (still on the device). *rng is advanced. Returns 0,
 * SD_EINVAL (b is not a CUDA backend, or no forward yet) or SD_EBACKEND. */
int cuda_sample_last(backend *b, const cuda_sample_params *p, uint64_t *rng, int32_t *token, sd_err *err);

/* The same over host logits (vocab), uploaded first (tests). */
int cuda_sample_host(const float *logits, int vocab, const cuda_sample_params *p, uint64_t *rng, int32_t *token,
                     sd_err *err);

#endif
