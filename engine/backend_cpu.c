/* backend_cpu.c - the reference CPU backend: SmolLM3's forward pass over a
 * paged KV cache (SPEC section 2): RMSNorm, GQA attention with half-split RoPE
 * (skipped on NoPE layers, YaRN when configured), SwiGLU, tied head. */
#include "backend.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "attn_cpu.h"
#include "kernels.h"

typedef struct cpu_backend {
    backend base;
    uint8_t *kv;        /* (kv_blocks, n_layer, 2, block_size, n_kv_head * head_dim) in kv_dtype */
    size_t kv_bytes;
    size_t block_bytes; /* one block over all layers */
    double *inv_freq;   /* (head_dim / 2) */
    double attn_factor;
    /* scratch, sized for max_batch tokens */
    float *x, *h, *q, *k, *v, *att, *g, *u; /* (max_batch, ...) */
    float *cosb, *sinb;                     /* (max_batch, head_dim / 2) */
    float *norms;       /* f32 norm weights: (n_layer, 2, hidden) then final (hidden) */
    attn_cpu *attn;     /* attention scratch, per thread */
    int n_threads;
    kern_compute mode;
} cpu_backend;

size_t backend_kv_token_bytes(const model_config *c, sd_dtype dt) {
    return (size_t)c->n_layer * 2 * (size_t)c->n_kv_head * (size_t)c->head_dim * (dt == SD_DT_F32 ? 4 : 2);
}

/* Pointer to the K (which=0) or V (1) row of token slot `off` of block b, layer l. */
static inline uint8_t *kv_row(cpu_backend *cb, int b, int l, int which, size_t off) {
    const model_config *c = &cb->base.m->cfg;
    size_t es = cb->base.p.kv_dtype == SD_DT_F32 ? 4 : 2, kvd = (size_t)c->n_kv_head * c->head_dim;
    size_t bs = (size_t)cb->base.p.kv_block_size;
    return cb->kv + (size_t)b * cb->block_bytes + (((size_t)l * 2 + (size_t)which) * bs + off) * kvd * es;
}

static void rope_apply(float *v, int n_heads, int hd, const float *cs, const float *sn) {
    int half = hd / 2;
    for (int h = 0; h < n_heads; h++) {
        float *p = v + (size_t)h * hd;
        for (int i = 0; i < half; i++) {
            float a = p[i], b = p[i + half];
            p[i] = a * cs[i] - b * sn[i];
            p[i + half] = b * cs[i] + a * sn[i];
        }
    }
}

static void kv_put(uint8_t *row, const float *src, int n, sd_dtype dt) {
    if (dt == SD_DT_F32) { memcpy(row, src, (size_t)n * 4); return; }
    uint16_t *d = (uint16_t *)row;
    for (int i = 0; i < n; i++) d[i] = f32_to_bf16(src[i]);
}

/* Causal attention of the batch's queries over the cached positions [0, pos0 + t]
 * of layer l (attn_cpu.c has the tiling). */
static void attention(cpu_backend *cb, int l, const backend_batch *bt) {
    const model_config *c = &cb->base.m->cfg;
    attn_cpu_kv kv = {
        .k = kv_row(cb, 0, l, 0, 0),
        .v = kv_row(cb, 0, l, 1, 0),
        .block_stride = cb->block_bytes,
        .row_stride = (size_t)c->n_kv_head * c->head_dim * (cb->base.p.kv_dtype == SD_DT_F32 ? 4 : 2),
        .block_size = cb->base.p.kv_block_size,
        .block_table = bt->block_table,
        .dtype = cb->base.p.kv_dtype,
    };
    attn_cpu_run(cb->attn, cb->att, cb->q, bt->n, bt->pos0, &kv);
}

