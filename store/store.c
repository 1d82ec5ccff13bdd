/* store.c - SQLite schema, migrations and queries for documents, pages, sections,
 * headers/footers, FTS5, token ids, cache entries and results (see store.h). */
#include "store.h"

#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct store {
    sqlite3 *db;
    int readonly;
};

/* Forward migrations: migrations[i] takes the schema from version i to i+1. */
static const char *const migrations[] = {
    /* 0 -> 1 */
    "CREATE TABLE documents ("
    "  id INTEGER PRIMARY KEY,"
    "  sha256 BLOB NOT NULL UNIQUE CHECK (length(sha256) = 32),"
    "  name TEXT NOT NULL, type TEXT NOT NULL,"
    "  pages INTEGER NOT NULL, sections INTEGER NOT NULL,"
    "  bytes INTEGER NOT NULL, text_bytes INTEGER NOT NULL,"
    "  created_at REAL NOT NULL,"
    "  title TEXT, author TEXT, subject TEXT, creator TEXT, producer TEXT,"
    "  pdf_created INTEGER, pdf_modified INTEGER,"
    "  language TEXT NOT NULL DEFAULT '',"
    "  quality_json TEXT NOT NULL DEFAULT '{}',"
    "  body TEXT NOT NULL);"
    "CREATE TABLE pages ("
    "  doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,"
    "  page INTEGER NOT NULL, label TEXT,"
    "  char_start INTEGER NOT NULL, char_end INTEGER NOT NULL,"
    "  has_text INTEGER NOT NULL, raw_bytes INTEGER NOT NULL,"
    "  PRIMARY KEY (doc_id, page)) WITHOUT ROWID;"
    "CREATE TABLE sections ("
    "  id INTEGER PRIMARY KEY,"
    "  doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,"
    "  ord INTEGER NOT NULL, level INTEGER NOT NULL, number TEXT NOT NULL, title TEXT NOT NULL,"
    "  char_start INTEGER NOT NULL, char_end INTEGER NOT NULL,"
    "  page_start INTEGER NOT NULL, page_end INTEGER NOT NULL);"
    "CREATE INDEX sections_doc ON sections(doc_id, ord);"
    "CREATE TABLE headfoot ("
    "  doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,"
    "  page INTEGER NOT NULL, kind TEXT NOT NULL CHECK (kind IN ('header','footer')),"
    "  text TEXT NOT NULL, PRIMARY KEY (doc_id, page, kind)) WITHOUT ROWID;"
    "CREATE TABLE doc_tokens ("
    "  doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,"
    "  tokenizer TEXT NOT NULL, n INTEGER NOT NULL, ids BLOB NOT NULL,"
    "  PRIMARY KEY (doc_id, tokenizer)) WITHOUT ROWID;"
    "CREATE TABLE cache_entries ("
    "  fingerprint TEXT PRIMARY KEY,"
    "  doc_id INTEGER REFERENCES documents(id) ON DELETE CASCADE,"
    "  tier TEXT NOT NULL, path TEXT NOT NULL DEFAULT '', bytes INTEGER NOT NULL,"
    "  n_tokens INTEGER NOT NULL, created_at REAL NOT NULL, last_used REAL NOT NULL);"
    "CREATE TABLE results ("
    "  id INTEGER PRIMARY KEY,"
    "  op TEXT NOT NULL,"
    "  doc_id INTEGER REFERENCES documents(id) ON DELETE SET NULL,"
    "  params_json TEXT NOT NULL DEFAULT '{}', result_json TEXT NOT NULL DEFAULT '{}',"
    "  timings_json TEXT NOT NULL DEFAULT '{}', wall_ms REAL NOT NULL DEFAULT 0,"
    "  created_at REAL NOT NULL);"
    "CREATE INDEX results_doc ON results(doc_id);"
    "CREATE VIRTUAL TABLE fts USING fts5(text, doc_id UNINDEXED, page UNINDEXED, section_id UNINDEXED,"
    "  tokenize = 'unicode61 remove_diacritics 2');",
};
#define N_MIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

_Static_assert(N_MIGRATIONS == STORE_SCHEMA_VERSION, "one migration per schema version");

