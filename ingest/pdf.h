/* pdf.h - PDF text extraction through poppler-glib: page texts in reading order,
 * page labels, metadata. By default it runs in a forked child with a time limit
 * and an address-space limit, so a hostile PDF can neither hang nor crash the caller. */
#ifndef PDF_H
#define PDF_H

#include <stddef.h>
#include <stdint.h>

#include "ingest.h"

/* Raw extraction result; free with pdf_result_free. */
typedef struct pdf_result {
    int n_pages;
    char **text;      /* (n_pages) UTF-8 page texts as poppler gives them */
    size_t *text_len; /* (n_pages) */
    char **label;     /* (n_pages) page label, or NULL when the PDF has none */
    int *has_text;    /* (n_pages) 1 if the page has any non-space text */
    char *title, *author, *subject, *creator, *producer; /* or NULL */
    int64_t created, modified; /* Unix seconds or 0 */
} pdf_result;

/* Extracts len bytes of PDF data. p must not be NULL (see ingest_params).
 * Errors: SD_EPASSWORD (encrypted: no password, or a wrong one: distinct messages),
 * SD_EFORMAT (not a PDF poppler can open, or poppler crashed on it), SD_ETIMEOUT,
 * SD_ERANGE (memory or output limit), SD_ENOMEM, SD_EIO (fork/pipe failed). */
int pdf_extract(const void *data, size_t len, const ingest_params *p, pdf_result **out, sd_err *err);

void pdf_result_free(pdf_result *r);

#endif
