/* store.h - the SQLite store: documents (by SHA-256 of their bytes), pages with
 * text and offsets, sections, header/footer lines, an FTS5 index, and tables for
 * token ids, KV-cache entries and query results. WAL mode, foreign keys, schema
 * version in PRAGMA user_version with forward migrations. One writer per store. */
#ifndef STORE_H
#define STORE_H

#include <stddef.h>
#include <stdint.h>

#include "ingest.h"
#include "sd.h"

typedef struct store store;

#define STORE_SCHEMA_VERSION 1

/* Opens (creating if needed) the database at db_path and migrates it forward to
 * STORE_SCHEMA_VERSION. db_path may be a "file:" URI (e.g. "file:x.db?mode=ro").
 * A database that cannot be written is opened read-only: reads work, writes fail
 * with SD_EREADONLY. Returns NULL on failure with err set (SD_ESTORE, SD_EIO,
 * SD_EFORMAT: not a database or a schema newer than this build). */
store *store_open(const char *db_path, sd_err *err);

/* Closes the database; accepts NULL. */
void store_close(store *s);

/* 1 if the store is read-only. */
int store_readonly(const store *s);

/* Limits the database to max_pages pages of the page size (SQLite max_page_count),
 * for quotas and for testing the disk-full path. Returns 0 or SD_ESTORE. */
int store_set_max_pages(store *s, int64_t max_pages, sd_err *err);

/* Stores a document in one transaction: documents row, pages, sections, header and
 * footer lines, FTS rows. If a document with the same sha256 exists, nothing is
 * written, *existed = 1 and *doc_id is the existing id. doc_id and existed may be NULL.
 * Errors: SD_EREADONLY, SD_EFULL (disk or quota full), SD_EBUSY, SD_ESTORE; after
 * any error nothing of the document is stored. */
int store_put_document(store *s, const ingest_doc *d, const uint8_t sha256[32], int64_t *doc_id, int *existed,
                       sd_err *err);

/* SHA-256 of len bytes (OpenSSL EVP) into out; hex (65 bytes incl. NUL) if hex != NULL.
 * Returns 0 or SD_EBACKEND. */
int store_sha256(const void *data, size_t len, uint8_t out[32], char *hex);

/* A document's metadata row. */
typedef struct store_doc_info {
    int64_t id;
    char sha256[65];     /* hex */
    char *name, *type;   /* owned by the struct */
    int pages;
    int sections;
    int64_t bytes;       /* size of the ingested file */
    int64_t text_bytes;  /* bytes of the body text */
    double created_at;   /* Unix time of ingest */
    char *title, *author, *producer; /* or NULL */
    char *language;      /* "en"... or "" */
    char *quality_json;  /* the quality report as JSON text */
} store_doc_info;

/* Frees the strings inside info (not info itself); accepts NULL. */
void store_doc_info_clear(store_doc_info *info);

/* Lists all documents, oldest first: *out is a malloc'd array of *n entries; free
 * with store_doc_info_free_array. Returns 0 or SD_ESTORE/SD_ENOMEM. */
int store_list_documents(store *s, store_doc_info **out, int *n, sd_err *err);
void store_doc_info_free_array(store_doc_info *a, int n);

/* Metadata of one document. Returns 0, SD_ENOTFOUND or SD_ESTORE. */
int store_get_document(store *s, int64_t doc_id, store_doc_info *out, sd_err *err);

/* Finds a document by its SHA-256. Returns 0 (id in *doc_id) or SD_ENOTFOUND. */
int store_find_by_sha(store *s, const uint8_t sha256[32], int64_t *doc_id, sd_err *err);

/* One stored page. */
typedef struct store_page {
    int number;
    char *label;         /* or NULL */
    int64_t start, end;  /* byte span in the document text */
    int has_text;
    char *text;          /* page body text */
    char *header, *footer; /* or NULL */
} store_page;

/* All pages of a document in order; free with store_pages_free. Returns 0,
 * SD_ENOTFOUND or SD_ESTORE. */
int store_get_pages(store *s, int64_t doc_id, store_page **out, int *n, sd_err *err);
void store_pages_free(store_page *p, int n);