static double now_unix(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Maps an SQLite result code to SD_E* and fills err. */
static int db_err(store *s, sd_err *err, int src, const char *what) {
    int code = SD_ESTORE;
    switch (src & 0xFF) {
    case SQLITE_FULL: code = SD_EFULL; break;
    case SQLITE_READONLY: code = SD_EREADONLY; break;
    case SQLITE_BUSY:
    case SQLITE_LOCKED: code = SD_EBUSY; break;
    case SQLITE_NOMEM: code = SD_ENOMEM; break;
    case SQLITE_IOERR:
        code = (src == SQLITE_IOERR_WRITE || src == SQLITE_IOERR_FSYNC) ? SD_EIO : SD_EIO;
        break;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB: code = SD_EFORMAT; break;
    }
    const char *m = s && s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(src);
    if (code == SD_EFULL)
        return sd_seterr(err, code, "store: %s: the disk (or the database size limit) is full: %s", what, m);
    if (code == SD_EREADONLY)
        return sd_seterr(err, code, "store: %s: the database is read-only: %s", what, m);
    return sd_seterr(err, code, "store: %s: %s", what, m);
}

static int exec(store *s, const char *sql, sd_err *err) {
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : db_err(s, err, sqlite3_extended_errcode(s->db), sql);
}

static int prep(store *s, const char *sql, sqlite3_stmt **st, sd_err *err) {
    int rc = sqlite3_prepare_v2(s->db, sql, -1, st, NULL);
    return rc == SQLITE_OK ? 0 : db_err(s, err, rc, "prepare");
}

static int64_t user_version(store *s) {
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

store *store_open(const char *db_path, sd_err *err) {
    store *s = calloc(1, sizeof *s);
    if (!s) { sd_seterr(err, SD_ENOMEM, "store_open: out of memory"); return NULL; }
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX;
    int rc = sqlite3_open_v2(db_path, &s->db, flags, NULL);
    if (rc != SQLITE_OK && (rc & 0xFF) == SQLITE_READONLY) {
        sqlite3_close(s->db);
        s->db = NULL;
        rc = sqlite3_open_v2(db_path, &s->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX, NULL);
    }
    if (rc != SQLITE_OK) {
        sd_seterr(err, (rc & 0xFF) == SQLITE_CANTOPEN ? SD_EIO : SD_ESTORE, "store_open: %s: %s", db_path,
                  s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, 5000);
    s->readonly = sqlite3_db_readonly(s->db, "main") == 1;
    /* reading the schema detects a file that is not a database */
    int64_t v = user_version(s);
    if (v < 0) {
        sd_seterr(err, SD_EFORMAT, "store_open: %s is not a smoldoc database: %s", db_path, sqlite3_errmsg(s->db));
        goto fail;
    }
    if (v > STORE_SCHEMA_VERSION) {
        sd_seterr(err, SD_EFORMAT, "store_open: %s has schema version %lld, newer than this build (%d)", db_path,
                  (long long)v, STORE_SCHEMA_VERSION);
        goto fail;
    }
    if (!s->readonly) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode=WAL", -1, &st, NULL) == SQLITE_OK) {
            int r = sqlite3_step(st);
            if (r != SQLITE_ROW) {
                /* a read-only file opened read-write by root or a full disk show up here */
                int ec = sqlite3_extended_errcode(s->db);
                sqlite3_finalize(st);
                db_err(s, err, ec, "store_open: enabling WAL");
                goto fail;
            }
        }
        sqlite3_finalize(st);
        if (exec(s, "PRAGMA synchronous=NORMAL", err)) goto fail;
    }
    if (exec(s, "PRAGMA foreign_keys=ON", err)) goto fail;
    if (v < STORE_SCHEMA_VERSION) {
        if (s->readonly) {
            sd_seterr(err, SD_EREADONLY, "store_open: %s is read-only and needs migrating from version %lld to %d",
                      db_path, (long long)v, STORE_SCHEMA_VERSION);
            goto fail;
        }
        for (int64_t k = v; k < STORE_SCHEMA_VERSION; k++) {
            char pragma[64];
            if (exec(s, "BEGIN IMMEDIATE", err)) goto fail;
            snprintf(pragma, sizeof pragma, "PRAGMA user_version=%lld", (long long)(k + 1));
            if (exec(s, migrations[k], err) || exec(s, pragma, err) || exec(s, "COMMIT", err)) {
                sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
                goto fail;
            }
        }
    }
    return s;
fail:
    sqlite3_close(s->db);
    free(s);
    return NULL;
}

void store_close(store *s) {
    if (!s) return;
    sqlite3_close(s->db);
    free(s);
}

int store_readonly(const store *s) { return s->readonly; }

int store_set_max_pages(store *s, int64_t max_pages, sd_err *err) {
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA max_page_count=%lld", (long long)max_pages);
    return exec(s, sql, err);
}

int store_sha256(const void *data, size_t len, uint8_t out[32], char *hex) {
    unsigned int n = 0;
    if (!EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) || n != 32) return SD_EBACKEND;
    if (hex) {
        for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", out[i]);
    }
    return 0;
}

static char *quality_json(const ingest_doc *d) {
    const ingest_quality *q = &d->quality;
    size_t cap = 512 + (size_t)q->pages_without_text * 12;
    char *b = malloc(cap);
    if (!b) return NULL;
    size_t k = (size_t)snprintf(b, cap,
                 "{\"pages\":%d,\"chars\":%zu,\"words\":%zu,\"bytes\":%zu,\"replacement_chars\":%zu,"
                 "\"nul_chars\":%zu,\"ligatures\":%zu,\"hyphen_joins\":%zu,\"soft_hyphens\":%zu,"
                 "\"invalid_utf8\":%zu,\"first_invalid_utf8\":%ld,\"language\":\"%s\",\"language_score\":%.3f,"
                 "\"pages_without_text\":[",
                 q->pages, q->chars, q->words, q->bytes, q->replacement_chars, q->nul_chars, q->ligatures,
                 q->hyphen_joins, q->soft_hyphens, q->invalid_utf8, q->first_invalid_utf8, q->language,
                 q->language_score);
    for (int i = 0; i < q->pages_without_text && k < cap; i++)
        k += (size_t)snprintf(b + k, cap - k, "%s%d", i ? "," : "", q->no_text_pages[i]);
    if (k < cap) snprintf(b + k, cap - k, "]}");
    return b;
}

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *v) {
    if (v) sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(st, i);
}

