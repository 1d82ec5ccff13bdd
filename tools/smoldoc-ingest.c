/* smoldoc-ingest - ingests files into a smoldoc database without the daemon, and
 * checks a database; the crash-consistency test kills it mid-write.
 * Usage: smoldoc-ingest DB FILE... [--password P] [--copies N] [--salt S]
 *        smoldoc-ingest DB --check     (integrity_check and whole-document check) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"
#include "store.h"

static void usage(void) {
    fprintf(stderr, "usage: smoldoc-ingest DB FILE... [--password P] [--copies N] [--salt S]\n"
                    "       smoldoc-ingest DB --check\n"
                    "  --copies N stores N copies of each file under distinct ids (for crash tests);\n"
                    "  --salt S makes those ids differ from another run's\n");
}

/* Every document is whole: its page, section and text counts match its row. */
static int check_db(store *s) {
    sd_err err = {0};
    int rc = store_check(s, &err);
    if (rc) { fprintf(stderr, "check: %s\n", err.msg); return 1; }
    store_doc_info *docs = NULL;
    int n = 0, bad = 0;
    if (store_list_documents(s, &docs, &n, &err)) { fprintf(stderr, "check: %s\n", err.msg); return 1; }
    for (int i = 0; i < n; i++) {
        store_page *pages = NULL;
        store_section *secs = NULL;
        int np = 0, ns = 0;
        char *text = NULL;
        size_t len = 0;
        int64_t *ps = NULL;
        int nps = 0;
        if (store_get_pages(s, docs[i].id, &pages, &np, &err) || store_get_sections(s, docs[i].id, &secs, &ns, &err) ||
            store_get_text(s, docs[i].id, &text, &len, &ps, &nps, &err)) {
            fprintf(stderr, "check: doc %lld: %s\n", (long long)docs[i].id, err.msg);
            bad++;
        } else if (np != docs[i].pages || ns != docs[i].sections || (int64_t)len != docs[i].text_bytes ||
                   nps != np) {
            fprintf(stderr, "check: doc %lld is not whole: pages %d/%d sections %d/%d text %zu/%lld\n",
                    (long long)docs[i].id, np, docs[i].pages, ns, docs[i].sections, len,
                    (long long)docs[i].text_bytes);
            bad++;
        }
        store_pages_free(pages, np);
        store_sections_free(secs, ns);
        free(text);
        free(ps);
    }
    printf("documents %d, bad %d\n", n, bad);
    store_doc_info_free_array(docs, n);
    return bad ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc < 3) { usage(); return 2; }
    const char *db = argv[1];
    ingest_params p = ingest_params_default();
    long copies = 1, salt = 0;
    int check = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--password") && i + 1 < argc) p.password = argv[++i];
        else if (!strcmp(argv[i], "--copies") && i + 1 < argc) copies = atol(argv[++i]);
        else if (!strcmp(argv[i], "--salt") && i + 1 < argc) salt = atol(argv[++i]);
        else if (!strcmp(argv[i], "--check")) check = 1;
    }
    sd_err err = {0};
    store *s = store_open(db, &err);
    if (!s) { fprintf(stderr, "smoldoc-ingest: %s\n", err.msg); return 1; }
    if (check) {
        int r = check_db(s);
        store_close(s);
        return r;
    }
    int status = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--password") || !strcmp(argv[i], "--copies") || !strcmp(argv[i], "--salt")) {
            i++;
            continue;
        }
        if (argv[i][0] == '-') continue;
        char *buf = NULL;
        size_t len = 0;
        ingest_doc *d = NULL;
        if (sd_read_file(argv[i], p.max_bytes, &buf, &len, &err) ||
            ingest_bytes(buf, len, strrchr(argv[i], '/') ? strrchr(argv[i], '/') + 1 : argv[i], &p, &d, &err)) {
            fprintf(stderr, "smoldoc-ingest: %s: %s\n", argv[i], err.msg);
            free(buf);
            status = 1;
            continue;
        }
        printf("parsed %s\n", argv[i]);
        fflush(stdout);
        for (long c = 0; c < copies; c++) {
            uint8_t sha[32];
            if (copies == 1 && salt == 0) {
                store_sha256(buf, len, sha, NULL);
            } else {
                /* distinct ids for copies: hash of the bytes' hash and the copy number */
                uint8_t h[48];
                store_sha256(buf, len, h, NULL);
                memcpy(h + 32, &c, sizeof c);
                memcpy(h + 40, &salt, sizeof salt);
                store_sha256(h, sizeof h, sha, NULL);
            }
            int64_t id = 0;
            int existed = 0;
            int rc = store_put_document(s, d, sha, &id, &existed, &err);
            if (rc) {
                fprintf(stderr, "smoldoc-ingest: %s: %s (%s)\n", argv[i], err.msg, sd_strerror(rc));
                status = 1;
                break;
            }
            printf("%lld %s %d pages %d sections %s\n", (long long)id, existed ? "existed" : "stored", d->n_pages,
                   d->n_sections, argv[i]);
            fflush(stdout);
        }
        ingest_doc_free(d);
        free(buf);
    }
    store_close(s);
    return status;
}
