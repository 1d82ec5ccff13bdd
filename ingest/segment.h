/* segment.h - finds sections and numbered clauses in a document's body text:
 * "1.", "1.1", "12.3(a)", "Article IV", "Section 5", "Schedule A", "Exhibit B",
 * all-caps headings and Markdown headings, each with title, page and character span. */
#ifndef SEGMENT_H
#define SEGMENT_H

#include "ingest.h"

/* Fills d->sections / d->n_sections from d->text and d->pages (replacing any).
 * Returns 0 or SD_ENOMEM. */
int segment_find(ingest_doc *d, sd_err *err);

/* Recognises a heading at the start of one line (n bytes, no '\n'). On a match
 * returns 1 and sets *level, the number (into num, numcap bytes) and the byte
 * offset where the title starts within the line. markdown enables "# Title". */
int segment_match_line(const char *line, size_t n, int markdown, int *level, char *num, size_t numcap,
                       size_t *title_off);

#endif
