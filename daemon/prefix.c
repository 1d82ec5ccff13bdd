/* prefix.c - LRU prefix cache over a small array (tens of entries at most),
 * keyed by document, reasoning mode and span. */
#include "prefix.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

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

static double unix_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static bool same_key(const prefix_key *a, const prefix_key *b) {
    return a->doc_id == b->doc_id && a->think == b->think && a->start == b->start && a->end == b->end;
}

static long find(const prefix_cache *pc, const prefix_key *key) {
    for (size_t i = 0; i < pc->n; i++)
        if (same_key(&pc->e[i].key, key)) return (long)i;
    return -1;
}

const prefix_entry *prefix_get(prefix_cache *pc, const prefix_key *key) {
    long i = find(pc, key);
    if (i < 0) return NULL;
    pc->e[i].last_used = ++pc->tick;
    pc->e[i].used_at = unix_now();
    pc->e[i].hits++;
    return &pc->e[i];
}

int prefix_evict_lru(prefix_cache *pc, const prefix_key *keep) {
    long best = -1;
    for (size_t i = 0; i < pc->n; i++) {
        if (keep && same_key(&pc->e[i].key, keep)) continue;
        if (best < 0 || pc->e[i].last_used < pc->e[best].last_used) best = (long)i;
    }
    if (best < 0) return 0;
    remove_at(pc, (size_t)best);
    pc->evictions++;
    return 1;
}

int prefix_put(prefix_cache *pc, const prefix_key *key, int seq, size_t n_tokens, size_t bytes) {
    if (bytes > pc->budget) return -1;
    long old = find(pc, key);
    if (old >= 0) remove_at(pc, (size_t)old);
    while (pc->used + bytes > pc->budget && prefix_evict_lru(pc, NULL)) {}
    if (pc->n == pc->cap) {
        pc->cap = pc->cap ? pc->cap * 2 : 8;
        pc->e = xrealloc(pc->e, pc->cap * sizeof *pc->e);
    }
    pc->e[pc->n++] = (prefix_entry){.key = *key, .seq = seq, .n_tokens = n_tokens, .bytes = bytes,
                                    .last_used = ++pc->tick, .used_at = unix_now()};
    pc->used += bytes;
    return 0;
}

void prefix_note_pages(prefix_cache *pc, const prefix_key *key, int first_page, int last_page) {
    long i = find(pc, key);
    if (i < 0) return;
    pc->e[i].first_page = first_page;
    pc->e[i].last_page = last_page;
}

int prefix_drop_doc(prefix_cache *pc, int64_t doc_id) {
    int n = 0;
    for (size_t i = 0; i < pc->n;) {
        if (pc->e[i].key.doc_id == doc_id) { remove_at(pc, i); n++; }
        else i++;
    }
    return n;
}

size_t prefix_count(const prefix_cache *pc) { return pc->n; }
const prefix_entry *prefix_at(const prefix_cache *pc, size_t i) { return i < pc->n ? &pc->e[i] : NULL; }
size_t prefix_used_bytes(const prefix_cache *pc) { return pc->used; }
size_t prefix_budget_bytes(const prefix_cache *pc) { return pc->budget; }
uint64_t prefix_evictions(const prefix_cache *pc) { return pc->evictions; }