static int cpu_forward(backend *b, const backend_batch *bt, sd_err *err) {
    cpu_backend *cb = (cpu_backend *)b;
    const model *m = b->m;
    const model_config *c = &m->cfg;
    const size_t n = bt->n, H = (size_t)c->hidden, hd = (size_t)c->head_dim, half = hd / 2;
    const size_t qd = (size_t)c->n_head * hd, kvd = (size_t)c->n_kv_head * hd, I = (size_t)c->inter;
    const size_t bs = (size_t)b->p.kv_block_size;
    if (n == 0) return 0;
    if (n > (size_t)b->p.max_batch)
        return sd_seterr(err, SD_EINVAL, "backend_cpu: batch of %zu tokens exceeds max_batch %d", n, b->p.max_batch);
    if ((bt->pos0 + n + bs - 1) / bs > (size_t)bt->n_table)
        return sd_seterr(err, SD_EINVAL, "backend_cpu: block table too short for %zu tokens", bt->pos0 + n);
    for (size_t t = 0; t < n; t++) {
        if (bt->tokens[t] < 0 || bt->tokens[t] >= c->vocab)
            return sd_seterr(err, SD_EINVAL, "backend_cpu: token id %d outside the vocabulary (%d)", bt->tokens[t], c->vocab);
        kern_row_f32(cb->x + t * H, &m->embed, bt->tokens[t]);
    }
    for (size_t t = 0; t < n; t++) /* cos/sin at each position, cast to f32 as HF does */
        for (size_t i = 0; i < half; i++) {
            double a = (double)(bt->pos0 + t) * cb->inv_freq[i];
            cb->cosb[t * half + i] = (float)(cos(a) * cb->attn_factor);
            cb->sinb[t * half + i] = (float)(sin(a) * cb->attn_factor);
        }
    for (int l = 0; l < c->n_layer; l++) {
        const model_layer *L = &m->layers[l];
        kern_rmsnorm(cb->h, cb->x, n, cb->norms + (size_t)l * 2 * H, H, c->rms_eps);
        kern_matmul(cb->q, cb->h, n, &L->wq, 0, cb->mode);
        kern_matmul(cb->k, cb->h, n, &L->wk, 0, cb->mode);
        kern_matmul(cb->v, cb->h, n, &L->wv, 0, cb->mode);
        for (size_t t = 0; t < n; t++) {
            if (c->use_rope[l]) {
                rope_apply(cb->q + t * qd, c->n_head, (int)hd, cb->cosb + t * half, cb->sinb + t * half);
                rope_apply(cb->k + t * kvd, c->n_kv_head, (int)hd, cb->cosb + t * half, cb->sinb + t * half);
            }
            size_t p = bt->pos0 + t;
            int blk = bt->block_table[p / bs];
            kv_put(kv_row(cb, blk, l, 0, p % bs), cb->k + t * kvd, (int)kvd, b->p.kv_dtype);
            kv_put(kv_row(cb, blk, l, 1, p % bs), cb->v + t * kvd, (int)kvd, b->p.kv_dtype);
        }
        attention(cb, l, bt);
        kern_matmul(cb->x, cb->att, n, &L->wo, 1, cb->mode);
        kern_rmsnorm(cb->h, cb->x, n, cb->norms + ((size_t)l * 2 + 1) * H, H, c->rms_eps);
        kern_matmul(cb->g, cb->h, n, &L->gate, 0, cb->mode);
        kern_matmul(cb->u, cb->h, n, &L->up, 0, cb->mode);
        for (size_t i = 0; i < n * I; i++) {
            float gv = cb->g[i];
            cb->g[i] = gv / (1.0f + expf(-gv)) * cb->u[i];
        }
        kern_matmul(cb->x, cb->g, n, &L->down, 1, cb->mode);
    }
    if (bt->all_logits) {
        kern_rmsnorm(cb->h, cb->x, n, cb->norms + (size_t)c->n_layer * 2 * H, H, c->rms_eps);
        kern_matmul(bt->logits, cb->h, n, &m->lm_head, 0, cb->mode);
    } else {
        kern_rmsnorm(cb->h, cb->x + (n - 1) * H, 1, cb->norms + (size_t)c->n_layer * 2 * H, H, c->rms_eps);
        kern_matmul(bt->logits, cb->h, 1, &m->lm_head, 0, cb->mode);
    }
    return 0;
}

static int cpu_kv_copy(backend *b, int dst, int src, sd_err *err) {
    cpu_backend *cb = (cpu_backend *)b;
    if (dst < 0 || src < 0 || dst >= b->p.kv_blocks || src >= b->p.kv_blocks)
        return sd_seterr(err, SD_EINVAL, "backend_cpu: kv_copy block out of range");
    memcpy(cb->kv + (size_t)dst * cb->block_bytes, cb->kv + (size_t)src * cb->block_bytes, cb->block_bytes);
    return 0;
}

static void cpu_mem_info(backend *b, size_t *kv_bytes, size_t *weight_bytes) {
    cpu_backend *cb = (cpu_backend *)b;
    if (kv_bytes) *kv_bytes = cb->kv_bytes;
    if (weight_bytes) *weight_bytes = model_weight_bytes(b->m);
}

static void cpu_free(backend *b) {
    cpu_backend *cb = (cpu_backend *)b;
    if (!cb) return;
    free(cb->kv);
    free(cb->inv_freq);
    free(cb->x); free(cb->h); free(cb->q); free(cb->k); free(cb->v);
    free(cb->att); free(cb->g); free(cb->u); free(cb->cosb); free(cb->sinb);
    free(cb->norms);
    attn_cpu_free(cb->attn);
    free(cb);
}

