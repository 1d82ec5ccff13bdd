/* kvcache.h - the paged KV cache's bookkeeping: a pool of fixed-size token
 * blocks with reference counts, and sequences that each own a block table.
 * Sequences may share blocks (a document prefix); a shared, partly filled last
 * block is copied before it is written (copy on write). The storage of the
 * blocks belongs to the backend; this module only hands out block ids. */
#ifndef KVCACHE_H
#define KVCACHE_H

#include "sd.h"

typedef struct kvcache kvcache;

/* n_blocks blocks of block_size tokens each. */
kvcache *kvcache_new(int n_blocks, int block_size);
void kvcache_free(kvcache *kv);

int kvcache_block_size(const kvcache *kv);
int kvcache_n_blocks(const kvcache *kv);
int kvcache_free_blocks(const kvcache *kv);
int kvcache_block_refs(const kvcache *kv, int block);

/* A new empty sequence: its id (>= 0), or SD_ENOMEM when the table is full. */
int kvcache_seq_new(kvcache *kv);
/* A new sequence sharing all of src's blocks (read-only until written). */
int kvcache_seq_fork(kvcache *kv, int src);
void kvcache_seq_free(kvcache *kv, int seq);
/* Length in tokens, or 0 for an unknown id. */
size_t kvcache_seq_len(const kvcache *kv, int seq);
/* Drops tokens at positions >= len (no-op when len >= current length). */
int kvcache_seq_truncate(kvcache *kv, int seq, size_t len);

/* Makes room for n more tokens. If the partly filled last block is shared it is
 * replaced by a fresh block: *cow_src and *cow_dst are set and the caller must
 * copy the block's storage before writing (else both are -1).
 * Returns 0 or SD_ENOMEM (pool exhausted; nothing changed) or SD_EINVAL. */
int kvcache_seq_reserve(kvcache *kv, int seq, size_t n, int *cow_src, int *cow_dst);
/* After the backend wrote n tokens: length += n. */
void kvcache_seq_advance(kvcache *kv, int seq, size_t n);
/* Borrowed block table of the sequence (valid until the next call that changes it). */
const int *kvcache_seq_blocks(const kvcache *kv, int seq, int *n_blocks);

#endif
