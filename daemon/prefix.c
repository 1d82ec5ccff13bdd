/* prefix.c - LRU prefix cache over a small array (tens of entries at most). */
#include "prefix.h"

#include <stdlib.h>
#include <string.h>

#include "sd.h"

struct prefix_cache {
    prefix_entry *e;
    size_t n, cap;
    size_t budget, used;
    uint64_t tick, evictions;
    prefix_release_fn release;
    void *ud;
};

prefix_cache *prefix_cache_new(size_t budget_bytes, prefix_release_fn release, void *ud) {
    prefix_cache *pc = xcalloc(1, sizeof *pc);
    pc->budget = budget_bytes;
    pc->release = release;
    pc->ud = ud;
    return pc;
}

static void remove_at(prefix_cache *pc, size_t i) {
    if (pc->release) pc->release(pc->ud, pc->e[i].seq);
    pc->used -= pc->e[i].bytes;
    pc->e[i] = pc->e[--pc->n];
}

void prefix_cache_free(prefix_cache *pc) {
    if (!pc) return;
    while (pc->n) remove_at(pc, pc->n - 1);
    free(pc->e);
    free(pc);
}

static long find(const prefix_cache *pc, int64_t doc_id, bool think) {
    for (size_t i = 0; i < pc->n; i++)
        if (pc->e[i].doc_id == doc_id && pc->e[i].think == think) return (long)i;
    return -1;
}

const prefix_entry *prefix_get(prefix_cache *pc, int64_t doc_id, bool think) {
    long i = find(pc, doc_id, think);
    if (i < 0) return NULL;
    pc->e[i].last_used = ++pc->tick;
    pc->e[i].hits++;
    return &pc->e[i];
}

int prefix_evict_lru(prefix_cache *pc, int64_t keep_doc, bool keep_think) {
    long best = -1;
    for (size_t i = 0; i < pc->n; i++) {
        if (keep_doc >= 0 && pc->e[i].doc_id == keep_doc && pc->e[i].think == keep_think) continue;
        if (best < 0 || pc->e[i].last_used < pc->e[best].last_used) best = (long)i;
    }
    if (best < 0) return 0;
    remove_at(pc, (size_t)best);
    pc->evictions++;
    return 1;
}

int prefix_put(prefix_cache *pc, int64_t doc_id, bool think, int seq, size_t n_tokens, size_t bytes) {
    if (bytes > pc->budget) return -1;
    long old = find(pc, doc_id, think);
    if (old >= 0) remove_at(pc, (size_t)old);
    while (pc->used + bytes > pc->budget && prefix_evict_lru(pc, -1, false)) {}
    if (pc->n == pc->cap) {
        pc->cap = pc->cap ? pc->cap * 2 : 8;
        pc->e = xrealloc(pc->e, pc->cap * sizeof *pc->e);
    }
    pc->e[pc->n++] = (prefix_entry){.doc_id = doc_id, .think = think, .seq = seq, .n_tokens = n_tokens,
                                    .bytes = bytes, .last_used = ++pc->tick};
    pc->used += bytes;
    return 0;
}

int prefix_drop_doc(prefix_cache *pc, int64_t doc_id) {
    int n = 0;
    for (size_t i = 0; i < pc->n;) {
        if (pc->e[i].doc_id == doc_id) { remove_at(pc, i); n++; }
        else i++;
    }
    return n;
}

size_t prefix_count(const prefix_cache *pc) { return pc->n; }
const prefix_entry *prefix_at(const prefix_cache *pc, size_t i) { return i < pc->n ? &pc->e[i] : NULL; }
size_t prefix_used_bytes(const prefix_cache *pc) { return pc->used; }
size_t prefix_budget_bytes(const prefix_cache *pc) { return pc->budget; }
uint64_t prefix_evictions(const prefix_cache *pc) { return pc->evictions; }
