/* engine.c - ties model, backend and KV bookkeeping together; chunked prefill. */
#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvcache.h"

#ifdef SD_CUDA
#include <dlfcn.h>
#include <libgen.h>
#include <limits.h>

#include "cuda/cuda_sample.h"

typedef int (*cuda_new_fn)(const model *, const backend_params *, backend **, sd_err *);
typedef int (*cuda_sample_fn)(backend *, const cuda_sample_params *, uint64_t *, int32_t *, sd_err *);
typedef uint64_t (*cuda_seed_fn)(uint64_t);
static void *cuda_handle; /* the plugin, kept for the life of the process */

/* The CUDA backend plugin: $SMOLDOC_CUDA_LIB, else libsmoldoc_cuda.so beside the
 * executable or one folder up (tests), else the installed copy. The handle is
 * kept for the life of the process. */
static cuda_new_fn cuda_plugin(char *why, size_t wlen) {
    void *h = cuda_handle;
    const char *env = getenv("SMOLDOC_CUDA_LIB");
    char exe[PATH_MAX], cand[4][PATH_MAX + 64];
    int nc = 0;
    if (env && *env) snprintf(cand[nc++], sizeof cand[0], "%s", env);
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *d = dirname(exe);
        snprintf(cand[nc++], sizeof cand[0], "%s/libsmoldoc_cuda.so", d);
        snprintf(cand[nc++], sizeof cand[0], "%s/../libsmoldoc_cuda.so", d);
    }
    snprintf(cand[nc++], sizeof cand[0], "%s", SD_CUDA_PLUGIN_INSTALLED);
    const char *last = "not found";
    for (int i = 0; i < nc && !h; i++) {
        if (access(cand[i], R_OK) != 0) continue;
        h = dlopen(cand[i], RTLD_NOW | RTLD_LOCAL);
        if (!h) last = dlerror();
    }
    if (!h) { snprintf(why, wlen, "CUDA plugin libsmoldoc_cuda.so: %.180s", last); return NULL; }
    cuda_handle = h;
    cuda_new_fn f = (cuda_new_fn)dlsym(h, "backend_cuda_new");
    if (!f) snprintf(why, wlen, "CUDA plugin lacks backend_cuda_new");
    return f;
}
#endif

struct engine {
    engine_params p;
    model *m;
    backend *b;
    kvcache *kv;
    float *scratch_logits; /* (vocab): logits of chunks whose logits are not wanted */
    char reason[256];
#ifdef SD_CUDA
    cuda_sample_fn dev_sample; /* the plugin's sampler, when the backend is CUDA and it is enabled */
    cuda_seed_fn dev_seed;
#endif
};

engine_params engine_params_default(void) {
    engine_params p = {0};
    p.backend = "auto";
    p.kv_block_size = 256;
    p.kv_dtype = SD_DT_BF16;
    p.max_batch = 256;
    return p;
}

