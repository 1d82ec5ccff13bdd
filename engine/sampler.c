/* sampler.c - repetition penalty, temperature, top-k, top-p, min-p, then a
 * draw from a seeded xoshiro256** generator (order as in HF transformers). */
#include "sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sd.h"

struct sampler {
    sampler_params p;
    int vocab;
    uint64_t s[4];
    int32_t *idx; /* (vocab) */
    int32_t *tmp; /* (vocab) */
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
    s->tmp = xmalloc((size_t)vocab * sizeof *s->tmp);
    return s;
}

void sampler_free(sampler *s) {
    if (!s) return;
    free(s->idx);
    free(s->prob);
    free(s->tmp);
    free(s);
}

/* Sorts idx[0..n) by prob descending, ties by position (stable LSD radix sort
 * on the float bits: probabilities are non-negative, so their bits order them). */
static void sort_desc(const float *prob, int32_t *idx, int32_t *tmp, int n) {
    uint32_t *key = malloc((size_t)n * sizeof *key), *ktmp = malloc((size_t)n * sizeof *ktmp);
    if (!key || !ktmp) abort();
    for (int i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &prob[idx[i]], 4);
        key[i] = ~u;
    }
    for (int shift = 0; shift < 32; shift += 8) {
        int count[257] = {0};
        for (int i = 0; i < n; i++) count[((key[i] >> shift) & 0xff) + 1]++;
        for (int b = 0; b < 256; b++) count[b + 1] += count[b];
        for (int i = 0; i < n; i++) {
            int d = count[(key[i] >> shift) & 0xff]++;
            tmp[d] = idx[i];
            ktmp[d] = key[i];
        }
        memcpy(idx, tmp, (size_t)n * sizeof *idx);
        memcpy(key, ktmp, (size_t)n * sizeof *key);
    }
    free(key);
    free(ktmp);
}

int32_t sampler_sample(sampler *s, float *lg, const int32_t *hist, size_t nh) {
    const int V = s->vocab;
    const sampler_params *p = &s->p;
    if (p->repetition_penalty != 1.0f && hist) {
        size_t from = p->repeat_last_n > 0 && nh > (size_t)p->repeat_last_n ? nh - (size_t)p->repeat_last_n : 0;
        /* Each distinct id once (a quadratic scan over at most repeat_last_n ids). */
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
    /* Probabilities over the whole vocabulary (after temperature). */
    float mx = -INFINITY;
    for (int i = 0; i < V; i++) { lg[i] /= p->temperature; if (lg[i] > mx) mx = lg[i]; }
    double z = 0;
    for (int i = 0; i < V; i++) { s->prob[i] = expf(lg[i] - mx); z += s->prob[i]; }
    for (int i = 0; i < V; i++) s->prob[i] = (float)(s->prob[i] / z);
    /* Candidates: with top-p, only tokens with p >= (1 - top_p) / V can be in the
     * nucleus (the mass below that bound is under 1 - top_p), so only those are sorted. */
    int n = 0;
    float floor_p = p->top_p < 1.0f && p->top_k <= 0 ? (1.0f - p->top_p) / (float)V : 0.0f;
    for (int i = 0; i < V; i++) if (s->prob[i] >= floor_p) s->idx[n++] = i;
    if (n == 0) { n = 1; s->idx[0] = 0; for (int i = 1; i < V; i++) if (s->prob[i] > s->prob[s->idx[0]]) s->idx[0] = i; }
    if (p->top_k > 0 || p->top_p < 1.0f) sort_desc(s->prob, s->idx, s->tmp, n);
    /* Top-k renormalises over its k tokens before the nucleus cut (as HF does);
     * without it the nucleus is cut on the full distribution's mass. */
    double cs = 1.0;
    if (p->top_k > 0 && p->top_k < n) {
        n = p->top_k;
        cs = 0;
        for (int i = 0; i < n; i++) cs += s->prob[s->idx[i]];
    }
    if (p->top_p < 1.0f) { /* smallest prefix whose mass reaches top_p (at least one) */
        double cum = 0;
        int keep = n;
        for (int i = 0; i < n; i++) { cum += s->prob[s->idx[i]] / cs; if (cum >= p->top_p) { keep = i + 1; break; } }
        n = keep;
    }
    if (p->min_p > 0.0f) { /* drop tokens below min_p x the top probability */
        float pm = 0;
        for (int i = 0; i < n; i++) if (s->prob[s->idx[i]] > pm) pm = s->prob[s->idx[i]];
        float thr = p->min_p * pm;
        int m = 0;
        for (int i = 0; i < n; i++) if (s->prob[s->idx[i]] >= thr) s->idx[m++] = s->idx[i];
        n = m;
    }
    double sum = 0;
    for (int i = 0; i < n; i++) sum += s->prob[s->idx[i]];
    double r = (double)(next_u64(s) >> 11) * (1.0 / 9007199254740992.0) * sum, cum = 0;
    for (int i = 0; i < n; i++) { cum += s->prob[s->idx[i]]; if (r < cum) return s->idx[i]; }
    return s->idx[n - 1];
}