int store_find_by_sha(store *s, const uint8_t sha256[32], int64_t *doc_id, sd_err *err) {
    sqlite3_stmt *st = NULL;
    int rc = prep(s, "SELECT id FROM documents WHERE sha256 = ?", &st, err);
    if (rc) return rc;
    sqlite3_bind_blob(st, 1, sha256, 32, SQLITE_STATIC);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) { *doc_id = sqlite3_column_int64(st, 0); rc = 0; }
    else if (r == SQLITE_DONE) rc = sd_seterr(err, SD_ENOTFOUND, "store: no document with that SHA-256");
    else rc = db_err(s, err, sqlite3_extended_errcode(s->db), "find_by_sha");
    sqlite3_finalize(st);
    return rc;
}

/* Steps a statement expected to finish (INSERT/UPDATE/DELETE), then resets it. */
static int step_done(store *s, sqlite3_stmt *st, sd_err *err, const char *what) {
    int r = sqlite3_step(st);
    int rc = r == SQLITE_DONE ? 0 : db_err(s, err, sqlite3_extended_errcode(s->db), what);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

int store_put_document(store *s, const ingest_doc *d, const uint8_t sha256[32], int64_t *doc_id, int *existed,
                       sd_err *err) {
    sqlite3_stmt *st_doc = NULL, *st_page = NULL, *st_sec = NULL, *st_hf = NULL, *st_fts = NULL;
    int rc = 0, in_tx = 0;
    char *qj = NULL;
    int64_t id = 0;
    if (existed) *existed = 0;
    if (s->readonly) return sd_seterr(err, SD_EREADONLY, "store_put_document: the database is read-only");
    if ((rc = exec(s, "BEGIN IMMEDIATE", err))) return rc;
    in_tx = 1;
    rc = store_find_by_sha(s, sha256, &id, NULL);
    if (rc == 0) {
        if (existed) *existed = 1;
        if (doc_id) *doc_id = id;
        goto done;
    }
    if (rc != SD_ENOTFOUND) { rc = db_err(s, err, sqlite3_extended_errcode(s->db), "store_put_document"); goto done; }
    rc = 0;
    qj = quality_json(d);
    if (!qj) { rc = sd_seterr(err, SD_ENOMEM, "store_put_document: out of memory"); goto done; }
    if ((rc = prep(s,
                   "INSERT INTO documents(sha256,name,type,pages,sections,bytes,text_bytes,created_at,title,author,"
                   "subject,creator,producer,pdf_created,pdf_modified,language,quality_json,body)"
                   " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                   &st_doc, err)) ||
        (rc = prep(s,
                   "INSERT INTO pages(doc_id,page,label,char_start,char_end,has_text,raw_bytes) VALUES(?,?,?,?,?,?,?)",
                   &st_page, err)) ||
        (rc = prep(s,
                   "INSERT INTO sections(doc_id,ord,level,number,title,char_start,char_end,page_start,page_end)"
                   " VALUES(?,?,?,?,?,?,?,?,?)",
                   &st_sec, err)) ||
        (rc = prep(s, "INSERT INTO headfoot(doc_id,page,kind,text) VALUES(?,?,?,?)", &st_hf, err)) ||
        (rc = prep(s, "INSERT INTO fts(text,doc_id,page,section_id) VALUES(?,?,?,?)", &st_fts, err)))
        goto done;
    sqlite3_bind_blob(st_doc, 1, sha256, 32, SQLITE_STATIC);
    sqlite3_bind_text(st_doc, 2, d->name ? d->name : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st_doc, 3, d->type ? d->type : "", -1, SQLITE_STATIC);
    sqlite3_bind_int(st_doc, 4, d->n_pages);
    sqlite3_bind_int(st_doc, 5, d->n_sections);
    sqlite3_bind_int64(st_doc, 6, (sqlite3_int64)d->bytes);
    sqlite3_bind_int64(st_doc, 7, (sqlite3_int64)d->text_len);
    sqlite3_bind_double(st_doc, 8, now_unix());
    bind_text_or_null(st_doc, 9, d->title);
    bind_text_or_null(st_doc, 10, d->author);
    bind_text_or_null(st_doc, 11, d->subject);
    bind_text_or_null(st_doc, 12, d->creator);
    bind_text_or_null(st_doc, 13, d->producer);
    sqlite3_bind_int64(st_doc, 14, d->created);
    sqlite3_bind_int64(st_doc, 15, d->modified);
    sqlite3_bind_text(st_doc, 16, d->quality.language, -1, SQLITE_STATIC);
    sqlite3_bind_text(st_doc, 17, qj, -1, SQLITE_STATIC);
    sqlite3_bind_text64(st_doc, 18, d->text ? d->text : "", d->text_len, SQLITE_STATIC, SQLITE_UTF8);
    if ((rc = step_done(s, st_doc, err, "insert document"))) goto done;
    id = sqlite3_last_insert_rowid(s->db);
    for (int i = 0; i < d->n_pages; i++) {
        const ingest_page *p = &d->pages[i];
        sqlite3_bind_int64(st_page, 1, id);
        sqlite3_bind_int(st_page, 2, p->number);
        bind_text_or_null(st_page, 3, p->label);
        sqlite3_bind_int64(st_page, 4, (sqlite3_int64)p->start);
        sqlite3_bind_int64(st_page, 5, (sqlite3_int64)p->end);
        sqlite3_bind_int(st_page, 6, p->has_text);
        sqlite3_bind_int64(st_page, 7, (sqlite3_int64)p->raw_len);
        if ((rc = step_done(s, st_page, err, "insert page"))) goto done;
        for (int k = 0; k < 2; k++) {
            const char *t = k ? p->footer : p->header;
            if (!t) continue;
            sqlite3_bind_int64(st_hf, 1, id);
            sqlite3_bind_int(st_hf, 2, p->number);
            sqlite3_bind_text(st_hf, 3, k ? "footer" : "header", -1, SQLITE_STATIC);
            sqlite3_bind_text(st_hf, 4, t, -1, SQLITE_STATIC);
            if ((rc = step_done(s, st_hf, err, "insert header/footer"))) goto done;
        }
        if (p->end > p->start) {
            sqlite3_bind_text(st_fts, 1, d->text + p->start, (int)(p->end - p->start), SQLITE_STATIC);
            sqlite3_bind_int64(st_fts, 2, id);
            sqlite3_bind_int(st_fts, 3, p->number);
            sqlite3_bind_int64(st_fts, 4, 0);
            if ((rc = step_done(s, st_fts, err, "insert fts page"))) goto done;
        }
    }
    for (int i = 0; i < d->n_sections; i++) {
        const ingest_section *c = &d->sections[i];
        sqlite3_bind_int64(st_sec, 1, id);
        sqlite3_bind_int(st_sec, 2, i);
        sqlite3_bind_int(st_sec, 3, c->level);
        sqlite3_bind_text(st_sec, 4, c->number, -1, SQLITE_STATIC);
        sqlite3_bind_text(st_sec, 5, c->title, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st_sec, 6, (sqlite3_int64)c->start);
        sqlite3_bind_int64(st_sec, 7, (sqlite3_int64)c->end);
        sqlite3_bind_int(st_sec, 8, c->page_start);
        sqlite3_bind_int(st_sec, 9, c->page_end);
        if ((rc = step_done(s, st_sec, err, "insert section"))) goto done;
        int64_t sid = sqlite3_last_insert_rowid(s->db);
        char buf[256];
        snprintf(buf, sizeof buf, "%s %s", c->number, c->title);
        sqlite3_bind_text(st_fts, 1, buf, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st_fts, 2, id);
        sqlite3_bind_int(st_fts, 3, c->page_start);
        sqlite3_bind_int64(st_fts, 4, sid);
        if ((rc = step_done(s, st_fts, err, "insert fts section"))) goto done;
    }
    if ((rc = exec(s, "COMMIT", err))) goto done;
    in_tx = 0;
    if (doc_id) *doc_id = id;
done:
    sqlite3_finalize(st_doc);
    sqlite3_finalize(st_page);
    sqlite3_finalize(st_sec);
    sqlite3_finalize(st_hf);
    sqlite3_finalize(st_fts);
    if (in_tx) {
        if (rc) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        else if (exec(s, "COMMIT", err)) { rc = err ? err->code : SD_ESTORE; sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL); }
    }
    free(qj);
    return rc;
}

static char *col_dup(sqlite3_stmt *st, int i) {
    const unsigned char *t = sqlite3_column_text(st, i);
    if (!t) return NULL;
    return xstrdup((const char *)t);
}

void store_doc_info_clear(store_doc_info *info) {
    if (!info) return;
    free(info->name);
    free(info->type);
    free(info->title);
    free(info->author);
    free(info->producer);
    free(info->language);
    free(info->quality_json);
    memset(info, 0, sizeof *info);
}

void store_doc_info_free_array(store_doc_info *a, int n) {
    for (int i = 0; a && i < n; i++) store_doc_info_clear(&a[i]);
    free(a);
}

#define DOC_COLS "id,sha256,name,type,pages,sections,bytes,text_bytes,created_at,title,author,producer,language,quality_json"

static void read_doc_row(sqlite3_stmt *st, store_doc_info *o) {
    memset(o, 0, sizeof *o);
    o->id = sqlite3_column_int64(st, 0);
    const uint8_t *sha = sqlite3_column_blob(st, 1);
    if (sha && sqlite3_column_bytes(st, 1) == 32)
        for (int i = 0; i < 32; i++) snprintf(o->sha256 + 2 * i, 3, "%02x", sha[i]);
    o->name = col_dup(st, 2);
    o->type = col_dup(st, 3);
    o->pages = sqlite3_column_int(st, 4);
    o->sections = sqlite3_column_int(st, 5);
    o->bytes = sqlite3_column_int64(st, 6);
    o->text_bytes = sqlite3_column_int64(st, 7);
    o->created_at = sqlite3_column_double(st, 8);
    o->title = col_dup(st, 9);
    o->author = col_dup(st, 10);
    o->producer = col_dup(st, 11);
    o->language = col_dup(st, 12);
    o->quality_json = col_dup(st, 13);
}

int store_list_documents(store *s, store_doc_info **out, int *n, sd_err *err) {
    sqlite3_stmt *st = NULL;
    *out = NULL;
    *n = 0;
    int rc = prep(s, "SELECT " DOC_COLS " FROM documents ORDER BY id", &st, err);
    if (rc) return rc;
    int cap = 0, r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            *out = xrealloc(*out, (size_t)cap * sizeof **out);
        }
        read_doc_row(st, &(*out)[(*n)++]);
    }
    if (r != SQLITE_DONE) {
        rc = db_err(s, err, sqlite3_extended_errcode(s->db), "list documents");
        store_doc_info_free_array(*out, *n);
        *out = NULL;
        *n = 0;
    }
    sqlite3_finalize(st);
    return rc;
}

