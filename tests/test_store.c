/* test_store.c - unit tests of the store: schema version and WAL, put/get round
 * trips, dedup by SHA-256, page map, sections, FTS search, tokens, cache entries,
 * results, delete cascade, schema-too-new, read-only and disk-full behaviour. */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ingest.h"
#include "store.h"
#include "test.h"

static char dir[256];

static ingest_doc *make_doc(const char *text, const char *name) {
    ingest_doc *d = NULL;
    sd_err err = {0};
    if (ingest_bytes(text, strlen(text), name, NULL, &d, &err)) {
        fprintf(stderr, "ingest failed: %s\n", err.msg);
        return NULL;
    }
    return d;
}

static const char *doc_text =
    "MASTER AGREEMENT\n\n1. Definitions\nAffiliate means any entity controlling a party.\n"
    "2. Termination\nEither party may terminate on ninety days notice.\f"
    "3. Governing Law\nThis agreement is governed by the laws of Delaware.\n"
    "4. Liability\nThe liability cap equals the fees paid.\n";

static int64_t count(const char *db, const char *sql) {
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(h);
    return v;
}

static void test_roundtrip(void) {
    char db[300];
    snprintf(db, sizeof db, "%s/a.db", dir);
    sd_err err = {0};
    store *s = store_open(db, &err);
    CHECK_MSG(s != NULL, "%s", err.msg);
    if (!s) return;
    CHECK_EQ(count(db, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
    char wal[320];
    snprintf(wal, sizeof wal, "%s-wal", db);
    CHECK(access(wal, F_OK) == 0);
    CHECK_EQ(store_readonly(s), 0);

    ingest_doc *d = make_doc(doc_text, "master.txt");
    if (!d) { store_close(s); return; }
    uint8_t sha[32];
    char hex[65];
    CHECK_EQ(store_sha256(doc_text, strlen(doc_text), sha, hex), 0);
    /* SHA-256("abc") known answer */
    uint8_t k[32];
    char khex[65];
    store_sha256("abc", 3, k, khex);
    CHECK(strcmp(khex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0);

    int64_t id = 0, id2 = 0;
    int existed = -1;
    CHECK_EQ(store_put_document(s, d, sha, &id, &existed, &err), 0);
    CHECK(id > 0);
    CHECK_EQ(existed, 0);
    CHECK_EQ(store_put_document(s, d, sha, &id2, &existed, &err), 0);
    CHECK_EQ(id2, id);
    CHECK_EQ(existed, 1);
    CHECK_EQ(count(db, "SELECT count(*) FROM documents"), 1);
    int64_t found = 0;
    CHECK_EQ(store_find_by_sha(s, sha, &found, &err), 0);
    CHECK_EQ(found, id);

    store_doc_info info;
    CHECK_EQ(store_get_document(s, id, &info, &err), 0);
    CHECK(info.name && strcmp(info.name, "master.txt") == 0);
    CHECK(strcmp(info.sha256, hex) == 0);
    CHECK_EQ(info.pages, 2);
    CHECK_EQ(info.sections, d->n_sections);
    CHECK_EQ(info.bytes, (int64_t)strlen(doc_text));
    CHECK_EQ(info.text_bytes, (int64_t)d->text_len);
    CHECK(info.quality_json && strstr(info.quality_json, "\"pages\":2"));
    CHECK(info.language && strcmp(info.language, "en") == 0);
    store_doc_info_clear(&info);
    CHECK_EQ(store_get_document(s, id + 100, &info, &err), SD_ENOTFOUND);

    store_doc_info *list = NULL;
    int nl = 0;
    CHECK_EQ(store_list_documents(s, &list, &nl, &err), 0);
    CHECK_EQ(nl, 1);
    store_doc_info_free_array(list, nl);

    store_page *pages = NULL;
    int np = 0;
    CHECK_EQ(store_get_pages(s, id, &pages, &np, &err), 0);
    CHECK_EQ(np, 2);
    for (int i = 0; i < np && i < d->n_pages; i++) {
        size_t len = d->pages[i].end - d->pages[i].start;
        CHECK(strlen(pages[i].text) == len && memcmp(pages[i].text, d->text + d->pages[i].start, len) == 0);
        CHECK_EQ(pages[i].start, (int64_t)d->pages[i].start);
        CHECK_EQ(pages[i].number, i + 1);
    }
    store_pages_free(pages, np);

    char *text = NULL;
    size_t tlen = 0;
    int64_t *ps = NULL;
    int nps = 0;
    CHECK_EQ(store_get_text(s, id, &text, &tlen, &ps, &nps, &err), 0);
    CHECK(text && tlen == d->text_len && memcmp(text, d->text, tlen) == 0);
    CHECK_EQ(nps, 2);
    if (nps == 2) CHECK_EQ(ps[1], (int64_t)d->pages[1].start);
    /* "Delaware" is on page 2 by the page map */
    const char *dl = text ? strstr(text, "Delaware") : NULL;
    CHECK(dl && nps == 2 && (int64_t)(dl - text) >= ps[1]);
    free(text);
    free(ps);

    store_section *secs = NULL;
    int ns = 0;
    CHECK_EQ(store_get_sections(s, id, &secs, &ns, &err), 0);
    CHECK_EQ(ns, d->n_sections);
    int found_gl = 0;
    for (int i = 0; i < ns; i++)
        if (strcmp(secs[i].number, "3.") == 0 && strcmp(secs[i].title, "Governing Law") == 0 && secs[i].page_start == 2)
            found_gl = 1;
    CHECK(found_gl);
    store_sections_free(secs, ns);

    store_hit *hits = NULL;
    int nh = 0;
    CHECK_EQ(store_search(s, "delaware governed", 0, 10, &hits, &nh, &err), 0);
    CHECK(nh >= 1);
    if (nh >= 1) {
        CHECK_EQ(hits[0].page, 2);
        CHECK(strstr(hits[0].snippet, "[Delaware]") != NULL);
    }
    store_hits_free(hits, nh);
    CHECK_EQ(store_search(s, "termination", id, 10, &hits, &nh, &err), 0);
    CHECK(nh >= 1);
    store_hits_free(hits, nh);
    /* FTS syntax is neutralised, not an error */
    CHECK_EQ(store_search(s, "\"liability* (cap", 0, 10, &hits, &nh, &err), 0);
    CHECK(nh >= 1);
    store_hits_free(hits, nh);
    CHECK_EQ(store_search(s, " ()* ", 0, 10, &hits, &nh, &err), SD_EINVAL);

    int32_t ids[5] = {1, 2, 3, 128000, -1}, *got = NULL;
    size_t ng = 0;
    CHECK_EQ(store_put_tokens(s, id, "smollm3", ids, 5, &err), 0);
    CHECK_EQ(store_get_tokens(s, id, "smollm3", &got, &ng, &err), 0);
    CHECK(ng == 5 && got && memcmp(got, ids, sizeof ids) == 0);
    free(got);
    CHECK_EQ(store_get_tokens(s, id, "other", &got, &ng, &err), SD_ENOTFOUND);

    store_cache_entry ce, ce2;
    memset(&ce, 0, sizeof ce);
    snprintf(ce.fingerprint, sizeof ce.fingerprint, "fp-1");
    ce.doc_id = id;
    snprintf(ce.tier, sizeof ce.tier, "disk");
    snprintf(ce.path, sizeof ce.path, "/tmp/x.kv");
    ce.bytes = 1 << 20;
    ce.n_tokens = 1234;
    CHECK_EQ(store_put_cache_entry(s, &ce, &err), 0);
    snprintf(ce.tier, sizeof ce.tier, "host");
    CHECK_EQ(store_put_cache_entry(s, &ce, &err), 0);
    CHECK_EQ(store_get_cache_entry(s, "fp-1", &ce2, &err), 0);
    CHECK(strcmp(ce2.tier, "host") == 0 && ce2.n_tokens == 1234 && ce2.doc_id == id);

    int64_t rid = 0;
    CHECK_EQ(store_put_result(s, "ask", id, "{\"q\":\"law?\"}", "{\"a\":\"Delaware\"}", "{\"decode_ms\":5}", 12.5,
                              &rid, &err), 0);
    store_result r;
    CHECK_EQ(store_get_result(s, rid, &r, &err), 0);
    CHECK(r.op && strcmp(r.op, "ask") == 0 && r.doc_id == id && strstr(r.result_json, "Delaware"));
    CHECK_NEAR(r.wall_ms, 12.5, 1e-9);
    store_result_clear(&r);

    /* delete cascades; the result keeps its row without the document */
    CHECK_EQ(store_delete_document(s, id, &err), 0);
    CHECK_EQ(count(db, "SELECT count(*) FROM pages"), 0);
    CHECK_EQ(count(db, "SELECT count(*) FROM sections"), 0);
    CHECK_EQ(count(db, "SELECT count(*) FROM fts"), 0);
    CHECK_EQ(count(db, "SELECT count(*) FROM doc_tokens"), 0);
    CHECK_EQ(store_get_cache_entry(s, "fp-1", &ce2, &err), SD_ENOTFOUND);
    CHECK_EQ(store_get_result(s, rid, &r, &err), 0);
    CHECK_EQ(r.doc_id, 0);
    store_result_clear(&r);
    CHECK_EQ(store_delete_document(s, id, &err), SD_ENOTFOUND);
    CHECK_EQ(store_check(s, &err), 0);
    store_close(s);
    ingest_doc_free(d);

    /* reopening keeps the version; a newer schema is refused */
    s = store_open(db, &err);
    CHECK(s != NULL);
    store_close(s);
    sqlite3 *h = NULL;
    sqlite3_open(db, &h);
    sqlite3_exec(h, "PRAGMA user_version=99", NULL, NULL, NULL);
    sqlite3_close(h);
    s = store_open(db, &err);
    CHECK(s == NULL);
    CHECK(strstr(err.msg, "newer than this build") != NULL);
    store_close(s);
    /* not a database */
    char junk[300];
    snprintf(junk, sizeof junk, "%s/junk.db", dir);
    FILE *f = fopen(junk, "w");
    fputs("this is not an SQLite database, not at all, no header here........................................", f);
    fclose(f);
    s = store_open(junk, &err);
    CHECK(s == NULL);
    CHECK(err.code == SD_EFORMAT || err.code == SD_ESTORE);
    store_close(s);
}

static void test_readonly(void) {
    char db[300], uri[400];
    snprintf(db, sizeof db, "%s/ro.db", dir);
    sd_err err = {0};
    store *s = store_open(db, &err);
    ingest_doc *d = make_doc(doc_text, "ro.txt");
    if (!s || !d) { store_close(s); ingest_doc_free(d); CHECK(0); return; }
    uint8_t sha[32];
    store_sha256("one", 3, sha, NULL);
    CHECK_EQ(store_put_document(s, d, sha, NULL, NULL, &err), 0);
    store_close(s);
    /* read-only through the URI: reads work, writes fail cleanly */
    snprintf(uri, sizeof uri, "file:%s?mode=ro", db);
    s = store_open(uri, &err);
    CHECK_MSG(s != NULL, "%s", err.msg);
    if (s) {
        CHECK_EQ(store_readonly(s), 1);
        store_doc_info *list = NULL;
        int n = 0;
        CHECK_EQ(store_list_documents(s, &list, &n, &err), 0);
        CHECK_EQ(n, 1);
        store_doc_info_free_array(list, n);
        store_sha256("two", 3, sha, NULL);
        CHECK_EQ(store_put_document(s, d, sha, NULL, NULL, &err), SD_EREADONLY);
        CHECK(strstr(err.msg, "read-only") != NULL);
        CHECK_EQ(store_put_result(s, "ask", 0, "{}", "{}", "{}", 1, NULL, &err), SD_EREADONLY);
        store_close(s);
    }
    CHECK_EQ(count(db, "SELECT count(*) FROM documents"), 1);
    CHECK_EQ(count(db, "SELECT count(*) FROM results"), 0);
    /* a write-protected file: only meaningful when not root (root ignores modes) */
    if (geteuid() != 0) {
        chmod(db, 0444);
        s = store_open(db, &err);
        if (s) {
            CHECK_EQ(store_put_document(s, d, sha, NULL, NULL, &err), SD_EREADONLY);
            store_close(s);
        }
        chmod(db, 0644);
    } else {
        SKIP("chmod 0444 read-only case: running as root, which ignores file modes (URI mode=ro tested)");
    }
    ingest_doc_free(d);
}

/* A document with a large body (about kb KiB of text). */
static ingest_doc *big_doc(size_t kb) {
    size_t n = kb * 1024;
    char *t = malloc(n + 64);
    size_t k = 0;
    int line = 0;
    while (k + 64 < n) k += (size_t)snprintf(t + k, n + 64 - k, "Line %d of the big document, with words.\n", line++);
    ingest_doc *d = make_doc(t, "big.txt");
    free(t);
    return d;
}

static void check_full(store *s, const char *db, const char *how) {
    sd_err err = {0};
    ingest_doc *d = big_doc(2048);
    if (!d) { CHECK(0); return; }
    uint8_t sha[32];
    store_sha256("big", 3, sha, NULL);
    int64_t before = count(db, "SELECT count(*) FROM documents");
    int rc = store_put_document(s, d, sha, NULL, NULL, &err);
    CHECK_MSG(rc == SD_EFULL, "%s: rc %d %s", how, rc, err.msg);
    CHECK_MSG(strstr(err.msg, "full") != NULL, "%s: %s", how, err.msg);
    CHECK_EQ(store_check(s, &err), 0);
    CHECK_EQ(count(db, "SELECT count(*) FROM documents"), before);
    CHECK_EQ(count(db, "SELECT count(*) FROM pages WHERE doc_id NOT IN (SELECT id FROM documents)"), 0);
    /* a small document still fits afterwards */
    ingest_doc *small = make_doc(doc_text, "small.txt");
    store_sha256("small", 5, sha, NULL);
    CHECK_EQ(store_put_document(s, small, sha, NULL, NULL, &err), 0);
    ingest_doc_free(small);
    ingest_doc_free(d);
}

static void test_full(void) {
    sd_err err = {0};
    /* 1: SQLite's page quota */
    char db[400];
    snprintf(db, sizeof db, "%s/quota.db", dir);
    store *s = store_open(db, &err);
    if (s) {
        CHECK_EQ(store_set_max_pages(s, 64, &err), 0);
        check_full(s, db, "max_page_count");
        store_close(s);
    } else {
        CHECK(0);
    }
    /* 2: a real full filesystem: a 512 KiB tmpfs (needs root and mount rights) */
    char mnt[300];
    snprintf(mnt, sizeof mnt, "%s/tmpfs", dir);
    mkdir(mnt, 0700);
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=512k") != 0) {
        SKIP("tmpfs mount failed (%s): real disk-full case not run; max_page_count case ran", strerror(errno));
        rmdir(mnt);
        return;
    }
    snprintf(db, sizeof db, "%s/full.db", mnt);
    s = store_open(db, &err);
    CHECK_MSG(s != NULL, "%s", err.msg);
    if (s) {
        check_full(s, db, "tmpfs");
        store_close(s);
    }
    umount2(mnt, MNT_DETACH);
    rmdir(mnt);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/test_store.XXXXXX");
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    test_roundtrip();
    test_readonly();
    test_full();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return test_done();
}
