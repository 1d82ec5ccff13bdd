/* tokenizer.h - Hugging Face tokenizer.json byte-level BPE (Llama-3 / SmolLM3):
 * added/special token splitting, the Llama-3 pre-tokenizer regex, BPE with
 * ignore_merges, decoding and a streaming UTF-8-safe decoder. Gives exactly the
 * ids Hugging Face tokenizers gives (tests/t_tokenizer_ref.sh checks it). */
#ifndef TOKENIZER_H
#define TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "sd.h"

typedef struct tokenizer tokenizer;
typedef struct tokenizer_stream tokenizer_stream;

/* Loads a tokenizer.json (model BPE, pre_tokenizer Split(Llama-3 regex)+ByteLevel
 * or ByteLevel alone, merges as "a b" strings or [a, b] pairs, added_tokens).
 * Returns NULL on failure with err set: SD_ENOTFOUND/SD_EIO (file), SD_EFORMAT
 * (bad JSON, a merge whose parts or result are not in the vocab, bad ids),
 * SD_ENOTSUP (a model, normalizer or pre-tokenizer this code does not implement,
 * or added tokens with lstrip/rstrip/single_word). The tokenizer is immutable
 * after loading and may be shared by threads. */
tokenizer *tokenizer_new(const char *tokenizer_json_path, sd_err *err);

/* Frees the tokenizer; NULL is fine. Streams must be freed first. */
void tokenizer_free(tokenizer *tok);

/* Encodes len bytes of text into *ids (malloc'd, caller frees; NULL-safe when
 * *n_ids is 0) without adding BOS/EOS. parse_special=1 turns special added-token
 * strings (e.g. "<|im_start|>") into their ids; parse_special=0 tokenizes them as
 * plain text (like HF's encode_special_tokens=True); non-special added tokens are
 * always matched. Bytes that are not valid UTF-8 are replaced by U+FFFD (each
 * maximal invalid subpart, as Rust's from_utf8_lossy and WHATWG decoders do)
 * before tokenizing. Returns 0, SD_EINVAL (NULL args) or SD_ENOMEM. */
int tokenizer_encode(tokenizer *tok, const char *text, size_t len, int parse_special,
                     int32_t **ids, size_t *n_ids, sd_err *err);

/* Decodes ids into a NUL-terminated malloc'd string (caller frees), as HF's
 * ByteLevel decoder does: token bytes concatenated, invalid UTF-8 replaced by
 * U+FFFD. Unknown ids are skipped; special tokens are skipped when skip_special.
 * Returns NULL only when out of memory. */
char *tokenizer_decode(tokenizer *tok, const int32_t *ids, size_t n, int skip_special);

/* tokenizer_decode that also gives the length in *len (text may contain NULs). */
char *tokenizer_decode_len(tokenizer *tok, const int32_t *ids, size_t n, int skip_special, size_t *len);

/* Id of a token given as it is written in tokenizer.json (an added token's
 * content such as "<|im_end|>", or a vocab entry such as "Ġthe"); -1 if absent. */
int32_t tokenizer_token_id(tokenizer *tok, const char *token_string);

/* Number of ids (highest id + 1): 128256 for SmolLM3. */
size_t tokenizer_vocab_size(tokenizer *tok);

/* Raw bytes id decodes to (borrowed, valid while tok lives; not NUL-terminated)
 * in *bytes and *len. Returns 0, or SD_ENOTFOUND for an unknown id. */
int tokenizer_token_bytes(tokenizer *tok, int32_t id, const char **bytes, size_t *len);

/* 1 when id is an added token marked special, else 0. */
int tokenizer_is_special(tokenizer *tok, int32_t id);

/* Streaming decoder for generation: feed ids one at a time and print what comes
 * out. Output never ends inside a UTF-8 sequence; every byte of every token is
 * emitted exactly once (an invalid sequence as U+FFFD), so the concatenation of
 * all put() outputs and flush() equals tokenizer_decode() of the same ids.
 * Returns NULL only when out of memory. Special tokens are emitted unless
 * tokenizer_stream_set_skip_special(s, 1) was called. */
tokenizer_stream *tokenizer_stream_new(tokenizer *tok);
void tokenizer_stream_set_skip_special(tokenizer_stream *s, int skip_special);
void tokenizer_stream_free(tokenizer_stream *s);

/* Adds id and writes up to cap bytes of newly complete text to out (not
 * NUL-terminated); returns the number written. Text that did not fit (cap too
 * small, always cut at a character boundary) is kept for the next call; cap >= 4
 * guarantees progress. Returns 0 (and drops the id) only when out of memory. */
size_t tokenizer_stream_put(tokenizer_stream *s, int32_t id, char *out, size_t cap);

/* Writes up to cap bytes of what is pending, ending an incomplete UTF-8 sequence
 * as U+FFFD; call until it returns 0. The stream is then empty and reusable. */
size_t tokenizer_stream_flush(tokenizer_stream *s, char *out, size_t cap);

#endif
