/* sampler.c - repetition penalty, temperature, top-k, top-p, min-p, then a
 * draw from a seeded xoshiro256** generator (order as in HF transformers). */
#include "sampler.h"

#include <math.h>
#include <stdlib.h>

#include "sd.h"

struct sampler {
    sampler_params p;
    int vocab;
    uint64_t s[4];
    int32_t *idx; /* (vocab) */
    float *prob;  /* (vocab) */
};

sampler_params sampler_params_default(void) {
    sampler_params p = {.temperature = 0.6f, .top_k = 0, .top_p = 0.95f, .min_p = 0.0f,
                        .repetition_penalty = 1.0f, .repeat_last_n = 64, .seed = 0};
    return p;
}

static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t next_u64(sampler *s) {
    uint64_t r = rotl(s->s[1] * 5, 7) * 9, t = s->s[1] << 17;
    s->s[2] ^= s->s[0]; s->s[3] ^= s->s[1]; s->s[1] ^= s->s[2]; s->s[0] ^= s->s[3];
    s->s[2] ^= t; s->s[3] = rotl(s->s[3], 45);
    return r;
}

sampler *sampler_new(const sampler_params *p, int vocab) {
    sampler *s = xcalloc(1, sizeof *s);
    s->p = *p;
    s->vocab = vocab;
    uint64_t x = p->seed;
    for (int i = 0; i < 4; i++) s->s[i] = splitmix(&x);
    s->idx = xmalloc((size_t)vocab * sizeof *s->idx);
    s->prob = xmalloc((size_t)vocab * sizeof *s->prob);
    return s;
}

void sampler_free(sampler *s) {
    if (!s) return;
    free(s->idx);
    free(s->prob);
    free(s);
}

static const float *cmp_base;
static int cmp_desc(const void *a, const void *b) {
    float x = cmp_base[*(const int32_t *)a], y = cmp_base[*(const int32_t *)b];
    return x < y ? 1 : x > y ? -1 : (*(const int32_t *)a - *(const int32_t *)b);
}

int32_t sampler_sample(sampler *s, float *lg, const int32_t *hist, size_t nh) {
    const int V = s->vocab;
    const sampler_params *p = &s->p;
    if (p->repetition_penalty != 1.0f && hist) {
        size_t from = p->repeat_last_n > 0 && nh > (size_t)p->repeat_last_n ? nh - (size_t)p->repeat_last_n : 0;
        /* Each distinct id once: mark by flipping through a sign-safe pass over history. */
        for (size_t i = from; i < nh; i++) {
            int32_t t = hist[i];
            if (t < 0 || t >= V) continue;
            size_t j;
            for (j = from; j < i; j++) if (hist[j] == t) break;
            if (j < i) continue;
            lg[t] = lg[t] > 0 ? lg[t] / p->repetition_penalty : lg[t] * p->repetition_penalty;
        }
    }
    if (p->temperature <= 0) {
        int32_t best = 0;
        for (int i = 1; i < V; i++) if (lg[i] > lg[best]) best = i;
        return best;
    }
    /* Candidates sorted by logit (descending; ties by id for determinism). */
    int n = V;
    for (int i = 0; i < V; i++) s->idx[i] = i;
    for (int i = 0; i < V; i++) lg[i] /= p->temperature;
    if (p->top_k > 0 && p->top_k < V) {
        /* partial selection: threshold = k-th largest via nth element on a copy */
        cmp_base = lg;
        qsort(s->idx, (size_t)V, sizeof *s->idx, cmp_desc);
        n = p->top_k;
    } else {
        cmp_base = lg;
        qsort(s->idx, (size_t)V, sizeof *s->idx, cmp_desc);
    }
    float mx = lg[s->idx[0]];
    double sum = 0;
    for (int i = 0; i < n; i++) { s->prob[i] = expf(lg[s->idx[i]] - mx); sum += s->prob[i]; }
    for (int i = 0; i < n; i++) s->prob[i] = (float)(s->prob[i] / sum);
    if (p->top_p < 1.0f) { /* smallest prefix whose mass reaches top_p (at least one) */
        double cum = 0;
        int keep = n;
        for (int i = 0; i < n; i++) { cum += s->prob[i]; if (cum >= p->top_p) { keep = i + 1; break; } }
        n = keep;
    }
    if (p->min_p > 0.0f) { /* drop tokens below min_p x the top probability */
        float thr = p->min_p * s->prob[0];
        int keep = 1;
        while (keep < n && s->prob[keep] >= thr) keep++;
        n = keep;
    }
    sum = 0;
    for (int i = 0; i < n; i++) sum += s->prob[i];
    double r = (double)(next_u64(s) >> 11) * (1.0 / 9007199254740992.0) * sum, cum = 0;
    for (int i = 0; i < n; i++) { cum += s->prob[i]; if (r < cum) return s->idx[i]; }
    return s->idx[n - 1];
}
