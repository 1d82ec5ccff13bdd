/* ingest.h - turns the bytes of a PDF or a text file into an in-memory document:
 * normalised body text (one UTF-8 string) with a page map, headers and footers,
 * sections and clauses with character spans, metadata and a quality report. */
#ifndef INGEST_H
#define INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "sd.h"

/* Parameters of one ingest; get defaults from ingest_params_default(). */
typedef struct ingest_params {
    const char *password;  /* user or owner password for encrypted PDFs, or NULL */
    double timeout_s;      /* wall-clock limit for PDF extraction (default 60) */
    size_t max_mem_mb;     /* address-space limit of the extraction child (default 4096; 0 = none) */
    int isolate;           /* 1 (default): extract PDFs in a forked child; 0: in-process */
    size_t max_bytes;      /* largest accepted input (default 512 MiB) */
} ingest_params;

ingest_params ingest_params_default(void);

/* One page. Offsets are byte offsets into ingest_doc.text (UTF-8). */
typedef struct ingest_page {
    int number;          /* 1-based */
    char *label;         /* page label from the PDF ("iv", "A-3") or NULL */
    size_t start, end;   /* [start, end) of this page's body text in doc->text */
    int has_text;        /* 0: no text layer (OCR needed) */
    char *header;        /* header lines removed from the body ("\n"-joined) or NULL */
    char *footer;        /* footer lines removed from the body or NULL */
    size_t raw_len;      /* bytes of the page text as extracted, before normalisation */
    uint32_t *src;       /* (end - start) source offsets: byte i of the page body
                          * comes from byte src[i] of the raw page text */
} ingest_page;

/* A section or numbered clause, found by ingest/segment. */
typedef struct ingest_section {
    int level;              /* 1 = top (Article, Schedule, "1."), 2 = "1.1", ... */
    char *number;           /* "1.", "12.3(a)", "Article IV", "Schedule A", "" for all-caps headings */
    char *title;            /* heading text, may be "" */
    size_t start, end;      /* [start, end) in doc->text: heading up to the next section at
                             * the same or a higher level (or the end of the text) */
    size_t body_end;        /* end of the text before the next heading of any level */
    int page_start, page_end; /* 1-based, inclusive */
} ingest_section;

/* The quality report. */
typedef struct ingest_quality {
    int pages;
    int pages_without_text;
    int *no_text_pages;     /* (pages_without_text) 1-based page numbers */
    size_t chars;           /* code points in the body text */
    size_t words;
    size_t bytes;           /* bytes of the body text */
    size_t replacement_chars; /* U+FFFD in the extracted text (before normalisation) */
    size_t nul_chars;       /* U+0000 in the extracted text (removed from the body) */
    size_t ligatures;       /* ligature characters expanded */
    size_t hyphen_joins;    /* words joined across line ends */
    size_t soft_hyphens;    /* soft hyphens removed */
    size_t invalid_utf8;    /* invalid UTF-8 sequences repaired (text input) */
    long first_invalid_utf8; /* byte offset of the first, or -1 */
    char language[3];       /* "en" "fr" "es" "de" "it" "pt" or "" when unsure */
    double language_score;  /* share of stop-word hits of the winner, 0..1 */
} ingest_quality;

/* The in-memory document. Everything is owned by it; free with ingest_doc_free. */
typedef struct ingest_doc {
    char *name;             /* as given */
    char *type;             /* "pdf", "text" or "markdown" */
    size_t bytes;           /* size of the ingested input */
    char *title, *author, *subject, *creator, *producer; /* NULL when absent */
    int64_t created, modified; /* Unix seconds, 0 when absent */
    char *text;             /* body text, NUL-terminated, pages joined by "\n\n" */
    size_t text_len;
    int n_pages;
    ingest_page *pages;     /* (n_pages) */
    int n_sections;
    ingest_section *sections; /* (n_sections), in text order */
    ingest_quality quality;
    int n_warnings;
    char **warnings;        /* (n_warnings) human-readable notes: "page 3 has no text layer; OCR needed" */
} ingest_doc;

/* Ingests len bytes of data (a PDF, or UTF-8 .txt/.md text; detected from the bytes and
 * the name's extension). name is recorded, may be NULL. p may be NULL for defaults.
 * On success *out is a new document (free with ingest_doc_free).
 * Errors: SD_EPASSWORD (encrypted; no or wrong password), SD_EFORMAT (not a readable
 * PDF / text), SD_ENOTSUP (unknown type), SD_ETIMEOUT (extraction ran past timeout_s),
 * SD_ERANGE (too large, or the memory limit was hit), SD_ENOMEM, SD_EIO. */
int ingest_bytes(const void *data, size_t len, const char *name, const ingest_params *p,
                 ingest_doc **out, sd_err *err);

/* Reads path and calls ingest_bytes with the file's base name. */
int ingest_file(const char *path, const ingest_params *p, ingest_doc **out, sd_err *err);

void ingest_doc_free(ingest_doc *d);

/* The 1-based page holding byte offset off of doc->text (separators belong to the
 * page before them); 0 if off is out of range. */
int ingest_doc_page_at(const ingest_doc *d, size_t off);

/* Adds a warning (printf-style) to d; used by the ingest modules. */
void ingest_doc_warn(ingest_doc *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Builds the document from raw page texts (the common back half of PDF and text
 * ingest): normalises, finds headers/footers, joins, segments, measures quality.
 * raw[i] (raw_len[i] bytes, UTF-8) is page i+1's text; labels may be NULL or hold NULLs;
 * has_text may be NULL (all pages have text). Fills d->text, pages, sections, quality.
 * Returns 0 or SD_ENOMEM. */
int ingest_doc_build(ingest_doc *d, int n_pages, char *const *raw, const size_t *raw_len,
                     char *const *labels, const int *has_text, sd_err *err);

#endif