int store_get_document(store *s, int64_t doc_id, store_doc_info *out, sd_err *err) {
    sqlite3_stmt *st = NULL;
    memset(out, 0, sizeof *out);
    int rc = prep(s, "SELECT " DOC_COLS " FROM documents WHERE id = ?", &st, err);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, doc_id);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) read_doc_row(st, out);
    else if (r == SQLITE_DONE) rc = sd_seterr(err, SD_ENOTFOUND, "store: no document %lld", (long long)doc_id);
    else rc = db_err(s, err, sqlite3_extended_errcode(s->db), "get document");
    sqlite3_finalize(st);
    return rc;
}

static int doc_exists(store *s, int64_t doc_id, sd_err *err) {
    store_doc_info info;
    int rc = store_get_document(s, doc_id, &info, err);
    store_doc_info_clear(&info);
    return rc;
}

void store_pages_free(store_page *p, int n) {
    for (int i = 0; p && i < n; i++) {
        free(p[i].label);
        free(p[i].text);
        free(p[i].header);
        free(p[i].footer);
    }
    free(p);
}

int store_get_pages(store *s, int64_t doc_id, store_page **out, int *n, sd_err *err) {
    sqlite3_stmt *st = NULL;
    *out = NULL;
    *n = 0;
    int rc = doc_exists(s, doc_id, err);
    if (rc) return rc;
    /* body is TEXT and substr counts characters: slice it as a BLOB for byte offsets */
    rc = prep(s,
              "SELECT p.page, p.label, p.char_start, p.char_end, p.has_text,"
              " CAST(substr(CAST(d.body AS BLOB), p.char_start + 1, p.char_end - p.char_start) AS TEXT),"
              " (SELECT text FROM headfoot h WHERE h.doc_id = p.doc_id AND h.page = p.page AND kind = 'header'),"
              " (SELECT text FROM headfoot h WHERE h.doc_id = p.doc_id AND h.page = p.page AND kind = 'footer')"
              " FROM pages p JOIN documents d ON d.id = p.doc_id WHERE p.doc_id = ? ORDER BY p.page",
              &st, err);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, doc_id);
    int cap = 0, r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            *out = xrealloc(*out, (size_t)cap * sizeof **out);
        }
        store_page *p = &(*out)[(*n)++];
        p->number = sqlite3_column_int(st, 0);
        p->label = col_dup(st, 1);
        p->start = sqlite3_column_int64(st, 2);
        p->end = sqlite3_column_int64(st, 3);
        p->has_text = sqlite3_column_int(st, 4);
        p->text = col_dup(st, 5);
        if (!p->text) p->text = xstrdup("");
        p->header = col_dup(st, 6);
        p->footer = col_dup(st, 7);
    }
    if (r != SQLITE_DONE) {
        rc = db_err(s, err, sqlite3_extended_errcode(s->db), "get pages");
        store_pages_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    sqlite3_finalize(st);
    return rc;
}