engine *engine_new(const engine_params *pp, sd_err *err) {
    engine *e = xcalloc(1, sizeof *e);
    e->p = *pp;
    engine_params *p = &e->p;
    if (!p->backend) p->backend = "auto";
    if (p->kv_block_size <= 0) p->kv_block_size = 256;
    if (p->max_batch <= 0) p->max_batch = 256;
    if (!p->model_dir) { sd_seterr(err, SD_EINVAL, "engine: no model directory given"); goto fail; }
    if (model_load(p->model_dir, &e->m, err)) goto fail;
    const model_config *c = &e->m->cfg;
    if (p->max_ctx <= 0 || p->max_ctx > c->max_pos) p->max_ctx = c->max_pos;
    size_t tok_bytes = backend_kv_token_bytes(c, p->kv_dtype);
    size_t blk_bytes = tok_bytes * (size_t)p->kv_block_size;
    size_t n_blocks = p->kv_budget_bytes ? p->kv_budget_bytes / blk_bytes
                                          : ((size_t)p->max_ctx + (size_t)p->kv_block_size - 1) / (size_t)p->kv_block_size + 1;
    if (n_blocks < 1 || n_blocks > (1u << 30)) {
        sd_seterr(err, SD_EINVAL, "engine: KV budget gives %zu blocks of %zu bytes", n_blocks, blk_bytes);
        goto fail;
    }
    backend_params bp = {.n_threads = p->n_threads, .device = p->device, .kv_block_size = p->kv_block_size,
                         .kv_blocks = (int)n_blocks, .kv_dtype = p->kv_dtype, .max_batch = p->max_batch,
                         .compute_fast = p->compute_fast};
    int want_cuda = !strcmp(p->backend, "cuda"), want_auto = !strcmp(p->backend, "auto");
    if (!want_cuda && !want_auto && strcmp(p->backend, "cpu")) {
        sd_seterr(err, SD_EINVAL, "engine: unknown backend '%s' (auto, cpu, cuda)", p->backend);
        goto fail;
    }
    if (want_cuda || want_auto) {
#ifdef SD_CUDA
        sd_err cerr = {0};
        cuda_new_fn cnew = NULL;
        if (want_auto && access("/dev/nvidiactl", F_OK) != 0) { /* spare the driver probe (seconds) */
            snprintf(e->reason, sizeof e->reason, "CPU: no NVIDIA device (/dev/nvidiactl absent)");
        } else if ((cnew = cuda_plugin(cerr.msg, sizeof cerr.msg)) == NULL) {
            if (want_cuda) { sd_seterr(err, SD_ENOTSUP, "engine: %s", cerr.msg); goto fail; }
            snprintf(e->reason, sizeof e->reason, "CPU: %.200s", cerr.msg);
        } else if (cnew(e->m, &bp, &e->b, &cerr) == 0) {
            snprintf(e->reason, sizeof e->reason, "CUDA device %d", p->device);
            /* Sampling on the device is off until this path has run on a GPU
             * (engine/cuda/NOTES.md); SMOLDOC_DEVICE_SAMPLE=1 turns it on. */
            const char *ds = getenv("SMOLDOC_DEVICE_SAMPLE");
            if (ds && !strcmp(ds, "1")) {
                e->dev_sample = (cuda_sample_fn)dlsym(cuda_handle, "cuda_sample_last");
                e->dev_seed = (cuda_seed_fn)dlsym(cuda_handle, "cuda_sample_seed");
                if (!e->dev_seed) e->dev_sample = NULL;
            }
        } else if (want_cuda) {
            sd_seterr(err, cerr.code, "%s", cerr.msg);
            goto fail;
        } else {
            snprintf(e->reason, sizeof e->reason, "CPU: %.200s", cerr.msg);
        }
#else
        if (want_cuda) { sd_seterr(err, SD_ENOTSUP, "engine: this build has no CUDA backend (build with make CUDA=1)"); goto fail; }
        snprintf(e->reason, sizeof e->reason, "CPU: built without CUDA");
#endif
    } else {
        snprintf(e->reason, sizeof e->reason, "CPU: requested");
    }
    if (!e->b) {
        if (!p->weights_mmap || p->weights_q8_0) {
            sd_err merr = {0};
            if (model_materialize(e->m, p->weights_q8_0, &merr)) /* not fatal: compute from the mapping */
                snprintf(e->reason + strlen(e->reason), sizeof e->reason - strlen(e->reason), " (weights mapped: %.100s)", merr.msg);
        }
        { /* Q8_0 weights are never file-mapped (GGUF and --weights q8_0 both copy) */
            sd_err qerr = {0};
            if (model_repack_q8(e->m, &qerr)) /* not fatal: the scalar kernels read GGUF's blocks */
                snprintf(e->reason + strlen(e->reason), sizeof e->reason - strlen(e->reason), " (Q8_0 not repacked: %.100s)", qerr.msg);
        }
        model_pack_bf16(e->m); /* BF16 in RAM (not file-mapped) */
        if (backend_cpu_new(e->m, &bp, &e->b, err)) goto fail;
    }
    e->kv = kvcache_new((int)n_blocks, p->kv_block_size);
    e->scratch_logits = xmalloc((size_t)c->vocab * sizeof(float));
    return e;
fail:
    engine_free(e);
    return NULL;
}

void engine_free(engine *e) {
    if (!e) return;
    if (e->b) e->b->ops->free(e->b);
    kvcache_free(e->kv);
    free(e->scratch_logits);
    model_free(e->m);
    free(e);
}

const model_config *engine_config(const engine *e) { return &e->m->cfg; }
const char *engine_backend_name(const engine *e) { return e->b->ops->name; }
const char *engine_backend_reason(const engine *e) { return e->reason; }
const engine_params *engine_params_get(const engine *e) { return &e->p; }
int engine_seq_new(engine *e) { return kvcache_seq_new(e->kv); }
int engine_seq_fork(engine *e, int src) { return kvcache_seq_fork(e->kv, src); }
void engine_seq_free(engine *e, int seq) { kvcache_seq_free(e->kv, seq); }
size_t engine_seq_len(const engine *e, int seq) { return kvcache_seq_len(e->kv, seq); }
int engine_seq_truncate(engine *e, int seq, size_t len) { return kvcache_seq_truncate(e->kv, seq, len); }