static const backend_ops cpu_ops = {"cpu", cpu_forward, cpu_kv_copy, cpu_mem_info, cpu_free};

static float *alloc_f(size_t a, size_t b, int *bad) {
    size_t n;
    if (sd_mul_overflow(a, b, &n) || sd_mul_overflow(n, sizeof(float), &n)) { *bad = 1; return NULL; }
    float *p = malloc(n ? n : 1);
    if (!p) *bad = 1;
    return p;
}

int backend_cpu_new(const model *m, const backend_params *p, backend **out, sd_err *err) {
    const model_config *c = &m->cfg;
    *out = NULL;
    if (p->kv_dtype != SD_DT_F32 && p->kv_dtype != SD_DT_BF16)
        return sd_seterr(err, SD_EINVAL, "backend_cpu: KV dtype %s not supported (F32, BF16 are)", dtype_name(p->kv_dtype));
    if (p->kv_block_size < 1 || p->kv_blocks < 1 || p->max_batch < 1)
        return sd_seterr(err, SD_EINVAL, "backend_cpu: block size, block count and max batch must be positive");
    cpu_backend *cb = xcalloc(1, sizeof *cb);
    cb->base.ops = &cpu_ops;
    cb->base.m = m;
    cb->base.p = *p;
    if (p->n_threads > 0) omp_set_num_threads(p->n_threads);
    cb->block_bytes = backend_kv_token_bytes(c, p->kv_dtype) * (size_t)p->kv_block_size;
    int bad = 0;
    if (sd_mul_overflow(cb->block_bytes, (size_t)p->kv_blocks, &cb->kv_bytes)) bad = 1;
    else if (!(cb->kv = malloc(cb->kv_bytes))) bad = 1;
    if (bad) {
        cpu_free(&cb->base);
        return sd_seterr(err, SD_ENOMEM, "backend_cpu: cannot allocate the KV pool (%d blocks of %zu bytes)", p->kv_blocks, cb->block_bytes);
    }
    size_t B = (size_t)p->max_batch, qd = (size_t)c->n_head * c->head_dim, kvd = (size_t)c->n_kv_head * c->head_dim;
    cb->x = alloc_f(B, (size_t)c->hidden, &bad);
    cb->h = alloc_f(B, (size_t)c->hidden, &bad);
    cb->q = alloc_f(B, qd, &bad);
    cb->att = alloc_f(B, qd, &bad);
    cb->k = alloc_f(B, kvd, &bad);
    cb->v = alloc_f(B, kvd, &bad);
    cb->g = alloc_f(B, (size_t)c->inter, &bad);
    cb->u = alloc_f(B, (size_t)c->inter, &bad);
    cb->cosb = alloc_f(B, (size_t)c->head_dim / 2, &bad);
    cb->sinb = alloc_f(B, (size_t)c->head_dim / 2, &bad);
    if (bad) {
        cpu_free(&cb->base);
        return sd_seterr(err, SD_ENOMEM, "backend_cpu: cannot allocate scratch for %d tokens", p->max_batch);
    }
    cb->n_threads = p->n_threads > 0 ? p->n_threads : omp_get_max_threads();
    cb->mode = p->compute_fast ? KERN_COMPUTE_FAST : KERN_COMPUTE_EXACT;
    size_t Hd = (size_t)c->hidden;
    cb->norms = alloc_f((size_t)c->n_layer * 2 + 1, Hd, &bad);
    cb->attn = attn_cpu_new(c->n_head, c->n_kv_head, c->head_dim, cb->n_threads);
    if (bad || !cb->attn) {
        cpu_free(&cb->base);
        return sd_seterr(err, SD_ENOMEM, "backend_cpu: cannot allocate norm weights and attention scratch");
    }
    for (int l = 0; l < c->n_layer; l++) {
        kern_to_f32(cb->norms + (size_t)l * 2 * Hd, m->layers[l].attn_norm.data, m->layers[l].attn_norm.dtype, Hd);
        kern_to_f32(cb->norms + ((size_t)l * 2 + 1) * Hd, m->layers[l].ffn_norm.data, m->layers[l].ffn_norm.dtype, Hd);
    }
    kern_to_f32(cb->norms + (size_t)c->n_layer * 2 * Hd, m->norm.data, m->norm.dtype, Hd);
    cb->inv_freq = xmalloc((size_t)c->head_dim / 2 * sizeof(double));
    model_rope_freqs(c, cb->inv_freq, &cb->attn_factor);
    *out = &cb->base;
    return 0;
}