int store_get_text(store *s, int64_t doc_id, char **text, size_t *len, int64_t **page_start, int *n_pages,
                   sd_err *err) {
    sqlite3_stmt *st = NULL;
    *text = NULL;
    if (len) *len = 0;
    if (page_start) *page_start = NULL;
    if (n_pages) *n_pages = 0;
    int rc = prep(s, "SELECT body FROM documents WHERE id = ?", &st, err);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, doc_id);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        const void *b = sqlite3_column_blob(st, 0);
        size_t n = (size_t)sqlite3_column_bytes(st, 0);
        char *t = malloc(n + 1);
        if (!t) rc = sd_seterr(err, SD_ENOMEM, "store_get_text: out of memory");
        else {
            if (n) memcpy(t, b, n);
            t[n] = 0;
            *text = t;
            if (len) *len = n;
        }
    } else if (r == SQLITE_DONE) {
        rc = sd_seterr(err, SD_ENOTFOUND, "store: no document %lld", (long long)doc_id);
    } else {
        rc = db_err(s, err, sqlite3_extended_errcode(s->db), "get text");
    }
    sqlite3_finalize(st);
    if (rc || !page_start) return rc;
    rc = prep(s, "SELECT char_start FROM pages WHERE doc_id = ? ORDER BY page", &st, err);
    if (rc) goto fail;
    sqlite3_bind_int64(st, 1, doc_id);
    int cap = 0, n = 0;
    int64_t *ps = NULL;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            ps = xrealloc(ps, (size_t)cap * sizeof *ps);
        }
        ps[n++] = sqlite3_column_int64(st, 0);
    }
    if (r != SQLITE_DONE) {
        rc = db_err(s, err, sqlite3_extended_errcode(s->db), "get page map");
        free(ps);
        sqlite3_finalize(st);
        goto fail;
    }
    sqlite3_finalize(st);
    *page_start = ps;
    if (n_pages) *n_pages = n;
    return 0;
