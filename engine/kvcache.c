/* kvcache.c - block pool with reference counts and per-sequence block tables. */
#include "kvcache.h"

#include <stdlib.h>
#include <string.h>

typedef struct kv_seq {
    int used;
    int *blocks;
    int n_blocks, cap;
    size_t len;
} kv_seq;

struct kvcache {
    int n_blocks, block_size;
    int *refs;     /* (n_blocks) */
    int *free_ids; /* stack of free block ids */
    int n_free;
    kv_seq *seqs;
    int n_seqs;
};

kvcache *kvcache_new(int n_blocks, int block_size) {
    kvcache *kv = xcalloc(1, sizeof *kv);
    kv->n_blocks = n_blocks;
    kv->block_size = block_size;
    kv->refs = xcalloc((size_t)n_blocks, sizeof *kv->refs);
    kv->free_ids = xmalloc((size_t)n_blocks * sizeof *kv->free_ids);
    for (int i = 0; i < n_blocks; i++) kv->free_ids[i] = n_blocks - 1 - i;
    kv->n_free = n_blocks;
    return kv;
}

void kvcache_free(kvcache *kv) {
    if (!kv) return;
    for (int i = 0; i < kv->n_seqs; i++) free(kv->seqs[i].blocks);
    free(kv->seqs);
    free(kv->free_ids);
    free(kv->refs);
    free(kv);
}

int kvcache_block_size(const kvcache *kv) { return kv->block_size; }
int kvcache_n_blocks(const kvcache *kv) { return kv->n_blocks; }
int kvcache_free_blocks(const kvcache *kv) { return kv->n_free; }
int kvcache_block_refs(const kvcache *kv, int b) { return b >= 0 && b < kv->n_blocks ? kv->refs[b] : 0; }

static int block_alloc(kvcache *kv) {
    if (!kv->n_free) return -1;
    int b = kv->free_ids[--kv->n_free];
    kv->refs[b] = 1;
    return b;
}

static void block_unref(kvcache *kv, int b) {
    if (--kv->refs[b] == 0) kv->free_ids[kv->n_free++] = b;
}

static kv_seq *get(const kvcache *kv, int seq) {
    return seq >= 0 && seq < kv->n_seqs && kv->seqs[seq].used ? &kv->seqs[seq] : NULL;
}

int kvcache_seq_new(kvcache *kv) {
    int id;
    for (id = 0; id < kv->n_seqs; id++) if (!kv->seqs[id].used) break;
    if (id == kv->n_seqs) {
        if (kv->n_seqs >= 1 << 20) return SD_ENOMEM;
        kv->seqs = xrealloc(kv->seqs, (size_t)(kv->n_seqs + 1) * sizeof *kv->seqs);
        kv->n_seqs++;
    }
    memset(&kv->seqs[id], 0, sizeof kv->seqs[id]);
    kv->seqs[id].used = 1;
    return id;
}

int kvcache_seq_fork(kvcache *kv, int src) {
    if (!get(kv, src)) return SD_EINVAL;
    int id = kvcache_seq_new(kv);
    if (id < 0) return id;
    kv_seq *s = &kv->seqs[src], *d = &kv->seqs[id]; /* re-read: seqs may have moved */
    d->cap = s->n_blocks ? s->n_blocks : 1;
    d->blocks = xmalloc((size_t)d->cap * sizeof *d->blocks);
    memcpy(d->blocks, s->blocks, (size_t)s->n_blocks * sizeof *d->blocks);
    d->n_blocks = s->n_blocks;
    d->len = s->len;
    for (int i = 0; i < d->n_blocks; i++) kv->refs[d->blocks[i]]++;
    return id;
}

void kvcache_seq_free(kvcache *kv, int seq) {
    kv_seq *s = get(kv, seq);
    if (!s) return;
    for (int i = 0; i < s->n_blocks; i++) block_unref(kv, s->blocks[i]);
    free(s->blocks);
    memset(s, 0, sizeof *s);
}

size_t kvcache_seq_len(const kvcache *kv, int seq) {
    kv_seq *s = get(kv, seq);
    return s ? s->len : 0;
}

int kvcache_seq_truncate(kvcache *kv, int seq, size_t len) {
    kv_seq *s = get(kv, seq);
    if (!s) return SD_EINVAL;
    if (len >= s->len) return 0;
    int keep = (int)((len + (size_t)kv->block_size - 1) / (size_t)kv->block_size);
    while (s->n_blocks > keep) block_unref(kv, s->blocks[--s->n_blocks]);
    s->len = len;
    return 0;
}

int kvcache_seq_reserve(kvcache *kv, int seq, size_t n, int *cow_src, int *cow_dst) {
    kv_seq *s = get(kv, seq);
    *cow_src = *cow_dst = -1;
    if (!s) return SD_EINVAL;
    size_t bs = (size_t)kv->block_size;
    int need = (int)((s->len + n + bs - 1) / bs) - s->n_blocks;
    int cow = (s->len % bs) && s->n_blocks && kv->refs[s->blocks[s->n_blocks - 1]] > 1 && n > 0;
    if (need + cow > kv->n_free) return SD_ENOMEM;
    if (need > 0 && s->n_blocks + need > s->cap) {
        s->cap = s->n_blocks + need + 8;
        s->blocks = xrealloc(s->blocks, (size_t)s->cap * sizeof *s->blocks);
    }
    if (cow) {
        int old = s->blocks[s->n_blocks - 1], nb = block_alloc(kv);
        block_unref(kv, old);
        s->blocks[s->n_blocks - 1] = nb;
        *cow_src = old;
        *cow_dst = nb;
    }
    for (int i = 0; i < need; i++) s->blocks[s->n_blocks++] = block_alloc(kv);
    return 0;
}

void kvcache_seq_advance(kvcache *kv, int seq, size_t n) {
    kv_seq *s = get(kv, seq);
    if (s) s->len += n;
}

const int *kvcache_seq_blocks(const kvcache *kv, int seq, int *n_blocks) {
    kv_seq *s = get(kv, seq);
    *n_blocks = s ? s->n_blocks : 0;
    return s ? s->blocks : NULL;
}
