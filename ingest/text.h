/* text.h - plain text and Markdown input: UTF-8 validation with repair (byte offset
 * of the first bad sequence reported), BOM removal, pages split at form feeds. */
#ifndef TEXT_H
#define TEXT_H

#include <stddef.h>

#include "ingest.h"

/* Fills d (name and type already set) from len bytes of text. Invalid UTF-8 is
 * replaced by U+FFFD and reported in d->quality (invalid_utf8, first_invalid_utf8)
 * and a warning. Returns 0, SD_ENOMEM or SD_EFORMAT (binary data: NUL-heavy input). */
int text_ingest(const void *data, size_t len, ingest_doc *d, sd_err *err);

/* 1 if the len bytes look like text (no NUL in the first 4 KiB, mostly valid UTF-8). */
int text_looks_like_text(const void *data, size_t len);

#endif