fail:
    free(*text);
    *text = NULL;
    return rc;
}

void store_sections_free(store_section *p, int n) {
    for (int i = 0; p && i < n; i++) {
        free(p[i].number);
        free(p[i].title);
    }
    free(p);
}

int store_get_sections(store *s, int64_t doc_id, store_section **out, int *n, sd_err *err) {
    sqlite3_stmt *st = NULL;
    *out = NULL;
    *n = 0;
    int rc = doc_exists(s, doc_id, err);
    if (rc) return rc;
    rc = prep(s,
              "SELECT level, number, title, char_start, char_end, page_start, page_end FROM sections"
              " WHERE doc_id = ? ORDER BY ord",
              &st, err);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, doc_id);
    int cap = 0, r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            *out = xrealloc(*out, (size_t)cap * sizeof **out);
        }
        store_section *c = &(*out)[(*n)++];
        c->level = sqlite3_column_int(st, 0);
        c->number = col_dup(st, 1);
        c->title = col_dup(st, 2);
        c->start = sqlite3_column_int64(st, 3);
        c->end = sqlite3_column_int64(st, 4);
        c->page_start = sqlite3_column_int(st, 5);
        c->page_end = sqlite3_column_int(st, 6);
    }
    if (r != SQLITE_DONE) {
        rc = db_err(s, err, sqlite3_extended_errcode(s->db), "get sections");
        store_sections_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    sqlite3_finalize(st);
    return rc;
}

int store_delete_document(store *s, int64_t doc_id, sd_err *err) {
    sqlite3_stmt *st = NULL;
    int rc;
    if (s->readonly) return sd_seterr(err, SD_EREADONLY, "store_delete_document: the database is read-only");
    if ((rc = exec(s, "BEGIN IMMEDIATE", err))) return rc;
    if ((rc = prep(s, "DELETE FROM fts WHERE doc_id = ?", &st, err))) goto fail;
    sqlite3_bind_int64(st, 1, doc_id);
    if ((rc = step_done(s, st, err, "delete fts"))) goto fail;
    sqlite3_finalize(st);
    if ((rc = prep(s, "DELETE FROM documents WHERE id = ?", &st, err))) goto fail;
    sqlite3_bind_int64(st, 1, doc_id);
    if ((rc = step_done(s, st, err, "delete document"))) goto fail;
    sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_changes(s->db) == 0) {
        rc = sd_seterr(err, SD_ENOTFOUND, "store_delete_document: no document %lld", (long long)doc_id);
        goto fail;
    }
    if ((rc = exec(s, "COMMIT", err))) goto fail;
    return 0;
fail:
    sqlite3_finalize(st);
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

void store_hits_free(store_hit *h, int n) {
    for (int i = 0; h && i < n; i++) free(h[i].snippet);
    free(h);
}

/* Builds an FTS5 query of quoted words ("a" "b"), or NULL if there are none. */
static char *fts_query(const char *q) {
    size_t n = strlen(q);
    char *out = malloc(3 * n + 8);
    if (!out) return NULL;
    size_t k = 0;
    int words = 0;
    for (size_t i = 0; i < n;) {
        while (i < n && ((unsigned char)q[i] < 0x80 && !((q[i] >= '0' && q[i] <= '9') || (q[i] >= 'a' && q[i] <= 'z') ||
                                                         (q[i] >= 'A' && q[i] <= 'Z'))))
            i++;
        if (i >= n) break;
        if (words++) out[k++] = ' ';
        out[k++] = '"';
        while (i < n && !((unsigned char)q[i] < 0x80 && !((q[i] >= '0' && q[i] <= '9') || (q[i] >= 'a' && q[i] <= 'z') ||
                                                          (q[i] >= 'A' && q[i] <= 'Z'))))
            out[k++] = q[i++];
        out[k++] = '"';
    }
    out[k] = 0;
    if (!words) { free(out); return NULL; }
    return out;
}