void engine_kv_usage(const engine *e, int *used, int *total, int *bs) {
    if (total) *total = kvcache_n_blocks(e->kv);
    if (used) *used = kvcache_n_blocks(e->kv) - kvcache_free_blocks(e->kv);
    if (bs) *bs = kvcache_block_size(e->kv);
}

size_t engine_weight_bytes(const engine *e) { return model_weight_bytes(e->m); }

int engine_forward(engine *e, int seq, const int32_t *tokens, size_t n, float *logits, int flags,
                   engine_progress_fn progress, void *ud, sd_err *err) {
    const model_config *c = &e->m->cfg;
    const int all_logits = flags & ENGINE_LOGITS_ALL, on_device = (flags & ENGINE_LOGITS_DEVICE) && !all_logits;
    size_t len = kvcache_seq_len(e->kv, seq);
    if (len + n > (size_t)e->p.max_ctx)
        return sd_seterr(err, SD_ERANGE, "engine: %zu + %zu tokens exceed the context of %d", len, n, e->p.max_ctx);
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= c->vocab)
            return sd_seterr(err, SD_EINVAL, "engine: token id %d at index %zu outside the vocabulary (0..%d)", tokens[i], i, c->vocab - 1);
    size_t done = 0;
    while (done < n) {
        size_t chunk = n - done < (size_t)e->p.max_batch ? n - done : (size_t)e->p.max_batch;
        int cs, cd, rc = kvcache_seq_reserve(e->kv, seq, chunk, &cs, &cd);
        if (rc == SD_EINVAL) return sd_seterr(err, rc, "engine: unknown sequence %d", seq);
        if (rc) return sd_seterr(err, rc, "engine: KV pool full (%d blocks of %d tokens)", kvcache_n_blocks(e->kv), kvcache_block_size(e->kv));
        if (cs >= 0 && (rc = e->b->ops->kv_copy(e->b, cd, cs, err))) return rc;
        int nt;
        const int *table = kvcache_seq_blocks(e->kv, seq, &nt);
        int last = done + chunk == n;
        backend_batch bt = {
            .tokens = tokens + done, .n = chunk, .pos0 = len + done, .block_table = table, .n_table = nt,
            .logits = all_logits ? (logits ? logits + done * (size_t)c->vocab : NULL) : logits,
            .all_logits = all_logits && logits,
        };
        if (!logits || (!all_logits && !last) || on_device) { /* logits not wanted here */
            bt.logits = e->scratch_logits;
            bt.all_logits = 0;
            /* nobody reads them on the host: a device backend may keep them
             * (the last chunk's, when on_device, for engine_sample_device) */
            bt.device_logits = 1;
        }
        rc = e->b->ops->forward(e->b, &bt, err);
        if (rc) {
            kvcache_seq_truncate(e->kv, seq, len + done); /* drop reserved, unwritten blocks */
            return rc;
        }
        kvcache_seq_advance(e->kv, seq, chunk);
        done += chunk;
        if (progress && progress(ud, done, n) && done < n)
            return sd_seterr(err, SD_ECANCELED, "engine: canceled after %zu of %zu tokens", done, n);
    }
    return 0;
}

int engine_can_sample_device(const engine *e, const sampler_params *p) {
#ifdef SD_CUDA
    return e->dev_sample && p->repetition_penalty == 1.0f;
#else
    (void)e; (void)p;
    return 0;
#endif
}

uint64_t engine_sample_device_seed(const engine *e, uint64_t seed) {
#ifdef SD_CUDA
    if (e->dev_seed) return e->dev_seed(seed);
#endif
    (void)e;
    return seed;
}

int engine_sample_device(engine *e, const sampler_params *p, uint64_t *rng, int32_t *tok, sd_err *err) {
    if (!engine_can_sample_device(e, p))
        return sd_seterr(err, SD_ENOTSUP, "engine: this backend cannot sample on its device with these settings");
#ifdef SD_CUDA
    cuda_sample_params cp = {p->temperature, p->top_k, p->top_p, p->min_p};
    return e->dev_sample(e->b, &cp, rng, tok, err);
#else
    (void)rng; (void)tok;
    return SD_ENOTSUP;
#endif
}
