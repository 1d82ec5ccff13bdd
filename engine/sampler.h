/* sampler.h - next-token choice from logits: greedy, or temperature with
 * top-k, top-p, min-p and a repetition penalty; seeded and reproducible. */
#ifndef SAMPLER_H
#define SAMPLER_H

#include <stddef.h>
#include <stdint.h>

typedef struct sampler_params {
    float temperature;        /* <= 0: greedy (default 0.6) */
    int top_k;                /* 0: off (default 0) */
    float top_p;              /* 1: off (default 0.95) */
    float min_p;              /* 0: off (default 0) */
    float repetition_penalty; /* 1: off (default 1); HF semantics */
    int repeat_last_n;        /* tokens of history the penalty looks at (default 64; 0 = all) */
    uint64_t seed;
} sampler_params;

typedef struct sampler sampler;

sampler_params sampler_params_default(void);
sampler *sampler_new(const sampler_params *p, int vocab);
void sampler_free(sampler *s);
/* Chooses a token from logits (vocab), which it may modify. history: the ids
 * seen so far (for the repetition penalty), may be NULL. */
int32_t sampler_sample(sampler *s, float *logits, const int32_t *history, size_t n_history);

#endif
