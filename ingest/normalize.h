/* normalize.h - text normalisation with an offset map: ligatures expanded, soft
 * hyphens and NULs removed, whitespace tidied, page header/footer lines found,
 * words hyphenated across line ends joined. Every output byte remembers the byte
 * of the raw page text it came from. */
#ifndef NORMALIZE_H
#define NORMALIZE_H

#include <stddef.h>
#include <stdint.h>

#include "ingest.h"

/* A growable string whose bytes each carry a source offset. */
typedef struct normalize_buf {
    char *s;        /* NUL-terminated */
    uint32_t *src;  /* (len) source offsets */
    size_t len, cap;
} normalize_buf;

void normalize_buf_free(normalize_buf *b);

/* Decodes one UTF-8 sequence at p[0..n) (n >= 1): returns its length and sets *cp,
 * or returns 1 with *cp = 0xFFFD for an invalid, overlong or truncated sequence. */
size_t normalize_utf8_decode(const unsigned char *p, size_t n, uint32_t *cp);

/* Cleans n bytes of raw page text into out (which must be zeroed or freed): lines
 * separated by '\n', each trimmed, inner whitespace runs collapsed to one space,
 * ligatures (U+FB00..FB06) expanded, soft hyphens and U+0000 removed, CR/CRLF/FF
 * turned into line ends, invalid UTF-8 replaced by U+FFFD. Counts go into q
 * (replacement_chars, nul_chars, ligatures, soft_hyphens). Returns 0 or SD_ENOMEM. */
int normalize_clean(const char *raw, size_t n, normalize_buf *out, ingest_quality *q);

/* 1 if the line (n bytes) looks like a bare page number: "12", "- 12 -", "Page 12",
 * "Page 3 of 10", "12/40", "iv". */
int normalize_is_page_number(const char *line, size_t n);

/* Writes a comparison key for a header/footer candidate line into key (cap bytes):
 * lower-cased ASCII, each run of digits replaced by one '#'. */
void normalize_line_key(const char *line, size_t n, char *key, size_t cap);

/* Builds a page body from a cleaned page (normalize_clean output): lines whose
 * index has drop[i] != 0 are left out (drop may be NULL); a word hyphenated at a
 * line end ("lower-\ncase" with lower-case letters on both sides) is joined; runs
 * of blank lines become one; leading and trailing blank lines go.
 * q->hyphen_joins is incremented. Returns 0 or SD_ENOMEM. */
int normalize_join(const normalize_buf *clean, const unsigned char *drop, normalize_buf *out,
                   ingest_quality *q);

/* Number of lines in a cleaned page (lines are '\n'-separated; "" has 0 lines). */
size_t normalize_count_lines(const normalize_buf *clean);

#endif