int store_search(store *s, const char *query, int64_t doc_id, int limit, store_hit **out, int *n, sd_err *err) {
    sqlite3_stmt *st = NULL;
    *out = NULL;
    *n = 0;
    char *q = fts_query(query ? query : "");
    if (!q) return sd_seterr(err, SD_EINVAL, "store_search: the query has no words");
    int rc = prep(s,
                  "SELECT doc_id, page, section_id, snippet(fts, 0, '[', ']', '...', 12), bm25(fts) FROM fts"
                  " WHERE fts MATCH ?1 AND (?2 = 0 OR doc_id = ?2) ORDER BY bm25(fts) LIMIT ?3",
                  &st, err);
    if (rc) { free(q); return rc; }
    sqlite3_bind_text(st, 1, q, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, doc_id);
    sqlite3_bind_int(st, 3, limit > 0 ? limit : 20);
    int cap = 0, r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            *out = xrealloc(*out, (size_t)cap * sizeof **out);
        }
        store_hit *h = &(*out)[(*n)++];
        h->doc_id = sqlite3_column_int64(st, 0);
        h->page = sqlite3_column_int(st, 1);
        h->section_id = sqlite3_column_int64(st, 2);
        h->snippet = col_dup(st, 3);
        h->rank = sqlite3_column_double(st, 4);
    }
    if (r != SQLITE_DONE) {
        rc = db_err(s, err, sqlite3_extended_errcode(s->db), "search");
        store_hits_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    sqlite3_finalize(st);
    free(q);
    return rc;
}

int store_put_tokens(store *s, int64_t doc_id, const char *tokenizer, const int32_t *ids, size_t n, sd_err *err) {
    sqlite3_stmt *st = NULL;
    size_t bytes;
    if (sd_mul_overflow(n, sizeof *ids, &bytes) || bytes > INT32_MAX)
        return sd_seterr(err, SD_ERANGE, "store_put_tokens: %zu ids is too many", n);
    int rc = prep(s, "INSERT OR REPLACE INTO doc_tokens(doc_id, tokenizer, n, ids) VALUES(?,?,?,?)", &st, err);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, doc_id);
    sqlite3_bind_text(st, 2, tokenizer, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)n);
    sqlite3_bind_blob(st, 4, ids ? (const void *)ids : "", (int)bytes, SQLITE_STATIC);
    rc = step_done(s, st, err, "put tokens");
    sqlite3_finalize(st);
    return rc;
}

int store_get_tokens(store *s, int64_t doc_id, const char *tokenizer, int32_t **ids, size_t *n, sd_err *err) {
    sqlite3_stmt *st = NULL;
    *ids = NULL;
    *n = 0;
    int rc = prep(s, "SELECT n, ids FROM doc_tokens WHERE doc_id = ? AND tokenizer = ?", &st, err);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, doc_id);
    sqlite3_bind_text(st, 2, tokenizer, -1, SQLITE_STATIC);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        size_t cnt = (size_t)sqlite3_column_int64(st, 0);
        const void *b = sqlite3_column_blob(st, 1);
        size_t bytes = (size_t)sqlite3_column_bytes(st, 1);
        if (bytes != cnt * sizeof(int32_t)) {
            rc = sd_seterr(err, SD_EFORMAT, "store_get_tokens: stored ids have the wrong size");
        } else {
            *ids = malloc(bytes ? bytes : 1);
            if (!*ids) rc = sd_seterr(err, SD_ENOMEM, "store_get_tokens: out of memory");
            else {
                if (bytes) memcpy(*ids, b, bytes);
                *n = cnt;
            }
        }
    } else if (r == SQLITE_DONE) {
        rc = sd_seterr(err, SD_ENOTFOUND, "store_get_tokens: none for document %lld", (long long)doc_id);
    } else {
        rc = db_err(s, err, sqlite3_extended_errcode(s->db), "get tokens");
    }
    sqlite3_finalize(st);
    return rc;
}

int store_put_cache_entry(store *s, const store_cache_entry *e, sd_err *err) {
    sqlite3_stmt *st = NULL;
    int rc = prep(s,
                  "INSERT INTO cache_entries(fingerprint, doc_id, tier, path, bytes, n_tokens, created_at, last_used)"
                  " VALUES(?,?,?,?,?,?,?,?) ON CONFLICT(fingerprint) DO UPDATE SET doc_id = excluded.doc_id,"
                  " tier = excluded.tier, path = excluded.path, bytes = excluded.bytes,"
                  " n_tokens = excluded.n_tokens, last_used = excluded.last_used",
                  &st, err);
    if (rc) return rc;
    sqlite3_bind_text(st, 1, e->fingerprint, -1, SQLITE_STATIC);
    if (e->doc_id) sqlite3_bind_int64(st, 2, e->doc_id);
    else sqlite3_bind_null(st, 2);
    sqlite3_bind_text(st, 3, e->tier, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, e->path, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, e->bytes);
    sqlite3_bind_int64(st, 6, e->n_tokens);
    sqlite3_bind_double(st, 7, now_unix());
    sqlite3_bind_double(st, 8, e->last_used ? e->last_used : now_unix());
    rc = step_done(s, st, err, "put cache entry");
    sqlite3_finalize(st);
    return rc;
}