/* The document's whole body text as one malloc'd NUL-terminated string (*len bytes)
 * and optionally its page map: *page_start (malloc'd, *n_pages entries) holds each
 * page's first byte offset, so the page of offset o is the last i with
 * page_start[i] <= o, plus 1. page_start/n_pages may be NULL. */
int store_get_text(store *s, int64_t doc_id, char **text, size_t *len, int64_t **page_start, int *n_pages,
                   sd_err *err);

/* One stored section. */
typedef struct store_section {
    int level;
    char *number, *title;
    int64_t start, end;
    int page_start, page_end;
} store_section;

int store_get_sections(store *s, int64_t doc_id, store_section **out, int *n, sd_err *err);
void store_sections_free(store_section *p, int n);

/* Deletes a document and everything that refers to it (pages, sections, FTS rows,
 * token ids, cache entries; results keep their row with doc_id set to NULL).
 * Returns 0, SD_ENOTFOUND, SD_EREADONLY or SD_ESTORE. */
int store_delete_document(store *s, int64_t doc_id, sd_err *err);

/* A full-text hit. */
typedef struct store_hit {
    int64_t doc_id;
    int page;            /* page number; for a section hit, its first page */
    int64_t section_id;  /* 0 for a page hit */
    char *snippet;       /* with [ and ] around matches */
    double rank;         /* bm25, lower is better */
} store_hit;

/* Full-text search over pages and section titles. query is plain words (all must
 * match; FTS syntax characters are neutralised). doc_id 0 searches every document.
 * At most limit hits, best first. Returns 0, SD_EINVAL (no words) or SD_ESTORE. */
int store_search(store *s, const char *query, int64_t doc_id, int limit, store_hit **out, int *n, sd_err *err);
void store_hits_free(store_hit *h, int n);

/* Token ids of a document's text for a tokenizer (identified by a fingerprint
 * string). put replaces; get returns a malloc'd array (SD_ENOTFOUND if none). */
int store_put_tokens(store *s, int64_t doc_id, const char *tokenizer, const int32_t *ids, size_t n, sd_err *err);
int store_get_tokens(store *s, int64_t doc_id, const char *tokenizer, int32_t **ids, size_t *n, sd_err *err);

/* A KV-cache entry record. */
typedef struct store_cache_entry {
    char fingerprint[129];
    int64_t doc_id;      /* 0 if none */
    char tier[16];       /* "device", "host", "disk" */
    char path[512];      /* disk file or "" */
    int64_t bytes;
    int64_t n_tokens;
    double last_used;    /* Unix time */
} store_cache_entry;

/* Inserts or replaces the entry with the same fingerprint. */
int store_put_cache_entry(store *s, const store_cache_entry *e, sd_err *err);
/* Returns 0 or SD_ENOTFOUND. */
int store_get_cache_entry(store *s, const char *fingerprint, store_cache_entry *out, sd_err *err);
int store_delete_cache_entry(store *s, const char *fingerprint, sd_err *err);

/* Stores a query result: op ("summarize", "extract", "ask"...), doc_id (0 = none),
 * params and result as JSON text, timings as JSON text (e.g. {"queue_ms":..,
 * "prefill_ms":..,"decode_ms":..}), and the wall time in ms. *result_id may be NULL. */
int store_put_result(store *s, const char *op, int64_t doc_id, const char *params_json, const char *result_json,
                     const char *timings_json, double wall_ms, int64_t *result_id, sd_err *err);

typedef struct store_result {
    int64_t id, doc_id;
    char *op, *params_json, *result_json, *timings_json;
    double wall_ms, created_at;
} store_result;

/* Reads one result (strings malloc'd; free with store_result_clear). 0 or SD_ENOTFOUND. */
int store_get_result(store *s, int64_t result_id, store_result *out, sd_err *err);
void store_result_clear(store_result *r);

/* Runs PRAGMA integrity_check; returns 0 if "ok", SD_ESTORE with the first problem otherwise. */
int store_check(store *s, sd_err *err);

#endif
