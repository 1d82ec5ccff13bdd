/* prefix.h - the document prefix cache: for each (document, reasoning mode)
 * the KV sequence holding its prefilled prefix (system block + document),
 * under a byte budget, least recently used evicted first. The owner (the
 * engine worker) frees evicted sequences through a callback. Not thread-safe:
 * one thread owns it. */
#ifndef PREFIX_H
#define PREFIX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct prefix_cache prefix_cache;

typedef struct prefix_entry {
    int64_t doc_id;
    bool think;
    int seq;            /* engine sequence holding the prefix */
    size_t n_tokens;
    size_t bytes;       /* KV bytes of the prefix */
    uint64_t last_used; /* tick of the last get/put */
    uint64_t hits;      /* times reused */
} prefix_entry;

/* Called for every entry that leaves the cache (eviction, drop, free). */
typedef void (*prefix_release_fn)(void *ud, int seq);

/* A cache holding at most budget_bytes of prefixes. release may be NULL. */
prefix_cache *prefix_cache_new(size_t budget_bytes, prefix_release_fn release, void *ud);

/* Releases every entry and frees the cache; NULL is fine. */
void prefix_cache_free(prefix_cache *pc);

/* The entry for (doc_id, think), marked most recently used, or NULL.
 * Borrowed: valid until the next call that changes the cache. */
const prefix_entry *prefix_get(prefix_cache *pc, int64_t doc_id, bool think);

/* Adds an entry (replacing one with the same key), evicting least recently
 * used entries until it fits. Returns 0 when cached (the cache now owns seq),
 * or -1 when bytes alone exceed the budget (nothing changed; the caller
 * keeps seq). */
int prefix_put(prefix_cache *pc, int64_t doc_id, bool think, int seq, size_t n_tokens, size_t bytes);

/* Evicts the least recently used entry, except (keep_doc, keep_think) when
 * keep_doc >= 0. Returns 1 if one was evicted, 0 if there was none. */
int prefix_evict_lru(prefix_cache *pc, int64_t keep_doc, bool keep_think);

/* Drops every entry of a document (deleted). Returns how many. */
int prefix_drop_doc(prefix_cache *pc, int64_t doc_id);

/* Number of entries, entry i (0..count-1, unordered), bytes in use, budget. */
size_t prefix_count(const prefix_cache *pc);
const prefix_entry *prefix_at(const prefix_cache *pc, size_t i);
size_t prefix_used_bytes(const prefix_cache *pc);
size_t prefix_budget_bytes(const prefix_cache *pc);
/* Entries evicted so far because of the budget or memory pressure. */
uint64_t prefix_evictions(const prefix_cache *pc);

#endif
