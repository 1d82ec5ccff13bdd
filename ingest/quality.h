/* quality.h - the per-document quality report: counts of characters and words,
 * and a language guess among EN, FR, ES, DE, IT, PT from stop-word frequencies. */
#ifndef QUALITY_H
#define QUALITY_H

#include <stddef.h>

#include "ingest.h"

/* Fills d->quality's pages, chars, words, bytes, pages_without_text/no_text_pages
 * and language fields from d->text and d->pages (other counters are left as they
 * are). Returns 0 or SD_ENOMEM. */
int quality_measure(ingest_doc *d, sd_err *err);

/* Guesses the language of n bytes of text: writes "en" "fr" "es" "de" "it" "pt",
 * or "" when there are too few stop words, into lang (3 bytes); returns the
 * winner's share of all stop-word hits (0..1). */
double quality_guess_language(const char *text, size_t n, char lang[3]);

#endif