int store_get_cache_entry(store *s, const char *fingerprint, store_cache_entry *out, sd_err *err) {
    sqlite3_stmt *st = NULL;
    memset(out, 0, sizeof *out);
    int rc = prep(s, "SELECT fingerprint, doc_id, tier, path, bytes, n_tokens, last_used FROM cache_entries"
                     " WHERE fingerprint = ?", &st, err);
    if (rc) return rc;
    sqlite3_bind_text(st, 1, fingerprint, -1, SQLITE_STATIC);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        snprintf(out->fingerprint, sizeof out->fingerprint, "%s", (const char *)sqlite3_column_text(st, 0));
        out->doc_id = sqlite3_column_int64(st, 1);
        snprintf(out->tier, sizeof out->tier, "%s", (const char *)sqlite3_column_text(st, 2));
        snprintf(out->path, sizeof out->path, "%s", (const char *)sqlite3_column_text(st, 3));
        out->bytes = sqlite3_column_int64(st, 4);
        out->n_tokens = sqlite3_column_int64(st, 5);
        out->last_used = sqlite3_column_double(st, 6);
    } else if (r == SQLITE_DONE) {
        rc = sd_seterr(err, SD_ENOTFOUND, "store_get_cache_entry: no entry %s", fingerprint);
    } else {
        rc = db_err(s, err, sqlite3_extended_errcode(s->db), "get cache entry");
    }
    sqlite3_finalize(st);
    return rc;
}

int store_delete_cache_entry(store *s, const char *fingerprint, sd_err *err) {
    sqlite3_stmt *st = NULL;
    int rc = prep(s, "DELETE FROM cache_entries WHERE fingerprint = ?", &st, err);
    if (rc) return rc;
    sqlite3_bind_text(st, 1, fingerprint, -1, SQLITE_STATIC);
    rc = step_done(s, st, err, "delete cache entry");
    sqlite3_finalize(st);
    if (!rc && sqlite3_changes(s->db) == 0)
        rc = sd_seterr(err, SD_ENOTFOUND, "store_delete_cache_entry: no entry %s", fingerprint);
    return rc;
}

int store_put_result(store *s, const char *op, int64_t doc_id, const char *params_json, const char *result_json,
                     const char *timings_json, double wall_ms, int64_t *result_id, sd_err *err) {
    sqlite3_stmt *st = NULL;
    if (!op) return sd_seterr(err, SD_EINVAL, "store_put_result: op is NULL");
    int rc = prep(s,
                  "INSERT INTO results(op, doc_id, params_json, result_json, timings_json, wall_ms, created_at)"
                  " VALUES(?,?,?,?,?,?,?)",
                  &st, err);
    if (rc) return rc;
    sqlite3_bind_text(st, 1, op, -1, SQLITE_STATIC);
    if (doc_id) sqlite3_bind_int64(st, 2, doc_id);
    else sqlite3_bind_null(st, 2);
    sqlite3_bind_text(st, 3, params_json ? params_json : "{}", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, result_json ? result_json : "{}", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, timings_json ? timings_json : "{}", -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 6, wall_ms);
    sqlite3_bind_double(st, 7, now_unix());
    rc = step_done(s, st, err, "put result");
    if (!rc && result_id) *result_id = sqlite3_last_insert_rowid(s->db);
    sqlite3_finalize(st);
    return rc;
}

void store_result_clear(store_result *r) {
    if (!r) return;
    free(r->op);
    free(r->params_json);
    free(r->result_json);
    free(r->timings_json);
    memset(r, 0, sizeof *r);
}

int store_get_result(store *s, int64_t result_id, store_result *out, sd_err *err) {
    sqlite3_stmt *st = NULL;
    memset(out, 0, sizeof *out);
    int rc = prep(s, "SELECT id, op, doc_id, params_json, result_json, timings_json, wall_ms, created_at"
                     " FROM results WHERE id = ?", &st, err);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, result_id);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        out->id = sqlite3_column_int64(st, 0);
        out->op = col_dup(st, 1);
        out->doc_id = sqlite3_column_int64(st, 2);
        out->params_json = col_dup(st, 3);
        out->result_json = col_dup(st, 4);
        out->timings_json = col_dup(st, 5);
        out->wall_ms = sqlite3_column_double(st, 6);
        out->created_at = sqlite3_column_double(st, 7);
    } else if (r == SQLITE_DONE) {
        rc = sd_seterr(err, SD_ENOTFOUND, "store_get_result: no result %lld", (long long)result_id);
    } else {
        rc = db_err(s, err, sqlite3_extended_errcode(s->db), "get result");
    }
    sqlite3_finalize(st);
    return rc;
}

int store_check(store *s, sd_err *err) {
    sqlite3_stmt *st = NULL;
    int rc = prep(s, "PRAGMA integrity_check", &st, err);
    if (rc) return rc;
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        if (!t || strcmp(t, "ok") != 0) rc = sd_seterr(err, SD_ESTORE, "store_check: %s", t ? t : "(null)");
    } else {
        rc = db_err(s, err, sqlite3_extended_errcode(s->db), "integrity_check");
    }
    sqlite3_finalize(st);
    return rc;
}
