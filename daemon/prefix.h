/* prefix.h - the document prefix cache: for each (document, reasoning mode,
 * span of the document) the KV sequence holding its prefilled prefix (system
 * block + the document or one window of it), under a byte budget, least
 * recently used evicted first. The owner (the engine worker) frees evicted
 * sequences through a callback. Not thread-safe: one thread owns it. */
#ifndef PREFIX_H
#define PREFIX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct prefix_cache prefix_cache;

/* What a prefix holds: [start, end) bytes of a document's text; start = end
 * = 0 means the whole document. */
typedef struct prefix_key {
    int64_t doc_id;
    bool think;
    size_t start, end;
} prefix_key;

typedef struct prefix_entry {
    prefix_key key;
    int seq;            /* engine sequence holding the prefix */
    size_t n_tokens;
    size_t bytes;       /* KV bytes of the prefix */
    uint64_t last_used; /* tick of the last get/put */
    double used_at;     /* Unix time of the last get/put */
    uint64_t hits;      /* times reused */
    int first_page, last_page; /* pages the prefix shows (0 = not noted) */
} prefix_entry;

/* Called for every entry that leaves the cache (eviction, drop, free). */
typedef void (*prefix_release_fn)(void *ud, int seq);

/* A cache holding at most budget_bytes of prefixes. release may be NULL. */
prefix_cache *prefix_cache_new(size_t budget_bytes, prefix_release_fn release, void *ud);

/* Releases every entry and frees the cache; NULL is fine. */
void prefix_cache_free(prefix_cache *pc);

/* The entry for key, marked most recently used, or NULL.
 * Borrowed: valid until the next call that changes the cache. */
const prefix_entry *prefix_get(prefix_cache *pc, const prefix_key *key);

/* Adds an entry (replacing one with the same key), evicting least recently
 * used entries until it fits. Returns 0 when cached (the cache now owns seq),
 * or -1 when bytes alone exceed the budget (nothing changed; the caller
 * keeps seq). */
int prefix_put(prefix_cache *pc, const prefix_key *key, int seq, size_t n_tokens, size_t bytes);

/* Notes the pages the entry of key shows (for status); no-op without one. */
void prefix_note_pages(prefix_cache *pc, const prefix_key *key, int first_page, int last_page);

/* Evicts the least recently used entry, except the one of keep (NULL: none).
 * Returns 1 if one was evicted, 0 if there was none. */
int prefix_evict_lru(prefix_cache *pc, const prefix_key *keep);

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
